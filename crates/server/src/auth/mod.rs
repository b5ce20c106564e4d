//! Bearer tokens: the signing key and development tokens, the identity provider's key set, and
//! the checks that turn every request's token into a [`Principal`].
//!
//! The server runs in one of two modes, chosen at start:
//!
//! - dev: tokens from `beacon token`, signed with the data folder's key (ES256 for keys Beacon
//!   creates, RS256 for an RSA key given with `--signing-key-file`), with the issuer
//!   [`DEV_ISSUER`] and the audience [`DEV_AUDIENCE`].
//! - jwks: tokens from an identity provider such as Microsoft Entra ID, verified with the
//!   provider's JSON Web Key Set, which is fetched from a URL or read from a file.
//!
//! Both modes accept RS256 and ES256 only, choose the key by the header's `kid`, and check
//! `exp`, `nbf`, `iss` and `aud`, with a clock skew. A token carries the partner tenant in `tid`
//! and Graph's permission names in `scp` (delegated, space-separated) or `roles` (application).
//!
//! # Layout
//!
//! - `keys`: the signing key file, development tokens and the skiptoken secret.
//! - `jwks`: the key set cache, its fetches and their throttle.
//! - `verify`: parsing the token, choosing its key, and checking the signature and claims.
//! - `cache`: the tokens verified recently, so that a repeated token skips the signature check.

mod cache;
mod jwks;
mod keys;
mod verify;

use std::sync::Arc;
use std::time::Duration;

use beacon_store::PartnerTenantId;

use self::cache::TokenCache;
use self::jwks::JwksCache;
pub(crate) use self::jwks::parse_key_set;
pub use self::jwks::{JwksError, KeySource, MAX_KEY_SET_BYTES};
pub use self::keys::{KeyError, SigningKey, TokenRequest, create_private_dir};
use self::verify::{ClaimRules, KeySet};

/// The permission that allows reading compliance data.
pub const READ_PERMISSION: &str = "DeviceManagementConfiguration.Read.All";

/// The permission that allows reading and changing compliance data.
pub const READ_WRITE_PERMISSION: &str = "DeviceManagementConfiguration.ReadWrite.All";

/// The partner tenant of `beacon token` when `--tenant` is not given.
pub const DEV_PARTNER_TENANT: &str = "8d4c7a2e-5b1f-4e0a-9c3d-6f2b1a0e7d95";

/// The `iss` claim of development tokens.
pub const DEV_ISSUER: &str = "https://beacon.invalid/dev";

/// The `aud` claim of development tokens.
pub const DEV_AUDIENCE: &str = "beacon";

/// How far the clocks of the token's issuer and of the server may disagree, unless
/// `--clock-skew` sets another value.
pub const DEFAULT_CLOCK_SKEW: Duration = Duration::from_secs(60);

/// The largest clock skew accepted: more would keep expired tokens valid for too long.
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(600);

/// The shortest time between two refetches of the key set for unknown key ids, unless
/// `--jwks-min-refetch` sets another value.
pub const DEFAULT_MIN_REFETCH: Duration = Duration::from_secs(30);

/// The caller, as established by a valid token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// The partner tenant whose data the caller works on: the token's `tid`.
    pub partner: PartnerTenantId,
    /// The client application the token was issued to (`azp`, else `appid`), if it names one.
    pub client: Option<String>,
    /// Whether the token grants reading.
    pub can_read: bool,
    /// Whether the token grants changing.
    pub can_write: bool,
}

