//! The documents that describe the service: the service document at the service root, which
//! lists the entity sets, and the metadata document at `$metadata`, which declares the model
//! in CSDL XML or CSDL JSON.

use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::Response;
use beacon_odata::media::Metadata;
use beacon_odata::query::QueryOptions;

use crate::error::ApiError;
use crate::handlers::{Call, json_response, require_read};

/// `GET` on the service root: the OData service document, which lists the seed view's entity
/// set and the singleton that leads to the Graph view's collection.
pub(crate) fn service(call: &Call) -> Result<Response, ApiError> {
    require_read(&call.principal)?;
    let mut document = serde_json::Map::new();
    if call.write_options.format.metadata != Metadata::None {
        document
            .insert("@odata.context".to_owned(), format!("{}/$metadata", call.service_root).into());
    }
    document.insert(
        "value".to_owned(),
        serde_json::json!([
            {"name": "aggregatedPolicyCompliances", "kind": "EntitySet",
             "url": "aggregatedPolicyCompliances"},
            {"name": "tenantRelationships", "kind": "Singleton", "url": "tenantRelationships"},
        ]),
    );
    json_response(StatusCode::OK, &document, call.write_options.format)
}

/// `GET $metadata`: the model as CSDL XML, or as CSDL JSON when `$format` or `Accept` requests
/// JSON.
pub(crate) fn metadata(_parts: &Parts, _options: &QueryOptions) -> Result<Response, ApiError> {
    Err(ApiError::NotFound("The metadata document is not available yet.".to_owned()))
}
