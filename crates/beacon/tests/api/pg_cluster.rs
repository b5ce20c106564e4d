//! A throwaway PostgreSQL cluster in a temporary folder, for tests that stop and start the
//! database under a running server, which the machine's shared server must never be.
//!
//! The cluster listens on a free port of 127.0.0.1 with trust authentication and its socket in
//! the temporary folder. It needs `initdb` and `pg_ctl`: from `BEACON_TEST_POSTGRES_BIN`, else
//! the newest `/usr/lib/postgresql/*/bin`, else `PATH`. PostgreSQL refuses to run as root, so
//! a test run by root runs the programs as the `postgres` user with `runuser`. Without these
//! the test prints why it is skipped, unless `BEACON_REQUIRE_POSTGRES=1` makes it fail.

use std::ffi::OsStr;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The cluster's superuser.
const USER: &str = "beacon";

/// A PostgreSQL cluster in a temporary folder, stopped when dropped.
pub struct Cluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    run_as_postgres: bool,
    port: u16,
}

impl Cluster {
    /// Creates and starts a cluster, or prints why the test is skipped and returns `None`.
    pub fn start_or_skip(test: &str) -> Option<Cluster> {
        match Cluster::start() {
            Ok(cluster) => Some(cluster),
            Err(reason) if std::env::var("BEACON_REQUIRE_POSTGRES").is_ok_and(|v| v == "1") => {
                panic!("cannot start a PostgreSQL cluster and BEACON_REQUIRE_POSTGRES=1: {reason}")
            }
            Err(reason) => {
                // Written past the test harness's output capture, so the skip shows.
                let _ = writeln!(
                    std::io::stderr(),
                    "SKIPPED {test}: cannot start a throwaway PostgreSQL cluster ({reason}); set \
                     BEACON_REQUIRE_POSTGRES=1 to fail instead"
                );
                None
            }
        }
    }

    fn start() -> Result<Cluster, String> {
        let bin = postgres_bin().ok_or(
            "initdb and pg_ctl were not found in BEACON_TEST_POSTGRES_BIN, \
             /usr/lib/postgresql/*/bin or PATH",
        )?;
        let run_as_postgres = command_output("id", &["-u"])? == "0";
        let dir = tempfile::tempdir().map_err(|error| error.to_string())?;
        if run_as_postgres {
            give_to_postgres(dir.path())?;
        }
        let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        let port = listener.local_addr().map_err(|e| e.to_string())?.port();
        drop(listener);

        let cluster = Cluster { dir, bin, run_as_postgres, port };
        let data = cluster.data_dir();
        cluster.run(
            "initdb",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-U".as_ref(),
                USER.as_ref(),
                "-A".as_ref(),
                "trust".as_ref(),
                "-E".as_ref(),
                "UTF8".as_ref(),
                "--locale=C".as_ref(),
                "--no-sync".as_ref(),
            ],
        )?;
        let settings = format!(
            "\nlisten_addresses = '127.0.0.1'\nport = {}\nunix_socket_directories = '{}'\n",
            cluster.port,
            cluster.dir.path().display(),
        );
        let config = data.join("postgresql.conf");
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&config)
            .map_err(|error| format!("{}: {error}", config.display()))?;
        file.write_all(settings.as_bytes()).map_err(|error| error.to_string())?;
        cluster.start_server()?;
        Ok(cluster)
    }

    /// Returns the URL of the cluster's `postgres` database, without TLS.
    pub fn url(&self) -> String {
        format!("postgres://{USER}@127.0.0.1:{}/postgres?sslmode=disable", self.port)
    }

    /// Starts the server and waits until it accepts connections.
    pub fn start_server(&self) -> Result<(), String> {
        let data = self.data_dir();
        let log = self.dir.path().join("server.log");
        self.run(
            "pg_ctl",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-l".as_ref(),
                log.as_os_str(),
                "-w".as_ref(),
                "-t".as_ref(),
                "30".as_ref(),
                "start".as_ref(),
            ],
        )
    }

    /// Stops the server in `mode` (`fast` ends the sessions and shuts down cleanly,
    /// `immediate` stops at once, as a crash does) and waits until it is gone.
    pub fn stop_server(&self, mode: &str) -> Result<(), String> {
        let data = self.data_dir();
        self.run(
            "pg_ctl",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-m".as_ref(),
                mode.as_ref(),
                "-w".as_ref(),
                "-t".as_ref(),
                "30".as_ref(),
                "stop".as_ref(),
            ],
        )
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Runs one of the PostgreSQL programs, as the `postgres` user when this process is root.
    fn run(&self, program: &str, args: &[&OsStr]) -> Result<(), String> {
        let program = self.bin.join(program);
        let mut command = match self.run_as_postgres {
            true => {
                let mut command = Command::new("runuser");
                command.args(["-u", "postgres", "--"]).arg(&program);
                command
            }
            false => Command::new(&program),
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
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.data_dir().join("postmaster.pid").exists()
            && let Err(error) = self.stop_server("immediate")
        {
            eprintln!("stopping the test cluster failed: {error}");
        }
    }
}

/// Makes the `postgres` user the owner of `dir`.
fn give_to_postgres(dir: &Path) -> Result<(), String> {
    let id = |flag: &str| -> Result<u32, String> {
        let text = command_output("id", &[flag, "postgres"])
            .map_err(|error| format!("no postgres user to run the cluster as: {error}"))?;
        text.parse().map_err(|_| format!("id {flag} postgres printed {text:?}"))
    };
    std::os::unix::fs::chown(dir, Some(id("-u")?), Some(id("-g")?))
        .map_err(|error| format!("chown {}: {error}", dir.display()))
}

/// Finds the folder that contains `initdb` and `pg_ctl`.
///
/// NOTE: crates/store/tests/postgres_tls.rs has its own copy of this search and of the
/// cluster set-up, because test crates cannot share modules. A small dev-only crate of test
/// support used by both would remove the copy.
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
pub fn command_output(program: &str, args: &[&str]) -> Result<String, String> {
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
