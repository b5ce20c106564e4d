//! Monitoring: `/metrics` in the Prometheus text format, `--metrics-listen`, and `/readyz`.
//!
//! Each test starts its own server, so the counters it reads start at zero. The text is checked
//! line by line against the exposition format ([`parse_exposition`]) before any value is read.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use percent_encoding::NON_ALPHANUMERIC;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::*;

/// The `route` label values the server may use.
const ROUTES: [&str; 13] = [
    "collection",
    "entity",
    "count",
    "service",
    "container",
    "metadata",
    "openapi",
    "batch",
    "healthz",
    "readyz",
    "metrics",
    "dashboard",
    "unknown",
];

/// One sample line of the exposition.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A parsed exposition: its samples in order, and the declared type of each metric family.
#[derive(Debug)]
struct Exposition {
    samples: Vec<Sample>,
    types: BTreeMap<String, String>,
}

impl Exposition {
    /// Returns the value of the sample `name` whose labels are exactly `labels`.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let wanted: BTreeMap<String, String> =
            labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        self.samples.iter().find(|s| s.name == name && s.labels == wanted).map(|s| s.value)
    }

    /// Returns every sample named `name`.
    fn named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |sample| sample.name == name)
    }
}

fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Parses a sample value: a float, `+Inf`, `-Inf` or `NaN`.
fn parse_value(text: &str) -> Option<f64> {
    match text {
        "+Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => text.parse().ok(),
    }
}

/// Parses `{name="value",...}` at the start of `text`, and returns the labels and the rest.
fn parse_labels(text: &str) -> Result<(BTreeMap<String, String>, &str), String> {
    let mut labels = BTreeMap::new();
    let mut rest = text.strip_prefix('{').ok_or("expected '{'")?;
    loop {
        if let Some(after) = rest.strip_prefix('}') {
            return Ok((labels, after));
        }
        let (name, after) = rest.split_once("=\"").ok_or("expected name=\"value\"")?;
        if !is_label_name(name) {
            return Err(format!("invalid label name {name:?}"));
        }
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next().ok_or("unterminated label value")? {
                (i, '"') => break i,
                (_, '\\') => match chars.next().ok_or("dangling escape")?.1 {
                    '\\' => value.push('\\'),
                    '"' => value.push('"'),
                    'n' => value.push('\n'),
                    other => return Err(format!("invalid escape \\{other}")),
                },
                (_, '\n') => return Err("raw line break in a label value".to_owned()),
                (_, c) => value.push(c),
            }
        };
        if labels.insert(name.to_owned(), value).is_some() {
            return Err(format!("label {name} given twice"));
        }
        rest = &after[end + 1..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
}

/// Returns the family a sample belongs to: its name without the `_bucket`, `_sum` or `_count`
/// of a histogram or summary.
fn family_of<'a>(name: &'a str, types: &BTreeMap<String, String>) -> &'a str {
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix)
            && types.get(base).is_some_and(|t| t == "histogram" || t == "summary")
        {
            return base;
        }
    }
    name
}

