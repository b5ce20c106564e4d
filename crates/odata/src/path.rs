//! The resource path of a request URL: which view, and the whole collection or one entity.
//!
//! Paths are matched segment by segment after percent-decoding each segment on its own, so a
//! key may contain an encoded `/` (`%2F`). Segment names compare case-insensitively, as Graph
//! does. A key is given either as its own segment (`…/aggregatedPolicyCompliances/{id}`, the
//! form Graph documents) or in OData's canonical form (`…/aggregatedPolicyCompliances('{id}')`,
//! with a `'` inside the key doubled).

use std::borrow::Cow;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

use crate::model::View;
use crate::openapi::DOCUMENT_PATH;

/// The service root that Beacon serves, as the first path segment.
pub const SERVICE_VERSION: &str = "beta";

/// The resource a request path addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resource {
    /// The service root, `/beta` or `/beta/`, which serves the service document.
    ServiceRoot,
    /// `/beta/$metadata`, the metadata document.
    Metadata,
    /// `/beta/openapi.json`, the OpenAPI description of the API.
    OpenApi,
    /// The `tenantRelationships` singleton, or the `managedTenants` entity it contains: the
    /// containers on the Graph view's path.
    Container(Container),
    /// The entity set of a view.
    Collection(View),
    /// One entity of a view, by key.
    Entity(View, String),
    /// The `$count` segment after a collection.
    Count(View),
    /// `$batch` right under the service root, which takes a JSON batch of requests.
    Batch,
}

/// The containers on the path to the Graph view's collection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Container {
    /// `/beta/tenantRelationships`.
    TenantRelationships,
    /// `/beta/tenantRelationships/managedTenants`.
    ManagedTenants,
}

/// Reasons a path addresses no resource.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// The first segment is not a version this service serves.
    #[error("Invalid version: '{0}'. This service serves the '/beta' version.")]
    UnknownVersion(String),
    /// A segment names nothing at its place; an empty segment means the path ended before
    /// naming a resource.
    #[error("{}", not_found_message(.0))]
    NotFound(String),
    /// A segment does not decode to UTF-8 text.
    #[error("The path segment '{0}' is not valid percent-encoded UTF-8.")]
    InvalidEncoding(String),
    /// A key in parentheses is not a single quoted string.
    #[error(
        "The key in '{0}' is invalid; write it as ('value') with each ' inside the value doubled \
         and each / percent-encoded as %2F, or as its own path segment."
    )]
    InvalidKey(String),
}

fn not_found_message(segment: &str) -> String {
    if segment.is_empty() {
        "The path names no resource; the entity sets are /beta/aggregatedPolicyCompliances and \
         /beta/tenantRelationships/managedTenants/aggregatedPolicyCompliances."
            .to_owned()
    } else {
        format!("Resource not found for the segment '{segment}'.")
    }
}

/// Parses an absolute request path such as `/beta/aggregatedPolicyCompliances('a''b')`.
pub fn parse(raw: &str) -> Result<Resource, PathError> {
    let mut raw_segments: Vec<&str> = raw.strip_prefix('/').unwrap_or(raw).split('/').collect();

    // The version segment comes first; one trailing slash is tolerated.
    let version = decode(raw_segments.remove(0))?;
    if !version.eq_ignore_ascii_case(SERVICE_VERSION) {
        if version.is_empty() {
            return Err(PathError::NotFound(String::new()));
        }
        return Err(PathError::UnknownVersion(version.into_owned()));
    }
    if raw_segments.last() == Some(&"") {
        raw_segments.pop();
    }
    let segments =
        raw_segments.into_iter().map(decode).collect::<Result<Vec<Cow<'_, str>>, _>>()?;

    // Find the entity set, which may carry a key in parentheses.
    let (view, set_segment, rest) = match segments.as_slice() {
        [first, rest @ ..]
            if set_name(first).eq_ignore_ascii_case("aggregatedPolicyCompliances") =>
        {
            (View::Seed, first, rest)
        }
        [first, second, third, rest @ ..]
            if first.eq_ignore_ascii_case("tenantRelationships")
                && second.eq_ignore_ascii_case("managedTenants")
                && set_name(third).eq_ignore_ascii_case("aggregatedPolicyCompliances") =>
        {
            (View::Graph, third, rest)
        }
        [] => return Ok(Resource::ServiceRoot),
        [only] if only.eq_ignore_ascii_case("$metadata") => return Ok(Resource::Metadata),
        [first, next, ..] if first.eq_ignore_ascii_case("$metadata") => {
            return Err(PathError::NotFound(next.to_string()));
        }
        [only] if only.eq_ignore_ascii_case(DOCUMENT_PATH) => return Ok(Resource::OpenApi),
        [first, next, ..] if first.eq_ignore_ascii_case(DOCUMENT_PATH) => {
            return Err(PathError::NotFound(next.to_string()));
        }
        [first] if first.eq_ignore_ascii_case("$batch") => return Ok(Resource::Batch),
        [first, next, ..] if first.eq_ignore_ascii_case("$batch") => {
            return Err(PathError::NotFound(next.to_string()));
        }
        [first] if first.eq_ignore_ascii_case("tenantRelationships") => {
            return Ok(Resource::Container(Container::TenantRelationships));
        }
        [first, second]
            if first.eq_ignore_ascii_case("tenantRelationships")
                && second.eq_ignore_ascii_case("managedTenants") =>
        {
            return Ok(Resource::Container(Container::ManagedTenants));
        }
        [first, ..] if first.eq_ignore_ascii_case("tenantRelationships") => {
            return Err(not_found_after(&segments, &["tenantRelationships", "managedTenants"]));
        }
        [first, ..] => return Err(PathError::NotFound(first.to_string())),
    };
    let parenthesized_key = key_in_parentheses(set_segment)?;

    // Then at most one more segment: a key, or `$count` on the collection.
    match (parenthesized_key, rest) {
        (Some(key), []) => Ok(Resource::Entity(view, key)),
        (Some(_), [next, ..]) => Err(PathError::NotFound(next.to_string())),
        (None, []) => Ok(Resource::Collection(view)),
        (None, [next]) if next.eq_ignore_ascii_case("$count") => Ok(Resource::Count(view)),
        (None, [next]) if next.starts_with('$') || next.is_empty() => {
            Err(PathError::NotFound(next.to_string()))
        }
        (None, [key]) => Ok(Resource::Entity(view, key.to_string())),
        (None, [_, next, ..]) => Err(PathError::NotFound(next.to_string())),
    }
}

