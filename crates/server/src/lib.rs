//! The HTTP layer of Beacon: a Microsoft Graph–compatible OData API over a [`Store`].
//!
//! The router keeps no state of its own beyond what [`AppState`] is built with (the store, the
//! token verifier and settings), so any number of servers can serve one database.
//!
//! # Layout
//!
//! - [`auth`]: the signing key, development tokens and token verification.
//! - `context`: the middleware that adds request ids, the request span and Graph error bodies.
//! - `error`: the error type every handler returns and its status mapping.
//! - `handlers`: resolves the OData path and runs the operation.
//! - `paging`: server-driven paging with `$skiptoken` and `@odata.nextLink`.

pub mod auth;
mod context;
mod error;
mod handlers;
mod paging;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use beacon_store::Store;
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;

use crate::auth::TokenVerifier;

/// The largest request body accepted, in bytes.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Shared state of every request handler.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The entity store.
    pub store: Arc<dyn Store>,
    /// Checks bearer tokens.
    pub verifier: Arc<TokenVerifier>,
    /// The scheme and authority that absolute URLs in responses start with, such as
    /// `https://beacon.example.com`; when `None`, `http://` and the request's `Host`.
    pub public_url: Option<Arc<str>>,
}

/// Builds the application: every route, with the request-context and panic layers.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(handlers::healthz))
        .fallback(handlers::dispatch)
        .with_state(state)
        .layer(CatchPanicLayer::custom(handlers::panic_response))
        .layer(axum::middleware::from_fn(context::request_context))
}

/// Serves `app` on `listener` until `shutdown` completes, then waits for requests in flight.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