/// The reason a token was rejected. The message is sent to the caller, so it names the check
/// that failed and never contains the token or a key.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// The token is not three base64url parts with a JSON header and JSON claims. `401`.
    #[error("The token is not a well-formed JWT: {0}.")]
    Malformed(&'static str),
    /// The header's `alg` is not RS256 or ES256, such as `none` or HS256. `401`. The name is
    /// `None` when it is too long or has characters that should not be echoed.
    #[error(
        "The token is signed with an algorithm this service does not accept: {}. This service \
         accepts RS256 and ES256.",
        .0.as_deref().unwrap_or("an unrecognized name")
    )]
    UnsupportedAlgorithm(Option<String>),
    /// The header lists extensions that must be understood (`crit`); Beacon understands none.
    /// `401`.
    #[error(
        "The token's header marks extensions as critical (crit), and this service supports none."
    )]
    CriticalHeader,
    /// The header's `kid` names no key in the key set, even after a refetch. `401`.
    #[error("The token is signed with a key (kid) that is not in this service's key set.")]
    UnknownKey,
    /// The header has no `kid`, and the key set does not have exactly one key for its
    /// algorithm. `401`.
    #[error(
        "The token's header has no key id (kid), and the key set does not have exactly one key \
         for its algorithm."
    )]
    MissingKeyId,
    /// The key that `kid` names belongs to the other algorithm, such as an EC key for an RS256
    /// token. `401`.
    #[error("The token's algorithm does not match the type of the key that its kid names.")]
    AlgorithmMismatch,
    /// The signature does not verify with the key: the token was changed or signed by another
    /// key. `401`.
    #[error("The token's signature is invalid.")]
    InvalidSignature,
    /// The signature could not be checked with the key, such as a key set entry that is not a
    /// valid public key. `401`.
    #[error("The token's signature could not be checked with the key that its kid names.")]
    Unverifiable,
    /// `exp` is further in the past than the clock skew. `401`.
    #[error("The token has expired.")]
    Expired,
    /// `nbf` is further in the future than the clock skew. `401`.
    #[error("The token is not valid yet: its nbf (not before) time is in the future.")]
    NotYetValid,
    /// `aud` (a string or an array) names none of the configured audiences. `401`.
    #[error("The token's audience (aud) is not this service.")]
    WrongAudience,
    /// `iss` matches none of the configured issuers. `401`.
    #[error("The token's issuer (iss) is not accepted by this service.")]
    WrongIssuer,
    /// `iss` does not match the `issuer` that the key set gives for the token's key. `401`.
    #[error("The token's issuer (iss) is not the issuer of the key that signed it.")]
    KeyIssuerMismatch,
    /// A required claim is absent: `exp`, `iss`, `aud` or `tid`. `401`.
    #[error("The token has no {} claim.", describe_claim(.0))]
    MissingClaim(String),
    /// A claim has the wrong type or form, such as a `tid` that is not a GUID. `401`.
    #[error("The token's {} claim must be {expected}.", describe_claim(.claim))]
    InvalidClaim {
        /// The claim's name.
        claim: String,
        /// The expected type or form, such as "a GUID".
        expected: &'static str,
    },
    /// The token's key is not cached and the key source cannot be reached. `503`, with
    /// `Retry-After`.
    #[error(
        "The keys that verify access tokens cannot be fetched right now; retry in {} seconds.",
        whole_seconds(*.retry_after)
    )]
    KeysUnavailable {
        /// When a new fetch may be tried.
        retry_after: Duration,
    },
}

/// Names a claim with its meaning, such as "tenant id (tid)".
fn describe_claim(name: &str) -> String {
    let meaning = match name {
        "tid" => "tenant id",
        "exp" => "expiry time",
        "nbf" => "not-before time",
        "iss" => "issuer",
        "aud" => "audience",
        "scp" => "delegated permissions",
        "roles" => "application permissions",
        _ => return name.to_owned(),
    };
    format!("{meaning} ({name})")
}

/// Returns a duration in whole seconds, rounded up, and at least 1.
pub(crate) fn whole_seconds(duration: Duration) -> u64 {
    let seconds = duration.as_secs() + u64::from(duration.subsec_nanos() > 0);
    seconds.max(1)
}

/// The settings of jwks mode.
#[derive(Clone, Debug)]
pub struct JwksSettings {
    /// The key set's URL or file.
    pub source: KeySource,
    /// Accepted `iss` values. A value may contain `{tenantid}`, which stands for the token's
    /// `tid`, as in Entra ID's multi-tenant issuer `https://login.microsoftonline.com/{tenantid}/v2.0`.
    /// NOTE: there is no list of allowed tenants, so with a template every tenant that can get a
    /// token for the audience becomes a partner.
    pub issuers: Vec<String>,
    /// Accepted `aud` values; a token must name at least one of them.
    pub audiences: Vec<String>,
    /// How far `exp` and `nbf` may be off, at most [`MAX_CLOCK_SKEW`].
    pub clock_skew: Duration,
    /// The shortest time between two refetches of the key set for unknown key ids.
    pub min_refetch: Duration,
}

/// Checks bearer tokens, in the mode chosen at start.
#[derive(Debug)]
pub struct Authenticator {
    rules: ClaimRules,
    keys: Keys,
    verified: TokenCache,
}

