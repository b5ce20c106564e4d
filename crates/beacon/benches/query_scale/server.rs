//! The release `beacon` process under test, and timed HTTP requests to it.
//!
//! The binary is the one `cargo bench` builds for this package, in the `bench` profile, which
//! inherits `release`; Cargo passes its path in `CARGO_BIN_EXE_beacon`. Every server listens on
//! a free loopback port, which it reports in its `listening on http://HOST:PORT` log line.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use beacon_server::auth::READ_PERMISSION;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// The Graph view's collection path below the service root.
pub const COLLECTION: &str = "beta/tenantRelationships/managedTenants/aggregatedPolicyCompliances";

/// Characters left as they are in a query option value: RFC 3986's unreserved characters.
const QUERY_VALUE: &AsciiSet =
    &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// How long a server may take to report its address.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Returns the path of the `beacon` binary that Cargo built for this benchmark.
pub fn beacon_binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_beacon"))
}

/// A running `beacon serve` on a loopback port.
#[derive(Debug)]
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
}

impl Server {
    /// Starts `beacon serve` on `data_dir` and its SQLite database, and waits until it listens.
    pub fn start(data_dir: &Path) -> anyhow::Result<Server> {
        Server::start_on(data_dir, None)
    }

    /// Starts `beacon serve` on `data_dir`, which contains the signing key, with the store
    /// that `database` selects (`--database`, SQLite in the data folder without it), and
    /// waits until it listens.
    pub fn start_on(data_dir: &Path, database: Option<&str>) -> anyhow::Result<Server> {
        let mut command = Command::new(beacon_binary());
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--shutdown-timeout", "5s", "--data-dir"])
            .arg(data_dir);
        if let Some(database) = database {
            command.args(["--database", database]);
        }
        let mut child = command
            .env("RUST_LOG", "info")
            // The benchmark measures queries, and sends them faster than the rate limits allow.
            .env("BEACON_RATE_LIMIT", "0")
            .env("BEACON_CLIENT_RATE_LIMIT", "0")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start {}", beacon_binary().display()))?;

        // Keep draining standard error, so the server never blocks on a full pipe.
        let stderr = child.stderr.take().context("the server's standard error is not piped")?;
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            let mut sender = Some(sender);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(at) = line.find("listening on http://") {
                    let url = line[at + "listening on ".len()..].split_whitespace().next();
                    if let (Some(url), Some(sender)) = (url, sender.take()) {
                        let _ = sender.send(url.to_owned());
                    }
                }
                if std::env::var_os("BEACON_BENCH_LOG").is_some() {
                    eprintln!("server: {line}");
                }
            }
        });

        let mut server = Server { child, base: String::new() };
        match receiver.recv_timeout(START_TIMEOUT) {
            Ok(base) => server.base = base,
            Err(_) => bail!(
                "the server on {} did not log its address within {START_TIMEOUT:?}; rerun with \
                 BEACON_BENCH_LOG=1 to see its log",
                data_dir.display()
            ),
        }
        Ok(server)
    }

    /// Returns the collection URL with `query` (already percent-encoded) appended.
    pub fn collection_url(&self, query: &str) -> String {
        let base = &self.base;
        if query.is_empty() {
            format!("{base}/{COLLECTION}")
        } else {
            format!("{base}/{COLLECTION}?{query}")
        }
    }

    /// Returns the URL of the entity with key `id`, which must need no percent-encoding.
    pub fn entity_url(&self, id: &str) -> String {
        format!("{}/{COLLECTION}/{id}", self.base)
    }

    /// Returns the `/$count` URL with `query` (already percent-encoded) appended.
    pub fn count_url(&self, query: &str) -> String {
        format!("{}/{COLLECTION}/$count?{query}", self.base)
    }

    /// Sends SIGTERM and waits for the process to exit.
    pub fn stop(mut self) -> anyhow::Result<()> {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .context("cannot run kill")?;
        if !status.success() {
            bail!("kill -TERM {} failed with {status}", self.child.id());
        }
        let exit = self.child.wait().context("cannot wait for the server")?;
        if !exit.success() {
            bail!("the server exited with {exit} after SIGTERM");
        }
        Ok(())
    }
}

impl Drop for Server {
    /// Kills a server that was not stopped, such as after a failed step.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Mints a read-only token for the development partner with `beacon token`.
pub fn mint_token(data_dir: &Path) -> anyhow::Result<String> {
    mint_token_with_scope(data_dir, READ_PERMISSION)
}

/// Mints a token with the permission `scope` for the development partner with `beacon token`.
pub fn mint_token_with_scope(data_dir: &Path, scope: &str) -> anyhow::Result<String> {
    let output = Command::new(beacon_binary())
        .args(["token", "--expires-in", "12h", "--scope", scope])
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .context("cannot run beacon token")?;
    if !output.status.success() {
        bail!("beacon token failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    Ok(String::from_utf8(output.stdout).context("the token is not UTF-8")?.trim().to_owned())
}

/// Percent-encodes `(name, value)` pairs into a query string.
pub fn encode_query(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(name, value)| format!("{name}={}", utf8_percent_encode(value, QUERY_VALUE)))
        .collect::<Vec<_>>()
        .join("&")
}

/// A response and the time from sending the request to having read the whole body.
#[derive(Debug)]
pub struct Timed {
    pub elapsed: Duration,
    pub status: u16,
    pub body: Vec<u8>,
}

impl Timed {
    /// Parses the body as JSON, failing unless the status is 200.
    pub fn json(&self, url: &str) -> anyhow::Result<serde_json::Value> {
        if self.status != 200 {
            bail!("GET {url} returned {}: {}", self.status, String::from_utf8_lossy(&self.body));
        }
        serde_json::from_slice(&self.body).with_context(|| format!("GET {url}: invalid JSON"))
    }
}

/// An HTTP client that reuses one keep-alive connection and sends the token with every request.
#[derive(Debug)]
pub struct Client {
    http: reqwest::Client,
    token: String,
}

impl Client {
    pub fn new(token: String) -> anyhow::Result<Client> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(300))
            .build()
            .context("cannot build the HTTP client")?;
        Ok(Client { http, token })
    }

    /// Sends `GET url`, asking for pages of `page_size` rows if given, and times it until the
    /// body has been read.
    pub async fn get(&self, url: &str, page_size: Option<usize>) -> anyhow::Result<Timed> {
        let mut request = self.http.get(url).bearer_auth(&self.token);
        if let Some(size) = page_size {
            request = request.header("Prefer", format!("odata.maxpagesize={size}"));
        }
        let started = Instant::now();
        let response = request.send().await.with_context(|| format!("GET {url} failed"))?;
        let status = response.status().as_u16();
        let body = response.bytes().await.with_context(|| format!("GET {url}: body failed"))?;
        Ok(Timed { elapsed: started.elapsed(), status, body: body.to_vec() })
    }

    /// Sends `POST url` with the JSON `body` and times it until the response body has been
    /// read.
    pub async fn post_json(&self, url: &str, body: &serde_json::Value) -> anyhow::Result<Timed> {
        let request = self.http.post(url).bearer_auth(&self.token).json(body);
        let started = Instant::now();
        let response = request.send().await.with_context(|| format!("POST {url} failed"))?;
        let status = response.status().as_u16();
        let body = response.bytes().await.with_context(|| format!("POST {url}: body failed"))?;
        Ok(Timed { elapsed: started.elapsed(), status, body: body.to_vec() })
    }
}