/// Characters left as they are in a key written into a URL path segment: RFC 3986's unreserved
/// characters.
const KEY_SEGMENT: &AsciiSet =
    &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// Writes the absolute URL of an entity, with the key as its own path segment as Graph writes
/// it. Keys that would mean something else as a segment (`.`, `..` or a `$` name such as
/// `$count`) go in parentheses instead, which is OData's canonical form.
pub fn entity_url(service_root: &str, view: View, id: &str) -> String {
    let collection = view.collection_path();
    if id == "." || id == ".." || id.starts_with('$') {
        let quoted = id.replace('\'', "''");
        return format!(
            "{service_root}/{collection}('{}')",
            utf8_percent_encode(&quoted, KEY_SEGMENT)
        );
    }
    format!("{service_root}/{collection}/{}", utf8_percent_encode(id, KEY_SEGMENT))
}

/// Returns whether every `%` in `text` starts an escape of two hexadecimal digits, as RFC 3986
/// requires.
pub fn has_valid_escapes(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.iter().enumerate().all(|(i, byte)| {
        *byte != b'%'
            || (bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
    })
}

fn decode(segment: &str) -> Result<Cow<'_, str>, PathError> {
    if !has_valid_escapes(segment) {
        return Err(PathError::InvalidEncoding(segment.to_owned()));
    }
    percent_decode_str(segment)
        .decode_utf8()
        .map_err(|_| PathError::InvalidEncoding(segment.to_owned()))
}