/// Parses the Prometheus text exposition format (version 0.0.4), failing with the line number
/// on anything that the format does not allow, and checks each histogram's buckets.
fn parse_exposition(text: &str) -> Exposition {
    let mut samples = Vec::new();
    let mut types = BTreeMap::new();
    let mut helps = BTreeSet::new();
    let mut seen_series = BTreeSet::new();
    let mut families_with_samples = BTreeSet::new();

    for (number, line) in text.lines().enumerate() {
        let fail = |reason: &str| -> ! { panic!("line {}: {reason}: {line:?}", number + 1) };
        if line.trim().is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            let words: Vec<&str> = comment.trim_start().splitn(3, ' ').collect();
            match words.as_slice() {
                ["HELP", name, _] | ["HELP", name] => {
                    let repeated = !helps.insert((*name).to_owned());
                    if repeated || !is_metric_name(name) {
                        fail("invalid or repeated HELP");
                    }
                }
                ["TYPE", name, kind] => {
                    let known = ["counter", "gauge", "histogram", "summary", "untyped"];
                    if !is_metric_name(name) || !known.contains(kind) {
                        fail("invalid TYPE");
                    }
                    if families_with_samples.contains(*name) {
                        fail("TYPE after the family's samples");
                    }
                    if types.insert((*name).to_owned(), (*kind).to_owned()).is_some() {
                        fail("repeated TYPE");
                    }
                }
                _ => {}
            }
            continue;
        }

        let name_end = line.find(['{', ' ']).unwrap_or_else(|| fail("no value"));
        let name = &line[..name_end];
        if !is_metric_name(name) {
            fail("invalid metric name");
        }
        let (labels, rest) = if line[name_end..].starts_with('{') {
            parse_labels(&line[name_end..]).unwrap_or_else(|reason| fail(&reason))
        } else {
            (BTreeMap::new(), &line[name_end..])
        };
        let mut fields = rest.split(' ').filter(|field| !field.is_empty());
        let value = fields.next().and_then(parse_value).unwrap_or_else(|| fail("invalid value"));
        if let Some(timestamp) = fields.next()
            && timestamp.parse::<i64>().is_err()
        {
            fail("invalid timestamp");
        }
        if fields.next().is_some() {
            fail("text after the timestamp");
        }
        if !seen_series.insert((name.to_owned(), labels.clone())) {
            fail("repeated series");
        }
        let family = family_of(name, &types);
        if !types.contains_key(family) {
            fail("sample without a TYPE line before it");
        }
        families_with_samples.insert(family.to_owned());
        samples.push(Sample { name: name.to_owned(), labels, value });
    }

    let exposition = Exposition { samples, types };
    check_histograms(&exposition);
    exposition
}

/// Checks that each histogram series has cumulative buckets ending in `+Inf`, whose count is
/// the series' `_count`, and a `_sum`.
fn check_histograms(exposition: &Exposition) {
    for (family, kind) in &exposition.types {
        if kind != "histogram" {
            continue;
        }
        let mut buckets: BTreeMap<BTreeMap<String, String>, Vec<(f64, f64)>> = BTreeMap::new();
        for sample in exposition.named(&format!("{family}_bucket")) {
            let mut labels = sample.labels.clone();
            let le = labels.remove("le").expect("a bucket without le");
            let bound = parse_value(&le).expect("an le that is not a number");
            buckets.entry(labels).or_default().push((bound, sample.value));
        }
        assert!(!buckets.is_empty(), "the histogram {family} has no buckets");
        for (labels, series) in buckets {
            let pairs: Vec<(&str, &str)> =
                labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            for pair in series.windows(2) {
                assert!(pair[0].0 < pair[1].0, "{family} {labels:?}: bounds out of order");
                assert!(pair[0].1 <= pair[1].1, "{family} {labels:?}: counts decrease");
            }
            let (last_bound, last_count) = *series.last().unwrap();
            assert_eq!(last_bound, f64::INFINITY, "{family} {labels:?}: no +Inf bucket");
            let count = exposition.value(&format!("{family}_count"), &pairs);
            assert_eq!(count, Some(last_count), "{family} {labels:?}: _count");
            let sum = exposition.value(&format!("{family}_sum"), &pairs);
            assert!(sum.is_some(), "{family} {labels:?}: no _sum");
        }
    }
}

/// GETs `url`, expects `200` with the Prometheus text content type, and parses the body.
async fn scrape_url(client: &reqwest::Client, url: &str) -> (String, Exposition) {
    let response = client.get(url).send().await.unwrap();
    assert_eq!(response.status(), 200, "GET {url}");
    let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(content_type.starts_with("text/plain; version=0.0.4"), "{content_type}");
    let text = response.text().await.unwrap();
    let exposition = parse_exposition(&text);
    (text, exposition)
}

