//! The documents that describe the service: the service document at the service root, which
//! lists the entity sets, the metadata document at `$metadata`, which declares the model in
//! CSDL XML or CSDL JSON, and the OpenAPI description at `openapi.json`.

use std::sync::LazyLock;

use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use beacon_odata::csdl;
use beacon_odata::media::{self, DocumentFormat, FormatOption, Metadata};
use beacon_odata::openapi::{self, HttpLimits};
use beacon_odata::path::Container;
use beacon_odata::query::QueryOptions;

use crate::error::ApiError;
use crate::handlers::{Call, header_text, json_response, require_read};
use crate::paging::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};
use crate::{MAX_BODY_BYTES, batch};

/// The limits of this HTTP layer that the OpenAPI description states.
const HTTP_LIMITS: HttpLimits = HttpLimits {
    default_page_size: DEFAULT_PAGE_SIZE,
    max_page_size: MAX_PAGE_SIZE,
    max_batch_requests: batch::MAX_REQUESTS,
    max_body_bytes: MAX_BODY_BYTES,
};

/// Returns the OpenAPI description of the API as pretty-printed JSON with a final newline,
/// the text that `GET /beta/openapi.json` serves and `docs/openapi.json` contains.
pub fn openapi_json() -> &'static str {
    static TEXT: LazyLock<String> = LazyLock::new(|| {
        let document = openapi::document(&HTTP_LIMITS);
        // serde_json fails only on map keys that are not strings, which a `Value` cannot have.
        let mut text = serde_json::to_string_pretty(&document).unwrap_or_default();
        text.push('\n');
        text
    });
    &TEXT
}

/// `GET` on the service root: the OData service document, which lists the seed view's entity
/// set and the `tenantRelationships` singleton that contains the Graph view's collection.
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

/// `GET` on `tenantRelationships` or `tenantRelationships/managedTenants`: the containers
/// on the Graph view's path. Each has only its key, which is the caller's partner tenant, and
/// its navigation property leads on to the collection.
pub(crate) fn container(call: &Call, container: Container) -> Result<Response, ApiError> {
    require_read(&call.principal)?;
    let (context, type_name) = match container {
        Container::TenantRelationships => ("tenantRelationships", csdl::TENANT_RELATIONSHIP_TYPE),
        Container::ManagedTenants => {
            ("tenantRelationships/managedTenants/$entity", csdl::MANAGED_TENANT_TYPE)
        }
    };
    let mut document = serde_json::Map::new();
    if call.write_options.format.metadata != Metadata::None {
        document.insert(
            "@odata.context".to_owned(),
            format!("{}/$metadata#{context}", call.service_root).into(),
        );
        document.insert("@odata.type".to_owned(), format!("#{type_name}").into());
    }
    document.insert("id".to_owned(), call.principal.partner.as_str().into());
    json_response(StatusCode::OK, &document, call.write_options.format)
}

/// `GET $metadata`: the model as CSDL XML, or as CSDL JSON when `$format` or `Accept` requests
/// JSON.
pub(crate) fn metadata(parts: &Parts, options: &QueryOptions) -> Result<Response, ApiError> {
    let format = match options.format {
        Some(FormatOption::Xml) => DocumentFormat::Xml,
        Some(FormatOption::Json(_)) => DocumentFormat::Json,
        None => media::negotiate_document(header_text(&parts.headers, header::ACCEPT)?)?,
    };
    let (content_type, body) = match format {
        DocumentFormat::Xml => ("application/xml", csdl::xml()),
        DocumentFormat::Json => ("application/json", csdl::json().to_string()),
    };
    Ok(([(header::CONTENT_TYPE, content_type)], body).into_response())
}

/// `GET openapi.json`: the OpenAPI description, which is JSON only.
pub(crate) fn openapi(parts: &Parts, options: &QueryOptions) -> Result<Response, ApiError> {
    match options.format {
        Some(FormatOption::Xml) => {
            return Err(ApiError::BadRequest(
                "The OpenAPI description is available only as JSON; use $format=json or leave \
                 $format out."
                    .to_owned(),
            ));
        }
        Some(FormatOption::Json(_)) => {}
        None => {
            let accept = header_text(&parts.headers, header::ACCEPT)?;
            if media::negotiate_json(accept).is_err() {
                return Err(ApiError::NotAcceptable(format!(
                    "None of the media types in Accept '{}' can be served; the OpenAPI \
                     description is available as 'application/json'.",
                    accept.unwrap_or_default()
                )));
            }
        }
    }
    Ok(([(header::CONTENT_TYPE, "application/json")], openapi_json()).into_response())
}
