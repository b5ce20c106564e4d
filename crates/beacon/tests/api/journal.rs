//! Clients that write under load and keep a journal of every response, and the check that a
//! server's rows agree with the journal after a crash, a restart or an outage.
//!
//! Each client owns the ids it creates and sends one request at a time, so its journal records
//! the state that each acknowledged write left: the fields sent and the `ETag` returned. A write
//! whose outcome the client never learned (the connection broke, or the server answered with a
//! 5xx) is pending. The check accepts either the state before a pending write or the state the
//! write makes in full, and takes whichever the rows show as the new acknowledged state. Any
//! other row, a missing row, a changed field or a changed tag is a lost write.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use reqwest::{Method, StatusCode};
use serde_json::{Map, Value, json};

use crate::helpers::GRAPH;

/// The maximum number of rows one client keeps, past which it deletes more than it creates.
const MAX_ROWS_PER_CLIENT: usize = 40;

/// A small xorshift generator, so that a run can be repeated from its printed seed.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// Starts a generator; a seed of 0 becomes 1, since xorshift never leaves 0.
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    /// Returns the next number.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Returns a number below `bound`, which must be above 0.
    pub fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }
}

/// Returns the seed from `BEACON_TEST_SEED`, or one from the clock.
pub fn seed() -> u64 {
    match std::env::var("BEACON_TEST_SEED") {
        Ok(text) => text.parse().expect("BEACON_TEST_SEED must be a number"),
        Err(_) => {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
                as u64
        }
    }
}

/// An entity as the journal expects it: its properties and its entity tag.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// Every property of the Graph view, `id` included.
    pub fields: Map<String, Value>,
    /// The `ETag` of the write that made this state.
    pub etag: String,
}

/// A write whose outcome is unknown.
#[derive(Clone, Debug)]
enum Pending {
    /// A create or update that, if applied, left these properties. `tag_after` is the tag an
    /// update would give; a create's tag cannot be known.
    Write { fields: Map<String, Value>, tag_after: Option<String> },
    /// A delete.
    Delete,
}

/// What one client has recorded of one of its ids.
#[derive(Clone, Debug, Default)]
struct Entry {
    /// The state that the last acknowledged write left; `None` when absent.
    known: Option<Row>,
    /// A write sent since, whose outcome is unknown.
    pending: Option<Pending>,
}

/// The figures of a run.
#[derive(Clone, Debug, Default)]
pub struct Figures {
    /// Writes that got 201 or 204.
    pub acknowledged: u64,
    /// Writes whose outcome the client did not learn.
    pub unacknowledged: u64,
    /// How many times each status was received; 0 stands for a broken connection.
    pub statuses: BTreeMap<u16, u64>,
    /// Statuses that no write of a journaled client should get, with the request.
    pub unexpected: Vec<String>,
}

impl Figures {
    /// Adds another client's figures.
    pub fn add(&mut self, other: &Figures) {
        self.acknowledged += other.acknowledged;
        self.unacknowledged += other.unacknowledged;
        for (status, count) in &other.statuses {
            *self.statuses.entry(*status).or_default() += count;
        }
        self.unexpected.extend(other.unexpected.iter().cloned());
    }
}

/// One client: its ids, its journal and its connection pool.
#[derive(Debug)]
pub struct Client {
    prefix: String,
    http: reqwest::Client,
    token: String,
    collection: String,
    rng: Rng,
    next_id: u64,
    entries: BTreeMap<String, Entry>,
    /// The statuses that mean the server cannot apply writes for now, such as 503, rather than
    /// a fault. A write that gets one is pending.
    allowed_errors: Vec<u16>,
    pub figures: Figures,
}

