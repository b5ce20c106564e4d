//! Server-driven paging: page sizes, signed `$skiptoken` values and `@odata.nextLink`.
//!
//! Pages are read by keyset: a skiptoken records the order-key values and the key of the last
//! row of its page, and the next page starts strictly after that row in the query's total
//! order. Page 10,000 therefore costs what page 1 costs, and rows inserted between two page
//! requests appear once if they sort after the position already read and not at all
//! otherwise; no row is ever repeated or skipped. The token also records how many rows were
//! served, so `$top` still bounds the whole result.
//!
//! A token is `payload.signature`, both base64url: the payload is JSON, and the signature is an
//! HMAC-SHA256 over the payload and the request's scope (partner, view and every option that
//! shapes the result). A token that was altered, made up, or taken from another query fails
//! the check and gets `400`. The HMAC key is derived from the signing key file, so every
//! server sharing that file accepts the tokens of the others.

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use beacon_store::{Cursor, Param};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;

/// The number of entities in a page unless the client prefers another size.
pub const DEFAULT_PAGE_SIZE: usize = 100;

/// The largest page a client may ask for with `Prefer: odata.maxpagesize`.
pub const MAX_PAGE_SIZE: usize = 1000;

/// Characters written as they are in a query option value of a next link; everything else,
/// including space, `+`, `&`, `#`, `%` and `=`, is percent-encoded.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'$')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')')
    .remove(b',')
    .remove(b'/')
    .remove(b':')
    .remove(b'@')
    .remove(b'*');

/// The position where a page ended, and how much of the result was served up to there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Position {
    /// The last row of the page.
    pub cursor: Cursor,
    /// How many rows the pages up to this one held.
    pub served: u64,
}

/// The largest payload, in bytes, that a skiptoken carries with its order-key values. Past it,
/// the token records only the row's key, and the next request reads the values from that row,
/// so that a long sorted string cannot make the next link longer than servers and proxies
/// accept.
const MAX_PAYLOAD_WITH_VALUES: usize = 1024;

/// The JSON payload of a skiptoken.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Payload {
    /// The order-key values of the last row, unless they were too long to carry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    k: Option<Vec<KeyValue>>,
    /// The key of the last row.
    i: String,
    /// Rows served so far.
    n: u64,
}

/// An order-key value as JSON: null, an integer or a string.
#[derive(Debug, Serialize, Deserialize)]
#[serde(untagged)]
enum KeyValue {
    Integer(i64),
    Text(String),
    Null(()),
}

/// The key that signs and checks skiptokens.
#[derive(Clone)]
pub struct SkiptokenKey(hmac::Key);

impl std::fmt::Debug for SkiptokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SkiptokenKey(..)")
    }
}

impl SkiptokenKey {
    /// Creates the key from a 32-byte secret shared by every server.
    pub fn new(secret: [u8; 32]) -> Self {
        SkiptokenKey(hmac::Key::new(hmac::HMAC_SHA256, &secret))
    }

    /// Writes the token that resumes after `position`, valid only for `scope`.
    pub fn encode(&self, position: &Position, scope: &str) -> String {
        let values = position
            .cursor
            .keys
            .iter()
            .map(|key| match key {
                Param::Null => KeyValue::Null(()),
                Param::Integer(value) => KeyValue::Integer(*value),
                Param::Text(text) => KeyValue::Text(text.clone()),
            })
            .collect();
        let mut payload =
            Payload { k: Some(values), i: position.cursor.id.clone(), n: position.served };

        // The payload contains only strings, integers and nulls, which serialize without error.
        let mut json = serde_json::to_vec(&payload).unwrap_or_default();
        if json.len() > MAX_PAYLOAD_WITH_VALUES {
            payload.k = None;
            json = serde_json::to_vec(&payload).unwrap_or_default();
        }
        self.sign_payload(&json, scope)
    }

    /// Writes the token of a JSON payload, valid only for `scope`. The fuzz targets sign
    /// payloads that [`SkiptokenKey::encode`] would never write, to test what decoding does
    /// with them.
    pub(crate) fn sign_payload(&self, json: &[u8], scope: &str) -> String {
        let tag = hmac::sign(&self.0, &signed_bytes(json, scope));
        format!("{}.{}", URL_SAFE_NO_PAD.encode(json), URL_SAFE_NO_PAD.encode(tag.as_ref()))
    }

