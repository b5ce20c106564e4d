//! Parsing a token, choosing its key, and checking its signature and claims.
//!
//! The header is parsed here before jsonwebtoken reads the token, so that every failure gets its
//! own message and so that `alg` can only name RS256 or ES256. Each key is bound to one of the
//! two, and a token whose `alg` differs from its key's is rejected before any signature check.
//! This is what stops `alg: none` and HS256 tokens that use a public key as the HMAC secret.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use beacon_store::PartnerTenantId;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::{AuthError, Principal, READ_PERMISSION, READ_WRITE_PERMISSION, normalize_guid};

/// The placeholder in an issuer that stands for the token's `tid`, compared without regard to
/// case as Entra ID's documentation does.
const TENANT_PLACEHOLDER: &str = "{tenantid}";

/// The longest `alg` value that a rejection message repeats.
const MAX_ECHOED_ALGORITHM: usize = 16;

/// A token's header, as far as choosing the key needs it.
#[derive(Debug)]
pub(crate) struct TokenHeader {
    /// RS256 or ES256: [`parse`] rejects every other algorithm.
    pub algorithm: Algorithm,
    /// The `kid` member.
    pub key_id: Option<String>,
}

impl TokenHeader {
    /// Returns the rejection for a token whose key the key set does not have.
    pub(crate) fn no_key(&self) -> AuthError {
        if self.key_id.is_some() { AuthError::UnknownKey } else { AuthError::MissingKeyId }
    }
}

/// Checks that `token` is a compact JWS with a JSON header and a JSON object of claims, and
/// returns its header.
pub(crate) fn parse(token: &str) -> Result<TokenHeader, AuthError> {
    let mut parts = token.split('.');
    let (Some(header), Some(claims), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AuthError::Malformed("it must be three base64url parts separated by dots"));
    };
    let header = decode_object(header)
        .ok_or(AuthError::Malformed("its header is not a base64url-encoded JSON object"))?;

    let algorithm = match header.get("alg") {
        Some(Value::String(name)) => match name.as_str() {
            "RS256" => Algorithm::RS256,
            "ES256" => Algorithm::ES256,
            _ => return Err(AuthError::UnsupportedAlgorithm(echoable(name))),
        },
        _ => return Err(AuthError::Malformed("its header has no alg string")),
    };
    if header.contains_key("crit") {
        return Err(AuthError::CriticalHeader);
    }
    let key_id = match header.get("kid") {
        None => None,
        Some(Value::String(kid)) => Some(kid.clone()),
        Some(_) => return Err(AuthError::Malformed("its kid is not a string")),
    };

    if decode_object(claims).is_none() {
        return Err(AuthError::Malformed("its claims are not a base64url-encoded JSON object"));
    }
    if URL_SAFE_NO_PAD.decode(signature).is_err() {
        return Err(AuthError::Malformed("its signature is not base64url-encoded"));
    }
    Ok(TokenHeader { algorithm, key_id })
}

