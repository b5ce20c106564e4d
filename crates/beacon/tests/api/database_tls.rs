//! `--database-ca-file`: a CA file that cannot be used stops `beacon serve` before it connects
//! to PostgreSQL, with a message that names the file. The TLS connections themselves are tested
//! against a throwaway PostgreSQL server in the store's `postgres_tls` tests.

use std::process::{Command, Output};

use crate::helpers::beacon_binary;

/// A PostgreSQL URL where nothing listens, so an error about the CA file shows that the file is
/// checked before any connection is tried.
const UNREACHABLE_DATABASE: &str = "postgres://beacon@127.0.0.1:1/beacon?sslmode=require";

/// Runs `beacon serve` on the unreachable database, with `configure` adding the CA file, and
/// returns its output once it exits.
fn serve_with_ca_file(configure: impl FnOnce(&mut Command)) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let mut command = Command::new(beacon_binary());
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .args(["--database", UNREACHABLE_DATABASE])
        .env_remove("BEACON_DATABASE_CA_FILE");
    configure(&mut command);
    command.output().unwrap()
}

#[test]
fn missing_ca_file_stops_the_start() {
    let output = serve_with_ca_file(|command| {
        command.args(["--database-ca-file", "/nonexistent/beacon-database-ca.pem"]);
    });

    let message = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "the server started: {message}");
    assert!(message.contains("cannot read the CA file"), "{message}");
    assert!(message.contains("/nonexistent/beacon-database-ca.pem"), "{message}");
}

#[test]
fn ca_file_without_certificate_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bundle.pem");
    std::fs::write(&path, "# the certificates were left out\n").unwrap();

    let output = serve_with_ca_file(|command| {
        command.env("BEACON_DATABASE_CA_FILE", &path);
    });

    let message = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "the server started: {message}");
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(message.contains("contains no PEM certificate"), "{message}");
}