/// Scrapes the metrics of a server that serves them on its main listener.
async fn scrape(server: &TestServer) -> (String, Exposition) {
    scrape_url(&server.client, &format!("{}/metrics", server.base)).await
}

/// Builds the labels of the request counter and histogram.
fn request_labels<'a>(
    route: &'a str,
    view: Option<&'a str>,
    method: &'a str,
    status: &'a str,
) -> Vec<(&'a str, &'a str)> {
    let mut labels = vec![("route", route), ("method", method), ("status", status)];
    if let Some(view) = view {
        labels.push(("view", view));
    }
    labels
}

/// Returns the number of requests counted with these labels, checking that the histogram
/// counted the same number.
fn requests(exposition: &Exposition, labels: &[(&str, &str)]) -> f64 {
    let counted = exposition.value("beacon_http_requests_total", labels).unwrap_or(0.0);
    let timed =
        exposition.value("beacon_http_request_duration_seconds_count", labels).unwrap_or(0.0);
    assert_eq!(counted, timed, "counter and histogram disagree for {labels:?}");
    counted
}

#[tokio::test]
async fn metrics_are_prometheus_text_without_token() {
    let server = TestServer::start().await;
    assert_eq!(server.create(SEED, &seed_example()).await.status(), 201);

    let (text, exposition) = scrape(&server).await;

    for family in [
        "beacon_http_requests_total",
        "beacon_http_request_duration_seconds",
        "beacon_store_operation_duration_seconds",
        "beacon_store_pool_connections",
        "beacon_store_rows",
        "beacon_build_info",
    ] {
        assert!(exposition.types.contains_key(family), "no {family} in\n{text}");
        assert!(text.contains(&format!("# HELP {family} ")), "no help for {family}");
    }
    assert_eq!(exposition.types["beacon_http_requests_total"], "counter");
    assert_eq!(exposition.types["beacon_http_request_duration_seconds"], "histogram");
}

#[tokio::test]
async fn build_info_names_the_version() {
    let server = TestServer::start().await;

    let (_, exposition) = scrape(&server).await;

    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(exposition.value("beacon_build_info", &[("version", version)]), Some(1.0));
}

#[tokio::test]
async fn requests_counted_by_route_and_status() {
    let server = TestServer::start().await;
    assert_eq!(server.create(SEED, &seed_example()).await.status(), 201);
    let missing = server.request(Method::GET, &format!("{GRAPH}/missing")).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    let anonymous = server.client.get(server.url(SEED)).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let outside = server.client.get(format!("{}/nowhere", server.base)).send().await.unwrap();
    assert_eq!(outside.status(), 400);
    let count = server.request(Method::GET, &format!("{GRAPH}/$count")).send().await.unwrap();
    assert_eq!(count.status(), 200);
    let health = server.client.get(format!("{}/healthz", server.base)).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let page = server.client.get(format!("{}/dashboard", server.base)).send().await.unwrap();
    assert_eq!(page.status(), 200);

    let (_, exposition) = scrape(&server).await;

    let created = request_labels("collection", Some("seed"), "POST", "201");
    assert_eq!(requests(&exposition, &created), 1.0);
    let not_found = request_labels("entity", Some("graph"), "GET", "404");
    assert_eq!(requests(&exposition, &not_found), 1.0);
    let unauthorized = request_labels("collection", Some("seed"), "GET", "401");
    assert_eq!(requests(&exposition, &unauthorized), 1.0);
    let unresolved = request_labels("unknown", None, "GET", "400");
    assert_eq!(requests(&exposition, &unresolved), 1.0);
    let counted = request_labels("count", Some("graph"), "GET", "200");
    assert_eq!(requests(&exposition, &counted), 1.0);
    let healthz = request_labels("healthz", None, "GET", "200");
    assert_eq!(requests(&exposition, &healthz), 1.0);
    let dashboard = request_labels("dashboard", None, "GET", "200");
    assert_eq!(requests(&exposition, &dashboard), 1.0);

    // The create went through the store once.
    let creates = exposition
        .value("beacon_store_operation_duration_seconds_count", &[("operation", "create")]);
    assert_eq!(creates, Some(1.0));
}