fn decode_object(part: &str) -> Option<Map<String, Value>> {
    let bytes = URL_SAFE_NO_PAD.decode(part).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Returns an algorithm name if it is short and plain enough to repeat in a message.
fn echoable(name: &str) -> Option<String> {
    let plain = !name.is_empty()
        && name.len() <= MAX_ECHOED_ALGORITHM
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    plain.then(|| name.to_owned())
}

/// A public key that verifies the tokens of one algorithm.
pub(crate) struct VerificationKey {
    /// The key id that tokens name in `kid`.
    pub key_id: Option<String>,
    /// RS256 for an RSA key, ES256 for a P-256 key.
    pub algorithm: Algorithm,
    pub decoding: DecodingKey,
    /// The `issuer` member that Entra ID's key sets give each key: tokens that the key signs
    /// must have this `iss`, with `{tenantid}` standing for their `tid`.
    pub issuer: Option<String>,
}

impl std::fmt::Debug for VerificationKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerificationKey")
            .field("key_id", &self.key_id)
            .field("algorithm", &self.algorithm)
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

/// The keys that tokens may be signed with.
#[derive(Debug, Default)]
pub(crate) struct KeySet {
    keys: Vec<Arc<VerificationKey>>,
}

impl KeySet {
    pub(crate) fn new(keys: Vec<VerificationKey>) -> Self {
        Self { keys: keys.into_iter().map(Arc::new).collect() }
    }

    /// Returns the number of keys.
    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }

    /// Chooses the key for a token: the key its `kid` names, or without a `kid` the only key of
    /// its algorithm. Returns `None` when the set has no such key, so that the caller may fetch
    /// the set again.
    pub(crate) fn select(
        &self,
        header: &TokenHeader,
    ) -> Result<Option<Arc<VerificationKey>>, AuthError> {
        let Some(kid) = &header.key_id else {
            let mut candidates = self.keys.iter().filter(|key| key.algorithm == header.algorithm);
            return match (candidates.next(), candidates.next()) {
                (Some(only), None) => Ok(Some(Arc::clone(only))),
                (None, _) => Ok(None),
                (Some(_), Some(_)) => Err(AuthError::MissingKeyId),
            };
        };
        let mut named = self.keys.iter().filter(|key| key.key_id.as_ref() == Some(kid)).peekable();
        if named.peek().is_none() {
            return Ok(None);
        }
        match named.find(|key| key.algorithm == header.algorithm) {
            Some(key) => Ok(Some(Arc::clone(key))),
            None => Err(AuthError::AlgorithmMismatch),
        }
    }
}

/// The claim checks of one mode.
#[derive(Debug)]
pub(crate) struct ClaimRules {
    /// Accepted `iss` values, each possibly with `{tenantid}`.
    issuers: Vec<String>,
    /// jsonwebtoken's checks of `exp`, `nbf` and `aud` where present, with the clock skew as
    /// leeway.
    validation: Validation,
}

impl ClaimRules {
    pub(crate) fn new(issuers: Vec<String>, audiences: Vec<String>, clock_skew: Duration) -> Self {
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_audience(&audiences);
        // `check` requires exp, iss and aud itself, since jsonwebtoken reports a claim of the
        // wrong type as missing.
        validation.set_required_spec_claims::<&str>(&[]);
        validation.validate_nbf = true;
        validation.leeway = clock_skew.as_secs();
        Self { issuers, validation }
    }

    /// Returns the clock skew, in seconds, that `exp` and `nbf` are checked with.
    pub(crate) fn clock_skew_seconds(&self) -> u64 {
        self.validation.leeway
    }
}

/// A token that passed every check.
#[derive(Debug)]
pub(crate) struct Verified {
    /// The caller that the token speaks for.
    pub(crate) principal: Principal,
    /// The token's `exp` in whole seconds, if it is a number that fits.
    pub(crate) expires_at: Option<u64>,
}

/// The claims that Beacon reads itself, kept as JSON values so that a wrong type gets its own
/// message.
#[derive(Debug, Deserialize)]
struct Claims {
    exp: Option<Value>,
    aud: Option<Value>,
    iss: Option<Value>,
    tid: Option<Value>,
    scp: Option<Value>,
    roles: Option<Value>,
    azp: Option<Value>,
    appid: Option<Value>,
}

/// The maximum length of a client application id that [`client_application`] takes; a longer one is
/// ignored, so that it cannot grow the rate limiter's keys.
const MAX_CLIENT_ID_BYTES: usize = 256;

/// Returns the client application a token was issued to: its `azp` claim (Entra ID v2 tokens),
/// else its `appid` claim (v1 tokens), if either is a non-empty string of at most
/// [`MAX_CLIENT_ID_BYTES`] bytes.
fn client_application(azp: Option<Value>, appid: Option<Value>) -> Option<String> {
    [azp, appid].into_iter().flatten().find_map(|claim| match claim {
        Value::String(id) if !id.is_empty() && id.len() <= MAX_CLIENT_ID_BYTES => Some(id),
        _ => None,
    })
}

