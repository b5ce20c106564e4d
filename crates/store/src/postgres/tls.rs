//! TLS for the connections to PostgreSQL, with rustls and its aws-lc-rs crypto provider.
//!
//! The connection URL's `sslmode` decides whether TLS is used, as tokio-postgres 0.7 implements
//! it: `disable` never uses TLS, and `require` always does. `prefer`, the default when the URL
//! sets no `sslmode`, sends the server an SSLRequest, uses TLS when the server accepts it, and
//! goes on without TLS only when the server declines. Nothing authenticates that decline, so
//! only `require` protects against an attacker on the network path.
//!
//! Whenever TLS is used, the server's certificate chain must lead to a trusted CA, and the
//! certificate must be valid for the URL's `host`, also when `hostaddr` gives the address to
//! connect to. A server whose certificate fails these checks cannot be connected to under
//! `prefer` either, because tokio-postgres does not retry without TLS after a failed handshake.
//! Connections over TLS also offer SCRAM channel binding (`tls-server-end-point`), which
//! `channel_binding=require` in the URL enforces.
//!
//! The trusted CAs are the system's (read by rustls-native-certs, which honours `SSL_CERT_FILE`
//! and `SSL_CERT_DIR`) and those of an optional PEM file, such as the CA bundle that a managed
//! PostgreSQL service publishes.

use std::error::Error as _;
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use rustls::{ClientConfig, RootCertStore};
use tokio_postgres::config::SslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::OpenError;

/// The ALPN protocol name of PostgreSQL. PostgreSQL 17 requires it for `sslnegotiation=direct`,
/// and older servers ignore it.
const ALPN_POSTGRESQL: &[u8] = b"postgresql";

/// Builds the TLS connector for `mode`, or returns `None` when `mode` is `disable`.
///
/// A CA file is read and checked in every mode, so a wrong path stops the start even while
/// TLS is off.
pub(super) fn connector(
    mode: SslMode,
    ca_file: Option<&Path>,
) -> Result<Option<MakeRustlsConnect>, OpenError> {
    let ca_certificates = ca_file.map(read_ca_file).transpose()?;
    if mode == SslMode::Disable {
        if let Some(path) = ca_file {
            tracing::warn!(
                ca_file = %path.display(),
                "the CA file is not used, because the connection URL sets sslmode=disable"
            );
        }
        return Ok(None);
    }

    let mut roots = RootCertStore::empty();
    add_system_roots(&mut roots);
    if let (Some(path), Some(certificates)) = (ca_file, ca_certificates) {
        for (index, certificate) in certificates.into_iter().enumerate() {
            roots.add(certificate).map_err(|error| OpenError::CaFileInvalid {
                path: path.to_owned(),
                reason: format!("certificate {} in it is not a usable CA: {error}", index + 1),
            })?;
        }
    }
    if roots.is_empty() {
        tracing::warn!(
            "no trusted CA certificates were found, so every TLS connection to PostgreSQL will \
             fail; give a CA file, or set SSL_CERT_FILE to the system's CA bundle"
        );
    }

    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("the aws-lc-rs provider supports TLS 1.2 and 1.3")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![ALPN_POSTGRESQL.to_vec()];
    Ok(Some(MakeRustlsConnect::new(config)))
}

/// Reads the PEM certificates of a CA file, failing when there are none.
fn read_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, OpenError> {
    let invalid = |reason: String| OpenError::CaFileInvalid { path: path.to_owned(), reason };
    let pem = std::fs::read(path)
        .map_err(|source| OpenError::CaFileRead { path: path.to_owned(), source })?;
    let certificates = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| invalid(format!("it is not valid PEM: {error}")))?;
    if certificates.is_empty() {
        return Err(invalid(
            "it contains no PEM certificate (a '-----BEGIN CERTIFICATE-----' block)".to_owned(),
        ));
    }
    Ok(certificates)
}

/// Adds the system's trusted CAs, logging the ones that cannot be read or used.
fn add_system_roots(roots: &mut RootCertStore) {
    let loaded = rustls_native_certs::load_native_certs();
    for error in &loaded.errors {
        tracing::warn!(%error, "cannot read some of the system's trusted CA certificates");
    }
    let (added, ignored) = roots.add_parsable_certificates(loaded.certs);
    if ignored > 0 {
        tracing::warn!(added, ignored, "some of the system's CA certificates are not usable");
    }
    tracing::debug!(added, "system CA certificates loaded for PostgreSQL connections");
}

/// Returns the rustls error behind a failed connection, if the TLS handshake failed.
pub(super) fn handshake_error(error: &tokio_postgres::Error) -> Option<rustls::Error> {
    let mut cause = error.source();
    while let Some(current) = cause {
        if let Some(found) = current.downcast_ref::<rustls::Error>() {
            return Some(found.clone());
        }
        // tokio-rustls wraps the rustls error in an `io::Error`, whose `source` skips it.
        let wrapped = current.downcast_ref::<std::io::Error>().and_then(std::io::Error::get_ref);
        if let Some(found) = wrapped.and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
            return Some(found.clone());
        }
        cause = current.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a connector that is expected to fail, and returns the error.
    fn connector_error(mode: SslMode, ca_file: &Path) -> OpenError {
        match connector(mode, Some(ca_file)) {
            Ok(_) => panic!("a connector was built with the CA file {}", ca_file.display()),
            Err(error) => error,
        }
    }

    #[test]
    fn missing_ca_file_names_the_file() {
        let error = connector_error(SslMode::Require, Path::new("/nonexistent/ca.pem"));

        assert!(matches!(error, OpenError::CaFileRead { .. }), "{error:?}");
        assert!(error.to_string().contains("/nonexistent/ca.pem"), "{error}");
    }

    #[test]
    fn ca_file_without_certificates_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "not a certificate\n").unwrap();

        let error = connector_error(SslMode::Prefer, &path);

        assert!(matches!(error, OpenError::CaFileInvalid { .. }), "{error:?}");
        assert!(error.to_string().contains(&path.display().to_string()), "{error}");
        assert!(error.to_string().contains("no PEM certificate"), "{error}");
    }

    #[test]
    fn ca_file_with_malformed_certificate_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        let pem = "-----BEGIN CERTIFICATE-----\nAAECAw==\n-----END CERTIFICATE-----\n";
        std::fs::write(&path, pem).unwrap();

        let error = connector_error(SslMode::Require, &path);

        assert!(matches!(error, OpenError::CaFileInvalid { .. }), "{error:?}");
        assert!(error.to_string().contains("certificate 1 in it"), "{error}");
    }

    #[test]
    fn ca_file_is_checked_when_tls_is_disabled() {
        let error = connector_error(SslMode::Disable, Path::new("/nonexistent/ca.pem"));

        assert!(matches!(error, OpenError::CaFileRead { .. }), "{error:?}");
    }

    #[test]
    fn disable_builds_no_connector() {
        let connector = connector(SslMode::Disable, None).unwrap();

        assert!(connector.is_none());
    }

    #[test]
    fn require_builds_a_connector() {
        let connector = connector(SslMode::Require, None).unwrap();

        assert!(connector.is_some());
    }
}
