//! The signing key file: development tokens, the public key that verifies them in dev mode, and
//! the secret that signs skiptokens in both modes.
//!
//! The key is a PKCS#8 PEM file created on first use with owner-only permissions: P-256
//! (ES256) when Beacon creates it, or RSA (RS256) when given with `--signing-key-file`. Several
//! servers that share the file accept each other's development tokens and next links.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::digest;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair, RsaKeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use serde::Serialize;

use super::verify::VerificationKey;
use super::{DEV_AUDIENCE, DEV_ISSUER};

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
        let text =
            fs::read(path).map_err(|source| KeyError::Io { path: path.to_owned(), source })?;
        Self::from_pem(&text, path)
    }

    /// Reads a key from `text`, the contents of the key file at `path`, which errors name.
    pub(crate) fn from_pem(text: &[u8], path: &Path) -> Result<Self, KeyError> {
        let invalid = |reason: String| KeyError::Invalid { path: path.to_owned(), reason };
        let block = pem::parse(text).map_err(|e| invalid(format!("not PEM ({e})")))?;
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
                encoding: EncodingKey::from_ec_pem(text).map_err(|e| invalid(e.to_string()))?,
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
                    encoding: EncodingKey::from_rsa_pem(text)
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

    /// Signs `message`, the base64url header and claims of a token joined by a dot, and
    /// returns the base64url signature. Only the fuzz targets need a header or claims that
    /// [`SigningKey::mint`] would not write.
    pub(crate) fn sign_message(&self, message: &str) -> Result<String, KeyError> {
        jsonwebtoken::crypto::sign(message.as_bytes(), &self.encoding, self.algorithm)
            .map_err(|e| KeyError::Crypto(e.to_string()))
    }

    /// Returns the public half, which verifies the tokens this key signs.
    pub(crate) fn verification_key(&self) -> VerificationKey {
        VerificationKey {
            key_id: Some(self.key_id.clone()),
            algorithm: self.algorithm,
            decoding: self.decoding.clone(),
            issuer: None,
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

/// The claims of a development token.
#[derive(Debug, Serialize)]
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
    use crate::auth::{
        AuthError, Authenticator, DEFAULT_CLOCK_SKEW, DEV_PARTNER_TENANT, READ_PERMISSION,
        READ_WRITE_PERMISSION,
    };

    fn request() -> TokenRequest {
        TokenRequest {
            partner_tenant: DEV_PARTNER_TENANT.to_owned(),
            scopes: vec![READ_WRITE_PERMISSION.to_owned()],
            lifetime: Duration::from_secs(3600),
        }
    }

    fn dev_authenticator(key: &SigningKey) -> Authenticator {
        Authenticator::dev(key, DEFAULT_CLOCK_SKEW)
    }

    #[tokio::test]
    async fn minted_token_verifies_with_its_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let key = SigningKey::load_or_create(&dir.path().join("key.pem")).unwrap();
        let token = key.mint(&request()).unwrap();

        let principal = dev_authenticator(&key).authenticate(&token).await.unwrap();

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

    #[tokio::test]
    async fn token_from_another_key_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let ours = SigningKey::load_or_create(&dir.path().join("a.pem")).unwrap();
        let theirs = SigningKey::load_or_create(&dir.path().join("b.pem")).unwrap();
        let token = theirs.mint(&request()).unwrap();

        let error = dev_authenticator(&ours).authenticate(&token).await.unwrap_err();

        assert_eq!(error, AuthError::UnknownKey);
    }

    #[tokio::test]
    async fn expired_token_without_kid_is_rejected_as_expired() {
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

        let error = dev_authenticator(&key).authenticate(&token).await.unwrap_err();

        assert_eq!(error, AuthError::Expired);
    }

    #[tokio::test]
    async fn read_scope_alone_does_not_grant_writing() {
        let dir = tempfile::tempdir().unwrap();
        let key = SigningKey::load_or_create(&dir.path().join("key.pem")).unwrap();
        let mut request = request();
        request.scopes = vec![READ_PERMISSION.to_owned()];
        let token = key.mint(&request).unwrap();

        let principal = dev_authenticator(&key).authenticate(&token).await.unwrap();

        assert!(principal.can_read);
        assert!(!principal.can_write);
    }

    #[tokio::test]
    async fn unsigned_and_garbage_tokens_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let key = SigningKey::load_or_create(&dir.path().join("key.pem")).unwrap();
        let authenticator = dev_authenticator(&key);
        let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let body = URL_SAFE_NO_PAD.encode(br#"{"tid":"8d4c7a2e-5b1f-4e0a-9c3d-6f2b1a0e7d95"}"#);

        let unsigned = authenticator.authenticate(&format!("{none_header}.{body}.")).await;
        assert_eq!(unsigned, Err(AuthError::UnsupportedAlgorithm(Some("none".to_owned()))));
        for garbage in ["abc", "", "a.b.c", "a.b.c.d"] {
            let error = authenticator.authenticate(garbage).await.unwrap_err();
            assert!(matches!(error, AuthError::Malformed(_)), "{garbage}: {error:?}");
        }
        let hs256 = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &serde_json::json!({"tid": DEV_PARTNER_TENANT}),
            &EncodingKey::from_secret(b"secret").unwrap(),
        )
        .unwrap();
        let error = authenticator.authenticate(&hs256).await.unwrap_err();
        assert_eq!(error, AuthError::UnsupportedAlgorithm(Some("HS256".to_owned())));
    }
}
