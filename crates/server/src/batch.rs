//! `POST /beta/$batch`: Microsoft Graph's JSON batching, several requests in one JSON body.
//!
//! The format is the one on Graph's page "Combine multiple HTTP requests using JSON batching"
//! (learn.microsoft.com/graph/json-batching), which builds on section 19 of OData JSON Format
//! 4.01. The body is `{"requests":[{"id","method","url","headers"?,"body"?,"dependsOn"?}]}` with
//! at most [`MAX_REQUESTS`] requests, and the response is `200` with
//! `{"responses":[{"id","status","headers","body"?}]}`, one entry per request in request order.
//!
//! Each request inside the batch runs through [`handlers::route`], the code path of a request
//! sent alone, so its entry contains the status, headers and body that request would get alone.
//! It carries only its own headers, with two exceptions: the batch's `Authorization` when it
//! gives none, and the batch's `Host`, which absolute URLs in the response are built from. In
//! particular the batch's `Accept` does not apply to the requests inside it.
//!
//! The whole batch gets `400` and nothing runs when the envelope is malformed: no `requests`
//! array, more than [`MAX_REQUESTS`] requests, a missing or non-string `id`, `method` or `url`,
//! a duplicate id, an unknown method, an absolute url, a nested `$batch`, a `dependsOn` that
//! names no earlier request, or a body that does not match its `Content-Type`.
//!
//! The batch counts once against the rate limits, and each request inside it counts again when
//! it runs, as if sent alone: one that finds a bucket empty gets its own `429`. Each request
//! also has the URL and header limits of a request sent alone.
//!
//! Requests start as soon as every request they depend on has finished, so independent
//! requests run concurrently. A request whose dependency failed (answered with a status of 400
//! or more) is not run and gets `424 Failed Dependency`, and so, in turn, do the requests that
//! depend on it.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request};
use axum::http::request::Parts;
use axum::http::uri::PathAndQuery;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use beacon_odata::media::MediaType;
use beacon_odata::path::{self, Resource, SERVICE_VERSION};
use serde_json::{Map, Value};
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::AppState;
use crate::context::{self, RequestIds};
use crate::error::ApiError;
use crate::{handlers, limits};

/// The maximum number of requests in one batch, the limit Graph documents.
pub(crate) const MAX_REQUESTS: usize = 20;

/// The methods a request inside a batch may use: the five that OData JSON Format 4.01
/// section 19.1 allows.
const METHODS: [Method; 5] =
    [Method::GET, Method::POST, Method::PATCH, Method::PUT, Method::DELETE];

/// Headers that describe one connection or the framing of one message, so they are neither
/// taken from a request inside a batch nor reported from its response.
const HOP_BY_HOP_HEADERS: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Header names as Graph spells them in batch responses. Graph SDKs look up `Content-Type`
/// in that case, so these keep Graph's spelling. Every other name stays lowercase, as OData
/// JSON Format 4.01 section 19.5 writes them.
const GRAPH_HEADER_NAMES: [&str; 11] = [
    "Allow",
    "Cache-Control",
    "Content-Type",
    "ETag",
    "Location",
    "OData-EntityId",
    "OData-Version",
    "Preference-Applied",
    "Retry-After",
    "Vary",
    "WWW-Authenticate",
];