impl Client {
    /// Creates client number `index` with its own ids, which start with `c<index>-`.
    pub fn new(index: usize, seed: u64, allowed_errors: &[u16]) -> Client {
        Client {
            prefix: format!("c{index}-"),
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(60))
                .build()
                .unwrap(),
            token: String::new(),
            collection: String::new(),
            rng: Rng::new(seed ^ (index as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15)),
            next_id: 0,
            entries: BTreeMap::new(),
            allowed_errors: allowed_errors.to_vec(),
            figures: Figures::default(),
        }
    }

    /// Points the client at a server, which may be a restarted one on another port.
    pub fn connect(&mut self, base: &str, token: &str) {
        self.collection = format!("{base}/beta/{GRAPH}");
        self.token = token.to_owned();
        // A new pool, so no connection to an earlier process is reused.
        self.http =
            reqwest::Client::builder().timeout(std::time::Duration::from_secs(60)).build().unwrap();
    }

    /// Sends writes until `stop` is set, or, with `stop_when_broken`, until a connection breaks.
    pub async fn run(mut self, stop: Arc<AtomicBool>, stop_when_broken: bool) -> Client {
        while !stop.load(Ordering::Relaxed) {
            let connected = self.step().await;
            if !connected && stop_when_broken {
                break;
            }
            if !connected {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
        self
    }

    /// Sends one write chosen at random and journals its outcome. Returns false when the
    /// connection broke.
    async fn step(&mut self) -> bool {
        let settled: Vec<String> = self
            .entries
            .iter()
            .filter(|(_, entry)| entry.known.is_some() && entry.pending.is_none())
            .map(|(id, _)| id.clone())
            .collect();
        let roll = self.rng.below(100);
        let create = settled.len() < 3 || (roll < 40 && settled.len() < MAX_ROWS_PER_CLIENT);
        if create {
            return self.create().await;
        }
        let id = settled[self.rng.below(settled.len() as u64) as usize].clone();
        let delete = roll >= 85 || settled.len() >= MAX_ROWS_PER_CLIENT;
        match delete {
            true => self.delete(&id).await,
            false => self.update(&id).await,
        }
    }

    async fn create(&mut self) -> bool {
        let id = format!("{}{}", self.prefix, self.next_id);
        self.next_id += 1;
        let mut fields = self.random_fields();
        fields.insert("id".to_owned(), json!(id));
        let request = self.http.post(&self.collection).json(&fields);
        let outcome = self.send(request, StatusCode::CREATED, &format!("POST {id}")).await;
        let broken = matches!(outcome, Outcome::Unknown { broken: true });
        let entry = self.entries.entry(id).or_default();
        match outcome {
            Outcome::Done(etag) => entry.known = Some(Row { fields, etag }),
            Outcome::Unknown { .. } => {
                entry.pending = Some(Pending::Write { fields, tag_after: None });
            }
            Outcome::Rejected => {}
        }
        !broken
    }

    async fn update(&mut self, id: &str) -> bool {
        let known = self.entries[id].known.clone().unwrap();
        let mut change = self.random_fields();
        // Change only some of the properties, as PATCH allows.
        let keys: Vec<String> = change.keys().cloned().collect();
        for key in keys {
            if self.rng.below(2) == 0 {
                change.remove(&key);
            }
        }
        let mut after = known.fields.clone();
        after.extend(change.clone());
        let request = self
            .http
            .patch(format!("{}/{id}", self.collection))
            .header("if-match", &known.etag)
            .json(&change);
        let outcome = self.send(request, StatusCode::NO_CONTENT, &format!("PATCH {id}")).await;
        let broken = matches!(outcome, Outcome::Unknown { broken: true });
        let entry = self.entries.get_mut(id).unwrap();
        match outcome {
            Outcome::Done(etag) => entry.known = Some(Row { fields: after, etag }),
            Outcome::Unknown { .. } => {
                let tag_after = Some(next_tag(&known.etag));
                entry.pending = Some(Pending::Write { fields: after, tag_after });
            }
            Outcome::Rejected => {}
        }
        !broken
    }

    async fn delete(&mut self, id: &str) -> bool {
        let known = self.entries[id].known.clone().unwrap();
        let request =
            self.http.delete(format!("{}/{id}", self.collection)).header("if-match", &known.etag);
        let outcome = self.send(request, StatusCode::NO_CONTENT, &format!("DELETE {id}")).await;
        let broken = matches!(outcome, Outcome::Unknown { broken: true });
        let entry = self.entries.get_mut(id).unwrap();
        match outcome {
            Outcome::Done(_) => entry.known = None,
            Outcome::Unknown { .. } => entry.pending = Some(Pending::Delete),
            Outcome::Rejected => {}
        }
        !broken
    }

    /// Sends a write and sorts its response.
    async fn send(
        &mut self,
        request: reqwest::RequestBuilder,
        success: StatusCode,
        what: &str,
    ) -> Outcome {
        let response = request.bearer_auth(&self.token).send().await;
        let response = match response {
            Ok(response) => response,
            Err(_) => {
                *self.figures.statuses.entry(0).or_default() += 1;
                self.figures.unacknowledged += 1;
                return Outcome::Unknown { broken: true };
            }
        };
        let status = response.status();
        *self.figures.statuses.entry(status.as_u16()).or_default() += 1;
        if status == success {
            self.figures.acknowledged += 1;
            let etag = response.headers().get("etag").map(|tag| tag.to_str().unwrap().to_owned());
            return Outcome::Done(etag.unwrap_or_default());
        }
        if self.allowed_errors.contains(&status.as_u16()) {
            let retry_after = response.headers().get("retry-after").is_some();
            if status == StatusCode::SERVICE_UNAVAILABLE && !retry_after {
                self.figures.unexpected.push(format!("{what}: 503 without Retry-After"));
            }
            self.figures.unacknowledged += 1;
            return Outcome::Unknown { broken: false };
        }
        let body = response.text().await.unwrap_or_default();
        self.figures.unexpected.push(format!("{what}: {status} {body}"));
        // A 5xx other than the allowed ones may still have applied the write; a 4xx has not.
        match status.is_server_error() {
            true => {
                self.figures.unacknowledged += 1;
                Outcome::Unknown { broken: false }
            }
            false => Outcome::Rejected,
        }
    }

    /// Returns random values for every property of the Graph view but `id`.
    fn random_fields(&mut self) -> Map<String, Value> {
        let mut number = || self.rng.below(1 << 40) as i64;
        let fields = json!({
            "tenantId": format!("7f1e2d3c-0000-4000-8000-{:012}", number() % 1_000_000),
            "tenantDisplayName": format!("Customer {}", number()),
            "compliancePolicyId": format!("0c4bd1d4-1d3f-4b86-8b93-{:012}", number() % 1_000_000),
            "compliancePolicyName": format!("Baseline {}", number() % 100),
            "compliancePolicyType": "deviceCompliancePolicy",
            "compliancePolicyPlatform": "windows10AndLater",
            "numberOfCompliantDevices": number(),
            "numberOfNonCompliantDevices": number() % 1000,
            "numberOfErrorDevices": number() % 10,
            "policyModifiedDateTime": format!("2026-01-0{}T03:04:05.1234567Z", 1 + number() % 9),
            "lastRefreshedDateTime": format!("2026-02-0{}T08:15:{:02}Z", 1 + number() % 9, number() % 60),
        });
        match fields {
            Value::Object(map) => map,
            _ => unreachable!("a JSON object literal"),
        }
    }

    /// Compares the client's journal with the rows read from the server, `stored` keyed by
    /// id, and returns a line for each disagreement. Pending writes are settled by what the
    /// rows show. Returns how many entities were compared, too.
    pub fn check(&mut self, stored: &BTreeMap<String, Row>) -> (usize, Vec<String>) {
        let mut problems = Vec::new();
        for (id, entry) in &mut self.entries {
            let actual = stored.get(id);
            let pending = entry.pending.take();
            if actual == entry.known.as_ref() {
                continue;
            }
            let settled = match (&pending, actual) {
                (Some(Pending::Delete), None) => true,
                (Some(Pending::Write { fields, tag_after }), Some(row)) => {
                    row.fields == *fields && tag_after.as_ref().is_none_or(|tag| *tag == row.etag)
                }
                _ => false,
            };
            match settled {
                true => entry.known = actual.cloned(),
                false => problems.push(format!(
                    "{id}: expected {:?}{}, found {actual:?}",
                    entry.known,
                    match &pending {
                        Some(pending) => format!(" or the unacknowledged {pending:?}"),
                        None => String::new(),
                    }
                )),
            }
        }
        (self.entries.len(), problems)
    }

    /// Returns whether `id` is one of this client's ids.
    pub fn owns(&self, id: &str) -> bool {
        id.starts_with(&self.prefix)
    }
}

/// How a write ended, as the client sees it.
#[derive(Clone, Debug)]
enum Outcome {
    /// The server acknowledged it and returned this tag.
    Done(String),
    /// The client did not learn whether it was applied; `broken` when the connection broke.
    Unknown { broken: bool },
    /// The server rejected it without applying it.
    Rejected,
}

/// Returns the tag that follows `tag`, since every update adds 1 to the version.
fn next_tag(tag: &str) -> String {
    let version: i64 = tag
        .trim_start_matches("W/\"")
        .trim_end_matches('"')
        .parse()
        .unwrap_or_else(|_| panic!("an entity tag that is not W/\"<number>\": {tag}"));
    format!("W/\"{}\"", version + 1)
}

/// Reads every row of the Graph view through the server at `base`, by id.
pub async fn read_rows(http: &reqwest::Client, base: &str, token: &str) -> BTreeMap<String, Row> {
    let mut rows = BTreeMap::new();
    let mut url = format!("{base}/beta/{GRAPH}");
    loop {
        let response = http
            .request(Method::GET, &url)
            .bearer_auth(token)
            .header("prefer", "odata.maxpagesize=1000")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "GET {url}");
        let page: Value = response.json().await.unwrap();
        for entity in page["value"].as_array().unwrap() {
            let mut fields = entity.as_object().unwrap().clone();
            let etag = fields["@odata.etag"].as_str().unwrap().to_owned();
            fields.retain(|key, _| !key.starts_with("@odata."));
            let id = fields["id"].as_str().unwrap().to_owned();
            rows.insert(id, Row { fields, etag });
        }
        match page["@odata.nextLink"].as_str() {
            Some(next) => url = next.to_owned(),
            None => return rows,
        }
    }
}

