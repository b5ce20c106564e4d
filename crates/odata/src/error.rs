//! The Graph error body: `{"error":{"code","message","innerError":{…}}}`.
//!
//! Graph clients parse this shape to build their exception objects, so every error Beacon sends,
//! whatever layer raised it, is written through [`ErrorDocument`].

use serde::Serialize;

/// A complete error response body.
#[derive(Debug, Serialize)]
pub struct ErrorDocument<'a> {
    /// The single member of the body.
    pub error: ErrorDetail<'a>,
}

/// The `error` object.
#[derive(Debug, Serialize)]
pub struct ErrorDetail<'a> {
    /// A stable, machine-readable code such as `BadRequest` or `InvalidAuthenticationToken`.
    pub code: &'a str,
    /// A sentence for the person reading the response.
    pub message: &'a str,
    /// The time and request ids of the error, for correlation with the server's logs.
    #[serde(rename = "innerError")]
    pub inner_error: InnerError<'a>,
}

/// The `innerError` object, as Graph writes it.
#[derive(Debug, Serialize)]
pub struct InnerError<'a> {
    /// When the error happened, as an RFC 3339 timestamp with an offset.
    pub date: &'a str,
    /// The id the server gave the request, also sent as the `request-id` header.
    #[serde(rename = "request-id")]
    pub request_id: &'a str,
    /// The id the client gave the request, or the request id when it gave none.
    #[serde(rename = "client-request-id")]
    pub client_request_id: &'a str,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_document_has_the_graph_shape() {
        let document = ErrorDocument {
            error: ErrorDetail {
                code: "BadRequest",
                message: "Bad.",
                inner_error: InnerError { date: "d", request_id: "r", client_request_id: "c" },
            },
        };
        assert_eq!(
            serde_json::to_string(&document).unwrap(),
            r#"{"error":{"code":"BadRequest","message":"Bad.","innerError":{"date":"d","request-id":"r","client-request-id":"c"}}}"#
        );
    }
}
