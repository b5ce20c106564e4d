//! The HTTP layer's error type and its mapping to statuses and Graph error codes.
//!
//! A handler returns an [`ApiError`]; its response carries an [`ErrorReport`] in the response
//! extensions and no body yet. The request-context middleware, which has the request ids,
//! writes the Graph error body from that report and logs internal causes once, inside the
//! request's span. This keeps `IntoResponse` free of side effects and gives errors raised
//! outside a handler (a panic, a framework rejection) the same shape.

use std::error::Error as StdError;
use std::sync::Arc;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use beacon_odata::body::BodyError;
use beacon_odata::media::MediaError;
use beacon_odata::path::PathError;
use beacon_odata::query::QueryError;
use beacon_store::StoreError;

use crate::auth::{AuthError, whole_seconds};

/// Every way a request can fail.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed: body, query, path or header. `400`, `BadRequest`.
    #[error("{0}")]
    BadRequest(String),
    /// The token is missing or invalid. `401`, `InvalidAuthenticationToken`, with
    /// `WWW-Authenticate: Bearer`.
    #[error("{0}")]
    InvalidToken(String),
    /// The token lacks the permission the operation needs. `403`,
    /// `Authorization_RequestDenied`.
    #[error("{0}")]
    Forbidden(String),
    /// Nothing exists at the path. `404`, `ResourceNotFound`.
    #[error("{0}")]
    NotFound(String),
    /// The path exists but does not take this method. `405`, `MethodNotAllowed`, with `Allow`.
    #[error("The method {method} is not allowed here; allowed methods are {allow}.")]
    MethodNotAllowed {
        /// The method the request used.
        method: String,
        /// The methods the path takes, as the `Allow` header lists them.
        allow: &'static str,
    },
    /// `Accept` rules out JSON. `406`, `NotAcceptable`.
    #[error("{0}")]
    NotAcceptable(String),
    /// The client took too long to send the body. `408`, `RequestTimeout`.
    #[error("The request body was not received within {}.", duration_text(*.0))]
    RequestTimeout(std::time::Duration),
    /// The request URL is longer than the limit. `414`, `RequestUriTooLong`.
    #[error(
        "The request URL is {length} bytes long, more than the limit of {limit} bytes; shorten \
         the query."
    )]
    UriTooLong {
        /// The length of the request target in bytes.
        length: usize,
        /// The limit in bytes.
        limit: usize,
    },
    /// The request headers are too many or too large. `431`, `RequestHeaderFieldsTooLarge`.
    #[error("{0}")]
    HeaderFieldsTooLarge(String),
    /// The caller has used up its rate limit. `429`, `TooManyRequests`, with `Retry-After`.
    #[error("{message}")]
    TooManyRequests {
        /// The message: the limit that was reached, and when to retry.
        message: String,
        /// The whole seconds until the request would be accepted, at least 1.
        retry_after_seconds: u64,
    },
    /// The entity already exists. `409`, `Conflict`.
    #[error("{0}")]
    Conflict(String),
    /// The entity's current version fails `If-Match` or `If-None-Match`. `412`,
    /// `PreconditionFailed`.
    #[error("{0}")]
    PreconditionFailed(String),
    /// The body is larger than the limit. `413`, `RequestEntityTooLarge`.
    #[error("The request body is larger than the limit of {limit} bytes.")]
    PayloadTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The body is not JSON, or is compressed. `415`, `UnsupportedMediaType`.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// A request in a batch did not run because a request it depends on failed. `424`,
    /// `FailedDependency`.
    #[error("{0}")]
    FailedDependency(String),
    /// The store cannot serve for now. `503`, `ServiceUnavailable`, with `Retry-After`.
    #[error("The service is temporarily unavailable; retry the request shortly.")]
    Unavailable,
    /// A service that the request needs cannot be reached, such as the source of the keys
    /// that verify tokens. `503`, `ServiceUnavailable`, with `Retry-After`.
    #[error("{message}")]
    DependencyUnavailable {
        /// The message for the client: the missing service and when to retry.
        message: String,
        /// When to retry, sent in whole seconds.
        retry_after: std::time::Duration,
    },
    /// Handling the request took longer than the request timeout. `503`,
    /// `ServiceUnavailable`, with `Retry-After`.
    #[error(
        "The request timed out: it did not complete within {}. Retry it later, or narrow the \
         query.",
        duration_text(*.0)
    )]
    TimedOut(std::time::Duration),
    /// The server already has as many open connections as it accepts. `503`,
    /// `ServiceUnavailable`, with `Retry-After`.
    #[error("The server has reached its limit of {0} open connections; retry the request shortly.")]
    TooManyConnections(usize),
    /// The store is out of space. `507`, `InsufficientStorage`.
    #[error("The service has no storage space left for this change; retry after space is freed.")]
    InsufficientStorage,
    /// A fault inside the service; the cause is logged, never sent. `500`,
    /// `InternalServerError`.
    #[error("The service failed to process the request.")]
    Internal(Arc<dyn StdError + Send + Sync>),
}