/// Returns the error naming the first segment that does not continue `expected`.
fn not_found_after(segments: &[Cow<'_, str>], expected: &[&str]) -> PathError {
    for (i, segment) in segments.iter().enumerate() {
        if expected.get(i).is_none_or(|e| !segment.eq_ignore_ascii_case(e)) {
            return PathError::NotFound(segment.to_string());
        }
    }
    PathError::NotFound(segments.last().map(|s| s.to_string()).unwrap_or_default())
}

/// Returns the part of a segment before any `(`.
fn set_name(segment: &str) -> &str {
    segment.split_once('(').map_or(segment, |(name, _)| name)
}

/// Parses the key of `name('key')` or `name(id='key')`, or returns `None` when the segment
/// has no parentheses.
fn key_in_parentheses(segment: &str) -> Result<Option<String>, PathError> {
    let Some((_, after)) = segment.split_once('(') else {
        return Ok(None);
    };
    let invalid = || PathError::InvalidKey(segment.to_owned());
    let inner = after.strip_suffix(')').ok_or_else(invalid)?;
    let inner = inner.strip_prefix("id=").unwrap_or(inner);
    let quoted = inner.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')).ok_or_else(invalid)?;

    // Inside the quotes, every `'` must be one of a doubled pair.
    let mut key = String::with_capacity(quoted.len());
    let mut chars = quoted.chars();
    while let Some(c) = chars.next() {
        if c == '\'' && chars.next() != Some('\'') {
            return Err(invalid());
        }
        key.push(c);
    }
    if key.is_empty() {
        return Err(invalid());
    }
    Ok(Some(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_views_resolve_collections() {
        assert_eq!(
            parse("/beta/aggregatedPolicyCompliances"),
            Ok(Resource::Collection(View::Seed))
        );
        assert_eq!(
            parse("/beta/tenantRelationships/managedTenants/aggregatedPolicyCompliances/"),
            Ok(Resource::Collection(View::Graph))
        );
        assert_eq!(
            parse("/BETA/TenantRelationships/managedtenants/AggregatedPolicyCompliances"),
            Ok(Resource::Collection(View::Graph))
        );
    }

    #[test]
    fn keys_are_percent_decoded_per_segment() {
        assert_eq!(
            parse("/beta/aggregatedPolicyCompliances/a%2Fb'c%20d"),
            Ok(Resource::Entity(View::Seed, "a/b'c d".into()))
        );
    }

    #[test]
    fn parenthesized_keys_undouble_quotes() {
        assert_eq!(
            parse("/beta/aggregatedPolicyCompliances('a''b%2Fc')"),
            Ok(Resource::Entity(View::Seed, "a'b/c".into()))
        );
        assert_eq!(
            parse("/beta/tenantRelationships/managedTenants/aggregatedPolicyCompliances(id='x')"),
            Ok(Resource::Entity(View::Graph, "x".into()))
        );
        for bad in ["('a'b')", "(a)", "('a'", "('')", "('a')x"] {
            let path = format!("/beta/aggregatedPolicyCompliances{bad}");
            assert!(matches!(parse(&path), Err(PathError::InvalidKey(_))), "{bad}");
        }
    }

    #[test]
    fn unknown_versions_and_segments_are_named() {
        assert_eq!(
            parse("/v2.0/aggregatedPolicyCompliances"),
            Err(PathError::UnknownVersion("v2.0".into()))
        );
        assert_eq!(parse("/beta/users"), Err(PathError::NotFound("users".into())));
        assert_eq!(
            parse("/beta/tenantRelationships/managedTenants/tenants"),
            Err(PathError::NotFound("tenants".into()))
        );
        assert_eq!(
            parse("/beta/aggregatedPolicyCompliances/a/b"),
            Err(PathError::NotFound("b".into()))
        );
        assert_eq!(
            parse("/beta/aggregatedPolicyCompliances('a')/b"),
            Err(PathError::NotFound("b".into()))
        );
        assert_eq!(
            parse("/beta/aggregatedPolicyCompliances/$ref"),
            Err(PathError::NotFound("$ref".into()))
        );
        assert_eq!(parse("/beta"), Ok(Resource::ServiceRoot));
        assert_eq!(parse("/beta/"), Ok(Resource::ServiceRoot));
        assert_eq!(parse("/beta/$METADATA"), Ok(Resource::Metadata));
        assert_eq!(
            parse("/beta/tenantRelationships/"),
            Ok(Resource::Container(Container::TenantRelationships))
        );
        assert_eq!(
            parse("/beta/TenantRelationships/ManagedTenants"),
            Ok(Resource::Container(Container::ManagedTenants))
        );
        assert_eq!(parse("/beta/$metadata/x"), Err(PathError::NotFound("x".into())));
        assert_eq!(parse("/"), Err(PathError::NotFound(String::new())));
    }

    #[test]
    fn count_segment_is_recognized() {
        assert_eq!(
            parse("/beta/aggregatedPolicyCompliances/$count"),
            Ok(Resource::Count(View::Seed))
        );
    }

    #[test]
    fn openapi_document_is_recognized() {
        assert_eq!(parse("/beta/openapi.json"), Ok(Resource::OpenApi));
        assert_eq!(parse("/beta/OpenAPI.json/"), Ok(Resource::OpenApi));
        assert_eq!(parse("/beta/openapi.json/x"), Err(PathError::NotFound("x".into())));
        assert_eq!(parse("/beta/openapi"), Err(PathError::NotFound("openapi".into())));
    }

    #[test]
    fn batch_segment_is_recognized() {
        assert_eq!(parse("/beta/$batch"), Ok(Resource::Batch));
        assert_eq!(parse("/beta/$BATCH/"), Ok(Resource::Batch));
        assert_eq!(parse("/beta/$batch/x"), Err(PathError::NotFound("x".into())));
        assert_eq!(
            parse("/beta/aggregatedPolicyCompliances/$batch"),
            Err(PathError::NotFound("$batch".into()))
        );
    }

    #[test]
    fn malformed_escapes_are_rejected() {
        for path in [
            "/beta/aggregatedPolicyCompliances/%ZZ",
            "/beta/aggregatedPolicyCompliances/a%",
            "/beta/aggregatedPolicyCompliances/%4",
        ] {
            assert!(matches!(parse(path), Err(PathError::InvalidEncoding(_))), "{path}");
        }
    }

    #[test]
    fn invalid_utf8_is_rejected() {
        assert!(matches!(
            parse("/beta/aggregatedPolicyCompliances/%FF"),
            Err(PathError::InvalidEncoding(_))
        ));
    }
}
