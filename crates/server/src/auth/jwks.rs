//! The identity provider's key set (a JWKS): loaded from a URL or a file, cached, and loaded
//! again when a token names a key id that the cache does not have.
//!
//! Requests read the cached set without a lock. A refetch for an unknown `kid` runs at most once
//! per `min_refetch` window, and requests that arrive while it runs wait for its outcome instead
//! of starting their own (single flight). A failed fetch keeps the cached set, so tokens signed
//! by cached keys keep working, while tokens that need another key get `503` until the window
//! has passed. The set is also loaded again every hour, so a key that the provider removed
//! stops being accepted even when no unknown `kid` arrives.

use std::fmt;
use std::io::Read;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED, ParsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey};
use reqwest::Url;
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::Mutex;
use tokio::time::{Instant, MissedTickBehavior};

use super::AuthError;
use super::verify::{KeySet, TokenHeader, VerificationKey};

/// How long one fetch of the key set may take, from connecting to the last byte.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// The largest key set accepted, in bytes. A set of ten 4096-bit RSA keys with certificate
/// chains takes about 40 KiB.
pub const MAX_KEY_SET_BYTES: usize = 256 * 1024;

/// How often the key set is loaded again even when no token names an unknown key id.
const REFRESH_INTERVAL: Duration = Duration::from_secs(3600);

/// The shortest RSA modulus accepted, in bits.
const MIN_RSA_BITS: usize = 2048;

/// The source of the key set.
#[derive(Clone, Debug)]
pub enum KeySource {
    /// An `https` URL, or an `http` URL of a loopback host.
    Url(Url),
    /// A JSON file on this machine.
    File(PathBuf),
}

impl KeySource {
    /// Parses a key set URL. It must be `https`, except that `http` is accepted for loopback
    /// hosts (127.0.0.0/8, `[::1]` and `localhost`): over plain HTTP anyone on the path could
    /// replace the keys and so forge tokens.
    pub fn url(text: &str) -> Result<Self, JwksError> {
        let invalid = |reason: String| JwksError::InvalidUrl { url: text.to_owned(), reason };
        let url = Url::parse(text).map_err(|error| invalid(error.to_string()))?;
        match url.scheme() {
            "https" => {}
            "http" if is_loopback(&url) => {}
            "http" => {
                return Err(invalid(
                    "plain http is accepted only for loopback hosts (127.0.0.1, [::1], \
                     localhost); use https"
                        .to_owned(),
                ));
            }
            scheme => return Err(invalid(format!("the scheme '{scheme}' is not https"))),
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(invalid("it has no host".to_owned()));
        }
        Ok(Self::Url(url))
    }
}

/// Writes the source for logs, leaving out a password in the URL.
impl fmt::Display for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Url(url) if url.password().is_some() => {
                let mut redacted = url.clone();
                let _ = redacted.set_password(Some("***"));
                write!(f, "{redacted}")
            }
            Self::Url(url) => write!(f, "{url}"),
            Self::File(path) => write!(f, "{}", path.display()),
        }
    }
}

fn is_loopback(url: &Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    if let Ok(address) = host.parse::<Ipv4Addr>() {
        return address.is_loopback();
    }
    let bracketed = host.strip_prefix('[').and_then(|h| h.strip_suffix(']'));
    bracketed.and_then(|h| h.parse::<Ipv6Addr>().ok()).is_some_and(|a| a.is_loopback())
}

