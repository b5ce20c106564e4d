//! Starting servers, minting tokens and sending requests.
//!
//! Servers store their rows in SQLite in their data folder by default. With
//! `BEACON_TEST_STORE=postgres`, each data folder gets a PostgreSQL schema of its own on the
//! server at `BEACON_TEST_POSTGRES_URL` (default [`DEFAULT_POSTGRES_URL`]).
//! Every server started on that folder uses the schema, so restarts find their rows, and the
//! schema is dropped with its [`DataFolder`].

use std::hash::{Hash, Hasher};
use std::io::{BufRead, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{Value, json};

pub const SEED: &str = "aggregatedPolicyCompliances";
pub const GRAPH: &str = "tenantRelationships/managedTenants/aggregatedPolicyCompliances";
pub const READ_WRITE: &str = "DeviceManagementConfiguration.ReadWrite.All";
pub const READ: &str = "DeviceManagementConfiguration.Read.All";

/// Builds the seed view's example create body, with realistic values.
pub fn seed_example() -> Value {
    json!({
        "@odata.type": "#microsoft.management.services.api.aggregatedPolicyCompliance",
        "organizationId": "4a3bc0d2-51e2-4c5f-9c61-0d6a4e1f0b7a",
        "organizationDisplayName": "Contoso Ltd",
        "compliancePolicyId": "0c4bd1d4-1d3f-4b86-8b93-3f0a5d0e5c21",
        "compliancePolicyName": "Windows 10 baseline",
        "compliancePolicyType": "deviceCompliancePolicy",
        "compliancePolicyPlatform": "windows10AndLater",
        "numberOfCompliantDevices": 120,
        "numberOfNonCompliantDevices": 7,
        "numberOfErrorDevices": 1,
        "policyModifiedDateTime": "2024-02-12T09:15:00Z",
        "lastRefreshedDateTime": "2024-03-01T07:30:00.1234567Z"
    })
}

/// Returns the path of the beacon binary under test.
pub fn beacon_binary() -> &'static str {
    env!("CARGO_BIN_EXE_beacon")
}

/// Starts a `beacon` command without the `BEACON_*` variables of the test's environment, so
/// that a run with `BEACON_TEST_STORE` or `BEACON_DATA_DIR` set uses the defaults.
pub fn beacon_command() -> Command {
    let mut command = Command::new(beacon_binary());
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("BEACON_") {
            command.env_remove(name);
        }
    }
    command
}

/// A running `beacon serve` process with its own data folder.
pub struct TestServer {
    pub base: String,
    pub data_dir: PathBuf,
    pub client: reqwest::Client,
    /// The server's log lines so far.
    pub log: Log,
    token: String,
    child: Child,
    _dir: Option<DataFolder>,
}

impl TestServer {
    /// Starts a server on a new temporary data folder.
    pub async fn start() -> TestServer {
        Self::start_with(&[]).await
    }

    /// Starts a server on a new temporary data folder with extra `beacon serve` arguments.
    pub async fn start_with(args: &[&str]) -> TestServer {
        let folder = DataFolder::new();
        let mut server = Self::start_in_with(folder.path(), args).await;
        server._dir = Some(folder);
        server
    }

    /// Starts a server on `data_dir`, which the caller keeps.
    pub async fn start_in(data_dir: &Path) -> TestServer {
        Self::start_in_with(data_dir, &[]).await
    }

    /// Starts a server on `data_dir`, which the caller keeps, with extra `beacon serve`
    /// arguments.
    pub async fn start_in_with(data_dir: &Path, args: &[&str]) -> TestServer {
        let data_dir = data_dir.to_owned();
        let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        let (child, base, log) = tokio::task::spawn_blocking({
            let data_dir = data_dir.clone();
            move || spawn_serve_logged(&data_dir, &args, true)
        })
        .await
        .unwrap();
        let token = mint_token(&data_dir, &[]);
        let client = reqwest::Client::new();
        TestServer { base, data_dir, client, log, token, child, _dir: None }
    }

