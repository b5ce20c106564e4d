//! The baseline: the smallest HTTP/1.1 server on the same stack as Beacon (tokio's
//! multi-threaded runtime with its default worker count, and hyper's HTTP/1 connection
//! handler) that responds to every request with one fixed JSON body.
//!
//! The body is a single-entity response that Beacon itself sent, so the baseline moves the
//! same bytes per request. Whatever it reaches on a machine is the yardstick that the load
//! figures of Beacon are divided by. It logs nothing but its address, reads no database and
//! checks no token.

use std::convert::Infallible;
use std::path::Path;

use anyhow::Context;
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};

/// The `Content-Type` that Beacon gives its JSON responses.
const JSON_CONTENT_TYPE: &str = "application/json;odata.metadata=minimal";

/// Serves the bytes of `body_file` on a free loopback port until SIGTERM, after logging
/// `listening on http://ADDR` to standard error.
pub fn serve(body_file: &Path) -> anyhow::Result<()> {
    let body = std::fs::read(body_file)
        .with_context(|| format!("cannot read the baseline body {}", body_file.display()))?;
    let body = Bytes::from(body);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(accept(body))
}

async fn accept(body: Bytes) -> anyhow::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0").await.context("cannot listen")?;
    let mut terminate = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    eprintln!("listening on http://{}", listener.local_addr()?);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => accepted.context("accepting a connection failed")?,
            _ = terminate.recv() => return Ok(()),
        };
        let body = body.clone();
        tokio::spawn(async move {
            let service = service_fn(move |_request: Request<hyper::body::Incoming>| {
                let mut response = Response::new(Full::new(body.clone()));
                response
                    .headers_mut()
                    .insert(CONTENT_TYPE, HeaderValue::from_static(JSON_CONTENT_TYPE));
                async move { Ok::<_, Infallible>(response) }
            });
            // A connection that the client closes ends here; there is nothing to report.
            let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}