/// Failures to load the key set. At start they stop a server whose key set is a file. Later
/// they are logged, and the requests that need a key that is not cached get `503`.
#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    /// `--jwks-url` is not a URL that Beacon fetches from.
    #[error("the key set URL '{url}' is not usable: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// The reason it is rejected.
        reason: String,
    },
    /// The HTTP client could not be built, such as when the platform's certificates cannot be
    /// loaded.
    #[error("cannot set up the HTTP client for the key set: {}", error_chain(.0))]
    Client(reqwest::Error),
    /// The request failed or timed out.
    #[error("the key set request failed: {}", error_chain(.0))]
    Request(reqwest::Error),
    /// The server returned another status than 200. Redirects are not followed.
    #[error("the key server returned status {status} instead of 200")]
    Status {
        /// The HTTP status.
        status: u16,
    },
    /// The key set is larger than [`MAX_KEY_SET_BYTES`].
    #[error("the key set is larger than the limit of {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The key set file could not be read.
    #[error("cannot read the key set file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The document is not a JSON object with a `keys` array.
    #[error("the key set is not a JSON object with a 'keys' array: {0}")]
    Json(serde_json::Error),
    /// No key of the set can verify tokens.
    #[error(
        "the key set has no usable signing key ({skipped} skipped); Beacon uses RSA keys of at \
         least 2048 bits for RS256 and P-256 keys for ES256"
    )]
    NoUsableKeys {
        /// The number of keys that were left out.
        skipped: usize,
    },
}

/// Writes an error with its causes, since reqwest's own message leaves out why a request failed.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The reader of the key set: an HTTP client with its URL, or a file path.
#[derive(Debug)]
enum Loader {
    Http { client: reqwest::Client, url: Url },
    File(PathBuf),
}

/// The cached key set with its refetch throttle.
#[derive(Debug)]
pub(crate) struct JwksCache {
    source: KeySource,
    loader: Loader,
    keys: ArcSwap<KeySet>,
    /// The number of key sets loaded so far, which distinguishes cached tokens by the set that
    /// verified them.
    generation: AtomicU64,
    /// Held while the set is loaded, so that only one load runs at a time.
    refetch: Mutex<RefetchState>,
    min_refetch: Duration,
}

/// The outcome of the last refetch for an unknown key id.
#[derive(Debug, Default)]
struct RefetchState {
    last: Option<LastRefetch>,
}

#[derive(Clone, Copy, Debug)]
struct LastRefetch {
    finished: Instant,
    /// Whether the key source could not be loaded, in which case unknown key ids get `503`
    /// instead of `401` until the window has passed.
    failed: bool,
}

impl JwksCache {
    /// Loads the key set for the first time and starts the hourly refresh.
    ///
    /// A file that cannot be loaded is an error. A URL that cannot be fetched is logged and
    /// leaves the set empty, so requests get `503` until a fetch succeeds.
    pub(crate) async fn start(
        source: KeySource,
        min_refetch: Duration,
    ) -> Result<Arc<Self>, JwksError> {
        let loader = match &source {
            KeySource::Url(url) => Loader::Http { client: http_client()?, url: url.clone() },
            KeySource::File(path) => Loader::File(path.clone()),
        };
        let cache = Arc::new(Self {
            source,
            loader,
            keys: ArcSwap::from_pointee(KeySet::default()),
            generation: AtomicU64::new(0),
            refetch: Mutex::new(RefetchState::default()),
            min_refetch,
        });

        if let Err(error) = cache.reload("start").await
            && matches!(cache.loader, Loader::File(_))
        {
            return Err(error);
        }
        tokio::spawn(refresh_periodically(Arc::downgrade(&cache)));
        Ok(cache)
    }

    /// Returns the generation of the current key set, which changes with every load.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Returns the key for a token, loading the set again first if it lacks the key and the
    /// throttle allows.
    pub(crate) async fn select(
        &self,
        header: &TokenHeader,
    ) -> Result<Arc<VerificationKey>, AuthError> {
        if let Some(key) = self.keys.load().select(header)? {
            return Ok(key);
        }

        // One refetch at a time. A request that waited here gets the outcome of the refetch it
        // waited for, and starts no other within the window.
        let mut state = self.refetch.lock().await;
        if let Some(key) = self.keys.load().select(header)? {
            return Ok(key);
        }
        if let Some(last) = state.last {
            let elapsed = last.finished.elapsed();
            if elapsed < self.min_refetch {
                if last.failed {
                    return Err(AuthError::KeysUnavailable {
                        retry_after: self.min_refetch - elapsed,
                    });
                }
                return Err(header.no_key());
            }
        }
        // The attempt counts before it is awaited: a request dropped during the load (its
        // client hung up) must not let the next request start another one at once.
        state.last = Some(LastRefetch { finished: Instant::now(), failed: true });
        let outcome = self.reload("unknown key id").await;
        state.last = Some(LastRefetch { finished: Instant::now(), failed: outcome.is_err() });
        drop(state);

        if outcome.is_err() {
            return Err(AuthError::KeysUnavailable { retry_after: self.min_refetch });
        }
        self.keys.load().select(header)?.ok_or_else(|| header.no_key())
    }

