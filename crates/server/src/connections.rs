//! Connections past the connection limit: each gets `503` with the Graph error body and is
//! closed.
//!
//! Such a connection is served by hyper with a service that rejects every request, so the
//! client reads a complete HTTP response before the close. At most
//! [`MAX_REJECTING_CONNECTIONS`] get their `503` at the same time, each within
//! [`REJECTION_HEADER_TIMEOUT`]. A connection past that is closed at once without a response,
//! so no queue of waiting connections builds up.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::Request;
use axum::response::IntoResponse;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

use crate::ServeLimits;
use crate::context::{self, RequestIds};
use crate::error::ApiError;

/// The maximum number of connections past the limit that get a `503` at the same time.
pub(crate) const MAX_REJECTING_CONNECTIONS: usize = 64;

/// The maximum time a connection past the limit has to send its request headers, or the
/// header read timeout if that is shorter.
pub(crate) const REJECTION_HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// How often a warning about rejected connections is logged at most.
const WARNING_INTERVAL: Duration = Duration::from_secs(10);

/// Rejects the connections past the connection limit.
pub(crate) struct Overflow {
    limit: usize,
    permits: Arc<Semaphore>,
    builder: http1::Builder,
    /// When the last warning was logged.
    last_warning: Option<Instant>,
    /// Connections rejected since the last warning.
    rejected: u64,
}

impl Overflow {
    pub(crate) fn new(limits: ServeLimits) -> Overflow {
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .keep_alive(false)
            .header_read_timeout(limits.header_read_timeout.min(REJECTION_HEADER_TIMEOUT))
            .max_headers(limits.parser.max_headers)
            .max_header_size(limits.parser.max_head_bytes)
            .max_buf_size(limits.parser.max_buffer_bytes);
        Overflow {
            limit: limits.max_connections,
            permits: Arc::new(Semaphore::new(MAX_REJECTING_CONNECTIONS)),
            builder,
            last_warning: None,
            rejected: 0,
        }
    }

    /// Responds to the connection's first request with `503` and closes it, or closes it at
    /// once when [`MAX_REJECTING_CONNECTIONS`] are getting their `503` already.
    pub(crate) fn reject(
        &mut self,
        stream: TcpStream,
        peer: SocketAddr,
        graceful: &GracefulShutdown,
    ) {
        self.rejected += 1;
        let now = Instant::now();
        if self.last_warning.is_none_or(|last| now.duration_since(last) >= WARNING_INTERVAL) {
            tracing::warn!(
                limit = self.limit,
                rejected = self.rejected,
                "connections past the connection limit were rejected with 503"
            );
            self.last_warning = Some(now);
            self.rejected = 0;
        }

        let Ok(permit) = Arc::clone(&self.permits).try_acquire_owned() else {
            tracing::debug!(%peer, "closed a connection past the limit without a response");
            return;
        };
        let limit = self.limit;
        let service = hyper::service::service_fn(move |request: Request<Incoming>| async move {
            let ids = RequestIds::new(request.headers());
            let mut response = ApiError::TooManyConnections(limit).into_response();
            context::complete_response(&mut response, &ids);
            Ok::<_, Infallible>(response)
        });
        let connection = self.builder.serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%peer, error.message = %error, "rejected connection ended with an error");
            }
            drop(permit);
        });
    }
}

impl std::fmt::Debug for Overflow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Overflow").field("limit", &self.limit).finish_non_exhaustive()
    }
}
