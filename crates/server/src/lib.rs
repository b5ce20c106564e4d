//! The HTTP layer of Beacon: a Microsoft Graph–compatible OData API over a [`Store`].
//!
//! The router keeps no state of its own beyond what [`AppState`] is built with (the store, the
//! token verifier and settings), so any number of servers can serve one database.
//!
//! # Layout
//!
//! - [`auth`]: the signing key, development tokens, the identity provider's key set and token
//!   verification.
//! - `batch`: `POST /beta/$batch`, which runs several requests given in one JSON body.
//! - `connections`: accepting connections up to a limit, and rejecting those past it.
//! - `context`: the middleware that adds request ids, the request span and Graph error bodies.
//! - [`dashboard`]: the compliance dashboard at `/dashboard`, a page compiled into the binary.
//! - `documents`: the service document, the `$metadata` document and the OpenAPI description.
//! - `error`: the error type every handler returns and its status mapping.
//! - `fuzzing`: entry points for the fuzz targets in `fuzz/`, hidden from the docs.
//! - `grouped`: the JSON of grouped `$apply` results.
//! - `handlers`: resolves the OData path and runs the operation.
//! - [`limits`]: bounds on each request's URL, headers and handling time.
//! - [`monitoring`]: Prometheus metrics of requests at `/metrics`, and the readiness probe
//!   `/readyz`.
//! - `stalled`: the write deadline that closes connections whose client reads nothing.
//! - `paging`: server-driven paging with `$skiptoken` and `@odata.nextLink`.
//! - [`rate_limit`]: token buckets per partner tenant, client and client address.
//! - `writes`: create, update and delete, with preconditions and `Prefer: return`.

pub mod auth;
mod batch;
mod connections;
mod context;
pub mod dashboard;
mod documents;
mod error;
#[doc(hidden)]
pub mod fuzzing;
mod grouped;
mod handlers;
pub mod limits;
pub mod monitoring;
pub mod paging;
pub mod rate_limit;
mod stalled;
mod writes;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::Request;
use axum::routing::get;
use beacon_store::Store;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower_http::catch_panic::CatchPanicLayer;

pub use crate::documents::openapi_json;

use crate::auth::Authenticator;
use crate::connections::Overflow;
use crate::limits::{EnforcedLimits, ParserLimits, RequestLimits};
use crate::monitoring::MetricsEndpoint;
use crate::rate_limit::RateLimiter;
use crate::stalled::WriteDeadline;

/// The largest request body accepted, in bytes.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Shared state of every request handler.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The entity store.
    pub store: Arc<dyn Store>,
    /// Checks bearer tokens, in dev or jwks mode.
    pub verifier: Arc<Authenticator>,
    /// The scheme and authority that absolute URLs in responses start with, such as
    /// `https://beacon.example.com`; when `None`, `http://` and the request's `Host`.
    pub public_url: Option<Arc<str>>,
    /// How long a client may take to send a whole request body before it gets `408`.
    pub body_read_timeout: Duration,
    /// Signs and checks `$skiptoken` values.
    pub skiptoken_key: paging::SkiptokenKey,
    /// The bounds on each request's URL, headers and handling time.
    pub limits: RequestLimits,
    /// The request rate limits of this process.
    pub rate_limiter: Arc<RateLimiter>,
    /// The metrics that `GET /metrics` serves on this listener, or `None` to leave `/metrics`
    /// out, as when [`metrics_app`] serves it on a listener of its own.
    pub metrics: Option<MetricsEndpoint>,
}

/// Builds the application: every route, with the request-context, request-limit and panic
/// layers.
pub fn app(state: AppState) -> Router {
    let enforced =
        EnforcedLimits { request: state.limits, body_read_timeout: state.body_read_timeout };
    let mut router = Router::new()
        .route("/healthz", get(handlers::healthz))
        .route("/readyz", get(monitoring::readyz))
        .route(dashboard::PAGE.path, get(dashboard::page))
        .route(dashboard::SCRIPT.path, get(dashboard::script))
        .route(dashboard::STYLE_SHEET.path, get(dashboard::style_sheet))
        .route(dashboard::ICON.path, get(dashboard::icon));
    if let Some(endpoint) = state.metrics.clone() {
        router = router.route("/metrics", get(monitoring::render_metrics).with_state(endpoint));
    }
    router
        .fallback(handlers::dispatch)
        .with_state(state)
        .layer(CatchPanicLayer::custom(handlers::panic_response))
        .layer(axum::middleware::from_fn_with_state(enforced, limits::enforce))
        .layer(axum::middleware::from_fn(context::request_context))
}

/// Builds the application of a listener that serves only `GET /metrics`. Every other path
/// gets `404` in the Graph error shape.
pub fn metrics_app(endpoint: MetricsEndpoint) -> Router {
    Router::new()
        .route("/metrics", get(monitoring::render_metrics))
        .with_state(endpoint)
        .layer(CatchPanicLayer::custom(handlers::panic_response))
        .layer(axum::middleware::from_fn(context::request_context))
}

/// Limits of the connection handling.
#[derive(Clone, Copy, Debug)]
pub struct ServeLimits {
    /// How long a client may take to send a request's headers once it has started. This also
    /// closes a connection that has been idle for that long.
    pub header_read_timeout: Duration,
    /// How long a response may wait for the client to read any of it; the connection is
    /// closed after that.
    pub write_timeout: Duration,
    /// How long requests in flight may take to finish after shutdown begins; connections still
    /// open after that are closed.
    pub shutdown_grace: Duration,
    /// The maximum number of connections served at once. Each one past it gets `503` and is
    /// closed.
    pub max_connections: usize,
    /// The limits of hyper's HTTP/1 parser, from [`RequestLimits::parser_limits`].
    pub parser: ParserLimits,
}

impl Default for ServeLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(30),
            max_connections: 1024,
            parser: RequestLimits::default().parser_limits(),
        }
    }
}

/// Serves `app` on `listener` until `shutdown` completes, then lets requests in flight finish
/// within [`ServeLimits::shutdown_grace`].
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()>,
    limits: ServeLimits,
) {
    // HTTP/1.1 only: hyper enforces the header read timeout there from the first byte, and a
    // proxy in front can offer HTTP/2 to clients.
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_headers(limits.parser.max_headers)
        .max_header_size(limits.parser.max_head_bytes)
        .max_buf_size(limits.parser.max_buffer_bytes);
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let mut overflow = Overflow::new(limits);

    // Accept connections until the shutdown signal.
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(connection) => connection,
                Err(error) => {
                    // Running out of file descriptors is transient, so wait and go on.
                    tracing::warn!(error.message = %error, "failed to accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = shutdown.as_mut() => break,
        };

        // A connection past the limit gets a 503 and is closed, without waiting for a slot.
        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
            overflow.reject(stream, peer, &graceful);
            continue;
        };

        // Handlers read the peer address, for rate limits, from the request extensions.
        let with_peer =
            tower::ServiceExt::map_request(app.clone(), move |mut request: Request<_>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                request
            });
        let service = TowerToHyperService::new(with_peer);
        let stream = WriteDeadline::new(stream, limits.write_timeout);
        let connection = builder.serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%peer, error.message = %error, "connection ended with an error");
            }
            drop(permit);
        });
    }

    // Stop accepting, then wait for open connections within the grace period.
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(limits.shutdown_grace) => {
            tracing::warn!(
                grace_ms = limits.shutdown_grace.as_millis(),
                "connections still open after the shutdown grace period are closed"
            );
        }
    }
}