impl ApiError {
    /// Returns the status and the Graph error code of this error.
    pub(crate) fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "BadRequest"),
            ApiError::InvalidToken(_) => (StatusCode::UNAUTHORIZED, "InvalidAuthenticationToken"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "Authorization_RequestDenied"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "ResourceNotFound"),
            ApiError::MethodNotAllowed { .. } => {
                (StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed")
            }
            ApiError::NotAcceptable(_) => (StatusCode::NOT_ACCEPTABLE, "NotAcceptable"),
            ApiError::RequestTimeout(_) => (StatusCode::REQUEST_TIMEOUT, "RequestTimeout"),
            ApiError::UriTooLong { .. } => (StatusCode::URI_TOO_LONG, "RequestUriTooLong"),
            ApiError::HeaderFieldsTooLarge(_) => {
                (StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, "RequestHeaderFieldsTooLarge")
            }
            ApiError::TooManyRequests { .. } => (StatusCode::TOO_MANY_REQUESTS, "TooManyRequests"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "Conflict"),
            ApiError::PreconditionFailed(_) => {
                (StatusCode::PRECONDITION_FAILED, "PreconditionFailed")
            }
            ApiError::PayloadTooLarge { .. } => {
                (StatusCode::PAYLOAD_TOO_LARGE, "RequestEntityTooLarge")
            }
            ApiError::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "UnsupportedMediaType")
            }
            ApiError::FailedDependency(_) => (StatusCode::FAILED_DEPENDENCY, "FailedDependency"),
            ApiError::Unavailable
            | ApiError::DependencyUnavailable { .. }
            | ApiError::TimedOut(_)
            | ApiError::TooManyConnections(_) => {
                (StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable")
            }
            ApiError::InsufficientStorage => {
                (StatusCode::INSUFFICIENT_STORAGE, "InsufficientStorage")
            }
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "InternalServerError"),
        }
    }

    /// The error a bare status stands for, for responses that no handler produced.
    pub(crate) fn report_for_status(status: StatusCode) -> ErrorReport {
        let (code, message) = match status {
            StatusCode::BAD_REQUEST => ("BadRequest", "The request is invalid."),
            StatusCode::NOT_FOUND => ("ResourceNotFound", "The requested resource does not exist."),
            StatusCode::METHOD_NOT_ALLOWED => {
                ("MethodNotAllowed", "The method is not allowed for this resource.")
            }
            StatusCode::REQUEST_TIMEOUT => {
                ("RequestTimeout", "The request was not received in time.")
            }
            StatusCode::PAYLOAD_TOO_LARGE => {
                ("RequestEntityTooLarge", "The request body is too large.")
            }
            StatusCode::URI_TOO_LONG => ("RequestUriTooLong", "The request URL is too long."),
            StatusCode::TOO_MANY_REQUESTS => {
                ("TooManyRequests", "Too many requests; retry after the Retry-After delay.")
            }
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => {
                ("RequestHeaderFieldsTooLarge", "The request headers are too large.")
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                ("ServiceUnavailable", "The service is temporarily unavailable; retry shortly.")
            }
            StatusCode::UNSUPPORTED_MEDIA_TYPE => {
                ("UnsupportedMediaType", "The request body's media type is not supported.")
            }
            status if status.is_server_error() => {
                ("InternalServerError", "The service failed to process the request.")
            }
            _ => ("BadRequest", "The request is invalid."),
        };
        ErrorReport { code, message: message.to_owned(), cause: None }
    }
}

/// The content of an error body, for the request-context middleware to write.
#[derive(Clone, Debug)]
pub(crate) struct ErrorReport {
    /// The Graph error code.
    pub code: &'static str,
    /// The message for the client.
    pub message: String,
    /// The internal cause, logged and never sent.
    pub cause: Option<Arc<dyn StdError + Send + Sync>>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let mut response = status.into_response();
        let headers = response.headers_mut();
        match &self {
            ApiError::InvalidToken(_) => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            ApiError::MethodNotAllowed { allow, .. } => {
                headers.insert(header::ALLOW, HeaderValue::from_static(allow));
            }
            ApiError::Unavailable | ApiError::TimedOut(_) | ApiError::TooManyConnections(_) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            ApiError::DependencyUnavailable { retry_after, .. } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(whole_seconds(*retry_after)));
            }
            ApiError::TooManyRequests { retry_after_seconds, .. } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_seconds));
            }
            _ => {}
        }
        let cause = match &self {
            ApiError::Internal(cause) => Some(Arc::clone(cause)),
            _ => None,
        };
        response.extensions_mut().insert(ErrorReport { code, message: self.to_string(), cause });
        response
    }
}

