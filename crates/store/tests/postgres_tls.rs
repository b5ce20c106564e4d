//! TLS between the PostgreSQL store and the server, against a throwaway PostgreSQL cluster that
//! the test creates in a temporary folder, with a CA and a server certificate of its own.
//!
//! The cluster accepts connections on 127.0.0.1 only over TLS (`hostnossl … reject`) and with
//! SCRAM passwords, so a store that connects has used TLS. The cluster needs `initdb` and
//! `pg_ctl`: from `BEACON_TEST_POSTGRES_BIN`, else the newest `/usr/lib/postgresql/*/bin`,
//! else `PATH`. PostgreSQL refuses to run as root, so a test run by root starts the cluster as
//! the `postgres` user with `runuser`. Without these the test prints why it is skipped, unless
//! `BEACON_REQUIRE_POSTGRES=1` is set, which makes it fail instead.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use beacon_store::postgres::{OpenError, PostgresOptions, PostgresStore};
use beacon_store::{PartnerTenantId, Store};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::CertificateError;

/// The cluster's superuser and its password.
const USER: &str = "beacon";
const PASSWORD: &str = "tls-test-password";

/// The host names and addresses that the server's certificate is valid for.
const CERTIFICATE_NAMES: [&str; 2] = ["localhost", "127.0.0.1"];

/// A PostgreSQL cluster in a temporary folder, stopped when the value is dropped.
struct Cluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    run_as_postgres: bool,
    port: u16,
    /// The PEM file of the CA that signed the server's certificate.
    ca_file: PathBuf,
}

impl Cluster {
    /// Creates and starts the cluster, or returns why it cannot run here.
    fn start() -> Result<Cluster, String> {
        let bin = postgres_bin().ok_or(
            "initdb and pg_ctl were not found in BEACON_TEST_POSTGRES_BIN, \
             /usr/lib/postgresql/*/bin or PATH",
        )?;
        let run_as_postgres = command_output("id", &["-u"])? == "0";
        let dir = tempfile::tempdir().map_err(|error| error.to_string())?;
        let root = dir.path();

        let password_file = root.join("password");
        std::fs::write(&password_file, PASSWORD).map_err(|error| error.to_string())?;
        let ca_file = root.join("ca.pem");
        write_certificates(root, &ca_file)?;
        if run_as_postgres {
            // The server reads its key and configuration as the user that runs it.
            give_to_postgres(root)?;
        }
        let port = free_port()?;

        let cluster = Cluster { dir, bin, run_as_postgres, port, ca_file };
        let data = cluster.data_dir();
        cluster.run(
            "initdb",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-U".as_ref(),
                USER.as_ref(),
                "--pwfile".as_ref(),
                password_file.as_os_str(),
                "-A".as_ref(),
                "scram-sha-256".as_ref(),
                "-E".as_ref(),
                "UTF8".as_ref(),
                "--locale=C".as_ref(),
                "--no-sync".as_ref(),
            ],
        )?;
        cluster.configure()?;
        let log = cluster.dir.path().join("server.log");
        cluster.run(
            "pg_ctl",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-l".as_ref(),
                log.as_os_str(),
                "-w".as_ref(),
                "-t".as_ref(),
                "20".as_ref(),
                "start".as_ref(),
            ],
        )?;
        Ok(cluster)
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Makes the server listen on 127.0.0.1 over TLS only, with its socket in the temporary
    /// folder, so it does not meet the machine's own PostgreSQL.
    fn configure(&self) -> Result<(), String> {
        let root = self.dir.path().display();
        let settings = format!(
            "\nlisten_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{root}'\n\
             ssl = on\nssl_cert_file = '{root}/server.crt'\nssl_key_file = '{root}/server.key'\n\
             fsync = off\n",
            port = self.port,
        );
        let config = self.data_dir().join("postgresql.conf");
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&config)
            .map_err(|error| format!("{}: {error}", config.display()))?;
        file.write_all(settings.as_bytes()).map_err(|error| error.to_string())?;

        let rules = "local all all scram-sha-256\n\
                     hostssl all all 127.0.0.1/32 scram-sha-256\n\
                     hostnossl all all 127.0.0.1/32 reject\n";
        std::fs::write(self.data_dir().join("pg_hba.conf"), rules)
            .map_err(|error| error.to_string())
    }

    /// Runs one of the PostgreSQL programs, as the `postgres` user when this process is root.
    fn run(&self, program: &str, args: &[&std::ffi::OsStr]) -> Result<(), String> {
        let program = self.bin.join(program);
        let mut command = if self.run_as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(&program);
            command
        } else {
            Command::new(&program)
        };
        // The programs fail where they cannot enter the current folder, which may be root's.
        let output = command
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .map_err(|error| format!("cannot run {}: {error}", program.display()))?;
        if output.status.success() {
            return Ok(());
        }
        let log = std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default();
        Err(format!(
            "{} failed with {}: {}{}\n{log}",
            program.display(),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
        ))
    }

    /// Returns a connection URL for database `postgres` with `host` and extra parameters.
    fn url(&self, host: &str, parameters: &str) -> String {
        format!("postgres://{USER}:{PASSWORD}@{host}:{}/postgres?{parameters}", self.port)
    }

    fn options_with_ca(&self) -> PostgresOptions {
        PostgresOptions { pool_size: 2, ca_file: Some(self.ca_file.clone()), ..Default::default() }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.data_dir();
        if !data.join("postmaster.pid").exists() {
            return;
        }
        let stopped = self.run(
            "pg_ctl",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-m".as_ref(),
                "immediate".as_ref(),
                "-w".as_ref(),
                "stop".as_ref(),
            ],
        );
        if let Err(error) = stopped {
            eprintln!("stopping the test cluster failed: {error}");
        }
    }
}

