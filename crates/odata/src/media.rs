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

/// How much control information a JSON response carries, as `odata.metadata` selects it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Metadata {
    /// `none`: only `@odata.count` and `@odata.nextLink`.
    None,
    /// `minimal`, the default: also `@odata.context`, `@odata.type` and `@odata.etag`.
    #[default]
    Minimal,
    /// `full`: also each entity's `@odata.id` and `@odata.editLink`, and the type of each value
    /// whose JSON form does not tell it.
    Full,
}

impl Metadata {
    /// Parses the value of an `odata.metadata` parameter, ignoring ASCII case.
    pub fn parse(value: &str) -> Option<Metadata> {
        ["none", "minimal", "full"]
            .into_iter()
            .zip([Metadata::None, Metadata::Minimal, Metadata::Full])
            .find(|(name, _)| value.eq_ignore_ascii_case(name))
            .map(|(_, level)| level)
    }

    /// Returns the parameter value, such as `minimal`.
    pub fn name(self) -> &'static str {
        match self {
            Metadata::None => "none",
            Metadata::Minimal => "minimal",
            Metadata::Full => "full",
        }
    }
}

/// The form of a JSON response, as `Accept` or `$format` asked for it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct JsonFormat {
    /// Write Int64 values as JSON strings, as `IEEE754Compatible=true` requests.
    pub int64_as_string: bool,
    /// The control information to write.
    pub metadata: Metadata,
}

impl JsonFormat {
    /// Reads the OData parameters of a JSON media type; `None` when `odata.metadata` has a
    /// value this service does not know.
    fn of(media: &MediaType) -> Option<JsonFormat> {
        let metadata = match media.parameter("odata.metadata") {
            Some(value) => Metadata::parse(value)?,
            None => Metadata::Minimal,
        };
        Some(JsonFormat { int64_as_string: media.ieee754_compatible(), metadata })
    }

    /// Returns the `Content-Type` of a response in this form.
    pub fn content_type(self) -> String {
        let mut text = format!("application/json;odata.metadata={}", self.metadata.name());
        if self.int64_as_string {
            text.push_str(";IEEE754Compatible=true");
        }
        text
    }
}

/// The formats of a metadata document.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DocumentFormat {
    /// CSDL XML, `application/xml`.
    Xml,
    /// CSDL JSON, `application/json`.
    Json,
}

/// Returns the media ranges of an `Accept` header that are not excluded by `q=0`, highest
/// weight first (a stable sort, so equal weights keep their order).
fn accepted_ranges(header: &str) -> Vec<MediaType> {
    let weight = |media: &MediaType| {
        media.parameter("q").and_then(|q| q.trim().parse::<f32>().ok()).unwrap_or(1.0)
    };
    let mut ranges: Vec<MediaType> = header
        .split(',')
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .filter_map(MediaType::parse)
        .filter(|media| weight(media) > 0.0)
        .collect();
    ranges.sort_by(|a, b| weight(b).total_cmp(&weight(a)));
    ranges
}

/// Chooses the JSON form a client accepts: the OData parameters of the first range, by
/// weight, that allows JSON.
///
/// A missing or empty header accepts anything. Media ranges with `q=0` do not count, and a
/// range whose `odata.metadata` value this service does not know cannot be served.
pub fn negotiate_json(header: Option<&str>) -> Result<JsonFormat, MediaError> {
    let Some(header) = header.map(str::trim).filter(|h| !h.is_empty()) else {
        return Ok(JsonFormat::default());
    };
    accepted_ranges(header)
        .iter()
        .filter(|media| {
            matches!(media.essence.as_str(), "*/*" | "application/*" | "application/json")
        })
        .find_map(JsonFormat::of)
        .ok_or_else(|| {
            MediaError::NotAcceptable(format!(
                "None of the media types in Accept '{header}' can be served; this service \
                 answers with 'application/json', with odata.metadata none, minimal or full."
            ))
        })
}

