//! `Content-Type` and `Accept` header parsing for the JSON format that OData services speak.
//!
//! Requests with a body must be `application/json`, optionally with the parameters OData
//! defines (`odata.metadata`, `odata.streaming`, `IEEE754Compatible`) and `charset=utf-8`.
//! Parameter names and the values of the OData parameters compare case-insensitively.

/// A parsed media type: the lowercase `type/subtype` and its parameters in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MediaType {
    /// `type/subtype`, lowercased.
    pub essence: String,
    /// The parameters: names lowercased, values unquoted but otherwise as given.
    pub parameters: Vec<(String, String)>,
}

impl MediaType {
    /// Parses `type/subtype *( ";" name "=" value )`, where a value may be a quoted string.
    pub fn parse(text: &str) -> Option<MediaType> {
        let mut parts = text.split(';');
        let essence = parts.next()?.trim().to_ascii_lowercase();
        let (kind, subtype) = essence.split_once('/')?;
        if !is_token(kind) || !is_token(subtype) {
            return None;
        }
        let mut parameters = Vec::new();
        for part in parts {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let (name, value) = part.split_once('=')?;
            let (name, value) = (name.trim(), value.trim());
            if !is_token(name) {
                return None;
            }
            let value = match value.strip_prefix('"') {
                Some(rest) => rest.strip_suffix('"')?.to_owned(),
                None if is_token(value) => value.to_owned(),
                None => return None,
            };
            parameters.push((name.to_ascii_lowercase(), value));
        }
        Some(MediaType { essence, parameters })
    }

    /// Returns the value of a parameter, looked up by its lowercase name.
    pub fn parameter(&self, name: &str) -> Option<&str> {
        self.parameters.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// Returns whether `IEEE754Compatible=true` is among the parameters.
    pub fn ieee754_compatible(&self) -> bool {
        self.parameter("ieee754compatible").is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }
}

fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Reasons a `Content-Type` or `Accept` header is rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MediaError {
    /// The body's media type is missing or not JSON; becomes `415`.
    #[error("{0}")]
    UnsupportedContentType(String),
    /// No media range in `Accept` allows JSON; becomes `406`.
    #[error("{0}")]
    NotAcceptable(String),
}

/// Checks the `Content-Type` of a request body and returns whether it carries
/// `IEEE754Compatible=true`, which allows Int64 values as strings.
pub fn check_json_content_type(header: Option<&str>) -> Result<bool, MediaError> {
    let Some(header) = header else {
        return Err(MediaError::UnsupportedContentType(
            "The request has no Content-Type header; send the body as 'application/json'."
                .to_owned(),
        ));
    };
    let unsupported = || {
        MediaError::UnsupportedContentType(format!(
            "The Content-Type '{header}' is not supported; send the body as 'application/json'."
        ))
    };
    let media = MediaType::parse(header).ok_or_else(unsupported)?;
    if media.essence != "application/json" {
        return Err(unsupported());
    }
    if let Some(charset) = media.parameter("charset")
        && !charset.eq_ignore_ascii_case("utf-8")
        && !charset.eq_ignore_ascii_case("utf8")
    {
        return Err(MediaError::UnsupportedContentType(format!(
            "The charset '{charset}' is not supported; send the body as UTF-8."
        )));
    }
    Ok(media.ieee754_compatible())
}

/// Checks that `Accept` allows JSON and returns whether it requests Int64 values as strings.
///
/// A missing or empty header accepts anything. Media ranges with `q=0` do not count.
pub fn negotiate_json(header: Option<&str>) -> Result<bool, MediaError> {
    let Some(header) = header.map(str::trim).filter(|h| !h.is_empty()) else {
        return Ok(false);
    };
    let mut accepted = false;
    let mut ieee754 = false;
    for range in header.split(',').map(str::trim).filter(|r| !r.is_empty()) {
        let Some(media) = MediaType::parse(range) else {
            continue;
        };
        let excluded =
            media.parameter("q").is_some_and(|q| q.parse::<f32>().is_ok_and(|q| q <= 0.0));
        let matches_json =
            matches!(media.essence.as_str(), "*/*" | "application/*" | "application/json");
        if matches_json && !excluded {
            accepted = true;
            ieee754 |= media.ieee754_compatible();
        }
    }
    if accepted {
        Ok(ieee754)
    } else {
        Err(MediaError::NotAcceptable(format!(
            "None of the media types in Accept '{header}' can be served; this service answers \
             with 'application/json'."
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_content_types_with_odata_parameters_are_accepted() {
        assert_eq!(check_json_content_type(Some("application/json")), Ok(false));
        assert_eq!(check_json_content_type(Some("Application/JSON; charset=UTF-8")), Ok(false));
        assert_eq!(
            check_json_content_type(Some(
                "application/json;odata.metadata=minimal;IEEE754Compatible=true"
            )),
            Ok(true)
        );
        assert_eq!(
            check_json_content_type(Some("application/json; ieee754compatible=\"TRUE\"")),
            Ok(true)
        );
    }

    #[test]
    fn other_content_types_are_unsupported() {
        for header in [
            None,
            Some("text/plain"),
            Some("application/xml"),
            Some("application/json; charset=latin1"),
            Some("json"),
            Some(""),
        ] {
            assert!(
                matches!(
                    check_json_content_type(header),
                    Err(MediaError::UnsupportedContentType(_))
                ),
                "{header:?}"
            );
        }
    }

    #[test]
    fn accept_allows_json_ranges_and_reads_ieee754() {
        assert_eq!(negotiate_json(None), Ok(false));
        assert_eq!(negotiate_json(Some("*/*")), Ok(false));
        assert_eq!(negotiate_json(Some("text/html, application/*;q=0.5")), Ok(false));
        assert_eq!(negotiate_json(Some("application/json;IEEE754Compatible=true")), Ok(true));
    }

    #[test]
    fn accept_without_json_is_not_acceptable() {
        assert!(matches!(negotiate_json(Some("text/html")), Err(MediaError::NotAcceptable(_))));
        assert!(matches!(
            negotiate_json(Some("application/json;q=0")),
            Err(MediaError::NotAcceptable(_))
        ));
    }
}