#[tokio::test]
async fn rejections_before_routing_are_counted() {
    let server = TestServer::start_with(&["--max-url-bytes", "1024"]).await;
    let long = format!("{SEED}?$filter={}", "a".repeat(2000));
    let too_long = server.request(Method::GET, &long).send().await.unwrap();
    assert_eq!(too_long.status(), 414);
    let made_up = Method::from_bytes(b"BREW").unwrap();
    let brewed = server.request(made_up, SEED).send().await.unwrap();
    assert_eq!(brewed.status(), 405);

    let (_, exposition) = scrape(&server).await;

    let rejected = request_labels("unknown", None, "GET", "414");
    assert_eq!(requests(&exposition, &rejected), 1.0);
    let other_method = request_labels("collection", Some("seed"), "other", "405");
    assert_eq!(requests(&exposition, &other_method), 1.0);
}

#[tokio::test]
async fn hostile_ids_stay_out_of_labels() {
    let server = TestServer::start().await;
    let hostile = [
        "marker-quote\"}evil{",
        "marker-newline\nbeacon_build_info 2",
        "marker-backslash\\",
        "marker-unicode-Ärger-🙂",
        "marker-slash/../../metrics",
        "marker-long-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    ];
    for (index, id) in hostile.iter().enumerate() {
        let encoded = percent_encoding::utf8_percent_encode(id, NON_ALPHANUMERIC);
        let path = format!("{GRAPH}/{encoded}");
        let response = server.request(Method::GET, &path).send().await.unwrap();
        assert_eq!(response.status(), 404, "id {index}");
        let body = json!({ "id": id, "tenantDisplayName": "x" });
        let created = server.create(GRAPH, &body).await;
        assert_eq!(created.status(), 201, "id {index}");
    }

    let (text, exposition) = scrape(&server).await;

    assert!(!text.contains("marker"), "an id reached the metrics:\n{text}");
    for sample in &exposition.samples {
        if let Some(route) = sample.labels.get("route") {
            assert!(ROUTES.contains(&route.as_str()), "route {route}");
        }
    }
    let series = exposition.named("beacon_http_requests_total").count();
    assert_eq!(series, 2, "one series for the 404s and one for the 201s");
    assert_eq!(
        exposition.value("beacon_build_info", &[("version", env!("CARGO_PKG_VERSION"))]),
        Some(1.0)
    );
}

#[tokio::test]
async fn store_gauges_count_rows_and_connections() {
    let server = TestServer::start().await;
    for id in ["a", "b", "c"] {
        let body = json!({ "id": id });
        assert_eq!(server.create(GRAPH, &body).await.status(), 201);
    }
    let deleted = server.request(Method::DELETE, &format!("{GRAPH}/b")).send().await.unwrap();
    assert_eq!(deleted.status(), 204);

    let (_, exposition) = scrape(&server).await;

    assert_eq!(exposition.value("beacon_store_rows", &[]), Some(2.0));
    let idle = exposition.value("beacon_store_pool_connections", &[("state", "idle")]);
    assert!(idle.is_some_and(|idle| idle >= 1.0), "idle connections {idle:?}");
    let deletes = exposition
        .value("beacon_store_operation_duration_seconds_count", &[("operation", "delete")]);
    assert_eq!(deletes, Some(1.0));
    if test_postgres_url().is_none() {
        // Only the SQLite store has a writer thread with a queue and group transactions.
        assert_eq!(exposition.value("beacon_store_write_queue_depth", &[]), Some(0.0));
        let groups = exposition.value("beacon_store_commit_writes_count", &[]).unwrap();
        let writes = exposition.value("beacon_store_commit_writes_sum", &[]).unwrap();
        assert!((1.0..=4.0).contains(&groups), "{groups} groups");
        assert_eq!(writes, 4.0);
        assert!(exposition.value("beacon_store_commit_duration_seconds_count", &[]).is_some());
    } else {
        assert!(exposition.value("beacon_store_pool_waiting", &[]).is_some());
    }
}

#[tokio::test]
async fn probes_skip_rate_limits() {
    let server =
        TestServer::start_with(&["--client-rate-limit", "0.001", "--client-rate-burst", "1"]).await;
    for _ in 0..5 {
        scrape(&server).await;
        let ready = server.client.get(format!("{}/readyz", server.base)).send().await.unwrap();
        assert_eq!(ready.status(), 200);
    }

    // The address's single token is still there for the first request that needs one.
    let metadata = server.client.get(server.url("$metadata")).send().await.unwrap();
    assert_eq!(metadata.status(), 200);
    let limited = server.client.get(server.url("$metadata")).send().await.unwrap();
    assert_eq!(limited.status(), 429);

    let (_, exposition) = scrape(&server).await;
    let rejected = request_labels("metadata", None, "GET", "429");
    assert_eq!(requests(&exposition, &rejected), 1.0);
    let scrapes = request_labels("metrics", None, "GET", "200");
    assert_eq!(requests(&exposition, &scrapes), 5.0);
}

#[tokio::test]
async fn readyz_200_on_healthy_server() {
    let server = TestServer::start().await;

    let response = server.client.get(format!("{}/readyz", server.base)).send().await.unwrap();

    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, json!({ "status": "ready" }));
}

