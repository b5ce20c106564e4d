//! The OpenAPI description of Beacon's API, written from [`crate::model`] as `$metadata` is.
//!
//! [`document`] returns an OpenAPI 3.0.3 document that describes every operation under `/beta`.
//! On each view's collection these are list, create, read, update (`PATCH` and `PUT`), delete
//! and `/$count`. The others are the service document, the containers on the Graph view's
//! path, `$metadata`, `$batch` and this document itself. Property names, EDM types, nullability and the rules
//! for creates and updates come from the same [`crate::model`] functions that
//! [`crate::csdl`] and the request body rules use, so the description and `$metadata` state
//! one model. The unit tests compare the entity schemas with `csdl::json()` property by
//! property.
//!
//! The document is OpenAPI 3.0.3 and not 3.1, because 3.0 is what most tools that read
//! OpenAPI support fully: code generators, schemathesis and `openapi-spec-validator` all take
//! it, while several of them support 3.1 only in part. 3.0.3 is the last 3.0 release and only
//! clarifies 3.0.0 to 3.0.2, such as how `nullable` combines with `enum`.
//!
//! The document describes what a client sees by default. Int64 values appear as JSON integers
//! (`type: integer`, `format: int64`). With `IEEE754Compatible=true` in `Accept` or `$format`,
//! Beacon writes them as strings, and the descriptions say so, but the schemas do not cover
//! that form. The `servers` URL is the relative `/beta`, so the document is the same wherever
//! the service runs, and a client resolves it against the URL it read the document from.
//!
//! `schemas` writes the component schemas and `operations` the paths with their parameters
//! and responses.

mod operations;
mod schemas;

use serde_json::{Map, Value, json};

pub use operations::error_codes;

use crate::model::View;
use crate::path::SERVICE_VERSION;

/// The OpenAPI version of the document.
pub const OPENAPI_VERSION: &str = "3.0.3";

/// The path below the service root where Beacon serves the document, without a leading slash.
pub const DOCUMENT_PATH: &str = "openapi.json";

/// Limits of the HTTP layer that the description states. `beacon-server` sets them and passes
/// them in, so that this crate contains no copy of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HttpLimits {
    /// The number of entities on a page when the client states no `odata.maxpagesize`.
    pub default_page_size: usize,
    /// The largest page size that `Prefer: odata.maxpagesize` can choose.
    pub max_page_size: usize,
    /// The maximum number of requests in one `$batch`.
    pub max_batch_requests: usize,
    /// The largest request body accepted, in bytes.
    pub max_body_bytes: usize,
}

/// Builds the OpenAPI document of the service.
pub fn document(limits: &HttpLimits) -> Value {
    json!({
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "Beacon",
            "version": env!("CARGO_PKG_VERSION"),
            "description": description(limits),
        },
        "servers": [{
            "url": format!("/{SERVICE_VERSION}"),
            "description": "The service root, relative to the URL this document was read from.",
        }],
        "security": [{ schemas::SECURITY_SCHEME: [] }],
        "tags": tags(),
        "paths": operations::paths(limits),
        "components": {
            "securitySchemes": { schemas::SECURITY_SCHEME: schemas::security_scheme() },
            "schemas": schemas::components(limits),
            "parameters": operations::parameter_components(),
            "headers": operations::header_components(),
            "responses": operations::response_components(),
        },
    })
}

/// Returns the tag that groups the operations of `view`.
fn view_tag(view: View) -> &'static str {
    match view {
        View::Seed => "seed view",
        View::Graph => "Graph view",
    }
}

/// The tag of the operations that are not on a collection.
const SERVICE_TAG: &str = "service";

fn tags() -> Value {
    json!([
        {
            "name": view_tag(View::Seed),
            "description": format!(
                "`/{}` with the property names `organizationId` and `organizationDisplayName`. \
                 A create or a replace must give every property but `id`, and none may be null.",
                View::Seed.collection_path()
            ),
        },
        {
            "name": view_tag(View::Graph),
            "description": format!(
                "`/{}` with the property names `tenantId` and `tenantDisplayName`, as Microsoft \
                 Graph ships the resource. Every property but `id` is optional and nullable.",
                View::Graph.collection_path()
            ),
        },
        {
            "name": SERVICE_TAG,
            "description": "The documents that describe the service, the containers on the \
                            Graph view's path, and `$batch`.",
        },
    ])
}

/// Writes the document's introduction, which states the rules common to every operation.
fn description(limits: &HttpLimits) -> String {
    let paragraphs = [
        "Device-compliance summaries of the customer tenants that a managed service provider \
         looks after, served over the OData API of Microsoft Graph's \
         `aggregatedPolicyCompliance` resource. Two views read and write the same entities \
         under different property names; `$metadata` declares both."
            .to_owned(),
        "Every operation but `GET $metadata` and `GET openapi.json` needs a bearer token. \
         Reading needs the permission `DeviceManagementConfiguration.Read.All` or \
         `DeviceManagementConfiguration.ReadWrite.All` in the token's `scp` or `roles`, and \
         changes need `DeviceManagementConfiguration.ReadWrite.All`. Each partner tenant (the \
         token's `tid`) sees only its own entities."
            .to_owned(),
        "Int64 values are JSON integers. With `IEEE754Compatible=true` in the request's \
         `Content-Type` they may also be sent as strings, and with it in `Accept` (or \
         `$format`) every Int64 value and `@odata.count` is returned as a string; the \
         schemas here describe the default form only. `odata.metadata=minimal` (the default), \
         `none` or `full` in `Accept` or `$format` sets which control information (`@odata.*` \
         members) a response carries."
            .to_owned(),
        format!(
            "A listing returns at most {} entities a page, or up to {} with \
             `Prefer: odata.maxpagesize=N`, and `@odata.nextLink` leads to the next page. A \
             request body may be at most {} bytes.",
            limits.default_page_size, limits.max_page_size, limits.max_body_bytes
        ),
        "An entity is addressed as `collection/{id}`, as described here, or as \
         `collection('{id}')` with each `'` in the id doubled. An id that starts with `$`, \
         or is `.` or `..`, is addressable only in the second form. Path segment names and \
         query option names compare case-insensitively, and the `$` of a system query option \
         may be left out. Unknown query options without `$` are ignored."
            .to_owned(),
        "Every error has the Graph error body and a rejected request changes nothing. A method \
         that a path does not take gets `405` with an `Allow` header. Some requests are \
         rejected by the HTTP parser before Beacon sees them (a malformed `Content-Length`, a \
         URL with characters that must be percent-encoded, a request head past the parser's \
         own limits); those get the bare status with an empty body. `GET /healthz`, outside \
         `/beta`, returns `200` without a token while the process is up."
            .to_owned(),
    ];
    paragraphs.join("\n\n")
}

/// Returns a reference to a component of `kind` (such as `schemas`) named `name`.
fn component_ref(kind: &str, name: &str) -> Value {
    json!({ "$ref": format!("#/components/{kind}/{name}") })
}

/// Collects `(name, value)` pairs into a JSON object, keeping their order.
fn object<I>(members: I) -> Value
where
    I: IntoIterator<Item = (String, Value)>,
{
    Value::Object(members.into_iter().collect::<Map<String, Value>>())
}

#[cfg(test)]
mod tests;
