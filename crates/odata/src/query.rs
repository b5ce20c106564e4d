//! The system query options of a request URL.
//!
//! As OData 4.01 allows, option names compare case-insensitively and the `$` prefix is
//! optional, so `top=5` and `$TOP=5` both mean `$top=5`. Any system option given twice is
//! rejected. Names that are neither system options nor `$`-prefixed are custom query options.
//! OData directs services to ignore custom options they do not know, and parameter aliases
//! (`@name`) are ignored the same way.
//!
//! Supported so far: `$top`, `$skiptoken` (only as written into `@odata.nextLink`) and
//! `$format=json`. The other options of the OData query language are recognized and rejected
//! with a message saying they are not supported yet, so that no client mistakes an ignored
//! option for an applied one.

use percent_encoding::percent_decode_str;

/// The system query options that OData defines, without the `$`.
const SYSTEM_OPTIONS: [&str; 17] = [
    "apply",
    "compute",
    "count",
    "deltatoken",
    "expand",
    "filter",
    "format",
    "id",
    "index",
    "levels",
    "orderby",
    "schemaversion",
    "search",
    "select",
    "skip",
    "skiptoken",
    "top",
];

/// Options this resource will never take: it has no navigation properties and no full-text
/// index.
const NEVER_SUPPORTED: [&str; 2] = ["expand", "search"];

/// What the request addresses, which decides the options it may carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// A collection: paging options apply.
    Collection,
    /// A single entity.
    Entity,
}

/// The system query options of one request, parsed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueryOptions {
    /// `$top`: the maximum number of entities in the whole result.
    pub top: Option<u64>,
    /// `$skiptoken`: the opaque position a previous page ended at.
    pub skiptoken: Option<String>,
}

/// A query string rejection. Each becomes `400`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// A system option appears twice.
    #[error("The query option '${0}' is given more than once.")]
    Duplicate(String),
    /// A `$`-prefixed name that OData does not define.
    #[error("The query option '{0}' is not a system query option of OData.")]
    Unknown(String),
    /// An OData option that Beacon does not support yet.
    #[error("The query option '${0}' is not supported yet.")]
    NotSupportedYet(String),
    /// An option this resource cannot support.
    #[error("The query option '${0}' is not supported on this resource.")]
    NotSupportedOnResource(String),
    /// An option that only applies to collections was given for a single entity.
    #[error("The query option '${0}' applies only to collections, not to a single entity.")]
    NotForEntity(String),
    /// An option has an invalid value.
    #[error("The value '{value}' of the query option '${option}' is invalid: {reason}.")]
    InvalidValue {
        /// The option name without `$`.
        option: String,
        /// The value as given.
        value: String,
        /// The problem found.
        reason: &'static str,
    },
    /// The query string does not decode to UTF-8 text.
    #[error("The query string is not valid percent-encoded UTF-8 near '{0}'.")]
    InvalidEncoding(String),
}

/// Parses the query string (the part after `?`, if any) of a request to `target`.
pub fn parse(raw: Option<&str>, target: Target) -> Result<QueryOptions, QueryError> {
    let mut options = QueryOptions::default();
    let mut seen: Vec<&'static str> = Vec::new();

    for pair in raw.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (raw_name, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
        let name = decode(raw_name)?;
        let value = decode(raw_value)?;

        // Recognize the option; anything else is a custom option or an alias, both ignored.
        if name.starts_with('@') {
            continue;
        }
        let bare = name.strip_prefix('$').unwrap_or(&name).to_ascii_lowercase();
        let Some(option) = SYSTEM_OPTIONS.iter().copied().find(|o| *o == bare) else {
            if name.starts_with('$') {
                return Err(QueryError::Unknown(name));
            }
            continue;
        };
        if seen.contains(&option) {
            return Err(QueryError::Duplicate(option.to_owned()));
        }
        seen.push(option);

        // Apply the ones that are supported.
        match option {
            "top" | "skiptoken" if target == Target::Entity => {
                return Err(QueryError::NotForEntity(option.to_owned()));
            }
            "top" => options.top = Some(parse_top(&value)?),
            "skiptoken" => options.skiptoken = Some(value),
            "format" => check_format(&value)?,
            _ if NEVER_SUPPORTED.contains(&option) => {
                return Err(QueryError::NotSupportedOnResource(option.to_owned()));
            }
            _ => return Err(QueryError::NotSupportedYet(option.to_owned())),
        }
    }
    Ok(options)
}

