//! Bearer tokens: the signing key, minting development tokens, and verifying every request's
//! token into a [`Principal`].
//!
//! Tokens are JWTs signed with an asymmetric key (ES256 for keys Beacon creates, RS256 for an
//! RSA key given with `--signing-key-file`), so the same verifier can later also accept tokens
//! from an identity provider. The key is a PKCS#8 PEM file created on first use with
//! owner-only permissions. Several servers that share the file accept each other's tokens.
//!
//! A token carries the partner tenant in `tid` and Graph's permission names in `scp`
//! (delegated, space-separated) or `roles` (application).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::digest;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair, RsaKeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use beacon_store::PartnerTenantId;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

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

/// How far the clocks of the token's minter and of the server may disagree.
const CLOCK_SKEW: Duration = Duration::from_secs(60);

/// Failures to load, create or use the signing key.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The key file could not be read or written.
    #[error("cannot access the signing key file {path}: {source}")]
    Io {
        /// The key file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The file contains no usable key.
    #[error(
        "the signing key file {path} is not usable: {reason}; it must hold a PKCS#8 PEM private \
         key ('BEGIN PRIVATE KEY') for P-256 (ES256) or RSA of at least 2048 bits (RS256)"
    )]
    Invalid {
        /// The key file.
        path: PathBuf,
        /// The problem found.
        reason: String,
    },
    /// Creating a key or signing a token failed inside the crypto library.
    #[error("cannot sign with the key: {0}")]
    Crypto(String),
}

/// A private key that signs tokens, with the public half that verifies them.
pub struct SigningKey {
    algorithm: Algorithm,
    key_id: String,
    /// A secret derived from the private key, for signing skiptokens.
    paging_secret: [u8; 32],
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("algorithm", &self.algorithm)
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Loads the key at `path`, creating a new P-256 key there first if the file is absent.
    pub fn load_or_create(path: &Path) -> Result<Self, KeyError> {
        if !path.exists() {
            create_key_file(path)?;
        }
        Self::load(path)
    }

    /// Loads an existing key file.
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let io_error = |source| KeyError::Io { path: path.to_owned(), source };
        let invalid = |reason: String| KeyError::Invalid { path: path.to_owned(), reason };

        let text = fs::read(path).map_err(io_error)?;
        let block = pem::parse(&text).map_err(|e| invalid(format!("not PEM ({e})")))?;
        if block.tag() != "PRIVATE KEY" {
            return Err(invalid(format!("the PEM block is '{}'", block.tag())));
        }
        let der = block.contents();
        let paging_secret = derive_secret(der, b"beacon skiptoken signing key v1");

        // Try P-256 first, since that is what Beacon creates, then RSA.
        if let Ok(pair) = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der) {
            let point = pair.public_key().as_ref();
            let (x, y) =
                (URL_SAFE_NO_PAD.encode(&point[1..33]), URL_SAFE_NO_PAD.encode(&point[33..65]));
            let thumbprint_input = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
            return Ok(Self {
                algorithm: Algorithm::ES256,
                key_id: thumbprint(&thumbprint_input),
                paging_secret,
                encoding: EncodingKey::from_ec_pem(&text).map_err(|e| invalid(e.to_string()))?,
                decoding: DecodingKey::from_ec_der(point),
            });
        }
        match RsaKeyPair::from_pkcs8(der) {
            Ok(pair) => {
                let public = pair.public_key();
                let n = URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero());
                let e = URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero());
                let thumbprint_input = format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#);
                Ok(Self {
                    algorithm: Algorithm::RS256,
                    key_id: thumbprint(&thumbprint_input),
                    paging_secret,
                    encoding: EncodingKey::from_rsa_pem(&text)
                        .map_err(|e| invalid(e.to_string()))?,
                    decoding: DecodingKey::from_rsa_der(public.as_ref()),
                })
            }
            Err(rejected) => Err(invalid(format!("the key was rejected ({rejected})"))),
        }
    }

    /// Returns the secret that signs skiptokens. Every server loading the same key file gets
    /// the same secret, so a next link works on any of them.
    pub fn paging_secret(&self) -> [u8; 32] {
        self.paging_secret
    }

    /// Returns the key id (`kid`), the RFC 7638 thumbprint of the public key.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// Signs a development token.
    pub fn mint(&self, request: &TokenRequest) -> Result<String, KeyError> {
        let now = unix_seconds(SystemTime::now());
        let claims = Claims {
            iss: DEV_ISSUER.to_owned(),
            aud: DEV_AUDIENCE.to_owned(),
            sub: "beacon-dev-user".to_owned(),
            tid: request.partner_tenant.clone(),
            scp: Some(request.scopes.join(" ")),
            roles: None,
            iat: now,
            nbf: now,
            exp: now.saturating_add(request.lifetime.as_secs())
                + u64::from(request.lifetime.subsec_nanos() > 0),
        };
        let mut header = Header::new(self.algorithm);
        header.kid = Some(self.key_id.clone());
        jsonwebtoken::encode(&header, &claims, &self.encoding)
            .map_err(|e| KeyError::Crypto(e.to_string()))
    }

    /// Builds a verifier that accepts the tokens this key signs.
    pub fn verifier(&self) -> TokenVerifier {
        let mut validation = Validation::new(self.algorithm);
        validation.set_issuer(&[DEV_ISSUER]);
        validation.set_audience(&[DEV_AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud"]);
        validation.validate_nbf = true;
        validation.leeway = CLOCK_SKEW.as_secs();
        TokenVerifier {
            algorithm: self.algorithm,
            key_id: self.key_id.clone(),
            decoding: self.decoding.clone(),
            validation,
        }
    }
}

/// The grants of a development token.
#[derive(Clone, Debug)]
pub struct TokenRequest {
    /// The partner tenant id, a GUID.
    pub partner_tenant: String,
    /// Permission names for the `scp` claim.
    pub scopes: Vec<String>,
    /// How long the token is valid from now.
    pub lifetime: Duration,
}

/// The claims Beacon reads from a token.
#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    iss: String,
    aud: String,
    sub: String,
    tid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    scp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    roles: Option<Vec<String>>,
    iat: u64,
    nbf: u64,
    exp: u64,
}