    /// Loads the key set and, if it has a usable key, puts it in place of the cached one. The
    /// caller holds the refetch lock, or is the only user as at start.
    async fn reload(&self, reason: &'static str) -> Result<(), JwksError> {
        let started = Instant::now();
        let loaded = match self.read().await {
            Ok(bytes) => parse_key_set(&bytes),
            Err(error) => Err(error),
        };
        match loaded {
            Ok((set, skipped)) => {
                tracing::info!(
                    source = %self.source,
                    reason,
                    keys = set.len(),
                    skipped,
                    elapsed_ms = started.elapsed().as_millis(),
                    "loaded the token signing keys"
                );
                self.keys.store(Arc::new(set));
                self.generation.fetch_add(1, Ordering::AcqRel);
                Ok(())
            }
            Err(error) => {
                tracing::warn!(
                    source = %self.source,
                    reason,
                    cached_keys = self.keys.load().len(),
                    error.message = %error,
                    "failed to load the token signing keys"
                );
                Err(error)
            }
        }
    }

    async fn read(&self) -> Result<Vec<u8>, JwksError> {
        match &self.loader {
            Loader::Http { client, url } => fetch(client, url).await,
            Loader::File(path) => {
                let task = tokio::task::spawn_blocking({
                    let path = path.clone();
                    move || read_file(&path)
                });
                task.await.map_err(|error| JwksError::Io {
                    path: path.clone(),
                    source: std::io::Error::other(error),
                })?
            }
        }
    }
}

/// Loads the key set every [`REFRESH_INTERVAL`] until the cache is dropped. A success also
/// ends the `503` window of a failed refetch.
async fn refresh_periodically(cache: Weak<JwksCache>) {
    let mut ticks = tokio::time::interval_at(Instant::now() + REFRESH_INTERVAL, REFRESH_INTERVAL);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(cache) = cache.upgrade() else {
            return;
        };
        let mut state = cache.refetch.lock().await;
        if cache.reload("hourly refresh").await.is_ok()
            && let Some(last) = &mut state.last
        {
            last.failed = false;
        }
    }
}

