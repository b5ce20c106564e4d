//! What the server writes to standard error: `--log-format json`, the request id on every line
//! logged while a request is served, and `RUST_LOG` filtering.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::{DataFolder, GRAPH, beacon_command, mint_token};

/// A server whose standard error is kept line by line.
struct LoggedServer {
    base: String,
    token: String,
    lines: Arc<Mutex<Vec<String>>>,
    child: Child,
    _folder: DataFolder,
}

impl LoggedServer {
    /// Starts a SQLite server with `args` and `RUST_LOG=rust_log`, and waits until it listens.
    fn start(args: &[&str], rust_log: &str) -> LoggedServer {
        let folder = DataFolder::new();
        let database = folder.path().join("beacon.sqlite3");
        let mut child = beacon_command()
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(folder.path())
            .arg("--database")
            .arg(&database)
            .args(args)
            .env("RUST_LOG", rust_log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines: Arc<Mutex<Vec<String>>> = Arc::default();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn({
            let lines = Arc::clone(&lines);
            move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    lines.lock().unwrap().push(line);
                }
            }
        });

        // The address is in the "listening on" line, whatever the format.
        let started = Instant::now();
        let base = loop {
            let found = lines.lock().unwrap().iter().find_map(|line| {
                let at = line.find("listening on http://")?;
                let rest = &line[at + "listening on ".len()..];
                Some(rest.split(['"', ' ']).next().unwrap().to_owned())
            });
            if let Some(base) = found {
                break base;
            }
            assert!(started.elapsed() < Duration::from_secs(30), "no listening line: {lines:?}");
            std::thread::sleep(Duration::from_millis(20));
        };
        let token = mint_token(folder.path(), &[]);
        LoggedServer { base, token, lines, child, _folder: folder }
    }

    /// Sends a request and returns its status and `request-id` header.
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, String) {
        let client = reqwest::Client::new();
        let mut request =
            client.request(method, format!("{}/beta/{path}", self.base)).bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let id = response.headers()["request-id"].to_str().unwrap().to_owned();
        (response.status().as_u16(), id)
    }

    /// Stops the server with SIGTERM and returns every line it wrote.
    fn stop(mut self) -> Vec<String> {
        let pid = self.child.id().to_string();
        let status = std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(status.success());
        assert!(self.child.wait().unwrap().success());
        // The reader thread ends with the pipe; give it a moment to take the last lines.
        std::thread::sleep(Duration::from_millis(100));
        self.lines.lock().unwrap().clone()
    }
}

impl Drop for LoggedServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn json_lines_carry_request_ids() {
    let server = LoggedServer::start(&["--log-format", "json"], "debug");

    // A read, a create (which logs at debug level in its handler), a client error and a
    // missing entity.
    let mut request_ids = Vec::new();
    for (method, path, body, expected) in [
        (reqwest::Method::GET, GRAPH.to_owned(), None, 200),
        (reqwest::Method::POST, GRAPH.to_owned(), Some(json!({ "id": "a" })), 201),
        (reqwest::Method::GET, format!("{GRAPH}?$top=x"), None, 400),
        (reqwest::Method::GET, format!("{GRAPH}/missing"), None, 404),
    ] {
        let (status, id) = server.send(method, &path, body).await;
        assert_eq!(status, expected, "{path}");
        request_ids.push(id);
    }
    let lines = server.stop();

    // Every line is a JSON object with a level and a message.
    let events: Vec<Value> = lines
        .iter()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
        .collect();
    for event in &events {
        assert!(event["level"].is_string(), "{event}");
        assert!(event["fields"]["message"].is_string(), "{event}");
    }

    // Between start and stop, every line belongs to a request and names its request id.
    let message = |event: &Value| event["fields"]["message"].as_str().unwrap().to_owned();
    let first = events.iter().position(|e| message(e).starts_with("listening on")).unwrap();
    let last = events.iter().position(|e| message(e).starts_with("received SIGTERM")).unwrap();
    let served = &events[first + 1..last];
    for event in served {
        let id = event["span"]["request_id"]
            .as_str()
            .unwrap_or_else(|| panic!("no request id: {event}"));
        assert!(request_ids.iter().any(|known| known == id), "unknown request id: {event}");
    }
    for id in &request_ids {
        let finished = served.iter().any(|event| {
            event["span"]["request_id"] == id.as_str() && message(event) == "request finished"
        });
        assert!(finished, "no request finished line for {id}");
    }
    let created = served
        .iter()
        .find(|event| message(event) == "created entity")
        .expect("a debug line from the create handler");
    assert_eq!(created["span"]["request_id"], request_ids[1].as_str());
}

#[tokio::test]
async fn text_lines_carry_request_ids() {
    let server = LoggedServer::start(&[], "info");
    let (status, id) = server.send(reqwest::Method::GET, GRAPH, None).await;
    assert_eq!(status, 200);
    let lines = server.stop();

    let finished = lines.iter().find(|line| line.contains("request finished")).unwrap();
    assert!(finished.contains(&format!("request_id={id}")), "{finished}");
    assert!(lines.iter().all(|line| !line.starts_with('{')), "JSON in text format: {lines:?}");
}

#[tokio::test]
async fn rust_log_filters_by_target_and_level() {
    // Requests are logged by beacon_server at info level, the start by beacon.
    let server = LoggedServer::start(&[], "info,beacon_server=warn");
    let (status, _) = server.send(reqwest::Method::GET, GRAPH, None).await;
    assert_eq!(status, 200);
    let lines = server.stop();
    assert!(lines.iter().any(|line| line.contains("listening on")));
    assert!(!lines.iter().any(|line| line.contains("request finished")), "{lines:?}");
    assert!(!lines.iter().any(|line| line.contains("DEBUG")), "{lines:?}");

    // Debug lines appear for the one module whose directive requests them.
    let server = LoggedServer::start(&[], "info,beacon_server::writes=debug");
    let (status, _) = server.send(reqwest::Method::POST, GRAPH, Some(json!({ "id": "a" }))).await;
    assert_eq!(status, 201);
    let lines = server.stop();
    assert!(lines.iter().any(|line| line.contains("created entity")), "{lines:?}");
    assert!(lines.iter().any(|line| line.contains("request finished")), "{lines:?}");
}

#[tokio::test]
async fn invalid_rust_log_warns_and_logs_info() {
    let server = LoggedServer::start(&[], "beacon=notalevel");
    let (status, _) = server.send(reqwest::Method::GET, GRAPH, None).await;
    assert_eq!(status, 200);
    let lines = server.stop();
    let warning = lines.iter().find(|line| line.contains("RUST_LOG")).expect("a warning");
    assert!(warning.contains("WARN"), "{warning}");
    assert!(lines.iter().any(|line| line.contains("request finished")), "{lines:?}");
}