/// Chooses the format of the metadata document: CSDL XML unless the client prefers JSON.
pub fn negotiate_document(header: Option<&str>) -> Result<DocumentFormat, MediaError> {
    let Some(header) = header.map(str::trim).filter(|h| !h.is_empty()) else {
        return Ok(DocumentFormat::Xml);
    };
    accepted_ranges(header)
        .iter()
        .find_map(|media| match media.essence.as_str() {
            "*/*" | "application/*" | "application/xml" | "text/xml" => Some(DocumentFormat::Xml),
            "application/json" => Some(DocumentFormat::Json),
            _ => None,
        })
        .ok_or_else(|| {
            MediaError::NotAcceptable(format!(
                "None of the media types in Accept '{header}' can be served; the metadata \
                 document is available as 'application/xml' and 'application/json'."
            ))
        })
}

/// The value of a `$format` option.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FormatOption {
    /// `json` or `application/json` with its OData parameters.
    Json(JsonFormat),
    /// `xml` or `application/xml`, which only the metadata document takes.
    Xml,
}

/// Parses the value of `$format`: `json`, `xml`, or a full media type such as
/// `application/json;odata.metadata=none`. Returns `None` for anything else.
pub fn parse_format_option(value: &str) -> Option<FormatOption> {
    let trimmed = value.trim();
    if trimmed.eq_ignore_ascii_case("json") {
        return Some(FormatOption::Json(JsonFormat::default()));
    }
    if trimmed.eq_ignore_ascii_case("xml") {
        return Some(FormatOption::Xml);
    }
    let media = MediaType::parse(trimmed)?;
    match media.essence.as_str() {
        "application/json" => JsonFormat::of(&media).map(FormatOption::Json),
        "application/xml" => Some(FormatOption::Xml),
        _ => None,
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
        let plain = JsonFormat::default();
        assert_eq!(negotiate_json(None), Ok(plain));
        assert_eq!(negotiate_json(Some("*/*")), Ok(plain));
        assert_eq!(negotiate_json(Some("text/html, application/*;q=0.5")), Ok(plain));
        let ieee754 = negotiate_json(Some("application/json;IEEE754Compatible=true")).unwrap();
        assert!(ieee754.int64_as_string);
    }

    #[test]
    fn accept_chooses_heaviest_metadata_level() {
        let level = |header| negotiate_json(Some(header)).map(|format| format.metadata);
        assert_eq!(level("application/json;odata.metadata=none"), Ok(Metadata::None));
        assert_eq!(level("application/json;odata.metadata=FULL"), Ok(Metadata::Full));
        assert_eq!(
            level(
                "application/json;odata.metadata=full;q=0.5, application/json;odata.metadata=none"
            ),
            Ok(Metadata::None)
        );
        assert_eq!(
            level("application/json;odata.metadata=bogus, application/json"),
            Ok(Metadata::Minimal)
        );
        assert!(level("application/json;odata.metadata=bogus").is_err());
    }

    #[test]
    fn metadata_document_is_xml_unless_json_is_preferred() {
        assert_eq!(negotiate_document(None), Ok(DocumentFormat::Xml));
        assert_eq!(negotiate_document(Some("*/*")), Ok(DocumentFormat::Xml));
        assert_eq!(negotiate_document(Some("application/json")), Ok(DocumentFormat::Json));
        assert_eq!(
            negotiate_document(Some("application/xml;q=0.2, application/json")),
            Ok(DocumentFormat::Json)
        );
        assert!(negotiate_document(Some("text/html")).is_err());
    }

    #[test]
    fn format_option_takes_short_names_and_media_types() {
        assert_eq!(parse_format_option("json"), Some(FormatOption::Json(JsonFormat::default())));
        assert_eq!(parse_format_option("XML"), Some(FormatOption::Xml));
        assert_eq!(
            parse_format_option("application/json;odata.metadata=none"),
            Some(FormatOption::Json(JsonFormat {
                int64_as_string: false,
                metadata: Metadata::None
            }))
        );
        assert_eq!(parse_format_option("atom"), None);
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