/// Checks the signature of `token` with `key`, then its claims, and returns who it speaks for
/// and until when.
pub(crate) fn check(
    token: &str,
    key: &VerificationKey,
    rules: &ClaimRules,
) -> Result<Verified, AuthError> {
    let mut validation = rules.validation.clone();
    validation.algorithms = vec![key.algorithm];
    let claims = jsonwebtoken::decode::<Claims>(token, &key.decoding, &validation)
        .map_err(|error| rejection(&error))?
        .claims;

    // jsonwebtoken has checked exp and aud where present, so what is left is their presence.
    for (claim, value) in [("exp", &claims.exp), ("aud", &claims.aud)] {
        if value.is_none() {
            return Err(AuthError::MissingClaim(claim.to_owned()));
        }
    }

    // The tenant comes before the issuer, since the issuer templates need it.
    let tid = match claims.tid {
        None => return Err(AuthError::MissingClaim("tid".to_owned())),
        Some(Value::String(tid)) => tid,
        Some(_) => return Err(invalid_claim("tid", "a GUID string")),
    };
    let partner = normalize_guid(&tid).ok_or_else(|| invalid_claim("tid", "a GUID"))?;
    let issuer = match claims.iss {
        None => return Err(AuthError::MissingClaim("iss".to_owned())),
        Some(Value::String(issuer)) => issuer,
        Some(_) => return Err(invalid_claim("iss", "a string")),
    };
    if !rules.issuers.iter().any(|accepted| issuer_matches(accepted, &issuer, &tid)) {
        return Err(AuthError::WrongIssuer);
    }
    if key.issuer.as_deref().is_some_and(|expected| !issuer_matches(expected, &issuer, &tid)) {
        return Err(AuthError::KeyIssuerMismatch);
    }

    let mut permissions = Vec::new();
    match &claims.scp {
        None => {}
        Some(Value::String(scopes)) => permissions.extend(scopes.split_whitespace()),
        Some(_) => return Err(invalid_claim("scp", "a string of space-separated permissions")),
    }
    match &claims.roles {
        None => {}
        Some(Value::Array(roles)) => {
            for role in roles {
                let Value::String(role) = role else {
                    return Err(invalid_claim("roles", "an array of strings"));
                };
                permissions.push(role);
            }
        }
        Some(_) => return Err(invalid_claim("roles", "an array of strings")),
    }
    let can_write = permissions.contains(&READ_WRITE_PERMISSION);
    let can_read = can_write || permissions.contains(&READ_PERMISSION);
    let client = client_application(claims.azp, claims.appid);
    // jsonwebtoken accepted `exp`, so it is a number; a fraction is cut to whole seconds.
    let expires_at = claims.exp.as_ref().and_then(Value::as_f64).and_then(|exp| {
        (exp.is_finite() && exp >= 0.0 && exp < u64::MAX as f64).then_some(exp as u64)
    });
    let principal =
        Principal { partner: PartnerTenantId::new(partner), client, can_read, can_write };
    Ok(Verified { principal, expires_at })
}

fn invalid_claim(claim: &str, expected: &'static str) -> AuthError {
    AuthError::InvalidClaim { claim: claim.to_owned(), expected }
}

/// Returns whether `issuer` is `accepted`, where `{tenantid}` in `accepted` stands for `tid`.
fn issuer_matches(accepted: &str, issuer: &str, tid: &str) -> bool {
    let lowercase = accepted.to_ascii_lowercase();
    match lowercase.find(TENANT_PLACEHOLDER) {
        None => accepted == issuer,
        Some(at) => {
            let (prefix, rest) = accepted.split_at(at);
            let suffix = &rest[TENANT_PLACEHOLDER.len()..];
            issuer.len() == prefix.len() + tid.len() + suffix.len()
                && issuer.starts_with(prefix)
                && issuer.ends_with(suffix)
                && &issuer[prefix.len()..issuer.len() - suffix.len()] == tid
        }
    }
}

