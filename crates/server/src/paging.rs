//! Server-driven paging: page sizes, `$skiptoken` and `@odata.nextLink`.
//!
//! Pages follow the key order, and a skiptoken records the last key of the page it ends, so the
//! next page starts strictly after that key. Rows inserted between two page requests therefore
//! appear once if they sort after the position already read and not at all otherwise, and no
//! row is ever repeated or skipped. The `$top` still to serve travels in the link.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;

/// The maximum number of entities in one page.
pub const MAX_PAGE_SIZE: usize = 100;

/// The content of a skiptoken.
#[derive(Debug, Serialize, Deserialize)]
struct Position {
    /// The last key of the previous page.
    after: String,
}

/// Writes the skiptoken that resumes after `last_id`.
pub fn encode_skiptoken(last_id: &str) -> String {
    let position = Position { after: last_id.to_owned() };
    // The position has one string field, which serde_json serializes without error.
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(&position).unwrap_or_default())
}

/// Reads a skiptoken written by [`encode_skiptoken`].
pub fn decode_skiptoken(token: &str) -> Result<String, ApiError> {
    let invalid = || {
        ApiError::BadRequest(
            "The $skiptoken is invalid; follow the @odata.nextLink of the previous page unchanged."
                .to_owned(),
        )
    };
    let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
    let position: Position = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    Ok(position.after)
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

    #[test]
    fn skiptoken_round_trips_any_key() {
        for id in ["a", "a/b'c", "😀", ""] {
            assert_eq!(decode_skiptoken(&encode_skiptoken(id)).unwrap(), id);
        }
    }

    #[test]
    fn tampered_skiptoken_is_rejected() {
        assert!(decode_skiptoken("not base64!").is_err());
        assert!(decode_skiptoken(&URL_SAFE_NO_PAD.encode(b"{}")).is_err());
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
