//! The server processes under load: the release `beacon serve` and the baseline server, each
//! on a free loopback port, with their peak resident memory read from `/proc`.
//!
//! Each process writes its log to standard error, which a thread of this process reads: it
//! picks out the `listening on http://ADDR` line, keeps the last lines for error messages, and
//! echoes the log when `BEACON_BENCH_LOG` is set. Beacon logs every request at its default
//! level (`info`), so the log is read in large chunks and not stored.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use anyhow::{Context, bail};

/// How long a server may take to report its address; starting on 1,000,000 rows includes a
/// full `ANALYZE`.
const START_TIMEOUT: Duration = Duration::from_secs(120);

/// How many of a server's last log lines an error message quotes.
const KEPT_LOG_LINES: usize = 20;

/// How many bytes of a server's log are kept for those lines.
const KEPT_LOG_BYTES: usize = 16 * 1024;

/// Returns the path of the `beacon` binary to measure: the one named by `BEACON_BENCH_BINARY`,
/// for comparing another build, or else the one that Cargo built for this benchmark, in the
/// `bench` profile, which inherits `release`.
pub fn beacon_binary() -> PathBuf {
    std::env::var_os("BEACON_BENCH_BINARY")
        .map_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_beacon")), PathBuf::from)
}

/// A running server process.
#[derive(Debug)]
pub struct ServerProcess {
    /// A short name for messages, such as `beacon (100000 rows)`.
    pub name: String,
    /// The loopback address it listens on.
    pub address: SocketAddr,
    child: Child,
    log_tail: Arc<Mutex<Vec<u8>>>,
}

impl ServerProcess {
    /// Starts `beacon serve` on `data_dir` with the rate limits off.
    pub fn beacon(name: String, data_dir: &Path) -> anyhow::Result<ServerProcess> {
        let mut command = Command::new(beacon_binary());
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--shutdown-timeout", "5s", "--data-dir"])
            .arg(data_dir)
            // The benchmark sends far more requests a second than the default limits allow.
            .env("BEACON_RATE_LIMIT", "0")
            .env("BEACON_CLIENT_RATE_LIMIT", "0")
            .env("RUST_LOG", log_filter());
        ServerProcess::spawn(name, command)
    }

    /// Starts the baseline server, which is this benchmark's own executable in its server
    /// mode. It responds to every request with the bytes of `body_file`.
    pub fn baseline(body_file: &Path) -> anyhow::Result<ServerProcess> {
        let executable = std::env::current_exe().context("cannot find the benchmark executable")?;
        let mut command = Command::new(executable);
        command.arg(crate::BASELINE_FLAG).arg(body_file);
        ServerProcess::spawn("baseline".to_owned(), command)
    }

    fn spawn(name: String, mut command: Command) -> anyhow::Result<ServerProcess> {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start {name}"))?;

        let stderr = child.stderr.take().context("the server's standard error is not piped")?;
        let log_tail = Arc::new(Mutex::new(Vec::with_capacity(2 * KEPT_LOG_BYTES)));
        let (sender, receiver) = mpsc::channel();
        let tail = Arc::clone(&log_tail);
        std::thread::spawn(move || read_log(stderr, sender, &tail));

        let mut server =
            ServerProcess { name, address: SocketAddr::from(([127, 0, 0, 1], 0)), child, log_tail };
        match receiver.recv_timeout(START_TIMEOUT) {
            Ok(address) => server.address = address,
            Err(_) => bail!(
                "{} did not log its address within {START_TIMEOUT:?}; its last log lines:\n{}",
                server.name,
                server.log_tail()
            ),
        }
        Ok(server)
    }

