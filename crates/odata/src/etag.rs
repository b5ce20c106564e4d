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

/// Writes the tag of a version, such as `W/"42"`.
pub fn format(version: i64) -> String {
    format!("W/\"{version}\"")
}

/// The value of an `If-Match` or `If-None-Match` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TagSet {
    /// `*`: any current version of an existing entity.
    Any,
    /// A list of entity tags, as their opaque parts (the bytes between the quotes).
    Tags(Vec<Vec<u8>>),
}

impl TagSet {
    /// Returns whether the tag of `version` is in the set. Tags compare weakly (ignoring
    /// `W/`) and otherwise byte for byte, as opaque strings.
    pub fn contains(&self, version: i64) -> bool {
        match self {
            TagSet::Any => true,
            TagSet::Tags(tags) => {
                let ours = version.to_string();
                tags.iter().any(|tag| tag.as_slice() == ours.as_bytes())
            }
        }
    }
}

/// The preconditions of a request.
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

    /// Returns whether a request on a resource that exists but has no entity tag, such as a
    /// collection, may go ahead: only `*` matches such a resource.
    pub fn allows_untagged(&self) -> bool {
        self.if_match.as_ref().is_none_or(|tags| *tags == TagSet::Any)
            && self.if_none_match.as_ref().is_none_or(|tags| *tags != TagSet::Any)
    }
}

/// A header value that is not `*` or a list of entity tags.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "The {header} header is invalid; send '*' or entity tags such as W/\"42\" as the ETag \
     header or @odata.etag gave them."
)]
pub struct TagError {
    /// The header name.
    pub header: &'static str,
}

/// Parses the values of an `If-Match` or `If-None-Match` header (all of its field lines) as
/// RFC 9110 defines them: `*`, or a comma-separated list of entity tags `[W/]"opaque"`, where
/// the opaque part may itself contain commas and bytes above 0x7F.
pub fn parse(header: &'static str, values: &[&[u8]]) -> Result<TagSet, TagError> {
    let invalid = || TagError { header };
    let mut tags = Vec::new();
    let mut star = false;
    for value in values {
        let mut rest: &[u8] = value;
        loop {
            // Skip the separators and whitespace between list elements.
            while let [b',' | b' ' | b'\t', tail @ ..] = rest {
                rest = tail;
            }
            if rest.is_empty() {
                break;
            }
            if let [b'*', tail @ ..] = rest {
                star = true;
                rest = tail;
            } else {
                let (opaque, tail) = entity_tag(rest).ok_or_else(invalid)?;
                tags.push(opaque.to_vec());
                rest = tail;
            }
            // An element ends at a comma, after optional whitespace.
            while let [b' ' | b'\t', tail @ ..] = rest {
                rest = tail;
            }
            match rest {
                [] | [b',', ..] => {}
                _ => return Err(invalid()),
            }
        }
    }

    // `*` must be the only element; mixing it with tags is not a valid field value.
    match (star, tags.is_empty()) {
        (true, true) => Ok(TagSet::Any),
        (false, false) => Ok(TagSet::Tags(tags)),
        _ => Err(invalid()),
    }
}

/// Splits one `[W/]"opaque"` off the front of `text`, returning the opaque part and the rest.
fn entity_tag(text: &[u8]) -> Option<(&[u8], &[u8])> {
    let text = text.strip_prefix(b"W/").unwrap_or(text);
    let inner = text.strip_prefix(b"\"")?;
    let end = inner.iter().position(|byte| *byte == b'"')?;
    let (opaque, rest) = (&inner[..end], &inner[end + 1..]);
    opaque.iter().all(|byte| is_etag_char(*byte)).then_some((opaque, rest))
}

/// Returns whether `byte` is allowed between the quotes of an entity tag (`etagc` in
/// RFC 9110).
fn is_etag_char(byte: u8) -> bool {
    byte == 0x21 || (0x23..=0x7e).contains(&byte) || byte >= 0x80
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_text(values: &[&str]) -> Result<TagSet, TagError> {
        let bytes: Vec<&[u8]> = values.iter().map(|value| value.as_bytes()).collect();
        parse("If-Match", &bytes)
    }

    #[test]
    fn tag_parses_back_to_its_version() {
        assert_eq!(format(42), "W/\"42\"");
        assert!(parse_text(&[&format(42)]).unwrap().contains(42));
        assert!(parse_text(&["\"42\""]).unwrap().contains(42));
    }

    #[test]
    fn lists_across_field_lines_are_joined() {
        let tags = parse_text(&["W/\"1\", \"x\"", "W/\"3\""]).unwrap();
        assert!(tags.contains(3));
        assert!(tags.contains(1));
        assert!(!tags.contains(2));
    }

    #[test]
    fn tags_compare_as_opaque_strings() {
        let tags = parse_text(&["W/\"007\""]).unwrap();
        assert!(!tags.contains(7));
        let foreign = parse_text(&["\"a,b\", \"-1\""]).unwrap();
        assert_eq!(foreign, TagSet::Tags(vec![b"a,b".to_vec(), b"-1".to_vec()]));
        assert!(!foreign.contains(1));
        let high: &[u8] = b"W/\"\xc3\xa9\"";
        assert!(parse("If-Match", &[high]).is_ok());
    }

    #[test]
    fn star_matches_any_version_and_stands_alone() {
        assert_eq!(parse_text(&["*"]), Ok(TagSet::Any));
        assert!(parse_text(&["*, W/\"1\""]).is_err());
        assert!(parse_text(&["*", "*"]).is_ok());
    }

    #[test]
    fn malformed_values_are_rejected() {
        for bad in ["42", "W/42", "\"4\"2\"", "\"a b\"", "", " , ", "W/\"", "\"1\" \"2\""] {
            assert!(parse_text(&[bad]).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn preconditions_combine_both_headers() {
        let none = Precondition::default();
        assert!(none.allows(7));
        let seven = TagSet::Tags(vec![b"7".to_vec()]);
        let matching = Precondition { if_match: Some(seven), ..none.clone() };
        assert!(matching.allows(7));
        assert!(!matching.allows(8));
        assert!(!matching.allows_untagged());
        let not_star = Precondition { if_none_match: Some(TagSet::Any), ..none };
        assert!(!not_star.allows(7));
        assert!(!not_star.allows_untagged());
    }
}