/// The caller, as established by a valid token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// The partner tenant whose data the caller works on.
    pub partner: PartnerTenantId,
    /// Whether the token grants reading.
    pub can_read: bool,
    /// Whether the token grants changing.
    pub can_write: bool,
}

/// A token rejection. It becomes `401`, and its message is sent to the caller.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TokenError(pub String);

/// Verifies bearer tokens against one public key.
#[derive(Clone)]
pub struct TokenVerifier {
    algorithm: Algorithm,
    key_id: String,
    decoding: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenVerifier")
            .field("algorithm", &self.algorithm)
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl TokenVerifier {
    /// Checks a token's header, signature and claims, and returns who it speaks for.
    pub fn verify(&self, token: &str) -> Result<Principal, TokenError> {
        let rejected =
            |reason: &str| TokenError(format!("Access token validation failure: {reason}."));

        // The header decides which key and algorithm apply, before any signature check.
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| rejected("the token is not a well-formed JWT"))?;
        if header.alg != self.algorithm {
            return Err(rejected(&format!(
                "the token is signed with {:?}, but this service accepts only {:?}",
                header.alg, self.algorithm
            )));
        }
        if header.kid.as_deref().is_some_and(|kid| kid != self.key_id) {
            return Err(rejected("the token is signed by a key this service does not know"));
        }

        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|error| {
                rejected(match error.kind() {
                    ErrorKind::InvalidSignature => "the signature is invalid",
                    ErrorKind::ExpiredSignature => "the token has expired",
                    ErrorKind::ImmatureSignature => "the token is not valid yet (nbf is in the future)",
                    ErrorKind::InvalidIssuer => "the issuer (iss) is not accepted",
                    ErrorKind::InvalidAudience => "the audience (aud) is not this service",
                    ErrorKind::MissingRequiredClaim(_) => "a required claim (exp, nbf, iss or aud) is missing",
                    ErrorKind::InvalidAlgorithm => "the algorithm does not match the key",
                    ErrorKind::Json(_) | ErrorKind::InvalidClaimFormat(_) => {
                        "the claims are missing or have the wrong type (tid, exp, nbf, iss and aud are required)"
                    }
                    _ => "the token is not a well-formed JWT",
                })
            })?;
        let claims = data.claims;

        let partner = normalize_guid(&claims.tid)
            .ok_or_else(|| rejected("the tenant id (tid) is not a GUID"))?;
        let permissions: Vec<&str> = claims
            .scp
            .as_deref()
            .unwrap_or("")
            .split(' ')
            .chain(claims.roles.iter().flatten().map(String::as_str))
            .collect();
        let can_write = permissions.contains(&READ_WRITE_PERMISSION);
        let can_read = can_write || permissions.contains(&READ_PERMISSION);
        Ok(Principal { partner: PartnerTenantId::new(partner), can_read, can_write })
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

/// Derives a 32-byte secret for one purpose from the private key: HMAC-SHA256 keyed with the
/// key's PKCS#8 bytes over the purpose's label.
fn derive_secret(private_key: &[u8], label: &[u8]) -> [u8; 32] {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, private_key);
    let tag = aws_lc_rs::hmac::sign(&key, label);
    let mut secret = [0; 32];
    secret.copy_from_slice(tag.as_ref());
    secret
}

fn thumbprint(canonical_jwk: &str) -> String {
    URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, canonical_jwk.as_bytes()))
}

fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Creates a new P-256 key file at `path` with owner-only permissions.
///
/// The key is written to a temporary file that is then linked into place, so that two
/// processes creating the key at once end up sharing one complete key file.
fn create_key_file(path: &Path) -> Result<(), KeyError> {
    let io_error = |source| KeyError::Io { path: path.to_owned(), source };

    let document =
        EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
            .map_err(|e| KeyError::Crypto(e.to_string()))?;
    let text = pem::encode(&pem::Pem::new("PRIVATE KEY", document.as_ref().to_vec()));

    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_private_dir(parent).map_err(io_error)?;
    }
    let temporary = path.with_extension(format!("tmp-{}", std::process::id()));
    let mut file = private_file_options().open(&temporary).map_err(io_error)?;
    let written = file.write_all(text.as_bytes()).and_then(|()| file.sync_all());
    drop(file);
    let linked = written.and_then(|()| match fs::hard_link(&temporary, path) {
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        other => other,
    });
    let _ = fs::remove_file(&temporary);
    linked.map_err(io_error)?;
    tracing::info!(path = %path.display(), "created a new signing key");
    Ok(())
}

/// Creates a folder (and its parents) readable only by its owner where the platform allows.
pub fn create_private_dir(path: &Path) -> std::io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(path)
}

fn private_file_options() -> fs::OpenOptions {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> TokenRequest {
        TokenRequest {
            partner_tenant: DEV_PARTNER_TENANT.to_owned(),
            scopes: vec![READ_WRITE_PERMISSION.to_owned()],
            lifetime: Duration::from_secs(3600),
        }
    }

    #[test]
    fn minted_token_verifies_with_its_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let key = SigningKey::load_or_create(&dir.path().join("key.pem")).unwrap();
        let principal = key.verifier().verify(&key.mint(&request()).unwrap()).unwrap();
        assert_eq!(principal.partner.as_str(), DEV_PARTNER_TENANT);
        assert!(principal.can_read);
        assert!(principal.can_write);
    }

    #[test]
    fn key_file_is_created_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested").join("key.pem");
        let first = SigningKey::load_or_create(&path).unwrap();
        let second = SigningKey::load_or_create(&path).unwrap();
        assert_eq!(first.key_id(), second.key_id());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
    }

    #[test]
    fn token_from_another_key_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let ours = SigningKey::load_or_create(&dir.path().join("a.pem")).unwrap();
        let theirs = SigningKey::load_or_create(&dir.path().join("b.pem")).unwrap();
        let error = ours.verifier().verify(&theirs.mint(&request()).unwrap()).unwrap_err();
        assert!(error.0.contains("key this service does not know"), "{error}");
    }

    #[test]
    fn expired_token_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let key = SigningKey::load_or_create(&dir.path().join("key.pem")).unwrap();
        let now = unix_seconds(SystemTime::now());
        let claims = Claims {
            iss: DEV_ISSUER.into(),
            aud: DEV_AUDIENCE.into(),
            sub: "s".into(),
            tid: DEV_PARTNER_TENANT.into(),
            scp: Some(READ_PERMISSION.into()),
            roles: None,
            iat: now - 7200,
            nbf: now - 7200,
            exp: now - 3600,
        };
        let token =
            jsonwebtoken::encode(&Header::new(Algorithm::ES256), &claims, &key.encoding).unwrap();
        assert!(key.verifier().verify(&token).unwrap_err().0.contains("expired"));
    }

    #[test]
    fn read_scope_alone_does_not_grant_writing() {
        let dir = tempfile::tempdir().unwrap();
        let key = SigningKey::load_or_create(&dir.path().join("key.pem")).unwrap();
        let mut request = request();
        request.scopes = vec![READ_PERMISSION.to_owned()];
        let principal = key.verifier().verify(&key.mint(&request).unwrap()).unwrap();
        assert!(principal.can_read);
        assert!(!principal.can_write);
    }

    #[test]
    fn unsigned_and_garbage_tokens_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let key = SigningKey::load_or_create(&dir.path().join("key.pem")).unwrap();
        let verifier = key.verifier();
        let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let body = URL_SAFE_NO_PAD.encode(br#"{"tid":"8d4c7a2e-5b1f-4e0a-9c3d-6f2b1a0e7d95"}"#);
        for token in
            [format!("{none_header}.{body}."), "abc".to_owned(), String::new(), "a.b.c".to_owned()]
        {
            assert!(verifier.verify(&token).is_err(), "{token}");
        }
        let hs256 = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &serde_json::json!({"tid": DEV_PARTNER_TENANT}),
            &EncodingKey::from_secret(b"secret").unwrap(),
        )
        .unwrap();
        assert!(verifier.verify(&hs256).unwrap_err().0.contains("HS256"));
    }

    #[test]
    fn guids_are_normalized_to_lowercase() {
        assert_eq!(
            normalize_guid("{8D4C7A2E-5B1F-4E0A-9C3D-6F2B1A0E7D95}").as_deref(),
            Some(DEV_PARTNER_TENANT)
        );
        assert_eq!(normalize_guid("8d4c7a2e5b1f4e0a9c3d6f2b1a0e7d95"), None);
        assert_eq!(normalize_guid("zd4c7a2e-5b1f-4e0a-9c3d-6f2b1a0e7d95"), None);
    }
}