/// Writes a new CA to `ca_file`, and a certificate for [`CERTIFICATE_NAMES`] that it signed,
/// with its key, to `server.crt` and `server.key` in `dir`.
fn write_certificates(dir: &Path, ca_file: &Path) -> Result<(), String> {
    let text = |error: rcgen::Error| error.to_string();

    let ca_key = KeyPair::generate().map_err(text)?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(text)?;
    ca_params.distinguished_name.push(DnType::CommonName, "Beacon TLS test CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_certificate = ca_params.self_signed(&ca_key).map_err(text)?;
    let issuer = Issuer::new(ca_params, ca_key);

    let server_key = KeyPair::generate().map_err(text)?;
    let names: Vec<String> = CERTIFICATE_NAMES.iter().map(|name| (*name).to_owned()).collect();
    let mut server_params = CertificateParams::new(names).map_err(text)?;
    server_params.distinguished_name.push(DnType::CommonName, "localhost");
    server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_certificate = server_params.signed_by(&server_key, &issuer).map_err(text)?;

    let write = |path: PathBuf, content: String| {
        std::fs::write(&path, content).map_err(|error| format!("{}: {error}", path.display()))
    };
    write(ca_file.to_owned(), ca_certificate.pem())?;
    write(dir.join("server.crt"), server_certificate.pem())?;
    write(dir.join("server.key"), server_key.serialize_pem())?;
    // PostgreSQL rejects a key file that others can read.
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(dir.join("server.key"), std::fs::Permissions::from_mode(0o600))
        .map_err(|error| error.to_string())
}

/// Makes the `postgres` user the owner of `dir` and of the files in it.
fn give_to_postgres(dir: &Path) -> Result<(), String> {
    let id = |flag: &str| -> Result<u32, String> {
        let text = command_output("id", &[flag, "postgres"])
            .map_err(|error| format!("no postgres user to run the cluster as: {error}"))?;
        text.parse().map_err(|_| format!("id {flag} postgres printed {text:?}"))
    };
    let (uid, gid) = (id("-u")?, id("-g")?);
    let mut paths = vec![dir.to_owned()];
    for entry in std::fs::read_dir(dir).map_err(|error| error.to_string())? {
        paths.push(entry.map_err(|error| error.to_string())?.path());
    }
    for path in paths {
        std::os::unix::fs::chown(&path, Some(uid), Some(gid))
            .map_err(|error| format!("chown {}: {error}", path.display()))?;
    }
    Ok(())
}

/// Finds the folder that contains `initdb` and `pg_ctl`.
fn postgres_bin() -> Option<PathBuf> {
    let has_programs = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    if let Some(dir) = std::env::var_os("BEACON_TEST_POSTGRES_BIN") {
        return Some(PathBuf::from(dir)).filter(|dir| has_programs(dir));
    }

    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .filter(|(_, dir)| has_programs(dir))
        .collect();
    versions.sort();
    if let Some((_, dir)) = versions.pop() {
        return Some(dir);
    }

    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).find(|dir| has_programs(dir))
}