/// Turns jsonwebtoken's verdict into the message for the caller.
fn rejection(error: &jsonwebtoken::errors::Error) -> AuthError {
    match error.kind() {
        ErrorKind::InvalidSignature => AuthError::InvalidSignature,
        ErrorKind::ExpiredSignature => AuthError::Expired,
        ErrorKind::ImmatureSignature => AuthError::NotYetValid,
        ErrorKind::InvalidAudience => AuthError::WrongAudience,
        ErrorKind::InvalidIssuer => AuthError::WrongIssuer,
        ErrorKind::MissingRequiredClaim(claim) => AuthError::MissingClaim(claim.clone()),
        ErrorKind::InvalidClaimFormat(claim) => {
            let expected = match claim.as_str() {
                "exp" | "nbf" => "a number of seconds since 1970-01-01T00:00:00Z",
                "aud" => "a string or an array of strings",
                _ => "a string",
            };
            invalid_claim(claim, expected)
        }
        ErrorKind::Base64(_) | ErrorKind::Json(_) | ErrorKind::Utf8(_) => {
            AuthError::Malformed("its claims could not be read")
        }
        ErrorKind::InvalidAlgorithm => AuthError::AlgorithmMismatch,
        _ => {
            tracing::warn!(error.message = %error, "a token's signature could not be checked");
            AuthError::Unverifiable
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TENANT: &str = "8d4c7a2e-5b1f-4e0a-9c3d-6f2b1a0e7d95";

    #[test]
    fn issuer_template_takes_the_tokens_tenant() {
        let template = "https://login.microsoftonline.com/{TenantId}/v2.0";
        let own = format!("https://login.microsoftonline.com/{TENANT}/v2.0");
        let other = "https://login.microsoftonline.com/3f2a9c41-7d6e-4b58-a0c3-9e1b2d4f6a87/v2.0";

        assert!(issuer_matches(template, &own, TENANT));
        assert!(!issuer_matches(template, other, TENANT));
        assert!(!issuer_matches(template, &format!("{own}/"), TENANT));
        assert!(issuer_matches(&own, &own, TENANT));
        assert!(!issuer_matches(&own, &own.to_uppercase(), TENANT));
    }

    #[test]
    fn header_checks_come_before_the_key() {
        let encode = |json: &str| URL_SAFE_NO_PAD.encode(json);
        let claims = encode("{}");
        let cases = [
            (format!("{}.{claims}.", encode(r#"{"alg":"none"}"#)), "accept: none."),
            (format!("{}.{claims}.", encode(r#"{"alg":"HS256"}"#)), "accept: HS256."),
            (format!("{}.{claims}.", encode(r#"{"alg":"RS256\n<x>"}"#)), "unrecognized name"),
            (format!("{}.{claims}.", encode(r#"{"alg":"RS256","crit":["b64"]}"#)), "(crit)"),
            (format!("{}.{claims}.", encode(r#"["RS256"]"#)), "header"),
            (format!("{}.{claims}.", encode(r#"{"alg":"ES256","kid":7}"#)), "kid"),
            (format!("{}.{}.", encode(r#"{"alg":"ES256"}"#), encode("[]")), "claims"),
            (format!("{}.{claims}.a+b", encode(r#"{"alg":"ES256"}"#)), "signature"),
            ("a.b".to_owned(), "three"),
        ];

        for (token, expected) in cases {
            let message = parse(&token).unwrap_err().to_string();
            assert!(message.contains(expected), "{token}: {message}");
        }
    }

    #[test]
    fn client_application_reads_azp_then_appid() {
        let text = |value: &str| Some(Value::String(value.to_owned()));
        assert_eq!(client_application(text("a"), text("b")).as_deref(), Some("a"));
        assert_eq!(client_application(None, text("b")).as_deref(), Some("b"));
        assert_eq!(client_application(text(""), text("b")).as_deref(), Some("b"));
        assert_eq!(client_application(Some(Value::from(7)), None), None);
        assert_eq!(client_application(text(&"x".repeat(300)), None), None);
        assert_eq!(client_application(None, None), None);
    }
}