/// The source of the verification keys.
#[derive(Debug)]
enum Keys {
    /// The one public key of the data folder's signing key.
    Fixed(KeySet),
    /// The identity provider's key set, fetched again when a `kid` is unknown.
    Fetched(Arc<JwksCache>),
}

impl Authenticator {
    /// Builds the dev mode authenticator, which accepts the tokens that `key` signs.
    pub fn dev(key: &SigningKey, clock_skew: Duration) -> Self {
        let rules = ClaimRules::new(
            vec![DEV_ISSUER.to_owned()],
            vec![DEV_AUDIENCE.to_owned()],
            clock_skew.min(MAX_CLOCK_SKEW),
        );
        let keys = Keys::Fixed(KeySet::new(vec![key.verification_key()]));
        Self { rules, keys, verified: TokenCache::default() }
    }

    /// Builds the jwks mode authenticator and loads the key set.
    ///
    /// A key set file must be readable and hold a usable key, or this fails. A key set URL that
    /// cannot be fetched is only logged: the server starts, and requests get `503` until a
    /// fetch succeeds, so an identity provider's outage does not stop a restart.
    pub async fn jwks(settings: JwksSettings) -> Result<Self, JwksError> {
        let rules = ClaimRules::new(
            settings.issuers,
            settings.audiences,
            settings.clock_skew.min(MAX_CLOCK_SKEW),
        );
        let cache = JwksCache::start(settings.source, settings.min_refetch).await?;
        Ok(Self { rules, keys: Keys::Fetched(cache), verified: TokenCache::default() })
    }

    /// Checks a token's header, key, signature and claims, and returns who it speaks for.
    ///
    /// A token verified before with the current key set, and unexpired, is taken from the
    /// cache without checking its signature again.
    pub async fn authenticate(&self, token: &str) -> Result<Principal, AuthError> {
        // The generation is read first: if the keys are reloaded during the check, the entry
        // is stored under the old generation and the next request checks the token again.
        let generation = match &self.keys {
            Keys::Fixed(_) => 0,
            Keys::Fetched(cache) => cache.generation(),
        };
        if let Some(principal) = self.verified.get(token, generation) {
            return Ok(principal);
        }

        let header = verify::parse(token)?;
        let key = match &self.keys {
            Keys::Fixed(set) => set.select(&header)?.ok_or_else(|| header.no_key())?,
            Keys::Fetched(cache) => cache.select(&header).await?,
        };
        let verified = verify::check(token, &key, &self.rules)?;
        if let Some(expires_at) = verified.expires_at {
            let skew = self.rules.clock_skew_seconds();
            self.verified.insert(token, &verified.principal, expires_at, skew, generation);
        }
        Ok(verified.principal)
    }
}

/// Returns the lowercase hyphenated form of a GUID, or `None` if `text` is not one.
pub fn normalize_guid(text: &str) -> Option<String> {
    let text = text.strip_prefix('{').and_then(|t| t.strip_suffix('}')).unwrap_or(text);
    let bytes = text.as_bytes();
    let well_formed = bytes.len() == 36
        && bytes.iter().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => *b == b'-',
            _ => b.is_ascii_hexdigit(),
        });
    well_formed.then(|| text.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guids_are_normalized_to_lowercase() {
        assert_eq!(
            normalize_guid("{8D4C7A2E-5B1F-4E0A-9C3D-6F2B1A0E7D95}").as_deref(),
            Some(DEV_PARTNER_TENANT)
        );
        assert_eq!(normalize_guid("8d4c7a2e5b1f4e0a9c3d6f2b1a0e7d95"), None);
        assert_eq!(normalize_guid("zd4c7a2e-5b1f-4e0a-9c3d-6f2b1a0e7d95"), None);
    }

    #[test]
    fn messages_name_the_claim_and_the_wait() {
        assert_eq!(
            AuthError::MissingClaim("tid".to_owned()).to_string(),
            "The token has no tenant id (tid) claim."
        );
        let unavailable = AuthError::KeysUnavailable { retry_after: Duration::from_millis(2500) };
        assert!(unavailable.to_string().contains("retry in 3 seconds"), "{unavailable}");
        let unsupported = AuthError::UnsupportedAlgorithm(Some("HS256".to_owned()));
        assert!(unsupported.to_string().contains("does not accept: HS256."), "{unsupported}");
    }
}