/// Runs a command and returns its trimmed standard output, failing unless it exits with 0.
fn command_output(program: &str, args: &[&str]) -> Result<String, String> {
    let output = Command::new(program)
        .args(args)
        .output()
        .map_err(|error| format!("cannot run {program}: {error}"))?;
    if !output.status.success() {
        return Err(format!(
            "{program} {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// Returns a TCP port on 127.0.0.1 that was free a moment ago.
fn free_port() -> Result<u16, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|error| error.to_string())?;
    Ok(listener.local_addr().map_err(|error| error.to_string())?.port())
}

/// Starts the cluster, or prints why the test is skipped and returns `None`, unless
/// `BEACON_REQUIRE_POSTGRES=1` makes that a failure.
fn cluster(test: &str) -> Option<Cluster> {
    match Cluster::start() {
        Ok(cluster) => Some(cluster),
        Err(reason) if std::env::var("BEACON_REQUIRE_POSTGRES").is_ok_and(|value| value == "1") => {
            panic!("cannot start a PostgreSQL cluster and BEACON_REQUIRE_POSTGRES=1: {reason}")
        }
        Err(reason) => {
            // Written past the test harness's output capture, so the skip shows in a passing run.
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED {test}: cannot start a throwaway PostgreSQL cluster ({reason}); set \
                 BEACON_REQUIRE_POSTGRES=1 to fail instead"
            );
            None
        }
    }
}

/// Opens a store at `url`, and on success checks that a query runs on it.
async fn open(url: &str, options: &PostgresOptions) -> Result<(), OpenError> {
    let store = PostgresStore::open(url, options).await?;
    let count = store.count(&PartnerTenantId::new("p"), None).await;
    store.close().await;
    assert_eq!(count.unwrap(), 0, "a query over {url}");
    Ok(())
}

/// Returns the certificate error inside a failed TLS handshake, failing on any other error.
fn certificate_error(result: Result<(), OpenError>, case: &str) -> CertificateError {
    match result {
        Err(OpenError::Tls(rustls::Error::InvalidCertificate(error))) => error,
        other => panic!("{case}: expected a rejected certificate, got {other:?}"),
    }
}

#[tokio::test]
async fn tls_cluster_checks_certificates_and_host_names() {
    let Some(cluster) = cluster("postgres_tls::tls_cluster_checks_certificates_and_host_names")
    else {
        return;
    };
    let with_ca = cluster.options_with_ca();
    let without_ca = PostgresOptions { pool_size: 2, ..Default::default() };

    // channel_binding=require makes SCRAM bind the password exchange to the TLS session.
    let required = cluster.url("127.0.0.1", "sslmode=require&channel_binding=require");
    open(&required, &with_ca).await.expect("sslmode=require with the CA file");

    let by_name = cluster.url("localhost", "hostaddr=127.0.0.1&sslmode=require");
    open(&by_name, &with_ca).await.expect("the certificate's host name");

    let preferred = cluster.url("127.0.0.1", "");
    open(&preferred, &with_ca).await.expect("the default sslmode with the CA file");

    // The server rejects connections without TLS, so the successes above used TLS.
    let plain = cluster.url("127.0.0.1", "sslmode=disable");
    match open(&plain, &with_ca).await {
        Err(OpenError::Connect(error)) => {
            let message = error.as_db_error().map(|error| error.message()).unwrap_or_default();
            assert!(message.contains("no encryption"), "sslmode=disable: {error:?}");
        }
        other => panic!("sslmode=disable: expected the server to reject it, got {other:?}"),
    }

    let untrusted = open(&required, &without_ca).await;
    let message = untrusted.as_ref().map_err(ToString::to_string).unwrap_err();
    assert!(message.contains("TLS handshake with PostgreSQL failed"), "{message}");
    assert!(message.contains("CA file"), "{message}");
    assert!(!message.contains(PASSWORD), "{message}");
    assert_eq!(certificate_error(untrusted, "no CA file"), CertificateError::UnknownIssuer);

    let untrusted_preferred =
        certificate_error(open(&preferred, &without_ca).await, "default sslmode, no CA file");
    assert_eq!(untrusted_preferred, CertificateError::UnknownIssuer);

    let wrong_name = cluster.url("db.example.invalid", "hostaddr=127.0.0.1&sslmode=require");
    let mismatch = certificate_error(open(&wrong_name, &with_ca).await, "a wrong host name");
    assert!(
        matches!(
            mismatch,
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. }
        ),
        "a wrong host name: {mismatch:?}"
    );
}

#[tokio::test]
async fn missing_ca_file_stops_before_connecting() {
    // Nothing listens on port 1, so reaching the CA file error proves it comes first.
    let options = PostgresOptions {
        ca_file: Some(PathBuf::from("/nonexistent/beacon-ca.pem")),
        ..Default::default()
    };

    let error = PostgresStore::open("postgres://beacon@127.0.0.1:1/db?sslmode=require", &options)
        .await
        .unwrap_err();

    assert!(matches!(error, OpenError::CaFileRead { .. }), "{error:?}");
    assert!(error.to_string().contains("/nonexistent/beacon-ca.pem"), "{error}");
}

#[tokio::test]
async fn ca_file_without_certificate_stops_before_connecting() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.pem");
    std::fs::write(&path, "# no certificate here\n").unwrap();
    let options = PostgresOptions { ca_file: Some(path.clone()), ..Default::default() };

    let error =
        PostgresStore::open("postgres://beacon@127.0.0.1:1/db", &options).await.unwrap_err();

    assert!(matches!(error, OpenError::CaFileInvalid { .. }), "{error:?}");
    let message = error.to_string();
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(message.contains("no PEM certificate"), "{message}");
}
