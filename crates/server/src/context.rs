//! The request-context middleware: request ids, the request span, and Graph error bodies.
//!
//! Every response leaves through [`request_context`], which
//! - gives the request a new `request-id` and echoes the caller's `client-request-id` (or the
//!   request id when the caller sent none or an unusable one),
//! - runs the request inside a `request` span carrying those ids,
//! - writes the Graph error body for every status of 400 or above, from the handler's
//!   [`ErrorReport`] or, for responses no handler produced, from the status alone,
//! - logs internal causes once and every request's outcome, and records it in the request
//!   metrics (see `monitoring`),
//! - closes an HTTP/1 connection after an error to a request with a body, which the handler
//!   may not have read to the end.
//!
//! [`complete_response`] writes the error body and the id headers. `$batch` calls it too, on
//! the response to each request inside a batch, so those carry the same error shape.

use std::time::Instant;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Version, header};
use axum::middleware::Next;
use axum::response::Response;
use beacon_odata::datetime::DateTimeOffset;
use beacon_odata::error::{ErrorDetail, ErrorDocument, InnerError};
use tracing::Instrument;

use crate::error::{ApiError, ErrorReport};
use crate::monitoring;

/// The `Content-Type` of every JSON response.
pub(crate) const JSON_CONTENT_TYPE: &str = "application/json;odata.metadata=minimal";

/// The longest `client-request-id` echoed back.
const MAX_CLIENT_REQUEST_ID: usize = 256;

/// Runs the rest of the stack with request ids, a span and Graph-shaped errors.
pub(crate) async fn request_context(mut request: Request, next: Next) -> Response {
    let ids = RequestIds::new(request.headers());
    let span = tracing::info_span!(
        "request",
        method = %request.method(),
        path = %request.uri().path(),
        request_id = %ids.request_id,
        client_request_id = %ids.client_request_id,
    );

    // An error may leave part of the body unread, so such a connection cannot carry another
    // request. HTTP/2 streams end on their own, and there the header is not allowed.
    let may_leave_body_unread = request.version() < Version::HTTP_2
        && (request.headers().contains_key(header::TRANSFER_ENCODING)
            || request
                .headers()
                .get(header::CONTENT_LENGTH)
                .is_some_and(|length| length.as_bytes() != b"0"));

    // `$batch` reads these ids to give the requests inside a batch the batch's request id.
    request.extensions_mut().insert(ids.clone());
    let method = request.method().clone();

    async move {
        let started = Instant::now();
        let (mut response, route) = monitoring::track_route(next.run(request)).await;

        let status = response.status();
        let is_error = complete_response(&mut response, &ids);
        if is_error && may_leave_body_unread {
            response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        }

        let elapsed = started.elapsed();
        monitoring::record_request(route, &method, status, elapsed);
        tracing::info!(
            status = status.as_u16(),
            route = route.name(),
            elapsed_ms = elapsed.as_secs_f64() * 1000.0,
            "request finished"
        );
        response
    }
    .instrument(span)
    .await
}

/// The ids that a response and its error body carry.
#[derive(Clone, Debug)]
pub(crate) struct RequestIds {
    /// The id the service gave the request, sent as the `request-id` header.
    pub request_id: String,
    /// The caller's `client-request-id`, or the request id when the caller sent none or an
    /// unusable one.
    pub client_request_id: String,
}

impl RequestIds {
    /// Gives a new request a new `request-id` and takes its `client-request-id` from `headers`.
    pub(crate) fn new(headers: &HeaderMap) -> RequestIds {
        let request_id = uuid::Uuid::new_v4().to_string();
        let client_request_id =
            usable_client_request_id(headers).unwrap_or_else(|| request_id.clone());
        RequestIds { request_id, client_request_id }
    }

    /// Returns the ids of a request inside a batch: the batch's request id, and the inner
    /// request's own `client-request-id` when it sends a usable one, else the batch's.
    pub(crate) fn for_inner_request(&self, headers: &HeaderMap) -> RequestIds {
        RequestIds {
            request_id: self.request_id.clone(),
            client_request_id: usable_client_request_id(headers)
                .unwrap_or_else(|| self.client_request_id.clone()),
        }
    }
}

/// Completes a handler's response: writes the Graph error body for every status of 400 or
/// above, from the handler's [`ErrorReport`] or else from the status alone, logs it, and adds
/// the `request-id`, `client-request-id` and `OData-Version` headers. Returns whether the
/// response is an error.
pub(crate) fn complete_response(response: &mut Response, ids: &RequestIds) -> bool {
    let status = response.status();
    let is_error = status.is_client_error() || status.is_server_error();
    if is_error {
        let report = response
            .extensions_mut()
            .remove::<ErrorReport>()
            .unwrap_or_else(|| ApiError::report_for_status(status));
        if let Some(cause) = &report.cause {
            tracing::error!(error.message = %cause, error.cause_chain = ?cause, "request failed");
        } else {
            // Not `message`, which is the event's own message field.
            tracing::debug!(code = report.code, error.message = %report.message, "request rejected");
        }
        let body = error_body(&report, &ids.request_id, &ids.client_request_id);
        *response.body_mut() = Body::from(body);
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON_CONTENT_TYPE));
        headers.remove(header::CONTENT_LENGTH);
    }

    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&ids.request_id) {
        headers.insert("request-id", value);
    }
    if let Ok(value) = HeaderValue::from_str(&ids.client_request_id) {
        headers.insert("client-request-id", value);
    }
    headers.insert("odata-version", HeaderValue::from_static("4.0"));
    is_error
}

/// Returns the caller's `client-request-id` if it is printable ASCII of at most
/// [`MAX_CLIENT_REQUEST_ID`] bytes.
fn usable_client_request_id(headers: &HeaderMap) -> Option<String> {
    let value = headers.get("client-request-id")?.to_str().ok()?.trim();
    let usable = !value.is_empty()
        && value.len() <= MAX_CLIENT_REQUEST_ID
        && value.bytes().all(|b| b.is_ascii_graphic() || b == b' ');
    usable.then(|| value.to_owned())
}

fn error_body(report: &ErrorReport, request_id: &str, client_request_id: &str) -> Vec<u8> {
    let date = DateTimeOffset::now().to_string();
    let document = ErrorDocument {
        error: ErrorDetail {
            code: report.code,
            message: &report.message,
            inner_error: InnerError { date: &date, request_id, client_request_id },
        },
    };
    // The document has only string fields, which serde_json serializes without error.
    serde_json::to_vec(&document).unwrap_or_default()
}