/// Decodes base64 in either alphabet, with or without padding. Graph documents request bodies
/// as "base64 URL-encoded" but its JavaScript SDK sends the standard alphabet.
const BASE64_URL_SAFE: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);
const BASE64_STANDARD: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// One request of a batch, checked and ready to run.
#[derive(Debug)]
pub(crate) struct BatchRequest {
    /// The client's id for the request, as given.
    pub(crate) id: String,
    /// The positions of the earlier requests this one depends on.
    pub(crate) depends_on: Vec<usize>,
    pub(crate) method: Method,
    /// The request's path and query under `/beta`.
    pub(crate) uri: Uri,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

/// The completed response to one request of a batch.
#[derive(Debug)]
struct Outcome {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

/// Handles `POST /beta/$batch` once the batch's own token and `Accept` have been checked:
/// reads and checks the envelope, runs its requests, and returns their responses.
pub(crate) async fn run(state: &AppState, parts: &Parts, body: Body) -> Result<Response, ApiError> {
    handlers::check_json_body_headers(&parts.headers)?;
    let bytes = handlers::read_body(&parts.headers, body, state.body_read_timeout).await?;
    let requests = parse_batch(&bytes, &parts.headers)?;
    tracing::debug!(requests = requests.len(), "running batch");

    // Requests inside the batch carry the batch's request id, for one id in the logs.
    let batch_ids = match parts.extensions.get::<RequestIds>() {
        Some(ids) => ids.clone(),
        None => RequestIds::new(&parts.headers),
    };
    let ids: Vec<String> = requests.iter().map(|request| request.id.clone()).collect();
    let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().copied();
    let outcomes = execute(state, requests, &batch_ids, peer).await;

    let mut body = br#"{"responses":["#.to_vec();
    for (position, (id, outcome)) in ids.iter().zip(&outcomes).enumerate() {
        if position > 0 {
            body.push(b',');
        }
        write_entry(&mut body, id, outcome)
            .map_err(|error| ApiError::Internal(std::sync::Arc::new(error)))?;
    }
    body.extend_from_slice(b"]}");
    Ok((StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// Parses and checks a batch body, returning its requests in order.
pub(crate) fn parse_batch(
    bytes: &[u8],
    batch_headers: &HeaderMap,
) -> Result<Vec<BatchRequest>, ApiError> {
    let document: Value = serde_json::from_slice(bytes).map_err(|error| {
        ApiError::BadRequest(format!("The batch body is not valid JSON: {error}."))
    })?;
    let Some(requests) = document.get("requests") else {
        return Err(ApiError::BadRequest(
            "The batch body must be a JSON object with a 'requests' array.".to_owned(),
        ));
    };
    let Some(requests) = requests.as_array() else {
        return Err(ApiError::BadRequest(
            "The 'requests' member of a batch must be an array.".to_owned(),
        ));
    };
    if requests.is_empty() {
        return Err(ApiError::BadRequest("The batch has no requests.".to_owned()));
    }
    if requests.len() > MAX_REQUESTS {
        return Err(ApiError::BadRequest(format!(
            "The batch has {} requests, more than the limit of {MAX_REQUESTS}; split it into \
             several batches.",
            requests.len()
        )));
    }

    // Ids first, since a dependsOn error names whether the id comes later or nowhere.
    let mut objects = Vec::with_capacity(requests.len());
    let mut keys: Vec<String> = Vec::with_capacity(requests.len());
    for (position, request) in requests.iter().enumerate() {
        let Some(object) = request.as_object() else {
            return Err(ApiError::BadRequest(format!(
                "The request at position {position} of the batch is not a JSON object."
            )));
        };
        let id = match object.get("id") {
            Some(Value::String(id)) if !id.is_empty() => id,
            _ => {
                return Err(ApiError::BadRequest(format!(
                    "The request at position {position} of the batch needs an 'id' that is a \
                     non-empty string."
                )));
            }
        };
        // Graph compares ids without regard to case.
        let key = id.to_lowercase();
        if keys.contains(&key) {
            return Err(ApiError::BadRequest(format!(
                "The id '{id}' is used by more than one request of the batch; each request \
                 needs a unique id."
            )));
        }
        keys.push(key);
        objects.push((id.clone(), object));
    }

    let mut checked = Vec::with_capacity(objects.len());
    for (position, (id, object)) in objects.into_iter().enumerate() {
        checked.push(parse_request(position, id, object, &keys, batch_headers)?);
    }
    Ok(checked)
}

/// Checks one request object of a batch whose ids, lowercased, are `keys`.
fn parse_request(
    position: usize,
    id: String,
    object: &Map<String, Value>,
    keys: &[String],
    batch_headers: &HeaderMap,
) -> Result<BatchRequest, ApiError> {
    let invalid =
        |message: String| ApiError::BadRequest(format!("Request '{id}' of the batch: {message}"));

    for unsupported in ["atomicityGroup", "if"] {
        if object.contains_key(unsupported) {
            return Err(invalid(format!("'{unsupported}' is not supported.")));
        }
    }
    let method = match object.get("method") {
        Some(Value::String(text)) => METHODS
            .iter()
            .find(|method| method.as_str().eq_ignore_ascii_case(text))
            .cloned()
            .ok_or_else(|| {
                invalid(format!(
                    "the method '{text}' is not supported; use GET, POST, PATCH, PUT or DELETE."
                ))
            })?,
        _ => return Err(invalid("'method' is missing or not a string.".to_owned())),
    };
    let uri = match object.get("url") {
        Some(Value::String(url)) => inner_uri(url).map_err(invalid)?,
        _ => return Err(invalid("'url' is missing or not a string.".to_owned())),
    };
    let depends_on = dependencies(position, object.get("dependsOn"), keys).map_err(invalid)?;

    let mut headers = request_headers(object.get("headers")).map_err(invalid)?;
    let body = match object.get("body") {
        None | Some(Value::Null) => Bytes::new(),
        Some(body) => request_body(&method, &headers, body).map_err(invalid)?,
    };

    // The batch's Host builds absolute URLs; its token applies unless the request has its own.
    for name in HOP_BY_HOP_HEADERS {
        headers.remove(name);
    }
    headers.remove(header::CONTENT_LENGTH);
    headers.remove(header::HOST);
    if let Some(host) = batch_headers.get(header::HOST) {
        headers.insert(header::HOST, host.clone());
    }
    if !headers.contains_key(header::AUTHORIZATION) {
        for value in batch_headers.get_all(header::AUTHORIZATION) {
            headers.append(header::AUTHORIZATION, value.clone());
        }
    }
    if !body.is_empty() {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    }

    Ok(BatchRequest { id, depends_on, method, uri, headers, body })
}

/// Turns the `url` of a request inside a batch, relative to `/beta` with or without a leading
/// slash, into the request's path and query.
fn inner_uri(url: &str) -> Result<Uri, String> {
    let has_scheme = url.split_once(':').is_some_and(|(scheme, _)| {
        scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    });
    if has_scheme || url.starts_with("//") {
        return Err(format!(
            "the url '{url}' is absolute; give it relative to /{SERVICE_VERSION}, such as \
             '/aggregatedPolicyCompliances'."
        ));
    }
    let relative = url.strip_prefix('/').unwrap_or(url);
    let first_segment = relative.split(['/', '?']).next().unwrap_or("");
    if first_segment.eq_ignore_ascii_case(SERVICE_VERSION) {
        return Err(format!(
            "the url '{url}' starts with the version; give it relative to /{SERVICE_VERSION}, \
             such as '/aggregatedPolicyCompliances'."
        ));
    }
    if url.contains('#') {
        return Err(format!("the url '{url}' contains '#'; percent-encode it as %23."));
    }

    // A url in JSON may hold characters that a request line may not, such as the spaces of a
    // $filter, so those are percent-encoded here as a client would encode them.
    let mut text = format!("/{SERVICE_VERSION}/");
    for byte in relative.bytes() {
        if byte.is_ascii_graphic() && !b"\"<>\\^`{|}".contains(&byte) {
            text.push(char::from(byte));
        } else {
            text.push_str(&format!("%{byte:02X}"));
        }
    }
    let path_and_query = PathAndQuery::try_from(text)
        .map_err(|error| format!("the url '{url}' is not a valid URL: {error}."))?;
    if path::parse(path_and_query.path()) == Ok(Resource::Batch) {
        return Err("a batch cannot contain another $batch request.".to_owned());
    }
    Ok(Uri::from(path_and_query))
}

/// Resolves the `dependsOn` of the request at `position` to the positions of the requests it
/// names, which must come before it.
fn dependencies(
    position: usize,
    value: Option<&Value>,
    keys: &[String],
) -> Result<Vec<usize>, String> {
    let names = match value {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(names)) => names,
        Some(_) => return Err("'dependsOn' must be an array of request ids.".to_owned()),
    };
    let mut positions = Vec::with_capacity(names.len());
    for name in names {
        let Some(name) = name.as_str() else {
            return Err("'dependsOn' must contain only strings.".to_owned());
        };
        let target = keys.iter().position(|key| *key == name.to_lowercase());
        match target {
            Some(target) if target < position => positions.push(target),
            Some(target) if target == position => {
                return Err("the request depends on itself.".to_owned());
            }
            Some(_) => {
                return Err(format!(
                    "'dependsOn' names '{name}', which comes later in the batch; a request can \
                     depend only on requests before it."
                ));
            }
            None => {
                return Err(format!(
                    "'dependsOn' names '{name}', which is not the id of a request in the batch."
                ));
            }
        }
    }
    Ok(positions)
}

/// Builds the headers of a request inside a batch from its `headers` object.
fn request_headers(value: Option<&Value>) -> Result<HeaderMap, String> {
    let object = match value {
        None | Some(Value::Null) => return Ok(HeaderMap::new()),
        Some(Value::Object(object)) => object,
        Some(_) => {
            return Err("'headers' must be a JSON object of header names and values.".to_owned());
        }
    };
    let mut headers = HeaderMap::new();
    for (name, value) in object {
        let Some(text) = value.as_str() else {
            return Err(format!("the value of the header '{name}' must be a string."));
        };
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("'{name}' is not a valid header name."))?;
        let value = HeaderValue::from_str(text).map_err(|_| {
            format!("the value of the header '{name}' contains characters that are not allowed.")
        })?;
        headers.append(name, value);
    }
    Ok(headers)
}

/// Encodes the `body` of a request inside a batch as bytes, by its `Content-Type` as OData JSON
/// Format 4.01 section 19.1 describes: a JSON value for JSON media types, the text for `text/*`,
/// and base64 for anything else.
fn request_body(method: &Method, headers: &HeaderMap, body: &Value) -> Result<Bytes, String> {
    if method == Method::GET || method == Method::DELETE {
        return Err(format!("a {method} request cannot have a body."));
    }
    let mut content_types = headers.get_all(header::CONTENT_TYPE).iter();
    let content_type = match (content_types.next(), content_types.next()) {
        (Some(value), None) => value,
        (None, _) => {
            return Err("the request has a body but no Content-Type header; add \"headers\": \
                 {\"Content-Type\": \"application/json\"}."
                .to_owned());
        }
        (Some(_), Some(_)) => {
            return Err("the request has more than one Content-Type header.".to_owned());
        }
    };
    let media = content_type.to_str().ok().and_then(MediaType::parse);

    match media {
        Some(media) if is_json(&media) => match body {
            // serde_json fails only on map keys that are not strings, which a `Value` cannot have.
            Value::Object(_) | Value::Array(_) => {
                Ok(Bytes::from(serde_json::to_vec(body).unwrap_or_default()))
            }
            other => Err(format!(
                "the Content-Type declares JSON, so the body must be a JSON object or array, \
                 not {}.",
                json_kind(other)
            )),
        },
        Some(media) if media.essence.starts_with("text/") => match body {
            Value::String(text) => Ok(Bytes::from(text.clone())),
            other => Err(format!(
                "the Content-Type declares text, so the body must be a JSON string, not {}.",
                json_kind(other)
            )),
        },
        _ => {
            let Some(text) = body.as_str() else {
                return Err(format!(
                    "a body that is not JSON or text must be a base64 string, not {}.",
                    json_kind(body)
                ));
            };
            BASE64_URL_SAFE
                .decode(text)
                .or_else(|_| BASE64_STANDARD.decode(text))
                .map(Bytes::from)
                .map_err(|_| "the body is not valid base64.".to_owned())
        }
    }
}

/// Returns whether a media type is JSON: `application/json` or a `+json` type.
fn is_json(media: &MediaType) -> bool {
    media.essence == "application/json" || media.essence.ends_with("+json")
}

/// Names the kind of a JSON value, for messages.
fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Runs the requests of a batch and returns their outcomes in request order.
///
/// Each request starts once every request it depends on has finished. Requests run as tasks
/// of their own, so a panic in one becomes that request's `500`.
async fn execute(
    state: &AppState,
    requests: Vec<BatchRequest>,
    batch_ids: &RequestIds,
    peer: Option<ConnectInfo<SocketAddr>>,
) -> Vec<Outcome> {
    let count = requests.len();
    let ids: Vec<String> = requests.iter().map(|request| request.id.clone()).collect();
    let mut waiting: Vec<Option<BatchRequest>> = requests.into_iter().map(Some).collect();
    let mut outcomes: Vec<Option<Outcome>> = (0..count).map(|_| None).collect();
    let mut running = JoinSet::new();
    let mut positions = HashMap::new();

    loop {
        // Dependencies come earlier in the batch, so one pass in order also settles the
        // requests whose dependencies fail in this same pass.
        for position in 0..count {
            let ready = waiting[position].as_ref().is_some_and(|request| {
                request.depends_on.iter().all(|&dependency| outcomes[dependency].is_some())
            });
            if !ready {
                continue;
            }
            let Some(request) = waiting[position].take() else { continue };

            // OData JSON Format 4.01 section 19.1 runs a dependent request only after its
            // dependencies succeeded with a 2xx status.
            let failed = request.depends_on.iter().copied().find(|&dependency| {
                // An error status fails a dependency, but a 304 only reports that the resource is unchanged.
                outcomes[dependency].as_ref().is_some_and(|outcome| outcome.status.as_u16() >= 400)
            });
            if let Some(failed) = failed {
                let error = ApiError::FailedDependency(format!(
                    "The request '{}' was not run because the request '{}' it depends on failed.",
                    request.id, ids[failed]
                ));
                let ids = batch_ids.for_inner_request(&request.headers);
                outcomes[position] = Some(complete(error.into_response(), &ids).await);
                continue;
            }

            let span = tracing::info_span!(
                "batch_request",
                id = ?request.id,
                method = %request.method,
                path = %request.uri.path(),
            );
            let future = run_request(state.clone(), request, batch_ids.clone(), peer);
            let task = running.spawn(future.instrument(span));
            positions.insert(task.id(), position);
        }

        let Some(joined) = running.join_next_with_id().await else { break };
        let (task, outcome) = match joined {
            Ok((task, outcome)) => (task, outcome),
            Err(error) => {
                let task = error.id();
                let response = match error.try_into_panic() {
                    Ok(panic) => handlers::panic_response(panic),
                    Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
                };
                (task, complete(response, batch_ids).await)
            }
        };
        if let Some(&position) = positions.get(&task) {
            outcomes[position] = Some(outcome);
        }
    }

    // Every request has either run or been failed by a dependency, because each dependency
    // comes earlier in the batch and so settles first.
    outcomes
        .into_iter()
        .map(|outcome| outcome.expect("every request of a batch has an outcome"))
        .collect()
}

/// Runs one request of a batch through the same code as a request sent alone.
///
/// The declared return type breaks the cycle of `route` running a batch that runs `route`:
/// without it the compiler cannot prove that the future is `Send`.
fn run_request(
    state: AppState,
    request: BatchRequest,
    batch_ids: RequestIds,
    peer: Option<ConnectInfo<SocketAddr>>,
) -> Pin<Box<dyn Future<Output = Outcome> + Send>> {
    Box::pin(async move {
        let ids = batch_ids.for_inner_request(&request.headers);
        let mut http_request = Request::new(Body::from(request.body));
        *http_request.method_mut() = request.method;
        *http_request.uri_mut() = request.uri;
        *http_request.headers_mut() = request.headers;
        if let Some(peer) = peer {
            http_request.extensions_mut().insert(peer);
        }

        // A request inside a batch has the same URL and header limits as one sent alone.
        let checked = limits::check_head(http_request.uri(), http_request.headers(), &state.limits);
        let routed = match checked {
            Ok(()) => handlers::route(&state, http_request).await,
            Err(error) => Err(error),
        };
        let response = match routed {
            Ok(response) => response,
            Err(error) => error.into_response(),
        };
        let outcome = complete(response, &ids).await;
        tracing::info!(status = outcome.status.as_u16(), "batch request finished");
        outcome
    })
}

/// Completes a response as the request-context middleware does, with the error body and the
/// id headers, and reads it into an outcome.
async fn complete(mut response: Response, ids: &RequestIds) -> Outcome {
    context::complete_response(&mut response, ids);
    let (parts, body) = response.into_parts();
    let body = match http_body_util::BodyExt::collect(body).await {
        Ok(collected) => collected.to_bytes(),
        Err(error) => {
            // Handlers build their bodies in memory, so reading one does not fail in practice.
            tracing::error!(error.message = %error, "failed to read the response of a batch request");
            Bytes::new()
        }
    };
    Outcome { status: parts.status, headers: parts.headers, body }
}

/// Writes the entry of one request in the batch response:
/// `{"id","status","headers","body"?}`.
fn write_entry(out: &mut Vec<u8>, id: &str, outcome: &Outcome) -> Result<(), serde_json::Error> {
    let mut headers = Map::new();
    for name in outcome.headers.keys() {
        if HOP_BY_HOP_HEADERS.contains(&name.as_str()) || name == header::CONTENT_LENGTH {
            continue;
        }
        let values: Vec<String> = outcome
            .headers
            .get_all(name)
            .iter()
            .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
            .collect();
        headers.insert(header_name_in_graph_case(name), Value::String(values.join(", ")));
    }

    out.extend_from_slice(br#"{"id":"#);
    serde_json::to_writer(&mut *out, id)?;
    out.extend_from_slice(
        format!(r#","status":{},"headers":"#, outcome.status.as_u16()).as_bytes(),
    );
    serde_json::to_writer(&mut *out, &headers)?;
    match response_body(&outcome.headers, &outcome.body) {
        Some(EntryBody::Json(json)) => {
            out.extend_from_slice(br#","body":"#);
            out.extend_from_slice(json);
        }
        Some(EntryBody::String(text)) => {
            out.extend_from_slice(br#","body":"#);
            serde_json::to_writer(&mut *out, &text)?;
        }
        None => {}
    }
    out.push(b'}');
    Ok(())
}

/// Returns a header name as Graph spells it in batch responses, or lowercase.
fn header_name_in_graph_case(name: &HeaderName) -> String {
    let known = GRAPH_HEADER_NAMES.iter().find(|known| known.eq_ignore_ascii_case(name.as_str()));
    known.map_or_else(|| name.as_str().to_owned(), |known| (*known).to_owned())
}

/// The `body` member of an entry in the batch response.
#[derive(Debug, PartialEq)]
enum EntryBody<'a> {
    /// A JSON body, copied as it is, so that member order and numbers stay exactly as the
    /// request would get them alone.
    Json(&'a [u8]),
    /// A body written as a JSON string.
    String(String),
}

/// Represents a response body in the batch response as OData JSON Format 4.01 section 19.5
/// describes: JSON as JSON, text as a string, anything else as base64url, and an empty body
/// as no `body` member.
///
/// NOTE: Graph's batching page shows only JSON bodies and does not say how it writes text, so
/// a `/$count` follows section 19.5 here and gets a string.
fn response_body<'a>(headers: &HeaderMap, body: &'a Bytes) -> Option<EntryBody<'a>> {
    if body.is_empty() {
        return None;
    }
    let media = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(MediaType::parse);
    let base64 = || EntryBody::String(BASE64_URL_SAFE.encode(body));
    let entry_body = match media {
        Some(media) if is_json(&media) => {
            match serde_json::from_slice::<serde::de::IgnoredAny>(body) {
                Ok(_) => EntryBody::Json(body),
                Err(_) => base64(),
            }
        }
        Some(media) if media.essence.starts_with("text/") => match std::str::from_utf8(body) {
            Ok(text) => EntryBody::String(text.to_owned()),
            Err(_) => base64(),
        },
        _ => base64(),
    };
    Some(entry_body)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
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
    fn urls_resolve_under_the_service_root() {
        assert_eq!(
            inner_uri("/aggregatedPolicyCompliances?$top=2").unwrap(),
            "/beta/aggregatedPolicyCompliances?$top=2"
        );
        assert_eq!(
            inner_uri("aggregatedPolicyCompliances/a").unwrap(),
            "/beta/aggregatedPolicyCompliances/a"
        );
        assert_eq!(inner_uri("").unwrap(), "/beta/");
    }

    #[test]
    fn urls_percent_encode_unsafe_characters() {
        let uri = inner_uri("aggregatedPolicyCompliances?$filter=name eq 'Zürich \"x\"'").unwrap();
        assert_eq!(
            uri,
            "/beta/aggregatedPolicyCompliances?$filter=name%20eq%20'Z%C3%BCrich%20%22x%22'"
        );
        assert_eq!(inner_uri("a%2Fb").unwrap(), "/beta/a%2Fb");
    }

    #[test]
    fn absolute_and_versioned_urls_are_rejected() {
        for url in [
            "https://graph.microsoft.com/beta/aggregatedPolicyCompliances",
            "http://127.0.0.1/beta",
            "//host/beta/aggregatedPolicyCompliances",
            "/beta/aggregatedPolicyCompliances",
            "BETA",
            "beta?$top=1",
        ] {
            assert!(inner_uri(url).is_err(), "{url}");
        }
    }

    #[test]
    fn colons_inside_paths_and_queries_are_not_schemes() {
        assert!(inner_uri("aggregatedPolicyCompliances('a:b')").is_ok());
        assert!(inner_uri("aggregatedPolicyCompliances/a:b").is_ok());
        assert!(inner_uri("aggregatedPolicyCompliances?$filter=id eq 'x:y'").is_ok());
    }

    #[test]
    fn nested_batches_and_fragments_are_rejected() {
        assert!(inner_uri("$batch").is_err());
        assert!(inner_uri("/$BATCH/").is_err());
        assert!(inner_uri("aggregatedPolicyCompliances/a#b").is_err());
    }

    #[test]
    fn dependencies_name_earlier_requests_in_any_case() {
        let keys = ["a".to_owned(), "b".to_owned(), "c".to_owned()];
        assert_eq!(dependencies(2, Some(&json!(["A", "b"])), &keys), Ok(vec![0, 1]));
        assert_eq!(dependencies(1, None, &keys), Ok(vec![]));
        assert_eq!(dependencies(1, Some(&Value::Null), &keys), Ok(vec![]));
    }

    #[test]
    fn dependencies_reject_self_forward_and_unknown_ids() {
        let keys = ["a".to_owned(), "b".to_owned()];
        assert!(dependencies(0, Some(&json!(["a"])), &keys).unwrap_err().contains("itself"));
        assert!(dependencies(0, Some(&json!(["b"])), &keys).unwrap_err().contains("later"));
        assert!(dependencies(1, Some(&json!(["z"])), &keys).unwrap_err().contains("not the id"));
        assert!(dependencies(1, Some(&json!("a")), &keys).is_err());
        assert!(dependencies(1, Some(&json!([1])), &keys).is_err());
    }

    #[test]
    fn json_bodies_must_be_objects_or_arrays() {
        let json = headers(&[("content-type", "application/json;odata.metadata=minimal")]);
        let body = request_body(&Method::POST, &json, &json!({"a": 1})).unwrap();
        assert_eq!(&body[..], br#"{"a":1}"#);
        assert!(request_body(&Method::POST, &json, &json!([1])).is_ok());
        for value in [json!("text"), json!(1), json!(true)] {
            assert!(request_body(&Method::POST, &json, &value).is_err(), "{value}");
        }
    }

    #[test]
    fn bodies_need_one_content_type() {
        assert!(request_body(&Method::POST, &HeaderMap::new(), &json!({})).is_err());
        let twice =
            headers(&[("content-type", "application/json"), ("content-type", "text/plain")]);
        assert!(request_body(&Method::POST, &twice, &json!({})).is_err());
    }

    #[test]
    fn get_and_delete_take_no_body() {
        let json = headers(&[("content-type", "application/json")]);
        assert!(request_body(&Method::GET, &json, &json!({})).is_err());
        assert!(request_body(&Method::DELETE, &json, &json!({})).is_err());
    }

    #[test]
    fn text_and_binary_bodies_are_strings() {
        let text = headers(&[("content-type", "text/plain")]);
        assert_eq!(&request_body(&Method::POST, &text, &json!("hi")).unwrap()[..], b"hi");
        let binary = headers(&[("content-type", "image/png")]);
        let url_safe = request_body(&Method::PUT, &binary, &json!("-_8")).unwrap();
        assert_eq!(&url_safe[..], [0xfb, 0xff]);
        let standard = request_body(&Method::PUT, &binary, &json!("+/8=")).unwrap();
        assert_eq!(&standard[..], [0xfb, 0xff]);
        assert!(request_body(&Method::PUT, &binary, &json!("not base64!")).is_err());
        assert!(request_body(&Method::PUT, &binary, &json!({})).is_err());
    }

    #[test]
    fn response_bodies_follow_their_media_type() {
        let json = headers(&[("content-type", "application/json;odata.metadata=minimal")]);
        let document = Bytes::from_static(br#"{"z":1,"a":12345678901234567890}"#);
        assert_eq!(response_body(&json, &document), Some(EntryBody::Json(&document)));
        let broken = Bytes::from_static(b"{");
        assert_eq!(response_body(&json, &broken), Some(EntryBody::String("ew==".to_owned())));
        let text = headers(&[("content-type", "text/plain;charset=utf-8")]);
        let count = Bytes::from_static(b"42");
        assert_eq!(response_body(&text, &count), Some(EntryBody::String("42".to_owned())));
        let binary = headers(&[("content-type", "application/octet-stream")]);
        let bytes = Bytes::from_static(&[0xfb, 0xff]);
        assert_eq!(response_body(&binary, &bytes), Some(EntryBody::String("-_8=".to_owned())));
        assert_eq!(response_body(&json, &Bytes::new()), None);
    }

    #[test]
    fn entries_keep_graph_member_order() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("7"));
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        let outcome = Outcome {
            status: StatusCode::OK,
            headers,
            body: Bytes::from_static(br#"{"b":1,"a":2}"#),
        };
        let mut out = Vec::new();
        write_entry(&mut out, "x\"y", &outcome).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"id":"x\"y","status":200,"headers":{"Content-Type":"application/json"},"body":{"b":1,"a":2}}"#
        );

        let empty = Outcome {
            status: StatusCode::NO_CONTENT,
            headers: HeaderMap::new(),
            body: Bytes::new(),
        };
        let mut out = Vec::new();
        write_entry(&mut out, "1", &empty).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), r#"{"id":"1","status":204,"headers":{}}"#);
    }

    #[test]
    fn header_names_take_graph_case() {
        assert_eq!(header_name_in_graph_case(&header::CONTENT_TYPE), "Content-Type");
        assert_eq!(
            header_name_in_graph_case(&HeaderName::from_static("odata-entityid")),
            "OData-EntityId"
        );
        assert_eq!(header_name_in_graph_case(&header::ETAG), "ETag");
        assert_eq!(header_name_in_graph_case(&HeaderName::from_static("request-id")), "request-id");
    }

    #[test]
    fn envelopes_without_requests_are_rejected() {
        for body in [r"{}", r#"{"requests":{}}"#, r#"{"requests":[]}"#, r"[]", r"not json"] {
            assert!(parse_batch(body.as_bytes(), &HeaderMap::new()).is_err(), "{body}");
        }
    }

    #[test]
    fn duplicate_ids_differ_only_in_case() {
        let body = json!({"requests": [
            {"id": "a", "method": "GET", "url": "/aggregatedPolicyCompliances"},
            {"id": "A", "method": "GET", "url": "/aggregatedPolicyCompliances"},
        ]});
        let error = parse_batch(body.to_string().as_bytes(), &HeaderMap::new()).unwrap_err();
        assert!(error.to_string().contains("more than one request"), "{error}");
    }

    #[test]
    fn requests_take_the_batch_token_and_host() {
        let batch = headers(&[("authorization", "Bearer outer"), ("host", "example.test")]);
        let body = json!({"requests": [
            {"id": "1", "method": "get", "url": "/aggregatedPolicyCompliances",
             "headers": {"Host": "other.test", "Connection": "close"}},
            {"id": "2", "method": "GET", "url": "/aggregatedPolicyCompliances",
             "headers": {"Authorization": "Bearer inner"}},
        ]});
        let requests = parse_batch(body.to_string().as_bytes(), &batch).unwrap();
        assert_eq!(requests[0].method, Method::GET);
        assert_eq!(requests[0].headers["authorization"], "Bearer outer");
        assert_eq!(requests[0].headers["host"], "example.test");
        assert!(!requests[0].headers.contains_key("connection"));
        assert_eq!(requests[1].headers["authorization"], "Bearer inner");
    }

    #[test]
    fn unknown_methods_are_rejected() {
        for method in ["HEAD", "OPTIONS", "FETCH", ""] {
            let body = json!({"requests": [{"id": "1", "method": method, "url": "/"}]});
            assert!(
                parse_batch(body.to_string().as_bytes(), &HeaderMap::new()).is_err(),
                "{method}"
            );
        }
    }
}
