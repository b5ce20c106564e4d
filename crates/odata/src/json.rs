//! Strict JSON parsing for request bodies.
//!
//! `serde_json::Value` keeps the last of two equal keys and turns integers that do not fit 64
//! bits into floats, and both would let a wrong body through silently. [`parse`] rejects
//! duplicate keys at any depth and records each number as the parser met it, so that the body
//! rules can reject fractions, overflow and negative counts by their exact value.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, MapAccess, SeqAccess, Visitor};

/// A JSON value as written, with numbers kept in the form the parser read them.
#[derive(Clone, Debug, PartialEq)]
pub enum JsonValue {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A number.
    Number(JsonNumber),
    /// A string.
    String(String),
    /// An array.
    Array(Vec<JsonValue>),
    /// An object, with its members in the order written and no two keys equal.
    Object(Vec<(String, JsonValue)>),
}

/// A JSON number in the narrowest form that represents it exactly.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum JsonNumber {
    /// An integer from 0 to `u64::MAX`.
    Unsigned(u64),
    /// A negative integer from `i64::MIN`.
    Negative(i64),
    /// A number with a fraction or exponent, or an integer too large for 64 bits.
    Float(f64),
}

impl JsonValue {
    /// Returns a short name of the value's JSON kind, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            JsonValue::Null => "null",
            JsonValue::Bool(_) => "a boolean",
            JsonValue::Number(JsonNumber::Float(_)) => "a non-integer number",
            JsonValue::Number(_) => "a number",
            JsonValue::String(_) => "a string",
            JsonValue::Array(_) => "an array",
            JsonValue::Object(_) => "an object",
        }
    }
}

/// The reason a text is not acceptable JSON.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct JsonError(String);

/// Parses one JSON document, rejecting duplicate object keys and trailing text.
///
/// A leading UTF-8 byte order mark is skipped, as RFC 8259 allows parsers to do.
pub fn parse(text: &[u8]) -> Result<JsonValue, JsonError> {
    let text = text.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(text);
    let mut deserializer = serde_json::Deserializer::from_slice(text);
    let value = JsonValue::deserialize(&mut deserializer).map_err(describe)?;
    deserializer.end().map_err(describe)?;
    Ok(value)
}

fn describe(error: serde_json::Error) -> JsonError {
    JsonError(format!("The request body is not valid JSON: {error}."))
}

impl<'de> Deserialize<'de> for JsonValue {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = JsonValue;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<JsonValue, E> {
        Ok(JsonValue::Null)
    }

    fn visit_bool<E>(self, value: bool) -> Result<JsonValue, E> {
        Ok(JsonValue::Bool(value))
    }

    fn visit_u64<E>(self, value: u64) -> Result<JsonValue, E> {
        Ok(JsonValue::Number(JsonNumber::Unsigned(value)))
    }

    fn visit_i64<E>(self, value: i64) -> Result<JsonValue, E> {
        if value >= 0 {
            return Ok(JsonValue::Number(JsonNumber::Unsigned(value.unsigned_abs())));
        }
        Ok(JsonValue::Number(JsonNumber::Negative(value)))
    }

    fn visit_f64<E>(self, value: f64) -> Result<JsonValue, E> {
        Ok(JsonValue::Number(JsonNumber::Float(value)))
    }

    fn visit_str<E>(self, value: &str) -> Result<JsonValue, E> {
        Ok(JsonValue::String(value.to_owned()))
    }

    fn visit_string<E>(self, value: String) -> Result<JsonValue, E> {
        Ok(JsonValue::String(value))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<JsonValue, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(JsonValue::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<JsonValue, A::Error> {
        let mut members: Vec<(String, JsonValue)> = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            if members.iter().any(|(existing, _)| *existing == key) {
                return Err(de::Error::custom(format_args!("duplicate key \"{key}\"")));
            }
            let value = map.next_value()?;
            members.push((key, value));
        }
        Ok(JsonValue::Object(members))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_keep_their_exact_value() {
        let value = parse(b"[9007199254740993, 9223372036854775807, 18446744073709551615, -1]");
        let expected = JsonValue::Array(vec![
            JsonValue::Number(JsonNumber::Unsigned(9_007_199_254_740_993)),
            JsonValue::Number(JsonNumber::Unsigned(9_223_372_036_854_775_807)),
            JsonValue::Number(JsonNumber::Unsigned(u64::MAX)),
            JsonValue::Number(JsonNumber::Negative(-1)),
        ]);
        assert_eq!(value.unwrap(), expected);
    }

    #[test]
    fn fractions_and_huge_integers_are_floats() {
        let value = parse(b"[12.5, 1e3, 18446744073709551616]").unwrap();
        let JsonValue::Array(items) = value else { panic!("not an array") };
        assert!(items.iter().all(|v| matches!(v, JsonValue::Number(JsonNumber::Float(_)))));
    }

    #[test]
    fn duplicate_keys_are_rejected_at_any_depth() {
        assert!(parse(br#"{"a":1,"a":2}"#).is_err());
        assert!(parse(br#"{"a":{"b":1,"b":1}}"#).is_err());
        assert!(parse(br#"{"a":[{"b":1,"b":1}]}"#).is_err());
        assert!(parse(br#"{"a":1,"A":2}"#).is_ok());
    }

    #[test]
    fn trailing_text_and_truncated_documents_are_rejected() {
        assert!(parse(br#"{"a":1} {"#).is_err());
        assert!(parse(br#"{"a":1"#).is_err());
        assert!(parse(b"").is_err());
        assert!(parse(b"\xff").is_err());
    }

    #[test]
    fn byte_order_mark_is_skipped() {
        assert_eq!(parse(b"\xEF\xBB\xBF{}").unwrap(), JsonValue::Object(Vec::new()));
    }

    #[test]
    fn lone_surrogates_are_rejected() {
        assert!(parse(br#""\ud800""#).is_err());
    }

    #[test]
    fn members_keep_their_written_order() {
        let JsonValue::Object(members) = parse(br#"{"z":1,"a":2}"#).unwrap() else {
            panic!("not an object")
        };
        let keys: Vec<_> = members.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["z", "a"]);
    }
}
