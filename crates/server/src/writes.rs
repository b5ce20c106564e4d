//! The operations that change entities: create (`POST`), update (`PATCH` merges, `PUT`
//! replaces) and delete, with their preconditions and the `Prefer: return` preference.
//!
//! Every change is checked in full before it reaches the store, and the store applies a
//! precondition and its change as one step, so a rejected request changes nothing and two
//! requests racing with the same `If-Match` cannot both succeed.

use axum::body::{Body, Bytes};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use beacon_odata::bind;
use beacon_odata::body::{self, EntityInput, ReadOptions};
use beacon_odata::entity::{Entity, StoredEntity, WriteOptions};
use beacon_odata::etag::{self, Precondition, TagSet};
use beacon_odata::model::View;
use beacon_odata::path;
use beacon_odata::query::BoundQuery;
use beacon_store::{Change, StoreError};

use crate::AppState;
use crate::error::ApiError;
use crate::handlers::{
    Call, check_json_body_headers, entity_response, insert_etag, projection, read_body,
    require_write,
};

/// The response body that `Prefer: return=…` requests for a write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Return {
    /// `return=minimal`: no body.
    Minimal,
    /// `return=representation`: the entity as stored.
    Representation,
}

impl Return {
    fn name(self) -> &'static str {
        match self {
            Return::Minimal => "return=minimal",
            Return::Representation => "return=representation",
        }
    }
}

/// Reads the `return` preference of the `Prefer` headers; the first valid one counts.
fn preferred_return(headers: &HeaderMap) -> Option<Return> {
    headers
        .get_all("prefer")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|preference| {
            // A preference may carry parameters after `;`, which `return` does not use.
            let preference = preference.split(';').next()?.trim();
            let (name, value) = preference.split_once('=')?;
            if !name.trim().eq_ignore_ascii_case("return") {
                return None;
            }
            match value.trim().trim_matches('"') {
                v if v.eq_ignore_ascii_case("minimal") => Some(Return::Minimal),
                v if v.eq_ignore_ascii_case("representation") => Some(Return::Representation),
                _ => None,
            }
        })
        .next()
}

/// Adds `Preference-Applied` for a `return` preference.
fn confirm(mut response: Response, applied: Option<Return>) -> Response {
    if let Some(applied) = applied {
        response
            .headers_mut()
            .insert("preference-applied", HeaderValue::from_static(applied.name()));
    }
    response
}

/// Returns the error for an entity that does not exist.
pub(crate) fn not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!("No aggregatedPolicyCompliance with the id '{id}' exists."))
}

/// Returns the error for a precondition that the resource's current state fails, naming
/// the header that failed where only one was sent.
pub(crate) fn precondition_failed(precondition: &Precondition) -> ApiError {
    precondition_error(precondition, false)
}

/// Returns the error for a precondition on a resource without an entity tag, such as a
/// collection, which only `*` matches.
pub(crate) fn untagged_precondition_failed(precondition: &Precondition) -> ApiError {
    precondition_error(precondition, true)
}

fn precondition_error(precondition: &Precondition, untagged: bool) -> ApiError {
    let message = match (&precondition.if_match, &precondition.if_none_match) {
        (Some(_), None) if untagged => {
            "This resource has no entity tag, so If-Match matches it only as '*'."
        }
        (Some(_), None) => {
            "The entity has changed since the given entity tag was read, or the tag does not \
             match it; read the entity again for its current ETag."
        }
        (None, Some(TagSet::Any)) => {
            "The resource exists, and If-None-Match: * allows the request only where it does not."
        }
        (None, Some(_)) => {
            "The resource's current ETag is one that If-None-Match lists, so the request was not \
             applied."
        }
        _ => "The resource's current state does not satisfy If-Match and If-None-Match together.",
    };
    ApiError::PreconditionFailed(message.to_owned())
}

/// Reads the `If-Match` and `If-None-Match` headers.
pub(crate) fn precondition(headers: &HeaderMap) -> Result<Precondition, ApiError> {
    let tags = |name: HeaderName, label: &'static str| {
        let values: Vec<&[u8]> = headers.get_all(&name).iter().map(HeaderValue::as_bytes).collect();
        match values.is_empty() {
            true => Ok(None),
            false => etag::parse(label, &values)
                .map(Some)
                .map_err(|error| ApiError::BadRequest(error.to_string())),
        }
    };
    Ok(Precondition {
        if_match: tags(header::IF_MATCH, "If-Match")?,
        if_none_match: tags(header::IF_NONE_MATCH, "If-None-Match")?,
    })
}

/// Checks that a request body is uncompressed JSON within the size limit, reads it and
/// decodes it for `view`.
async fn read_input(
    state: &AppState,
    parts: &Parts,
    body: Body,
    view: View,
) -> Result<EntityInput, ApiError> {
    let int64_as_string = check_json_body_headers(&parts.headers)?;
    let bytes: Bytes = read_body(&parts.headers, body, state.body_read_timeout).await?;
    Ok(body::decode(view, &bytes, ReadOptions { int64_as_string })?)
}