fn http_client() -> Result<reqwest::Client, JwksError> {
    reqwest::Client::builder()
        .timeout(FETCH_TIMEOUT)
        .connect_timeout(FETCH_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(0)
        .user_agent(concat!("beacon/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(JwksError::Client)
}

/// GETs the key set, reading at most [`MAX_KEY_SET_BYTES`].
async fn fetch(client: &reqwest::Client, url: &Url) -> Result<Vec<u8>, JwksError> {
    let too_large = || JwksError::TooLarge { limit: MAX_KEY_SET_BYTES };
    let mut response = client
        .get(url.clone())
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(JwksError::Request)?;
    let status = response.status();
    if status != reqwest::StatusCode::OK {
        return Err(JwksError::Status { status: status.as_u16() });
    }
    if response.content_length().is_some_and(|length| length > MAX_KEY_SET_BYTES as u64) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(JwksError::Request)? {
        if body.len() + chunk.len() > MAX_KEY_SET_BYTES {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Reads the key set file, at most [`MAX_KEY_SET_BYTES`] of it.
fn read_file(path: &Path) -> Result<Vec<u8>, JwksError> {
    let io_error = |source| JwksError::Io { path: path.to_owned(), source };
    let file = std::fs::File::open(path).map_err(io_error)?;
    let mut bytes = Vec::new();
    file.take(MAX_KEY_SET_BYTES as u64 + 1).read_to_end(&mut bytes).map_err(io_error)?;
    if bytes.len() > MAX_KEY_SET_BYTES {
        return Err(JwksError::TooLarge { limit: MAX_KEY_SET_BYTES });
    }
    Ok(bytes)
}

#[derive(Deserialize)]
struct KeySetDocument {
    keys: Vec<Value>,
}

/// The members of a JSON Web Key (RFC 7517) that Beacon reads.
#[derive(Deserialize)]
struct Jwk {
    kty: String,
    kid: Option<String>,
    #[serde(rename = "use")]
    usage: Option<String>,
    key_ops: Option<Vec<String>>,
    alg: Option<String>,
    n: Option<String>,
    e: Option<String>,
    crv: Option<String>,
    x: Option<String>,
    y: Option<String>,
    issuer: Option<String>,
}

/// Parses a key set and returns its usable keys with the number of keys left out. Keys for
/// other algorithms, encryption keys and RSA keys under 2048 bits are left out. A set with no
/// usable key is an error, so that it never replaces a working one.
pub(crate) fn parse_key_set(bytes: &[u8]) -> Result<(KeySet, usize), JwksError> {
    let document: KeySetDocument = serde_json::from_slice(bytes).map_err(JwksError::Json)?;
    let mut keys = Vec::new();
    let mut skipped = 0;
    for entry in document.keys {
        let kid = entry.get("kid").and_then(Value::as_str).unwrap_or("").to_owned();
        let parsed = serde_json::from_value::<Jwk>(entry)
            .map_err(|_| "its members have the wrong types")
            .and_then(verification_key);
        match parsed {
            Ok(key) => keys.push(key),
            Err(reason) => {
                skipped += 1;
                tracing::debug!(kid, reason, "left a key of the key set out");
            }
        }
    }
    if keys.is_empty() {
        return Err(JwksError::NoUsableKeys { skipped });
    }
    Ok((KeySet::new(keys), skipped))
}

/// Builds the verification key of one JSON Web Key, or returns why it is left out.
fn verification_key(jwk: Jwk) -> Result<VerificationKey, &'static str> {
    if jwk.usage.as_deref().is_some_and(|usage| usage != "sig") {
        return Err("its use is not sig");
    }
    if jwk.key_ops.as_ref().is_some_and(|ops| !ops.iter().any(|op| op == "verify")) {
        return Err("its key_ops do not include verify");
    }
    let decode = |member: Option<String>| -> Result<Vec<u8>, &'static str> {
        let text = member.ok_or("a key member is missing")?;
        URL_SAFE_NO_PAD.decode(text).map_err(|_| "a key member is not base64url")
    };

    let (algorithm, decoding) = match jwk.kty.as_str() {
        "RSA" => {
            if jwk.alg.as_deref().is_some_and(|alg| alg != "RS256") {
                return Err("its alg is not RS256");
            }
            let modulus = decode(jwk.n)?;
            let exponent = decode(jwk.e)?;
            if modulus_bits(&modulus) < MIN_RSA_BITS {
                return Err("its RSA modulus is shorter than 2048 bits");
            }
            if exponent.iter().all(|byte| *byte == 0) {
                return Err("its RSA exponent is zero");
            }
            (Algorithm::RS256, DecodingKey::from_rsa_raw_components(&modulus, &exponent))
        }
        "EC" => {
            if jwk.crv.as_deref() != Some("P-256") {
                return Err("its curve is not P-256");
            }
            if jwk.alg.as_deref().is_some_and(|alg| alg != "ES256") {
                return Err("its alg is not ES256");
            }
            let (x, y) = (decode(jwk.x)?, decode(jwk.y)?);
            if x.len() != 32 || y.len() != 32 {
                return Err("its coordinates are not 32 bytes each");
            }
            let mut point = vec![0x04];
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &point)
                .map_err(|_| "its point is not on the P-256 curve")?;
            (Algorithm::ES256, DecodingKey::from_ec_der(&point))
        }
        _ => return Err("its kty is neither RSA nor EC"),
    };
    Ok(VerificationKey { key_id: jwk.kid, algorithm, decoding, issuer: jwk.issuer })
}

/// Returns the number of significant bits of a big-endian unsigned integer.
fn modulus_bits(bytes: &[u8]) -> usize {
    let significant = bytes.iter().position(|byte| *byte != 0).map_or(&[][..], |at| &bytes[at..]);
    match significant.first() {
        None => 0,
        Some(first) => significant.len() * 8 - first.leading_zeros() as usize,
    }
}

#[cfg(test)]
mod tests {
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
    use serde_json::json;

    use super::*;

    fn ec_jwk(kid: &str) -> Value {
        let document =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .unwrap();
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, document.as_ref()).unwrap();
        let point = pair.public_key().as_ref();
        json!({
            "kty": "EC", "crv": "P-256", "kid": kid, "use": "sig",
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
        })
    }

    #[test]
    fn key_set_skips_unusable_keys() {
        let short_rsa = json!({"kty": "RSA", "kid": "short", "n": URL_SAFE_NO_PAD.encode([0xff; 128]), "e": "AQAB"});
        let wide_rsa = json!({"kty": "RSA", "kid": "wide", "n": URL_SAFE_NO_PAD.encode([0xff; 256]), "e": "AQAB"});
        let mut off_curve = ec_jwk("off-curve");
        off_curve["y"] = json!(URL_SAFE_NO_PAD.encode([1; 32]));
        let mut encryption = ec_jwk("encryption");
        encryption["use"] = json!("enc");
        let document = json!({"keys": [
            ec_jwk("ec"),
            wide_rsa,
            short_rsa,
            off_curve,
            encryption,
            {"kty": "oct", "kid": "secret", "k": "c2VjcmV0"},
            {"kty": "RSA", "kid": "ps256", "alg": "PS256", "n": "AQAB", "e": "AQAB"},
            {"kty": 7},
        ]});

        let (set, skipped) = parse_key_set(document.to_string().as_bytes()).unwrap();

        assert_eq!(set.len(), 2);
        assert_eq!(skipped, 6);
        for (kid, algorithm) in [("ec", Algorithm::ES256), ("wide", Algorithm::RS256)] {
            let header = TokenHeader { algorithm, key_id: Some(kid.to_owned()) };
            assert!(set.select(&header).unwrap().is_some(), "{kid}");
        }
    }

    #[test]
    fn key_set_without_usable_keys_is_an_error() {
        let document = json!({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]});

        let error = parse_key_set(document.to_string().as_bytes()).unwrap_err();

        assert!(matches!(error, JwksError::NoUsableKeys { skipped: 1 }), "{error}");
        assert!(matches!(parse_key_set(b"[]"), Err(JwksError::Json(_))));
    }

    #[test]
    fn key_set_url_needs_https_off_loopback() {
        for accepted in [
            "https://login.microsoftonline.com/common/discovery/v2.0/keys",
            "http://127.0.0.1:8080/keys",
            "http://127.1.2.3/keys",
            "http://[::1]:9000/keys",
            "http://localhost/keys",
        ] {
            assert!(KeySource::url(accepted).is_ok(), "{accepted}");
        }
        for rejected in
            ["http://keys.example.com/keys", "http://10.0.0.1/keys", "ftp://x/keys", "keys"]
        {
            assert!(KeySource::url(rejected).is_err(), "{rejected}");
        }
    }

    #[test]
    fn modulus_bits_ignore_leading_zeros() {
        assert_eq!(modulus_bits(&[0, 0, 1]), 1);
        assert_eq!(modulus_bits(&[0x80, 0]), 16);
        assert_eq!(modulus_bits(&[0, 0]), 0);
    }
}
