//! Bounds on each request: the URL length, the header count and size, and the time to handle
//! it.
//!
//! [`enforce`] runs inside the request-context middleware, so its rejections get the Graph
//! error body. A long URL gets `414`, too many or too large headers get `431`, and a request
//! that does not complete within the request timeout gets `503` with `Retry-After`.
//!
//! Hyper's HTTP/1 parser has limits of its own, whose rejections carry a bare status and no
//! body. `serve` sets them from [`RequestLimits::parser_limits`], well above Beacon's, so a
//! request over Beacon's limits reaches this module unless it is over hyper's as well.
//!
//! The request timeout starts once the request body has been read, so a slow upload gets the
//! `408` of the body read timeout and not this `503`. It also starts when the handler drops
//! the body unread, or when the body read timeout has passed, so every request ends within the
//! body read timeout plus the request timeout. When the timeout passes, the handler's future is
//! dropped: a write that the store had already received may still be committed.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::oneshot;

use crate::error::ApiError;

/// The bounds on each request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestLimits {
    /// The maximum length of the request target (path and query, or the absolute URL), in
    /// bytes.
    pub max_url_bytes: usize,
    /// The maximum total size of the request headers, in bytes, counted as each field's name
    /// and value plus 4 bytes for the `: ` and the line break.
    pub max_header_bytes: usize,
    /// The maximum number of header fields in a request.
    pub max_headers: usize,
    /// How long handling a request may take once its body has been read.
    pub request_timeout: Duration,
}

impl Default for RequestLimits {
    fn default() -> Self {
        Self {
            max_url_bytes: 16 * 1024,
            max_header_bytes: 32 * 1024,
            max_headers: 100,
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// The limits of hyper's HTTP/1 parser that go with a [`RequestLimits`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParserLimits {
    /// The maximum number of header fields hyper parses. Past it, hyper responds with a bare
    /// `431`.
    pub max_headers: usize,
    /// The maximum size of the request line and headers together, in bytes. Past it, hyper
    /// responds with a bare `431`.
    pub max_head_bytes: usize,
    /// The maximum size of a connection's read buffer and of its write buffer, in bytes.
    pub max_buffer_bytes: usize,
}

impl RequestLimits {
    /// Returns hyper's parser limits: twice Beacon's header count, and room for a URL and
    /// headers both at Beacon's limits plus 16 KiB, so that a request over one of Beacon's
    /// limits gets Beacon's error body. The buffer stays bounded, so each connection's memory
    /// does as well.
    pub fn parser_limits(&self) -> ParserLimits {
        let max_head_bytes = self.max_url_bytes + self.max_header_bytes + 16 * 1024;
        ParserLimits {
            max_headers: self.max_headers * 2,
            max_head_bytes,
            // Hyper needs at least 8 KiB, and the buffer must hold the whole head.
            max_buffer_bytes: (max_head_bytes + 16 * 1024).max(8192),
        }
    }
}

/// Checks the URL and the headers of a request against `limits`.
pub(crate) fn check_head(
    uri: &Uri,
    headers: &HeaderMap,
    limits: &RequestLimits,
) -> Result<(), ApiError> {
    let length = target_length(uri);
    if length > limits.max_url_bytes {
        return Err(ApiError::UriTooLong { length, limit: limits.max_url_bytes });
    }

    let count = headers.len();
    if count > limits.max_headers {
        return Err(ApiError::HeaderFieldsTooLarge(format!(
            "The request has {count} header fields, more than the limit of {}.",
            limits.max_headers
        )));
    }
    let size: usize =
        headers.iter().map(|(name, value)| name.as_str().len() + value.len() + 4).sum();
    if size > limits.max_header_bytes {
        return Err(ApiError::HeaderFieldsTooLarge(format!(
            "The request headers are {size} bytes, more than the limit of {} bytes.",
            limits.max_header_bytes
        )));
    }
    Ok(())
}

/// Returns the length of the request target as the client sent it: the path and query, with
/// the scheme and authority of an absolute URL.
fn target_length(uri: &Uri) -> usize {
    let path_and_query = uri.path_and_query().map_or(0, |p| p.as_str().len());
    let authority = uri.authority().map_or(0, |a| a.as_str().len());
    let scheme = uri.scheme_str().map_or(0, |s| s.len() + "://".len());
    scheme + authority + path_and_query
}

/// The settings of the [`enforce`] middleware.
#[derive(Clone, Copy, Debug)]
pub(crate) struct EnforcedLimits {
    pub request: RequestLimits,
    /// The body read timeout, after which the request timeout starts even if the body has not
    /// been read.
    pub body_read_timeout: Duration,
}

/// Rejects a request over the URL or header limits, then runs it within the request timeout.
pub(crate) async fn enforce(
    State(settings): State<EnforcedLimits>,
    request: Request,
    next: Next,
) -> Response {
    let limits = &settings.request;
    if let Err(error) = check_head(request.uri(), request.headers(), limits) {
        return error.into_response();
    }

    // The clock starts when the body has been read or dropped, or when reading it has taken as
    // long as the body read timeout allows.
    let (body_done, body_read) = oneshot::channel();
    let request = request.map(|body| {
        if body.is_end_stream() {
            drop(body_done);
            body
        } else {
            Body::new(SignalingBody { inner: body, done: Some(body_done) })
        }
    });
    let body_read_timeout = settings.body_read_timeout;
    let request_timeout = limits.request_timeout;
    let deadline = async move {
        let _ = tokio::time::timeout(body_read_timeout, body_read).await;
        tokio::time::sleep(request_timeout).await;
    };

    tokio::select! {
        biased;
        response = next.run(request) => response,
        () = deadline => {
            tracing::warn!(
                timeout_ms = request_timeout.as_millis(),
                "the request timed out and was stopped"
            );
            ApiError::TimedOut(request_timeout).into_response()
        }
    }
}

/// A request body that reports when it has been read to the end, has failed, or is dropped.
struct SignalingBody {
    inner: Body,
    /// Dropped, which wakes the receiver, once the body is done.
    done: Option<oneshot::Sender<()>>,
}

impl HttpBody for SignalingBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None | Some(Err(_)))) {
            self.done = None;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;

