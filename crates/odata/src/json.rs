//! Strict JSON parsing for request bodies.
//!
//! `serde_json::Value` keeps the last of two equal keys and turns integers that do not fit 64
//! bits into floats, and both would let a wrong body through silently. [`parse`] rejects
//! duplicate keys at any depth and records each number as the parser met it, so that the body
//! rules can reject fractions, overflow and negative counts by their exact value.
//!
//! Keys and strings without escape sequences borrow from the text, so a typical entity body
//! is parsed with few allocations.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

/// The members reserved up front for the outermost object. An entity body without extra
/// annotations has at most 13 (the key, 11 properties and `@odata.type`), so it fits without
/// the vector growing three times. Nested objects start empty, so that a body of many small
/// objects takes no more memory than it would without the reservation.
const OUTER_MEMBERS: usize = 16;

/// A JSON value as written, with numbers kept in the form the parser read them. Strings and
/// keys borrow from the parsed text unless they contain escape sequences.
#[derive(Clone, Debug, PartialEq)]
pub enum JsonValue<'a> {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A number.
    Number(JsonNumber),
    /// A string.
    String(Cow<'a, str>),
    /// An array.
    Array(Vec<JsonValue<'a>>),
    /// An object, with its members in the order written and no two keys equal.
    Object(Vec<(Cow<'a, str>, JsonValue<'a>)>),
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

impl JsonValue<'_> {
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
pub fn parse(text: &[u8]) -> Result<JsonValue<'_>, JsonError> {
    let text = text.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(text);
    let mut deserializer = serde_json::Deserializer::from_slice(text);
    let outer = ValueVisitor { members: OUTER_MEMBERS };
    let value = deserializer.deserialize_any(outer).map_err(describe)?;
    deserializer.end().map_err(describe)?;
    Ok(value)
}

fn describe(error: serde_json::Error) -> JsonError {
    JsonError(format!("The request body is not valid JSON: {error}."))
}

impl<'de> Deserialize<'de> for JsonValue<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ValueVisitor { members: 0 })
    }
}

/// The visitor that builds a [`JsonValue`], with room for `members` members if it is an object.
struct ValueVisitor {
    members: usize,
}

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = JsonValue<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<JsonValue<'de>, E> {
        Ok(JsonValue::Null)
    }

    fn visit_bool<E>(self, value: bool) -> Result<JsonValue<'de>, E> {
        Ok(JsonValue::Bool(value))
    }

    fn visit_u64<E>(self, value: u64) -> Result<JsonValue<'de>, E> {
        Ok(JsonValue::Number(JsonNumber::Unsigned(value)))
    }

    fn visit_i64<E>(self, value: i64) -> Result<JsonValue<'de>, E> {
        if value >= 0 {
            return Ok(JsonValue::Number(JsonNumber::Unsigned(value.unsigned_abs())));
        }
        Ok(JsonValue::Number(JsonNumber::Negative(value)))
    }

    fn visit_f64<E>(self, value: f64) -> Result<JsonValue<'de>, E> {
        Ok(JsonValue::Number(JsonNumber::Float(value)))
    }

    fn visit_borrowed_str<E>(self, value: &'de str) -> Result<JsonValue<'de>, E> {
        Ok(JsonValue::String(Cow::Borrowed(value)))
    }

    fn visit_str<E>(self, value: &str) -> Result<JsonValue<'de>, E> {
        Ok(JsonValue::String(Cow::Owned(value.to_owned())))
    }

    fn visit_string<E>(self, value: String) -> Result<JsonValue<'de>, E> {
        Ok(JsonValue::String(Cow::Owned(value)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<JsonValue<'de>, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(JsonValue::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<JsonValue<'de>, A::Error> {
        let mut members: Vec<(Cow<'de, str>, JsonValue<'de>)> = Vec::with_capacity(self.members);
        while let Some(Key(key)) = map.next_key()? {
            if members.iter().any(|(existing, _)| *existing == key) {
                return Err(de::Error::custom(format_args!("duplicate key \"{key}\"")));
            }
            let value = map.next_value()?;
            members.push((key, value));
        }
        Ok(JsonValue::Object(members))
    }
}

/// An object key, borrowed from the text unless it contains escape sequences.
struct Key<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Key<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_borrowed_str<E>(self, key: &'de str) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Borrowed(key)))
    }

    fn visit_str<E>(self, key: &str) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Owned(key.to_owned())))
    }

    fn visit_string<E>(self, key: String) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Owned(key)))
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
    fn escaped_and_plain_keys_are_compared_decoded() {
        assert!(parse(br#"{"a":1,"\u0061":2}"#).is_err());
        assert!(parse(br#"{"\u0061":1,"a":2}"#).is_err());
    }

    #[test]
    fn plain_text_is_borrowed_and_escaped_text_decoded() {
        let text = br#"{"plain":"text","quo\"te":"line\nbreak"}"#;
        let JsonValue::Object(members) = parse(text).unwrap() else { panic!("not an object") };
        assert!(matches!(members[0].0, Cow::Borrowed("plain")));
        assert!(matches!(members[0].1, JsonValue::String(Cow::Borrowed("text"))));
        assert_eq!(members[1].0, "quo\"te");
        assert_eq!(members[1].1, JsonValue::String(Cow::Borrowed("line\nbreak")));
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
        let keys: Vec<_> = members.iter().map(|(k, _)| k.as_ref()).collect();
        assert_eq!(keys, ["z", "a"]);
    }
}
