//! Entity tags: how an entity's version appears in `ETag` and `@odata.etag`, and how the
//! `If-Match` and `If-None-Match` headers decide whether a request may go ahead.
//!
//! An entity's tag is its version written as a weak tag, `W/"<version>"`, as Graph writes its
//! tags. Versions change on every write and are not reused for a key after a delete (a new
//! entity starts at a random version), so equal tags mean the same stored state.
//!
//! Both headers compare tags weakly, ignoring the `W/` prefix. RFC 9110 requires the strong
//! comparison in `If-Match`, under which a weak tag never matches; OData services, Graph
//! among them, hand out weak tags and accept them back in `If-Match`, and clients depend on
//! that, so Beacon follows OData here.

use std::fmt;

/// Writes the tag of a version, such as `W/"42"`.
pub fn format(version: i64) -> String {
    format!("W/\"{version}\"")
}

/// The value of an `If-Match` or `If-None-Match` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TagSet {
    /// `*`: any current version of an existing entity.
    Any,
    /// A list of tags, as the versions they name. A tag that Beacon did not write names no
    /// version and is left out, so it never matches.
    Versions(Vec<i64>),
}

impl TagSet {
    /// Returns whether `version` is in the set.
    pub fn contains(&self, version: i64) -> bool {
        match self {
            TagSet::Any => true,
            TagSet::Versions(versions) => versions.contains(&version),
        }
    }
}

/// The preconditions of a request on one entity.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Precondition {
    /// `If-Match`: the entity's version must be in the set.
    pub if_match: Option<TagSet>,
    /// `If-None-Match`: the entity's version must not be in the set.
    pub if_none_match: Option<TagSet>,
}

impl Precondition {
    /// Returns whether a request on an existing entity at `version` may go ahead.
    pub fn allows(&self, version: i64) -> bool {
        self.if_match.as_ref().is_none_or(|tags| tags.contains(version))
            && self.if_none_match.as_ref().is_none_or(|tags| !tags.contains(version))
    }
}

/// A header value that is not `*` or a list of entity tags.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "The {header} header '{value}' is invalid; send '*' or entity tags such as W/\"42\" as the \
     ETag header or @odata.etag gave them."
)]
pub struct TagError {
    /// The header name.
    pub header: &'static str,
    /// The value as given.
    pub value: String,
}

/// Parses the values of an `If-Match` or `If-None-Match` header (all of its field lines),
/// following the `entity-tag` grammar of RFC 9110.
pub fn parse(header: &'static str, values: &[&str]) -> Result<TagSet, TagError> {
    let invalid = || TagError { header, value: values.join(", ") };
    let items: Vec<&str> = values.iter().flat_map(|value| split_list(value)).collect();

    // `*` must be the only element; mixing it with tags is not a valid field value.
    match items.as_slice() {
        [] => return Err(invalid()),
        ["*"] => return Ok(TagSet::Any),
        _ => {}
    }
    let mut versions = Vec::new();
    for item in items {
        let opaque = item.strip_prefix("W/").unwrap_or(item);
        let inner = opaque
            .strip_prefix('"')
            .and_then(|rest| rest.strip_suffix('"'))
            .filter(|inner| inner.bytes().all(is_etag_char))
            .ok_or_else(invalid)?;
        if inner.bytes().all(|b| b.is_ascii_digit())
            && let Ok(version) = inner.parse::<i64>()
        {
            versions.push(version);
        }
    }
    Ok(TagSet::Versions(versions))
}

/// Splits a list value at commas, which cannot occur inside an entity tag, dropping empty
/// elements as RFC 9110 allows.
fn split_list(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(|item| !item.is_empty())
}

/// Returns whether `byte` is allowed between the quotes of an entity tag (`etagc` in RFC 9110).
fn is_etag_char(byte: u8) -> bool {
    byte == 0x21 || (0x23..=0x7e).contains(&byte) || byte >= 0x80
}

impl fmt::Display for TagSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TagSet::Any => f.write_str("*"),
            TagSet::Versions(versions) => {
                let tags: Vec<String> = versions.iter().map(|v| format(*v)).collect();
                f.write_str(&tags.join(", "))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_parses_back_to_its_version() {
        assert_eq!(format(42), "W/\"42\"");
        assert_eq!(parse("If-Match", &[&format(42)]), Ok(TagSet::Versions(vec![42])));
        assert_eq!(parse("If-Match", &["\"42\""]), Ok(TagSet::Versions(vec![42])));
    }

    #[test]
    fn lists_across_field_lines_are_joined() {
        let tags = parse("If-Match", &["W/\"1\", \"x\"", "W/\"3\""]).unwrap();
        assert_eq!(tags, TagSet::Versions(vec![1, 3]));
        assert!(tags.contains(3));
        assert!(!tags.contains(2));
    }

    #[test]
    fn foreign_tags_parse_but_never_match() {
        let tags = parse("If-Match", &["\"abc\"", "W/\"-1\"", "\"+5\""]).unwrap();
        assert_eq!(tags, TagSet::Versions(vec![]));
    }

    #[test]
    fn star_matches_any_version_and_stands_alone() {
        assert_eq!(parse("If-Match", &["*"]), Ok(TagSet::Any));
        assert!(parse("If-Match", &["*, W/\"1\""]).is_err());
    }

    #[test]
    fn malformed_values_are_rejected() {
        for bad in ["42", "W/42", "\"4\"2\"", "\"a b\"", "", " , ", "W/\""] {
            assert!(parse("If-Match", &[bad]).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn preconditions_combine_both_headers() {
        let none = Precondition::default();
        assert!(none.allows(7));
        let matching = Precondition { if_match: Some(TagSet::Versions(vec![7])), ..none.clone() };
        assert!(matching.allows(7));
        assert!(!matching.allows(8));
        let not_star = Precondition { if_none_match: Some(TagSet::Any), ..none };
        assert!(!not_star.allows(7));
    }
}