    use axum::Router;
    use axum::http::{HeaderName, HeaderValue, StatusCode};
    use axum::routing::{get, post};
    use tower::ServiceExt;

    use super::*;

    fn limits() -> RequestLimits {
        RequestLimits {
            max_url_bytes: 100,
            max_header_bytes: 200,
            max_headers: 5,
            request_timeout: Duration::from_secs(10),
        }
    }

    fn headers(pairs: &[(&str, String)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    #[test]
    fn head_within_limits_passes() {
        let uri: Uri = format!("/beta/x?{}", "a".repeat(100 - 8)).parse().unwrap();
        let five = headers(&[
            ("a", "1".into()),
            ("b", "2".into()),
            ("c", "3".into()),
            ("d", "4".into()),
            ("e", "x".repeat(200 - 4 * 6 - 5)),
        ]);

        assert_eq!(target_length(&uri), 100);
        assert!(check_head(&uri, &five, &limits()).is_ok());
    }

    #[test]
    fn long_url_is_rejected() {
        let uri: Uri = format!("/beta/x?{}", "a".repeat(100 - 7)).parse().unwrap();

        let error = check_head(&uri, &HeaderMap::new(), &limits()).unwrap_err();

        assert!(matches!(error, ApiError::UriTooLong { length: 101, limit: 100 }), "{error:?}");
    }

    #[test]
    fn absolute_url_counts_scheme_and_authority() {
        let uri: Uri = "http://example.com/beta/x".parse().unwrap();

        assert_eq!(target_length(&uri), "http://example.com/beta/x".len());
    }

    #[test]
    fn too_many_headers_are_rejected() {
        let six: Vec<(&str, String)> =
            ["a", "b", "c", "d", "e", "f"].iter().map(|name| (*name, "1".to_owned())).collect();

        let error = check_head(&"/".parse().unwrap(), &headers(&six), &limits()).unwrap_err();

        assert!(error.to_string().contains("6 header fields"), "{error}");
    }

    #[test]
    fn large_headers_are_rejected() {
        let large = headers(&[("a", "x".repeat(200 - 5 + 1))]);

        let error = check_head(&"/".parse().unwrap(), &large, &limits()).unwrap_err();

        assert!(error.to_string().contains("201 bytes"), "{error}");
    }

    #[test]
    fn parser_limits_are_above_beacon_limits() {
        let limits = RequestLimits::default();

        let parser = limits.parser_limits();

        assert_eq!(parser.max_headers, 200);
        assert_eq!(parser.max_head_bytes, 64 * 1024);
        assert!(parser.max_buffer_bytes > parser.max_head_bytes);
    }

    fn settings(request_timeout: Duration, body_read_timeout: Duration) -> EnforcedLimits {
        EnforcedLimits {
            request: RequestLimits { request_timeout, ..RequestLimits::default() },
            body_read_timeout,
        }
    }

    fn app_with(router: Router, settings: EnforcedLimits) -> Router {
        router.layer(axum::middleware::from_fn_with_state(settings, enforce))
    }

    #[tokio::test(start_paused = true)]
    async fn slow_handler_times_out() {
        let settings = settings(Duration::from_secs(30), Duration::from_secs(30));
        let router = Router::new().route("/", get(std::future::pending::<&'static str>));

        let response = app_with(router, settings).oneshot(Request::new(Body::empty())).await;
        let response = response.unwrap();

        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()["retry-after"], "1");
        let report = response.extensions().get::<crate::error::ErrorReport>().unwrap();
        assert_eq!(report.code, "ServiceUnavailable");
        assert!(report.message.contains("timed out"), "{}", report.message);
    }

    #[tokio::test(start_paused = true)]
    async fn handler_within_timeout_completes() {
        let settings = settings(Duration::from_secs(30), Duration::from_secs(30));
        let slow = || async {
            tokio::time::sleep(Duration::from_secs(29)).await;
            "done"
        };
        let router = Router::new().route("/", get(slow));

        let response = app_with(router, settings).oneshot(Request::new(Body::empty())).await;

        assert_eq!(response.unwrap().status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn long_url_gets_414_from_middleware() {
        let settings = settings(Duration::from_secs(30), Duration::from_secs(30));
        let router = Router::new().route("/", get(|| async { "done" }));
        let uri = format!("/?q={}", "a".repeat(16 * 1024));

        let response = app_with(router, settings)
            .oneshot(Request::builder().uri(uri).body(Body::empty()).unwrap())
            .await
            .unwrap();

        assert_eq!(response.status(), StatusCode::URI_TOO_LONG);
    }

    /// A request body of one chunk that arrives after a delay, or never.
    struct DelayedBody {
        arrival: Option<Pin<Box<tokio::time::Sleep>>>,
        sent: bool,
    }

    impl HttpBody for DelayedBody {
        type Data = Bytes;
        type Error = std::io::Error;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<http_body::Frame<Bytes>, std::io::Error>>> {
            if self.sent {
                return Poll::Ready(None);
            }
            let Some(arrival) = self.arrival.as_mut() else { return Poll::Pending };
            match arrival.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    self.sent = true;
                    Poll::Ready(Some(Ok(http_body::Frame::data(Bytes::from_static(b"{}")))))
                }
                Poll::Pending => Poll::Pending,
            }
        }
    }

    /// Sends a request whose body arrives after `body_delay` (never for `None`) to a handler
    /// that reads the body, or drops it unread, and then works for `work`.
    async fn send_slow_body(
        settings: EnforcedLimits,
        body_delay: Option<Duration>,
        read_body: bool,
        work: Duration,
    ) -> StatusCode {
        let handler = move |request: Request| async move {
            if read_body {
                let _ = http_body_util::BodyExt::collect(request.into_body()).await;
            } else {
                drop(request);
            }
            tokio::time::sleep(work).await;
            "done"
        };
        let router = Router::new().route("/", post(handler));
        let arrival = body_delay.map(|delay| Box::pin(tokio::time::sleep(delay)));
        let body = Body::new(DelayedBody { arrival, sent: false });
        let request = Request::builder().method("POST").uri("/").body(body).unwrap();

        app_with(router, settings).oneshot(request).await.unwrap().status()
    }

    #[tokio::test(start_paused = true)]
    async fn timeout_starts_after_body_is_read() {
        let settings = settings(Duration::from_secs(10), Duration::from_secs(60));

        // The body takes longer than the request timeout, and the work after it less.
        let body_delay = Some(Duration::from_secs(20));
        let status = send_slow_body(settings, body_delay, true, Duration::from_secs(9)).await;

        assert_eq!(status, StatusCode::OK);
    }

    #[tokio::test(start_paused = true)]
    async fn timeout_counts_work_after_body() {
        let settings = settings(Duration::from_secs(10), Duration::from_secs(60));

        let body_delay = Some(Duration::from_secs(20));
        let status = send_slow_body(settings, body_delay, true, Duration::from_secs(11)).await;

        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    }

    #[tokio::test(start_paused = true)]
    async fn timeout_starts_when_body_is_dropped() {
        let settings = settings(Duration::from_secs(10), Duration::from_secs(60));

        let status = send_slow_body(settings, None, false, Duration::from_secs(11)).await;

        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    }

    #[tokio::test(start_paused = true)]
    async fn unread_body_starts_timeout_after_body_read_timeout() {
        let settings = settings(Duration::from_secs(10), Duration::from_secs(5));
        let started = tokio::time::Instant::now();
        // The handler keeps the body without reading it.
        let handler = |request: Request| async move {
            let _unread_request = request;
            std::future::pending::<&'static str>().await
        };
        let router = Router::new().route("/", post(handler));
        let body = Body::new(DelayedBody { arrival: None, sent: false });
        let request = Request::builder().method("POST").uri("/").body(body).unwrap();

        let response = app_with(router, settings).oneshot(request).await.unwrap();

        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(started.elapsed(), Duration::from_secs(15));
    }
}