fn decode(text: &str) -> Result<String, QueryError> {
    if !crate::path::has_valid_escapes(text) {
        return Err(QueryError::InvalidEncoding(text.to_owned()));
    }
    percent_decode_str(text)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| QueryError::InvalidEncoding(text.to_owned()))
}

fn parse_top(value: &str) -> Result<u64, QueryError> {
    let invalid = |reason| QueryError::InvalidValue {
        option: "top".to_owned(),
        value: value.to_owned(),
        reason,
    };
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid("expected a non-negative integer"));
    }
    value.parse().map_err(|_| invalid("the number is too large"))
}

fn check_format(value: &str) -> Result<(), QueryError> {
    let essence = value.split(';').next().unwrap_or("").trim();
    if essence.eq_ignore_ascii_case("json") || essence.eq_ignore_ascii_case("application/json") {
        Ok(())
    } else {
        Err(QueryError::InvalidValue {
            option: "format".to_owned(),
            value: value.to_owned(),
            reason: "this service answers only with 'json'",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collection(query: &str) -> Result<QueryOptions, QueryError> {
        parse(Some(query), Target::Collection)
    }

    #[test]
    fn top_takes_a_non_negative_integer() {
        assert_eq!(collection("$top=5").unwrap().top, Some(5));
        assert_eq!(collection("$top=0").unwrap().top, Some(0));
        for bad in ["$top=-1", "$top=", "$top=1.5", "$top=abc", "$top=99999999999999999999"] {
            assert!(matches!(collection(bad), Err(QueryError::InvalidValue { .. })), "{bad}");
        }
    }

    #[test]
    fn option_names_ignore_case_and_dollar() {
        assert_eq!(collection("$TOP=5").unwrap().top, Some(5));
        assert_eq!(collection("top=5").unwrap().top, Some(5));
        assert_eq!(collection("%24top=5").unwrap().top, Some(5));
    }

    #[test]
    fn duplicate_option_is_rejected() {
        assert_eq!(collection("$top=1&top=2"), Err(QueryError::Duplicate("top".into())));
    }

    #[test]
    fn unsupported_options_are_rejected_not_ignored() {
        assert_eq!(collection("$filter=x"), Err(QueryError::NotSupportedYet("filter".into())));
        assert_eq!(collection("select=id"), Err(QueryError::NotSupportedYet("select".into())));
        assert_eq!(
            collection("$expand=x"),
            Err(QueryError::NotSupportedOnResource("expand".into()))
        );
        assert_eq!(
            collection("$search=x"),
            Err(QueryError::NotSupportedOnResource("search".into()))
        );
        assert_eq!(collection("$frobnicate=1"), Err(QueryError::Unknown("$frobnicate".into())));
    }

    #[test]
    fn custom_options_and_aliases_are_ignored() {
        assert_eq!(collection("debug=1&@p=2&&"), Ok(QueryOptions::default()));
    }

    #[test]
    fn paging_options_are_rejected_on_a_single_entity() {
        assert_eq!(
            parse(Some("$top=1"), Target::Entity),
            Err(QueryError::NotForEntity("top".into()))
        );
        assert_eq!(parse(Some("$format=json"), Target::Entity), Ok(QueryOptions::default()));
    }

    #[test]
    fn format_accepts_only_json() {
        assert!(collection("$format=application/json;odata.metadata=minimal").is_ok());
        assert!(matches!(collection("$format=xml"), Err(QueryError::InvalidValue { .. })));
    }

    #[test]
    fn invalid_percent_encoding_is_rejected() {
        assert!(matches!(collection("$top=%FF"), Err(QueryError::InvalidEncoding(_))));
    }
}