    /// Kills the process with SIGKILL and waits for it to be gone.
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Sends SIGTERM, then waits for the process to exit, and returns its exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let status =
            Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status().unwrap();
        assert!(status.success());
        self.child.wait().unwrap()
    }

    /// Sends SIGTERM and returns at once.
    pub fn send_sigterm(&self) {
        let status =
            Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status().unwrap();
        assert!(status.success());
    }

    /// Waits up to 10 seconds for a log line that contains `text`, and returns the whole log
    /// so far. The log is read from the process on another thread, so a line written just
    /// before a response may arrive after it.
    pub async fn wait_for_log(&self, text: &str) -> String {
        let started = std::time::Instant::now();
        loop {
            let logged = self.log.lock().unwrap().join("\n");
            if logged.contains(text) || started.elapsed() > Duration::from_secs(10) {
                return logged;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits up to `bound` for the process to exit, and returns its exit status, or `None`
    /// if it still runs.
    pub fn wait_for_exit(&mut self, bound: Duration) -> Option<std::process::ExitStatus> {
        let started = std::time::Instant::now();
        while started.elapsed() < bound {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Returns the absolute URL of a path below `/beta`.
    pub fn url(&self, path: &str) -> String {
        format!("{}/beta/{path}", self.base)
    }

    /// Returns the read-write token minted for the default dev partner.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Mints a token for this server with the given `beacon token` arguments.
    pub fn token_with(&self, args: &[&str]) -> String {
        mint_token(&self.data_dir, args)
    }

    /// Starts a request that carries this server's token.
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client.request(method, self.url(path)).bearer_auth(&self.token)
    }

    /// POSTs a JSON body to a collection.
    pub async fn create(&self, collection: &str, body: &Value) -> reqwest::Response {
        self.request(reqwest::Method::POST, collection).json(body).send().await.unwrap()
    }

    /// GETs a path and returns the status and the parsed JSON body.
    pub async fn get_json(&self, path: &str) -> (u16, Value) {
        let response = self.request(reqwest::Method::GET, path).send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }

    /// Reads every entity of a collection by following next links.
    pub async fn list_all(&self, collection: &str) -> Vec<Value> {
        let mut entities = Vec::new();
        let mut url = self.url(collection);
        loop {
            let response = self.client.get(&url).bearer_auth(&self.token).send().await.unwrap();
            assert_eq!(response.status(), 200);
            let page: Value = response.json().await.unwrap();
            entities.extend(page["value"].as_array().unwrap().iter().cloned());
            match page["@odata.nextLink"].as_str() {
                Some(next) => url = next.to_owned(),
                None => return entities,
            }
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A temporary data folder, and the PostgreSQL schema that servers on it use, if any.
pub struct DataFolder {
    _dir: tempfile::TempDir,
    path: PathBuf,
    /// The server URL and name of a schema that this folder created and drops.
    schema: std::sync::Mutex<Option<(String, String)>>,
}

impl DataFolder {
    /// Creates a temporary folder. The data folder is `data` inside it and does not exist yet,
    /// so the server creates it as it would for a new user.
    pub fn new() -> DataFolder {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data");
        DataFolder { _dir: dir, path, schema: std::sync::Mutex::new(None) }
    }

    /// Returns the data folder's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Creates this folder's schema on the PostgreSQL server at `url` if it does not exist,
    /// and returns its name. The schema is dropped with the folder.
    pub fn use_postgres_schema(&self, url: &str) -> String {
        let name = schema_name(&self.path);
        postgres_execute(url, &format!("CREATE SCHEMA IF NOT EXISTS {name}"))
            .unwrap_or_else(|error| panic!("creating the test schema {name} failed: {error}"));
        *self.schema.lock().unwrap() = Some((url.to_owned(), name.clone()));
        name
    }
}

impl Drop for DataFolder {
    fn drop(&mut self) {
        // In PostgreSQL runs a server may have created the schema for this folder's path.
        let created = self.schema.lock().unwrap().take();
        let from_run = test_postgres_url().map(|url| (url, schema_name(&self.path)));
        if let Some((url, name)) = created.or(from_run) {
            let dropped = postgres_execute(&url, &format!("DROP SCHEMA IF EXISTS {name} CASCADE"));
            if let Err(error) = dropped {
                eprintln!("dropping the test schema {name} failed: {error}");
            }
        }
    }
}

/// The local test server. TLS is off because a local server's certificate is often valid for
/// `localhost` only, and the store verifies the host name.
pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable";

/// Returns the PostgreSQL server's URL when this run's servers use PostgreSQL
/// (`BEACON_TEST_STORE=postgres`), and `None` when they use SQLite.
pub fn test_postgres_url() -> Option<String> {
    match std::env::var("BEACON_TEST_STORE").as_deref() {
        Ok("postgres") => Some(
            std::env::var("BEACON_TEST_POSTGRES_URL")
                .unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_owned()),
        ),
        Ok("sqlite") | Err(_) => None,
        Ok(other) => panic!("BEACON_TEST_STORE must be sqlite or postgres, not {other:?}"),
    }
}

/// Returns the name of the PostgreSQL schema that servers on `data_dir` use.
pub fn schema_name(data_dir: &Path) -> String {
    // The default hasher's keys are fixed, so the name is the same every time in one run.
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    data_dir.hash(&mut hasher);
    format!("beacon_api_{:016x}", hasher.finish())
}

/// Returns `url` with connection options that select `schema` as the search path.
pub fn url_with_schema(url: &str, schema: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}options=-csearch_path%3D{schema}")
}

/// Runs SQL statements on the PostgreSQL server at `url`, on a runtime of its own so that it
/// can be called from synchronous code and from drops.
pub fn postgres_execute(url: &str, sql: &str) -> Result<(), String> {
    let (url, sql) = (url.to_owned(), sql.to_owned());
    let outcome = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|error| error.to_string())?;
        runtime.block_on(async {
            let (client, connection) =
                tokio_postgres::connect(&url, tokio_postgres::NoTls)
                    .await
                    .map_err(|error| format!("cannot connect to {url}: {error}"))?;
            tokio::spawn(connection);
            client.batch_execute(&sql).await.map_err(|error| error.to_string())
        })
    })
    .join();
    outcome.unwrap_or_else(|_| Err("the PostgreSQL thread panicked".to_owned()))
}

/// Runs one query on the PostgreSQL server at `url` and returns its rows, converted by `read`.
pub fn postgres_query<T: Send + 'static>(
    url: &str,
    sql: &str,
    read: fn(&tokio_postgres::Row) -> T,
) -> Vec<T> {
    let (url, sql) = (url.to_owned(), sql.to_owned());
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let (client, connection) =
                tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
            tokio::spawn(connection);
            client.query(&sql, &[]).await.unwrap().iter().map(read).collect()
        })
    })
    .join()
    .unwrap()
}