/// Runs SQL against the database of `server`: its PostgreSQL schema in PostgreSQL runs, else
/// its SQLite file.
fn execute_in_database(server: &TestServer, sql: &str) {
    match test_postgres_url() {
        Some(url) => {
            let schema = schema_name(&server.data_dir);
            postgres_execute(&url_with_schema(&url, &schema), sql).unwrap();
        }
        None => {
            let path = server.data_dir.join("beacon.sqlite3");
            rusqlite::Connection::open(path).unwrap().execute_batch(sql).unwrap();
        }
    }
}

#[tokio::test]
async fn readyz_503_on_schema_version_mismatch() {
    let server = TestServer::start().await;
    let readyz = || server.client.get(format!("{}/readyz", server.base)).send();

    // As after a newer server migrated the schema further.
    execute_in_database(&server, "UPDATE schema_migrations SET version = version + 1000");
    let response = readyz().await.unwrap();
    assert!(response.headers().contains_key("retry-after"));
    let message = assert_graph_error(response, 503, "ServiceUnavailable").await;
    assert!(message.contains("not ready"), "{message}");
    let health = server.client.get(format!("{}/healthz", server.base)).send().await.unwrap();
    assert_eq!(health.status(), 200, "the process is still alive");

    execute_in_database(&server, "UPDATE schema_migrations SET version = version - 1000");
    assert_eq!(readyz().await.unwrap().status(), 200);
}

#[tokio::test]
async fn readyz_503_after_schema_drop() {
    let Some(url) = postgres_url_or_skip("readyz_503_after_schema_drop") else {
        return;
    };
    let folder = DataFolder::new();
    let schema = folder.use_postgres_schema(&url);
    let database = url_with_schema(&url, &schema);
    let server = TestServer::start_in_with(folder.path(), &["--database", &database]).await;
    let readyz = || server.client.get(format!("{}/readyz", server.base)).send();
    assert_eq!(readyz().await.unwrap().status(), 200);

    postgres_execute(&url, &format!("DROP SCHEMA {schema} CASCADE")).unwrap();

    let response = readyz().await.unwrap();
    assert!(response.headers().contains_key("retry-after"));
    assert_graph_error(response, 503, "ServiceUnavailable").await;
}

/// A server started with `--metrics-listen 127.0.0.1:0`.
struct SplitServer {
    child: Child,
    base: String,
    metrics_base: String,
    client: reqwest::Client,
    _folder: DataFolder,
}