/// Writes a duration in whole seconds where it has no fraction, else in milliseconds.
fn duration_text(duration: std::time::Duration) -> String {
    match (duration.as_secs(), duration.subsec_nanos()) {
        (1, 0) => "1 second".to_owned(),
        (seconds, 0) => format!("{seconds} seconds"),
        _ => format!("{} milliseconds", duration.as_millis()),
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Conflict => {
                ApiError::Conflict("An entity with the same id already exists.".to_owned())
            }
            StoreError::NotFound => {
                ApiError::NotFound("The requested entity does not exist.".to_owned())
            }
            StoreError::PreconditionFailed => ApiError::PreconditionFailed(
                "The entity's version does not satisfy the request's precondition.".to_owned(),
            ),
            StoreError::Busy | StoreError::ShuttingDown | StoreError::SchemaMismatch { .. } => {
                ApiError::Unavailable
            }
            StoreError::Full => ApiError::InsufficientStorage,
            StoreError::InvalidQuery(message) => ApiError::BadRequest(format!(
                "Evaluating the query on the stored data failed. {message}"
            )),
            StoreError::Internal(cause) => ApiError::Internal(cause),
        }
    }
}

impl From<PathError> for ApiError {
    fn from(error: PathError) -> Self {
        match error {
            // Graph returns 400 for a segment that names nothing; only a path outside the
            // service root is simply not found.
            PathError::NotFound(ref segment) if segment.is_empty() => {
                ApiError::NotFound(error.to_string())
            }
            _ => ApiError::BadRequest(error.to_string()),
        }
    }
}

impl From<QueryError> for ApiError {
    fn from(error: QueryError) -> Self {
        ApiError::BadRequest(error.to_string())
    }
}

impl From<BodyError> for ApiError {
    fn from(error: BodyError) -> Self {
        ApiError::BadRequest(error.to_string())
    }
}

impl From<MediaError> for ApiError {
    fn from(error: MediaError) -> Self {
        match error {
            MediaError::UnsupportedContentType(message) => ApiError::UnsupportedMediaType(message),
            MediaError::NotAcceptable(message) => ApiError::NotAcceptable(message),
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(error: AuthError) -> Self {
        match error {
            AuthError::KeysUnavailable { retry_after } => {
                ApiError::DependencyUnavailable { message: error.to_string(), retry_after }
            }
            _ => ApiError::InvalidToken(error.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Returns whether the OpenAPI description lists an error's status for some operation.
    /// The match names every variant, so a new one must be placed here.
    fn described(error: &ApiError) -> bool {
        match error {
            // The description lists neither. Only a method that a path does not take gets 405,
            // and only a request inside a batch gets 424, which the batch's body carries.
            ApiError::MethodNotAllowed { .. } | ApiError::FailedDependency(_) => false,
            ApiError::BadRequest(_)
            | ApiError::InvalidToken(_)
            | ApiError::Forbidden(_)
            | ApiError::NotFound(_)
            | ApiError::NotAcceptable(_)
            | ApiError::RequestTimeout(_)
            | ApiError::UriTooLong { .. }
            | ApiError::HeaderFieldsTooLarge(_)
            | ApiError::TooManyRequests { .. }
            | ApiError::Conflict(_)
            | ApiError::PreconditionFailed(_)
            | ApiError::PayloadTooLarge { .. }
            | ApiError::UnsupportedMediaType(_)
            | ApiError::Unavailable
            | ApiError::DependencyUnavailable { .. }
            | ApiError::TimedOut(_)
            | ApiError::TooManyConnections(_)
            | ApiError::InsufficientStorage
            | ApiError::Internal(_) => true,
        }
    }

    #[test]
    fn openapi_states_each_status_and_code() {
        let second = std::time::Duration::from_secs(1);
        let errors = [
            ApiError::BadRequest(String::new()),
            ApiError::InvalidToken(String::new()),
            ApiError::Forbidden(String::new()),
            ApiError::NotFound(String::new()),
            ApiError::MethodNotAllowed { method: "POST".to_owned(), allow: "GET" },
            ApiError::NotAcceptable(String::new()),
            ApiError::RequestTimeout(second),
            ApiError::UriTooLong { length: 2, limit: 1 },
            ApiError::HeaderFieldsTooLarge(String::new()),
            ApiError::TooManyRequests { message: String::new(), retry_after_seconds: 1 },
            ApiError::Conflict(String::new()),
            ApiError::PreconditionFailed(String::new()),
            ApiError::PayloadTooLarge { limit: 1 },
            ApiError::UnsupportedMediaType(String::new()),
            ApiError::FailedDependency(String::new()),
            ApiError::Unavailable,
            ApiError::DependencyUnavailable { message: String::new(), retry_after: second },
            ApiError::TimedOut(second),
            ApiError::TooManyConnections(1),
            ApiError::InsufficientStorage,
            ApiError::Internal(Arc::new(std::io::Error::other("fault"))),
        ];
        let documented = beacon_odata::openapi::error_codes();
        for error in errors {
            let (status, code) = error.status_and_code();
            let listed = documented.contains(&(status.as_u16(), code));
            assert_eq!(listed, described(&error), "{status} {code}");
        }
    }
}