/// Checks every client's journal against the rows read through `base`, and returns how many
/// entities were compared and each disagreement, rows that no client wrote included.
pub async fn check_all(clients: &mut [Client], base: &str, token: &str) -> (usize, Vec<String>) {
    let rows = read_rows(&reqwest::Client::new(), base, token).await;
    let mut compared = 0;
    let mut problems = Vec::new();
    for client in clients.iter_mut() {
        let (count, found) = client.check(&rows);
        compared += count;
        problems.extend(found);
    }
    for id in rows.keys() {
        if !clients.iter().any(|client| client.owns(id)) {
            problems.push(format!("{id}: a row that no client wrote"));
        }
    }
    (compared, problems)
}

#[test]
fn journal_check_reports_lost_and_changed_writes() {
    let row = |name: &str, tag: &str| Row {
        fields: json!({"id": "c0-1", "tenantDisplayName": name}).as_object().unwrap().clone(),
        etag: tag.to_owned(),
    };
    let stored =
        |found: Option<Row>| found.map(|row| ("c0-1".to_owned(), row)).into_iter().collect();
    let check = |pending: Option<Pending>, found: Option<Row>| {
        let mut client = Client::new(0, 1, &[]);
        let entry = Entry { known: Some(row("a", "W/\"5\"")), pending };
        client.entries.insert("c0-1".to_owned(), entry);
        client.check(&stored(found)).1.len()
    };
    let update =
        || Pending::Write { fields: row("b", "").fields, tag_after: Some("W/\"6\"".to_owned()) };

    assert_eq!(check(None, Some(row("a", "W/\"5\""))), 0, "the acknowledged state");
    assert_eq!(check(None, None), 1, "a lost create");
    assert_eq!(check(None, Some(row("b", "W/\"5\""))), 1, "a changed field");
    assert_eq!(check(None, Some(row("a", "W/\"6\""))), 1, "a changed tag");
    assert_eq!(check(Some(update()), Some(row("a", "W/\"5\""))), 0, "an update not applied");
    assert_eq!(check(Some(update()), Some(row("b", "W/\"6\""))), 0, "an update applied once");
    assert_eq!(check(Some(update()), Some(row("b", "W/\"7\""))), 1, "an update applied twice");
    assert_eq!(check(Some(update()), None), 1, "an update that deleted");
    assert_eq!(check(Some(Pending::Delete), None), 0, "a delete applied");
}