impl SplitServer {
    /// Starts the server and waits until both listeners report their addresses.
    fn start() -> SplitServer {
        let folder = DataFolder::new();
        let mut command = Command::new(beacon_binary());
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(folder.path());
        if let Some(url) = test_postgres_url() {
            let schema = folder.use_postgres_schema(&url);
            command.args(["--database", &url_with_schema(&url, &schema)]);
        }
        let mut child = command
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
        let (found, addresses) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                for prefix in ["serving metrics at http://", "listening on http://"] {
                    if let Some(at) = line.find(prefix) {
                        let rest = &line[at + prefix.len()..];
                        let address = rest.split(['/', ' ', '"']).next().unwrap().to_owned();
                        let _ = found.send((prefix, address));
                    }
                }
                if std::env::var_os("BEACON_TEST_LOG").is_some() {
                    eprintln!("server: {line}");
                }
            }
        });
        let mut base = None;
        let mut metrics_base = None;
        while base.is_none() || metrics_base.is_none() {
            let (prefix, address) = addresses
                .recv_timeout(Duration::from_secs(30))
                .expect("the server did not report both addresses within 30 seconds");
            let slot = if prefix.starts_with("serving") { &mut metrics_base } else { &mut base };
            *slot = Some(format!("http://{address}"));
        }
        SplitServer {
            child,
            base: base.unwrap(),
            metrics_base: metrics_base.unwrap(),
            client: reqwest::Client::new(),
            _folder: folder,
        }
    }
}

impl Drop for SplitServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn metrics_listener_serves_only_metrics() {
    let server = tokio::task::spawn_blocking(SplitServer::start).await.unwrap();

    // The main listener treats /metrics as any path outside the API.
    let main = server.client.get(format!("{}/metrics", server.base)).send().await.unwrap();
    let message = assert_graph_error(main, 400, "BadRequest").await;
    assert!(message.contains("metrics"), "{message}");

    // The metrics listener serves /metrics and nothing else.
    let (_, exposition) =
        scrape_url(&server.client, &format!("{}/metrics", server.metrics_base)).await;
    let elsewhere = server.client.get(format!("{}/beta/", server.metrics_base)).send().await;
    assert_graph_error(elsewhere.unwrap(), 404, "ResourceNotFound").await;

    // It counts the main listener's requests.
    let unresolved = request_labels("unknown", None, "GET", "400");
    assert_eq!(requests(&exposition, &unresolved), 1.0);
}

#[test]
fn exposition_checker_rejects_malformed_text() {
    let valid = "# TYPE up gauge\nup{job=\"a\\\"b\"} 1\n";
    assert_eq!(parse_exposition(valid).value("up", &[("job", "a\"b")]), Some(1.0));

    let malformed = [
        ("no TYPE", "up 1\n"),
        ("bad value", "# TYPE up gauge\nup one\n"),
        ("bad escape", "# TYPE up gauge\nup{job=\"a\\x\"} 1\n"),
        ("unterminated value", "# TYPE up gauge\nup{job=\"a} 1\n"),
        ("bad label name", "# TYPE up gauge\nup{1job=\"a\"} 1\n"),
        ("repeated series", "# TYPE up gauge\nup 1\nup 2\n"),
        (
            "decreasing buckets",
            "# TYPE t histogram\nt_bucket{le=\"1\"} 2\nt_bucket{le=\"+Inf\"} 1\nt_sum 1\nt_count 1\n",
        ),
        ("no +Inf bucket", "# TYPE t histogram\nt_bucket{le=\"1\"} 1\nt_sum 1\nt_count 1\n"),
        (
            "count differs from +Inf",
            "# TYPE t histogram\nt_bucket{le=\"+Inf\"} 2\nt_sum 1\nt_count 1\n",
        ),
    ];
    for (case, text) in malformed {
        let outcome = std::panic::catch_unwind(|| parse_exposition(text));
        assert!(outcome.is_err(), "{case} was accepted");
    }
}