/// Returns the PostgreSQL URL, or `None` after printing why the test is skipped.
pub fn postgres_url_or_skip(test: &str) -> Option<String> {
    let url = test_postgres_url().unwrap_or_else(|| {
        std::env::var("BEACON_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_owned())
    });
    match postgres_execute(&url, "SELECT 1") {
        Ok(()) => Some(url),
        Err(reason) if std::env::var("BEACON_REQUIRE_POSTGRES").is_ok_and(|v| v == "1") => {
            panic!("PostgreSQL is unreachable and BEACON_REQUIRE_POSTGRES=1: {reason}")
        }
        Err(reason) => {
            // Written past the test harness's output capture, so the skip shows in a passing run.
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED {test}: {reason}; set BEACON_TEST_POSTGRES_URL to a reachable server, \
                 or BEACON_REQUIRE_POSTGRES=1 to fail"
            );
            None
        }
    }
}

/// Returns the `--database` arguments that put a server on `data_dir` in its PostgreSQL schema,
/// and creates the schema if needed. Returns nothing in SQLite runs and when `args` name a
/// database.
pub fn database_args(data_dir: &Path, args: &[String]) -> Vec<String> {
    let Some(url) = test_postgres_url() else { return Vec::new() };
    if args.iter().any(|arg| arg == "--database") {
        return Vec::new();
    }
    let schema = schema_name(data_dir);
    postgres_execute(&url, &format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
        .unwrap_or_else(|error| panic!("BEACON_TEST_STORE=postgres: {error}"));
    vec!["--database".to_owned(), url_with_schema(&url, &schema)]
}

/// Runs `beacon serve` and waits for its "listening on" line.
///
/// The rate limits are off unless `args` turn them on, because most tests send requests
/// faster than the default limits allow.
pub fn spawn_serve(data_dir: &Path, args: &[String]) -> (Child, String) {
    let (child, base, _) = spawn_serve_logged(data_dir, args, false);
    (child, base)
}

/// The log lines a server has written on standard error so far.
pub type Log = std::sync::Arc<std::sync::Mutex<Vec<String>>>;

/// Runs `beacon serve` as [`spawn_serve`] does, and with `keep_log` keeps its log lines.
pub fn spawn_serve_logged(
    data_dir: &Path,
    args: &[String],
    keep_log: bool,
) -> (Child, String, Log) {
    let log = Log::default();
    let mut child = Command::new(beacon_binary())
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .args(database_args(data_dir, args))
        .args(args)
        .env("RUST_LOG", "info")
        .env("BEACON_RATE_LIMIT", "0")
        .env("BEACON_CLIENT_RATE_LIMIT", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    // Keep draining standard error so the server never blocks on a full pipe.
    let stderr = child.stderr.take().unwrap();
    let (found, listening) = mpsc::channel();
    let kept = std::sync::Arc::clone(&log);
    std::thread::spawn(move || {
        let mut found = Some(found);
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(at) = line.find("listening on http://") {
                let url = line[at + "listening on ".len()..]
                    .split_whitespace()
                    .next()
                    .unwrap()
                    .to_owned();
                if let Some(sender) = found.take() {
                    let _ = sender.send(url);
                }
            }
            if std::env::var_os("BEACON_TEST_LOG").is_some() {
                eprintln!("server: {line}");
            }
            if keep_log {
                kept.lock().unwrap().push(line);
            }
        }
    });
    let base = listening
        .recv_timeout(Duration::from_secs(30))
        .expect("the server did not report its address within 30 seconds");
    (child, base, log)
}

/// Runs `beacon token` for `data_dir` with extra arguments.
pub fn mint_token(data_dir: &Path, args: &[&str]) -> String {
    let output = Command::new(beacon_binary())
        .arg("token")
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "beacon token failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

/// Asserts that a response is a Graph error with the given status and code, and returns its
/// message.
pub async fn assert_graph_error(response: reqwest::Response, status: u16, code: &str) -> String {
    assert_eq!(response.status().as_u16(), status, "unexpected status");
    let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(content_type.starts_with("application/json"), "content type {content_type}");
    let request_id = response.headers()["request-id"].to_str().unwrap().to_owned();
    let body: Value = response.json().await.unwrap();
    let error = &body["error"];
    assert_eq!(error["code"], code, "body {body}");
    let message = error["message"].as_str().expect("a message").to_owned();
    assert!(!message.is_empty());
    let inner = &error["innerError"];
    assert_eq!(inner["request-id"], request_id.as_str());
    assert!(inner["client-request-id"].is_string());
    let date = inner["date"].as_str().unwrap();
    assert!(date.ends_with('Z') || date.contains('+'), "date without offset: {date}");
    message
}

/// Percent-encodes a query option value as a careful client does: spaces as `%20`, `+` as
/// `%2B`, and every other character outside a small safe set as UTF-8 escapes.
pub fn encode_query_value(value: &str) -> String {
    let mut out = String::new();
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z'
            | b'a'..=b'z'
            | b'0'..=b'9'
            | b'-'
            | b'.'
            | b'_'
            | b'~'
            | b'\''
            | b'('
            | b')'
            | b','
            | b'/'
            | b'$' => out.push(byte as char),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// GETs one page of a listing with `Prefer: odata.maxpagesize=page_size`, expects `200` and
/// returns the body.
pub async fn get_page(server: &TestServer, url: &str, page_size: usize) -> Value {
    let response = server
        .client
        .get(url)
        .bearer_auth(server.token())
        .header("prefer", format!("odata.maxpagesize={page_size}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "GET {url}");
    response.json().await.unwrap()
}