    /// Returns the process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Returns the last lines the process logged, for error messages.
    pub fn log_tail(&self) -> String {
        let tail = self.log_tail.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let text = String::from_utf8_lossy(&tail);
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(KEPT_LOG_LINES)..].join("\n")
    }

    /// Reads the process's peak resident set size (`VmHWM` in `/proc/PID/status`) in bytes.
    pub fn peak_rss(&self) -> anyhow::Result<u64> {
        let path = format!("/proc/{}/status", self.pid());
        let status =
            std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
        let kib = status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|number| number.parse::<u64>().ok())
            .with_context(|| format!("{path} has no VmHWM line"))?;
        Ok(kib * 1024)
    }

    /// Reads the CPU time the process has used so far.
    pub fn cpu_time(&self) -> anyhow::Result<Duration> {
        cpu_time(&format!("/proc/{}/stat", self.pid()))
    }

    /// Sends SIGTERM and waits for the process to exit.
    pub fn stop(mut self) -> anyhow::Result<()> {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid().to_string())
            .status()
            .context("cannot run kill")?;
        if !status.success() {
            bail!("kill -TERM {} failed with {status}", self.pid());
        }
        let exit = self.child.wait().with_context(|| format!("cannot wait for {}", self.name))?;
        if !exit.success() {
            bail!(
                "{} exited with {exit} after SIGTERM; its last log lines:\n{}",
                self.name,
                self.log_tail()
            );
        }
        Ok(())
    }
}

impl Drop for ServerProcess {
    /// Kills a server that was not stopped, such as after a failed step.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Reads the CPU time, user and system, that a process has used so far from its
/// `/proc/…/stat` file, such as `/proc/self/stat`. The kernel counts it in ticks of 1/100 s
/// (`USER_HZ`).
pub fn cpu_time(path: &str) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(path).with_context(|| format!("cannot read {path}"))?;
    // The command name in parentheses may contain spaces, so count the fields after it: utime
    // and stime are fields 14 and 15 of the line, the 12th and 13th after the `)`.
    let after_name = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or_default();
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |index: usize| fields.get(index).and_then(|value| value.parse::<u64>().ok());
    match (ticks(11), ticks(12)) {
        (Some(user), Some(system)) => Ok(Duration::from_millis((user + system) * 10)),
        _ => bail!("{path} has no CPU times"),
    }
}

/// Reads a server's log: line by line until it reports its address, which goes to `address`,
/// and then in large chunks, which cost the benchmark's process little however much the server
/// logs. Keeps the last [`KEPT_LOG_BYTES`] in `tail`, and echoes the log when
/// `BEACON_BENCH_LOG` is set.
fn read_log(stderr: ChildStderr, address: mpsc::Sender<SocketAddr>, tail: &Mutex<Vec<u8>>) {
    let echo = std::env::var_os("BEACON_BENCH_LOG").is_some();
    let keep = |bytes: &[u8]| {
        if echo {
            let _ = std::io::stderr().write_all(bytes);
        }
        let mut tail = tail.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        tail.extend_from_slice(bytes);
        if tail.len() > 2 * KEPT_LOG_BYTES {
            let excess = tail.len() - KEPT_LOG_BYTES;
            tail.drain(..excess);
        }
    };

    let mut reader = BufReader::new(stderr);
    let mut line = String::new();
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => keep(line.as_bytes()),
        }
        let found = line.find("listening on http://").and_then(|at| {
            let rest = &line[at + "listening on http://".len()..];
            rest.split_whitespace().next()?.parse::<SocketAddr>().ok()
        });
        if let Some(found) = found {
            let _ = address.send(found);
            break;
        }
    }

    let mut chunk = vec![0; 64 * 1024];
    loop {
        match reader.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(read) => keep(&chunk[..read]),
        }
    }
}

/// Returns the server's log filter: Beacon's default level, `info`, as a deployment runs it,
/// or the caller's `RUST_LOG` with `info` for the `beacon` binary's own lines, which include
/// the address that the benchmark waits for.
fn log_filter() -> String {
    match std::env::var("RUST_LOG") {
        Ok(filter) if !filter.trim().is_empty() => format!("{filter},beacon=info"),
        _ => "info".to_owned(),
    }
}

/// Mints a token for partner `tenant` with permission `scope` with `beacon token`.
pub fn mint_token(data_dir: &Path, tenant: &str, scope: &str) -> anyhow::Result<String> {
    let output = Command::new(beacon_binary())
        .args(["token", "--expires-in", "12h", "--scope", scope, "--tenant", tenant, "--data-dir"])
        .arg(data_dir)
        .output()
        .context("cannot run beacon token")?;
    if !output.status.success() {
        bail!("beacon token failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    Ok(String::from_utf8(output.stdout).context("the token is not UTF-8")?.trim().to_owned())
}