    /// Reads a token written by [`SkiptokenKey::encode`] for the same `scope`, expecting
    /// `keys` order-key values. A token that carries no values returns a cursor without any,
    /// and the caller reads them from the row with the cursor's key.
    pub fn decode(&self, token: &str, scope: &str, keys: usize) -> Result<Position, ApiError> {
        let invalid = || {
            ApiError::BadRequest(
                "The $skiptoken is invalid or belongs to another query; follow the \
                 @odata.nextLink of the previous page unchanged."
                    .to_owned(),
            )
        };
        let (payload, tag) = token.split_once('.').ok_or_else(invalid)?;
        let json = URL_SAFE_NO_PAD.decode(payload).map_err(|_| invalid())?;
        let tag = URL_SAFE_NO_PAD.decode(tag).map_err(|_| invalid())?;
        hmac::verify(&self.0, &signed_bytes(&json, scope), &tag).map_err(|_| invalid())?;

        let payload: Payload = serde_json::from_slice(&json).map_err(|_| invalid())?;
        let values = match payload.k {
            Some(values) if values.len() != keys => return Err(invalid()),
            Some(values) => values,
            None => Vec::new(),
        };
        let keys = values
            .into_iter()
            .map(|key| match key {
                KeyValue::Null(()) => Param::Null,
                KeyValue::Integer(value) => Param::Integer(value),
                KeyValue::Text(text) => Param::Text(text),
            })
            .collect();
        Ok(Position { cursor: Cursor { keys, id: payload.i }, served: payload.n })
    }
}

/// Returns the bytes an HMAC covers: the scope, a separator no scope contains, then the payload.
fn signed_bytes(json: &[u8], scope: &str) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(scope.len() + 1 + json.len());
    bytes.extend_from_slice(scope.as_bytes());
    bytes.push(0);
    bytes.extend_from_slice(json);
    bytes
}

/// Writes the next link: the collection URL, every option the client sent (re-encoded, so
/// spaces are `%20` and `+` is `%2B`), then the skiptoken.
pub fn next_link(collection_url: &str, pairs: &[(String, String)], skiptoken: &str) -> String {
    let mut link = format!("{collection_url}?");
    for (name, value) in pairs {
        link.push_str(&utf8_percent_encode(name, QUERY_VALUE).to_string());
        link.push('=');
        link.push_str(&utf8_percent_encode(value, QUERY_VALUE).to_string());
        link.push('&');
    }
    link.push_str("$skiptoken=");
    link.push_str(skiptoken);
    link
}

/// Returns the page size that a `Prefer: odata.maxpagesize=N` header requests, if valid.
pub fn preferred_page_size(headers: &axum::http::HeaderMap) -> Option<usize> {
    headers
        .get_all("prefer")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|preference| {
            let (name, value) = preference.split_once('=')?;
            name.trim().eq_ignore_ascii_case("odata.maxpagesize").then_some(value)?;
            value.trim().trim_matches('"').parse::<usize>().ok().filter(|n| *n > 0)
        })
        .next()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn position(keys: Vec<Param>, id: &str, served: u64) -> Position {
        Position { cursor: Cursor { keys, id: id.to_owned() }, served }
    }

    #[test]
    fn skiptoken_round_trips_any_key_and_values() {
        let key = SkiptokenKey::new([7; 32]);
        for id in ["a", "a/b'c", "😀", ""] {
            let keys = vec![Param::Null, Param::Integer(i64::MIN), Param::Text("x\"y".into())];
            let original = position(keys, id, 42);
            let token = key.encode(&original, "scope");
            assert_eq!(key.decode(&token, "scope", 3).unwrap(), original);
        }
    }

    #[test]
    fn tampered_or_foreign_skiptokens_are_rejected() {
        let key = SkiptokenKey::new([7; 32]);
        let token = key.encode(&position(vec![], "a", 1), "scope");
        assert!(key.decode(&token, "other scope", 0).is_err());
        assert!(SkiptokenKey::new([8; 32]).decode(&token, "scope", 0).is_err());
        let (_, tag) = token.split_once('.').unwrap();
        let forged = format!("{}.{tag}", URL_SAFE_NO_PAD.encode(br#"{"k":[],"i":"b","n":1}"#));
        assert!(key.decode(&forged, "scope", 0).is_err());
        assert!(key.decode("not a token", "scope", 0).is_err());
        assert!(key.decode(&token, "scope", 1).is_err());
    }

    #[test]
    fn long_order_values_are_left_out_of_the_token() {
        let key = SkiptokenKey::new([7; 32]);
        let long = position(vec![Param::Text("x".repeat(100_000))], "a", 1);
        let token = key.encode(&long, "scope");
        assert!(token.len() < 200, "token of {} characters", token.len());
        let decoded = key.decode(&token, "scope", 1).unwrap();
        assert!(decoded.cursor.keys.is_empty());
        assert_eq!(decoded.cursor.id, "a");
    }

    #[test]
    fn next_links_encode_spaces_and_plus_signs() {
        let pairs = vec![("$filter".to_owned(), "name eq 'a+b &c#'".to_owned())];
        assert_eq!(
            next_link("http://h/c", &pairs, "t"),
            "http://h/c?$filter=name%20eq%20'a%2Bb%20%26c%23'&$skiptoken=t"
        );
    }

    #[test]
    fn max_page_size_preference_is_read() {
        let mut headers = axum::http::HeaderMap::new();
        headers.append("prefer", "return=minimal, odata.maxpagesize=25".parse().unwrap());
        assert_eq!(preferred_page_size(&headers), Some(25));
        headers.clear();
        headers.append("prefer", "odata.maxpagesize=0".parse().unwrap());
        assert_eq!(preferred_page_size(&headers), None);
    }
}