/// `POST` on a collection: validates the body, stores the entity, returns `201` with the
/// entity, or `204` with `Prefer: return=minimal`.
pub(crate) async fn create(
    state: &AppState,
    call: &Call,
    parts: &Parts,
    body: Body,
    view: View,
) -> Result<Response, ApiError> {
    require_write(&call.principal)?;
    let preference = preferred_return(&parts.headers);
    // `$select` is checked before the change, so that an invalid one changes nothing.
    let bound = call.options.bind(view, bind::now_ticks())?;

    // Apply the view's rules, then store.
    let input = read_input(state, parts, body, view).await?;
    let (id, fields) = input.into_create(view)?;
    // A time-ordered id places each new row after the partner's earlier ones in the table and
    // its indexes, so a create changes the last pages rather than random ones.
    let id = id.unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    let stored = match state.store.create(&call.principal.partner, Entity { id, fields }).await {
        Ok(stored) => stored,
        Err(StoreError::Conflict) => {
            return Err(ApiError::Conflict(
                "An aggregatedPolicyCompliance with this id already exists.".to_owned(),
            ));
        }
        Err(other) => return Err(other.into()),
    };
    tracing::debug!(entity.id = %stored.entity.id, view = %view, "created entity");

    let entity_url = path::entity_url(&call.service_root, view, &stored.entity.id);
    let mut response = match preference {
        Some(Return::Minimal) => {
            let mut response = no_content(&stored);
            if let Ok(id) = HeaderValue::from_str(&entity_url) {
                response.headers_mut().insert("odata-entityid", id);
            }
            response
        }
        _ => representation(StatusCode::CREATED, call, view, &bound, &stored)?,
    };
    if let Ok(location) = HeaderValue::from_str(&entity_url) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(confirm(response, preference))
}

/// `PATCH` (merge) or `PUT` (replace) on one entity: `204`, or `200` with the entity when
/// `Prefer: return=representation` requests it.
pub(crate) async fn update(
    state: &AppState,
    call: &Call,
    parts: &Parts,
    body: Body,
    view: View,
    id: &str,
) -> Result<Response, ApiError> {
    require_write(&call.principal)?;
    let precondition = precondition(&parts.headers)?;
    let preference = preferred_return(&parts.headers);
    // As in a create, `$select` is checked before the change.
    let bound = call.options.bind(view, bind::now_ticks())?;

    // The whole body is checked before the change reaches the store.
    let input = read_input(state, parts, body, view).await?;
    let change = match parts.method.as_str() {
        "PUT" => Change::Replace(input.into_replacement(view)?),
        _ => Change::Merge(input.into_patch(view)?),
    };
    let partner = &call.principal.partner;
    let stored = match state.store.update(partner, id, change, precondition.clone()).await {
        Ok(stored) => stored,
        Err(StoreError::NotFound) => return Err(not_found(id)),
        Err(StoreError::PreconditionFailed) => return Err(precondition_failed(&precondition)),
        Err(other) => return Err(other.into()),
    };
    tracing::debug!(entity.id = %id, view = %view, method = %parts.method, "updated entity");

    let response = match preference {
        Some(Return::Representation) => {
            representation(StatusCode::OK, call, view, &bound, &stored)?
        }
        _ => no_content(&stored),
    };
    Ok(confirm(response, preference))
}

/// `DELETE` on one entity: `204` with an empty body.
pub(crate) async fn delete(
    state: &AppState,
    call: &Call,
    parts: &Parts,
    view: View,
    id: &str,
) -> Result<Response, ApiError> {
    require_write(&call.principal)?;
    let precondition = precondition(&parts.headers)?;
    let partner = &call.principal.partner;
    match state.store.delete(partner, id, precondition.clone()).await {
        Ok(_) => {}
        Err(StoreError::NotFound) => return Err(not_found(id)),
        Err(StoreError::PreconditionFailed) => return Err(precondition_failed(&precondition)),
        Err(other) => return Err(other.into()),
    }
    tracing::debug!(entity.id = %id, view = %view, "deleted entity");
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Builds the response to a write that returns the entity, with the properties `$select`
/// chose.
fn representation(
    status: StatusCode,
    call: &Call,
    view: View,
    bound: &BoundQuery,
    stored: &StoredEntity,
) -> Result<Response, ApiError> {
    let options = WriteOptions { selection: bound.selection, ..call.write_options };
    let projection = projection(&bound.selected_names);
    entity_response(status, call, options, view, stored, &projection)
}

/// Builds the `204` response to a write, with the entity's new `ETag`.
fn no_content(stored: &StoredEntity) -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    insert_etag(&mut response, stored.version);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&'static str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for value in values {
            map.append("prefer", HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn return_preference_is_found_among_others() {
        assert_eq!(preferred_return(&headers(&[])), None);
        assert_eq!(
            preferred_return(&headers(&["odata.maxpagesize=5, return=minimal"])),
            Some(Return::Minimal)
        );
        assert_eq!(
            preferred_return(&headers(&["respond-async", "Return=\"Representation\""])),
            Some(Return::Representation)
        );
        assert_eq!(preferred_return(&headers(&["return=everything"])), None);
    }
}
