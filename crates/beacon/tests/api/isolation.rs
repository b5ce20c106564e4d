//! Partner isolation and resistance to injection, through HTTP.
//!
//! Two partner tenants share one server, and each has rows of its own, some with the same ids
//! as the other's and different values. Every operation of one partner must behave as if the
//! other partner's rows did not exist. Hostile text in query options, paths, bodies and
//! skiptokens must get a `4xx` or a correct result, never a `5xx` and never another partner's
//! rows. Afterwards every row must read back as created, and SQLite's integrity check must pass
//! on the database file.

use std::collections::BTreeMap;
use std::path::Path;

use beacon_odata::bind::apply::MAX_STAGES;
use beacon_odata::filter::{MAX_DEPTH, MAX_LENGTH};
use beacon_odata::orderby::MAX_ITEMS;
use beacon_server::MAX_BODY_BYTES;
use beacon_server::auth::DEV_PARTNER_TENANT;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::*;

/// The second partner tenant. The first is the one `beacon token` uses by default.
const PARTNER_B: &str = "5b7e2c19-8f3d-4a6e-b1c2-7d9e0f4a3b65";

/// The Graph view's `@odata.type`.
const GRAPH_TYPE: &str = "#microsoft.graph.managedTenants.aggregatedPolicyCompliance";

/// The database file inside a data folder.
const DATABASE_FILE: &str = "beacon.sqlite3";

/// The indexes that the migrations create, each of which must survive every attempt.
const INDEXES: [&str; 7] = [
    "aggregated_policy_compliance_by_compliant",
    "aggregated_policy_compliance_by_error",
    "aggregated_policy_compliance_by_last_refreshed",
    "aggregated_policy_compliance_by_non_compliant",
    "aggregated_policy_compliance_by_platform",
    "aggregated_policy_compliance_by_policy",
    "aggregated_policy_compliance_by_tenant",
];

/// One of the two partner tenants of a fixture.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Partner {
    A,
    B,
}

/// A row that a fixture creates: its owner, its id, the view it is created through, and the
/// values that tell the partners apart.
struct Row {
    partner: Partner,
    id: &'static str,
    collection: &'static str,
    display_name: &'static str,
    platform: &'static str,
    compliant: i64,
}

/// Partner A's rows: three ids that B uses too, and three of A's own.
const ROWS_A: [Row; 6] = [
    row_a("shared-1", SEED, 1000),
    row_a("shared-2", SEED, 1001),
    row_a("shared-3", SEED, 1002),
    row_a("a-only-1", SEED, 1003),
    row_a("a-only-2", GRAPH, 1004),
    row_a("a-only-o'brien", SEED, 1005),
];

/// Partner B's rows: the three shared ids, with B's values, and two of B's own.
const ROWS_B: [Row; 5] = [
    row_b("shared-1", SEED, 1),
    row_b("shared-2", GRAPH, 2),
    row_b("shared-3", SEED, 3),
    row_b("b-only-1", SEED, 4),
    row_b("b-only-2", GRAPH, 5),
];

/// The ids that only partner A has.
const A_ONLY: [&str; 3] = ["a-only-1", "a-only-2", "a-only-o'brien"];

/// B's ids in key order, as B's listings return them.
const B_IDS: [&str; 5] = ["b-only-1", "b-only-2", "shared-1", "shared-2", "shared-3"];

const fn row_a(id: &'static str, collection: &'static str, compliant: i64) -> Row {
    Row {
        partner: Partner::A,
        id,
        collection,
        display_name: "Alpha Holdings",
        platform: "alphaOS",
        compliant,
    }
}

const fn row_b(id: &'static str, collection: &'static str, compliant: i64) -> Row {
    Row {
        partner: Partner::B,
        id,
        collection,
        display_name: "Bravo Services",
        platform: "windows10AndLater",
        compliant,
    }
}

/// Builds the create body of `row` in the names of its view.
fn create_body(row: &Row) -> Value {
    let mut body = seed_example();
    body["id"] = json!(row.id);
    body["organizationDisplayName"] = json!(row.display_name);
    body["compliancePolicyPlatform"] = json!(row.platform);
    body["numberOfCompliantDevices"] = json!(row.compliant);
    if row.collection == GRAPH {
        body = to_graph_names(body);
    }
    body
}

/// Renames the seed view's tenant properties and type to the Graph view's.
fn to_graph_names(mut body: Value) -> Value {
    let object = body.as_object_mut().unwrap();
    if let Some(tenant_id) = object.remove("organizationId") {
        object.insert("tenantId".to_owned(), tenant_id);
    }
    if let Some(tenant_name) = object.remove("organizationDisplayName") {
        object.insert("tenantDisplayName".to_owned(), tenant_name);
    }
    object.insert("@odata.type".to_owned(), json!(GRAPH_TYPE));
    body
}

/// Percent-encodes an id as one path segment.
fn segment(id: &str) -> String {
    utf8_percent_encode(id, NON_ALPHANUMERIC).to_string()
}

/// Writes the two paths of an entity: the key as its own segment, and in parentheses.
fn entity_paths(collection: &str, id: &str) -> [String; 2] {
    let quoted = segment(&id.replace('\'', "''"));
    [format!("{collection}/{}", segment(id)), format!("{collection}('{quoted}')")]
}

/// Writes a path with query options, each value percent-encoded.
fn with_query(path: &str, options: &[(&str, &str)]) -> String {
    let pairs: Vec<String> = options
        .iter()
        .map(|(name, value)| format!("{name}={}", encode_query_value(value)))
        .collect();
    format!("{path}?{}", pairs.join("&"))
}

/// Encodes `bytes` as base64url without padding, as skiptokens encode their parts.
fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut text = String::new();
    for chunk in bytes.chunks(3) {
        let mut group = [0_u8; 3];
        group[..chunk.len()].copy_from_slice(chunk);
        let bits = u32::from(group[0]) << 16 | u32::from(group[1]) << 8 | u32::from(group[2]);
        for i in 0..=chunk.len() {
            text.push(char::from(ALPHABET[((bits >> (18 - 6 * i)) & 0x3f) as usize]));
        }
    }
    text
}

/// Returns the `$skiptoken` value of a next link.
fn skiptoken_of(next_link: &str) -> String {
    let (_, token) = next_link.split_once("$skiptoken=").expect("a $skiptoken in the next link");
    token.split('&').next().unwrap().to_owned()
}

/// Returns the ids of a page's entities, in order.
fn ids_of(page: &Value) -> Vec<String> {
    let rows = page["value"].as_array().unwrap_or_else(|| panic!("no value array in {page}"));
    rows.iter().map(|row| row["id"].as_str().unwrap_or("").to_owned()).collect()
}

/// An error response reduced to what a client could compare between two ids: the status, the
/// code, the message with the id replaced by `ID`, and the header names.
#[derive(Debug, PartialEq)]
struct ErrorShape {
    status: u16,
    code: Value,
    message: String,
    header_names: Vec<String>,
}

async fn error_shape(response: reqwest::Response, id: &str) -> ErrorShape {
    let status = response.status().as_u16();
    let mut header_names: Vec<String> =
        response.headers().keys().map(|name| name.as_str().to_owned()).collect();
    header_names.sort();
    let text = response.text().await.unwrap();
    let (code, message) = match serde_json::from_str::<Value>(&text) {
        Ok(body) => {
            let message = body["error"]["message"].as_str().unwrap_or("").replace(id, "ID");
            (body["error"]["code"].clone(), message)
        }
        Err(_) => (Value::Null, text),
    };
    ErrorShape { status, code, message, header_names }
}

/// A server holding the rows of both partners, with what each partner read right after the
/// rows were created.
struct Fixture {
    server: TestServer,
    token_b: String,
    /// The body of each `201`, by partner and id.
    created: BTreeMap<(Partner, String), Value>,
    /// Every page of each partner's full listing of each view, concatenated.
    listings: BTreeMap<(Partner, &'static str), Vec<Value>>,
}

impl Fixture {
    /// Starts a server and creates both partners' rows.
    async fn start() -> Fixture {
        let server = TestServer::start().await;
        let token_b = server.token_with(&["--tenant", PARTNER_B]);
        let mut fixture =
            Fixture { server, token_b, created: BTreeMap::new(), listings: BTreeMap::new() };

        for row in ROWS_A.iter().chain(&ROWS_B) {
            let case =
                format!("partner {:?} creates {} through {}", row.partner, row.id, row.collection);
            let response = fixture
                .request(row.partner, Method::POST, row.collection)
                .json(&create_body(row))
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap();
            assert_eq!(status, 201, "{case}: {body}");
            fixture.created.insert((row.partner, row.id.to_owned()), body);
        }

        for partner in [Partner::A, Partner::B] {
            for collection in [SEED, GRAPH] {
                let rows = fixture.list_all(partner, collection).await;
                fixture.listings.insert((partner, collection), rows);
            }
        }
        assert_eq!(fixture.listings[&(Partner::A, SEED)].len(), ROWS_A.len());
        assert_eq!(fixture.listings[&(Partner::B, SEED)].len(), ROWS_B.len());
        fixture
    }

    fn token(&self, partner: Partner) -> &str {
        match partner {
            Partner::A => self.server.token(),
            Partner::B => &self.token_b,
        }
    }

    /// Starts a request below `/beta` with the partner's token.
    fn request(&self, partner: Partner, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.server.client.request(method, self.server.url(path)).bearer_auth(self.token(partner))
    }

    /// GETs a path below `/beta` as `partner` and returns the status and the body: parsed when
    /// its type is JSON, else as a JSON string.
    async fn get(&self, partner: Partner, path: &str) -> (u16, Value) {
        let response = self.request(partner, Method::GET, path).send().await.unwrap();
        let status = response.status().as_u16();
        let content_type = response.headers().get("content-type").cloned();
        let is_json = content_type
            .is_some_and(|value| value.to_str().unwrap_or("").starts_with("application/json"));
        let text = response.text().await.unwrap();
        match is_json {
            true => (status, serde_json::from_str(&text).unwrap()),
            false => (status, Value::String(text)),
        }
    }

    /// Reads every entity of a collection as `partner` by following next links, two a page.
    async fn list_all(&self, partner: Partner, collection: &str) -> Vec<Value> {
        let mut entities = Vec::new();
        let mut url = self.server.url(collection);
        loop {
            let response = self
                .server
                .client
                .get(&url)
                .bearer_auth(self.token(partner))
                .header("prefer", "odata.maxpagesize=2")
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200, "{partner:?} lists {url}");
            let page: Value = response.json().await.unwrap();
            entities.extend(page["value"].as_array().unwrap().iter().cloned());
            match page["@odata.nextLink"].as_str() {
                Some(next) => url = next.to_owned(),
                None => return entities,
            }
        }
    }

    /// Returns the entity that `partner`'s listing of `collection` showed for `id` at the start.
    fn listed(&self, partner: Partner, collection: &'static str, id: &str) -> &Value {
        self.listings[&(partner, collection)]
            .iter()
            .find(|entity| entity["id"] == id)
            .unwrap_or_else(|| panic!("{partner:?} has no row {id} in {collection}"))
    }

    /// Reads `/$count` of a collection as `partner`.
    async fn count(&self, partner: Partner, collection: &str) -> u64 {
        let (status, body) = self.get(partner, &format!("{collection}/$count")).await;
        assert_eq!(status, 200, "{partner:?} counts {collection}: {body}");
        body.as_str().unwrap().parse().unwrap()
    }

    /// Asserts that every row of `partner` reads back exactly as created, one by one and in
    /// the listings of both views.
    async fn assert_partner_intact(&self, partner: Partner, case: &str) {
        let rows = match partner {
            Partner::A => &ROWS_A[..],
            Partner::B => &ROWS_B[..],
        };
        for row in rows {
            let path = entity_paths(row.collection, row.id)[0].clone();
            let (status, body) = self.get(partner, &path).await;
            assert_eq!(status, 200, "{case}: {partner:?} reads {path}: {body}");
            let created = &self.created[&(partner, row.id.to_owned())];
            assert_eq!(&body, created, "{case}: {partner:?}'s row {} changed", row.id);
        }
        for collection in [SEED, GRAPH] {
            let listed = self.list_all(partner, collection).await;
            let expected = &self.listings[&(partner, collection)];
            assert_eq!(&listed, expected, "{case}: {partner:?}'s listing of {collection} changed");
            let count = self.count(partner, collection).await;
            assert_eq!(count, rows.len() as u64, "{case}: {partner:?}'s count of {collection}");
        }
    }

    /// Asserts that both partners' rows are intact.
    async fn assert_intact(&self, case: &str) {
        self.assert_partner_intact(Partner::A, case).await;
        self.assert_partner_intact(Partner::B, case).await;
    }
}

/// Asserts that the server's store is intact: the table and its indexes exist and each partner
/// has the given number of rows. In SQLite runs it also runs SQLite's integrity checks on the
/// database file, opened read-only. The server may still be running, because WAL mode lets a
/// reader in.
fn assert_database_intact(data_dir: &Path, expected_rows: &[(&str, i64)], case: &str) {
    let (names, counts) = match test_postgres_url() {
        Some(url) => postgres_tables_and_counts(&url, data_dir),
        None => sqlite_tables_and_counts(data_dir, case),
    };

    for table in ["aggregated_policy_compliance", "schema_migrations"] {
        assert!(names.iter().any(|name| name == table), "{case}: table {table} is gone: {names:?}");
    }
    for index in INDEXES {
        assert!(names.iter().any(|name| name == index), "{case}: index {index} is gone: {names:?}");
    }

    let mut expected: Vec<(String, i64)> =
        expected_rows.iter().map(|(partner, count)| ((*partner).to_owned(), *count)).collect();
    expected.sort();
    assert_eq!(counts, expected, "{case}: rows per partner in the database");
}

/// The SQL that counts rows per partner in the PostgreSQL store, whose table stores each row's
/// partner tenant id.
const COUNT_PER_PARTNER: &str = "SELECT partner_tenant_id, COUNT(*) FROM \
     aggregated_policy_compliance GROUP BY partner_tenant_id ORDER BY partner_tenant_id";

/// The SQL that counts rows per partner in the SQLite store, whose table stores an integer key
/// per partner in place of its tenant id.
const SQLITE_COUNT_PER_PARTNER: &str = "SELECT p.partner_tenant_id, COUNT(*) FROM \
     aggregated_policy_compliance t JOIN beacon_partner p USING (partner_key) \
     GROUP BY p.partner_tenant_id ORDER BY p.partner_tenant_id";

/// Checks the SQLite file's integrity and returns its table and index names and the rows per
/// partner.
fn sqlite_tables_and_counts(data_dir: &Path, case: &str) -> (Vec<String>, Vec<(String, i64)>) {
    use rusqlite::{Connection, OpenFlags};

    let path = data_dir.join(DATABASE_FILE);
    let connection = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .unwrap_or_else(|error| panic!("{case}: cannot open {}: {error}", path.display()));

    let integrity: Vec<String> = connection
        .prepare("PRAGMA integrity_check")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(integrity, ["ok"], "{case}: integrity_check");

    let violations = connection
        .prepare("PRAGMA foreign_key_check")
        .unwrap()
        .query_map([], |_| Ok(()))
        .unwrap()
        .count();
    assert_eq!(violations, 0, "{case}: foreign_key_check");

    let names = connection
        .prepare("SELECT name FROM sqlite_schema WHERE name NOT LIKE 'sqlite_%' ORDER BY name")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let counts = connection
        .prepare(SQLITE_COUNT_PER_PARTNER)
        .unwrap()
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    (names, counts)
}

/// Returns the table and index names in the server's PostgreSQL schema and the rows per
/// partner.
fn postgres_tables_and_counts(url: &str, data_dir: &Path) -> (Vec<String>, Vec<(String, i64)>) {
    let url = url_with_schema(url, &schema_name(data_dir));
    let names = postgres_query(
        &url,
        "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = current_schema() ORDER BY 1",
        |row| row.get(0),
    );
    let counts = postgres_query(&url, COUNT_PER_PARTNER, |row| (row.get(0), row.get(1)));
    (names, counts)
}

/// Returns the number of rows per partner right after [`Fixture::start`].
fn fixture_row_counts() -> [(&'static str, i64); 2] {
    [(DEV_PARTNER_TENANT, ROWS_A.len() as i64), (PARTNER_B, ROWS_B.len() as i64)]
}

#[tokio::test]
async fn other_partners_ids_read_as_missing() {
    let fixture = Fixture::start().await;
    let never = "never-existed-o'neil";

    for collection in [SEED, GRAPH] {
        for (form, never_path) in entity_paths(collection, never).iter().enumerate() {
            for method in [Method::GET, Method::HEAD] {
                let never_response =
                    fixture.request(Partner::B, method.clone(), never_path).send().await.unwrap();
                let expected = error_shape(never_response, never).await;
                assert_eq!(expected.status, 404, "{method} {never_path}");

                for id in A_ONLY {
                    let path = entity_paths(collection, id)[form].clone();
                    let case = format!("{method} {path}");

                    // The owner reads the row through this very path.
                    let response =
                        fixture.request(Partner::A, method.clone(), &path).send().await.unwrap();
                    assert_eq!(response.status(), 200, "{case} as A");

                    let response =
                        fixture.request(Partner::B, method.clone(), &path).send().await.unwrap();
                    let shape = error_shape(response, id).await;
                    assert_eq!(shape, expected, "{case} as B differs from a missing id");
                }
            }
        }
    }

    // A misses B's rows in the same way.
    for id in ["b-only-1", "b-only-2"] {
        let path = entity_paths(SEED, id)[0].clone();
        let response = fixture.request(Partner::A, Method::GET, &path).send().await.unwrap();
        let message = assert_graph_error(response, 404, "ResourceNotFound").await;
        assert!(message.contains(id), "GET {path} as A: {message}");
    }
    fixture.assert_intact("after the reads").await;
}

#[tokio::test]
async fn queries_see_only_own_rows() {
    let fixture = Fixture::start().await;
    let a_ids: Vec<&str> = {
        let mut ids: Vec<&str> = ROWS_A.iter().map(|row| row.id).collect();
        ids.sort();
        ids
    };

    // Each filter, with the ids it selects for A and for B, in key order.
    let cases: [(&str, Vec<&str>, Vec<&str>); 9] = [
        ("compliancePolicyPlatform eq 'alphaOS'", a_ids.clone(), vec![]),
        ("numberOfCompliantDevices ge 1000", a_ids.clone(), vec![]),
        ("startswith(id, 'a-only')", A_ONLY.to_vec(), vec![]),
        ("id eq 'a-only-1'", vec!["a-only-1"], vec![]),
        (
            "id in ('a-only-1', 'a-only-2', 'shared-1')",
            vec!["a-only-1", "a-only-2", "shared-1"],
            vec!["shared-1"],
        ),
        ("id eq 'shared-2'", vec!["shared-2"], vec!["shared-2"]),
        ("compliancePolicyPlatform eq 'windows10AndLater'", vec![], B_IDS.to_vec()),
        ("true", a_ids.clone(), B_IDS.to_vec()),
        ("id ne 'x' or numberOfCompliantDevices ge 0", a_ids.clone(), B_IDS.to_vec()),
    ];

    for collection in [SEED, GRAPH] {
        for (filter, ids_a, ids_b) in &cases {
            for (partner, expected) in [(Partner::A, ids_a), (Partner::B, ids_b)] {
                let case = format!("{partner:?}: {collection} with $filter={filter}");

                let path = with_query(collection, &[("$filter", filter), ("$count", "true")]);
                let (status, page) = fixture.get(partner, &path).await;
                assert_eq!(status, 200, "{case}: {page}");
                assert_eq!(ids_of(&page), *expected, "{case}: ids");
                assert_eq!(page["@odata.count"], expected.len(), "{case}: @odata.count");
                for entity in page["value"].as_array().unwrap() {
                    let id = entity["id"].as_str().unwrap();
                    let own = fixture.listed(partner, collection, id);
                    assert_eq!(entity, own, "{case}: the row {id} is not {partner:?}'s");
                }

                let path = with_query(&format!("{collection}/$count"), &[("$filter", filter)]);
                let (status, count) = fixture.get(partner, &path).await;
                assert_eq!(status, 200, "{case}: /$count");
                assert_eq!(count, expected.len().to_string(), "{case}: /$count");
            }
        }

        // Without a filter, each partner counts only its own rows.
        let count_a = fixture.count(Partner::A, collection).await;
        assert_eq!(count_a, ROWS_A.len() as u64, "A: {collection}/$count");
        let count_b = fixture.count(Partner::B, collection).await;
        assert_eq!(count_b, ROWS_B.len() as u64, "B: {collection}/$count");
    }
}

#[tokio::test]
async fn apply_aggregates_only_own_rows() {
    let fixture = Fixture::start().await;
    let sum = |rows: &[Row]| rows.iter().map(|row| row.compliant).sum::<i64>();
    let (sum_a, sum_b) = (sum(&ROWS_A), sum(&ROWS_B));
    let (rows_a, rows_b) = (ROWS_A.len(), ROWS_B.len());

    // Each $apply, with the `value` array that A and B get.
    let cases = [
        (
            "aggregate(numberOfCompliantDevices with sum as total,$count as rows)",
            json!([{"total": sum_a, "rows": rows_a}]),
            json!([{"total": sum_b, "rows": rows_b}]),
        ),
        (
            "groupby((compliancePolicyPlatform),aggregate(numberOfCompliantDevices with sum as total))",
            json!([{"compliancePolicyPlatform": "alphaOS", "total": sum_a}]),
            json!([{"compliancePolicyPlatform": "windows10AndLater", "total": sum_b}]),
        ),
        (
            "filter(compliancePolicyPlatform eq 'alphaOS')/aggregate($count as rows)",
            json!([{"rows": rows_a}]),
            json!([{"rows": 0}]),
        ),
        (
            "filter(startswith(id, 'shared'))/aggregate(numberOfCompliantDevices with max as highest)",
            json!([{"highest": 1002}]),
            json!([{"highest": 3}]),
        ),
        (
            "groupby((id))/filter(startswith(id, 'a-only') or startswith(id, 'b-only'))",
            json!(A_ONLY.iter().map(|id| json!({"id": id})).collect::<Vec<_>>()),
            json!([{"id": "b-only-1"}, {"id": "b-only-2"}]),
        ),
    ];

    for collection in [SEED, GRAPH] {
        for (apply, value_a, value_b) in &cases {
            for (partner, expected) in [(Partner::A, value_a), (Partner::B, value_b)] {
                let case = format!("{partner:?}: {collection} with $apply={apply}");
                let path = with_query(collection, &[("$apply", apply), ("$count", "true")]);
                let (status, page) = fixture.get(partner, &path).await;
                assert_eq!(status, 200, "{case}: {page}");

                // Grouped rows carry `@odata.id: null` and the types of their aggregates, which
                // are not compared here.
                let mut value = page["value"].clone();
                for row in value.as_array_mut().unwrap() {
                    row.as_object_mut().unwrap().retain(|name, _| !name.contains('@'));
                }
                assert_eq!(&value, expected, "{case}");
                let expected_count = expected.as_array().unwrap().len();
                assert_eq!(page["@odata.count"], expected_count, "{case}: @odata.count");
            }
        }
    }
}

#[tokio::test]
async fn writes_to_other_partners_ids_get_404() {
    let fixture = Fixture::start().await;

    for id in A_ONLY {
        let etag = fixture.created[&(Partner::A, id.to_owned())]["@odata.etag"]
            .as_str()
            .unwrap()
            .to_owned();
        for collection in [SEED, GRAPH] {
            let mut full_body = create_body(&row_b(id, collection, 7));
            full_body.as_object_mut().unwrap().remove("id");
            let requests = [
                (Method::PATCH, json!({"compliancePolicyName": "changed by B"})),
                (Method::PUT, full_body),
                (Method::DELETE, Value::Null),
            ];
            for path in entity_paths(collection, id) {
                for (method, body) in &requests {
                    for if_match in [None, Some("*"), Some(etag.as_str())] {
                        let case = format!("{method} {path} as B with If-Match {if_match:?}");
                        let mut request = fixture.request(Partner::B, method.clone(), &path);
                        if !body.is_null() {
                            request = request.json(body);
                        }
                        if let Some(tag) = if_match {
                            request = request.header("if-match", tag);
                        }
                        let response = request.send().await.unwrap();
                        let status = response.status().as_u16();
                        assert_eq!(status, 404, "{case}");
                        let message = assert_graph_error(response, 404, "ResourceNotFound").await;
                        assert!(message.contains(&format!("'{id}'")), "{case}: {message}");
                    }
                }
            }
        }
    }
    fixture.assert_intact("after B's writes to A's ids").await;
    assert_database_intact(&fixture.server.data_dir, &fixture_row_counts(), "after B's writes");

    // The owner gets through with the same requests, so the 404s above were about the partner.
    let path = entity_paths(SEED, "a-only-1")[1].clone();
    let response = fixture
        .request(Partner::A, Method::PATCH, &path)
        .json(&json!({"compliancePolicyName": "changed by A"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204, "PATCH {path} as A");
    let a_only_1 = ROWS_A.iter().find(|row| row.id == "a-only-1").unwrap();
    let mut full_body = create_body(a_only_1);
    full_body.as_object_mut().unwrap().remove("id");
    let response = fixture
        .request(Partner::A, Method::PUT, &path)
        .header("if-match", "*")
        .json(&full_body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204, "PUT {path} as A");
    let response = fixture.request(Partner::A, Method::DELETE, &path).send().await.unwrap();
    assert_eq!(response.status(), 204, "DELETE {path} as A");
    let count_a = fixture.count(Partner::A, SEED).await;
    assert_eq!(count_a, ROWS_A.len() as u64 - 1, "A's count after deleting a-only-1");
    fixture.assert_partner_intact(Partner::B, "after A's own writes").await;
}

#[tokio::test]
async fn shared_ids_keep_one_row_per_partner() {
    let fixture = Fixture::start().await;

    // B merges into its shared-1, replaces its shared-2 and deletes its shared-3.
    let response = fixture
        .request(Partner::B, Method::PATCH, &format!("{SEED}/shared-1"))
        .json(&json!({"organizationDisplayName": "Bravo Patched"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204, "PATCH shared-1 as B");
    let response = fixture
        .request(Partner::B, Method::PUT, &format!("{GRAPH}('shared-2')"))
        .json(&json!({"tenantDisplayName": "Bravo Replaced"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204, "PUT shared-2 as B");
    let response =
        fixture.request(Partner::B, Method::DELETE, &format!("{SEED}/shared-3")).send().await;
    assert_eq!(response.unwrap().status(), 204, "DELETE shared-3 as B");

    // B reads its changes back.
    let (_, shared_1) = fixture.get(Partner::B, &format!("{SEED}/shared-1")).await;
    assert_eq!(shared_1["organizationDisplayName"], "Bravo Patched", "B's shared-1");
    assert_eq!(shared_1["numberOfCompliantDevices"], 1, "B's shared-1 keeps its other values");
    let (_, shared_2) = fixture.get(Partner::B, &format!("{GRAPH}/shared-2")).await;
    assert_eq!(shared_2["tenantDisplayName"], "Bravo Replaced", "B's shared-2");
    assert_eq!(shared_2["numberOfCompliantDevices"], Value::Null, "B's shared-2 was replaced");
    let (status, _) = fixture.get(Partner::B, &format!("{SEED}/shared-3")).await;
    assert_eq!(status, 404, "B's shared-3 is deleted");

    // A's rows with the same ids, and all of A's other rows, are as created.
    fixture.assert_partner_intact(Partner::A, "after B changed the shared ids").await;

    // Creating an id that only the other partner has succeeds, and a second create of it
    // conflicts, so neither response reveals to B whether A has the id.
    let mut body = create_body(&row_b("a-only-1", SEED, 9));
    let response = fixture.request(Partner::B, Method::POST, SEED).json(&body).send().await;
    assert_eq!(response.unwrap().status(), 201, "B creates a-only-1");
    body["numberOfCompliantDevices"] = json!(10);
    let response = fixture.request(Partner::B, Method::POST, SEED).json(&body).send().await;
    assert_graph_error(response.unwrap(), 409, "Conflict").await;
    let (_, created) = fixture.get(Partner::B, &format!("{SEED}/a-only-1")).await;
    assert_eq!(created["numberOfCompliantDevices"], 9, "B's a-only-1");
    fixture.assert_partner_intact(Partner::A, "after B created a-only-1").await;

    assert_database_intact(
        &fixture.server.data_dir,
        &[(DEV_PARTNER_TENANT, ROWS_A.len() as i64), (PARTNER_B, ROWS_B.len() as i64)],
        "after the shared-id writes",
    );
}

#[tokio::test]
async fn batch_entries_act_for_their_own_token() {
    let fixture = Fixture::start().await;
    let token_a = format!("Bearer {}", fixture.token(Partner::A));
    let count_b = ROWS_B.len().to_string();
    let full_body = {
        let mut body = create_body(&row_b("ignored", SEED, 7));
        body.as_object_mut().unwrap().remove("id");
        body
    };

    let requests = json!({"requests": [
        {"id": "get-a-only", "method": "GET", "url": format!("{SEED}/a-only-1")},
        {"id": "get-a-only-quoted", "method": "GET", "url": format!("{SEED}('a-only-o''brien')")},
        {"id": "patch-a-only", "method": "PATCH", "url": format!("{SEED}/a-only-1"),
         "headers": {"Content-Type": "application/json", "If-Match": "*"},
         "body": {"compliancePolicyName": "changed by B"}},
        {"id": "put-a-only", "method": "PUT", "url": format!("{GRAPH}/a-only-2"),
         "headers": {"Content-Type": "application/json"}, "body": {"tenantId": "changed by B"}},
        {"id": "put-a-only-seed", "method": "PUT", "url": format!("{SEED}/a-only-2"),
         "headers": {"Content-Type": "application/json"}, "body": full_body},
        {"id": "delete-a-only", "method": "DELETE", "url": format!("{SEED}('a-only-o''brien')")},
        {"id": "filter-a", "method": "GET",
         "url": with_query(SEED, &[("$filter", "compliancePolicyPlatform eq 'alphaOS'")])},
        {"id": "count", "method": "GET", "url": format!("{GRAPH}/$count")},
        {"id": "get-shared", "method": "GET", "url": format!("{SEED}/shared-1")},
        {"id": "as-a", "method": "GET", "url": format!("{SEED}/a-only-1"),
         "headers": {"Authorization": token_a}},
        {"id": "as-a-shared", "method": "GET", "url": format!("{SEED}/shared-1"),
         "headers": {"authorization": token_a}},
        {"id": "as-a-count", "method": "GET", "url": format!("{SEED}/$count"),
         "headers": {"Authorization": token_a}},
        {"id": "after-as-a", "method": "GET", "url": format!("{SEED}/a-only-1"),
         "dependsOn": ["as-a"]},
    ]});
    let response =
        fixture.request(Partner::B, Method::POST, "$batch").json(&requests).send().await.unwrap();
    assert_eq!(response.status(), 200, "the batch");
    let document: Value = response.json().await.unwrap();
    let responses = document["responses"].as_array().unwrap();
    let entry = |id: &str| {
        responses
            .iter()
            .find(|entry| entry["id"] == id)
            .unwrap_or_else(|| panic!("no entry {id} in {responses:?}"))
            .clone()
    };

    // Every request with B's token, the batch's, misses A's rows.
    for id in [
        "get-a-only",
        "get-a-only-quoted",
        "patch-a-only",
        "put-a-only",
        "put-a-only-seed",
        "delete-a-only",
        "after-as-a",
    ] {
        let entry = entry(id);
        assert_eq!(entry["status"], 404, "{id}: {entry}");
        assert_eq!(entry["body"]["error"]["code"], "ResourceNotFound", "{id}");
    }
    let filtered = entry("filter-a");
    assert_eq!(filtered["status"], 200, "filter-a");
    assert_eq!(filtered["body"]["value"], json!([]), "filter-a");
    assert_eq!(entry("count")["body"], count_b.as_str(), "count");
    let shared = entry("get-shared");
    assert_eq!(shared["body"], fixture.created[&(Partner::B, "shared-1".to_owned())], "get-shared");

    // A request that carries A's token in its own Authorization header acts as A, as the
    // batch format documents, and only that request does.
    let as_a = entry("as-a");
    assert_eq!(as_a["status"], 200, "as-a: {as_a}");
    assert_eq!(as_a["body"], fixture.created[&(Partner::A, "a-only-1".to_owned())], "as-a");
    let as_a_shared = entry("as-a-shared");
    assert_eq!(
        as_a_shared["body"],
        fixture.created[&(Partner::A, "shared-1".to_owned())],
        "as-a-shared"
    );
    assert_eq!(entry("as-a-count")["body"], ROWS_A.len().to_string(), "as-a-count");

    fixture.assert_intact("after the batch").await;
}

#[tokio::test]
async fn next_links_are_bound_to_their_partner() {
    let fixture = Fixture::start().await;
    let queries: [&[(&str, &str)]; 5] = [
        &[],
        &[("$filter", "numberOfCompliantDevices ge 0")],
        &[
            ("$orderby", "numberOfCompliantDevices desc"),
            ("$select", "id,numberOfCompliantDevices"),
        ],
        &[("$apply", "filter(startswith(id, 'a') or startswith(id, 'b') or startswith(id, 's'))")],
        &[("$apply", "groupby((id),aggregate(numberOfCompliantDevices with sum as total))")],
    ];

    for collection in [SEED, GRAPH] {
        for options in queries {
            let first_url = fixture.server.url(&with_query(collection, options));
            let mut links = BTreeMap::new();
            for partner in [Partner::A, Partner::B] {
                let response = fixture
                    .server
                    .client
                    .get(&first_url)
                    .bearer_auth(fixture.token(partner))
                    .header("prefer", "odata.maxpagesize=2")
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 200, "{partner:?}: {first_url}");
                let page: Value = response.json().await.unwrap();
                let link = page["@odata.nextLink"].as_str();
                let link = link.unwrap_or_else(|| panic!("{partner:?}: no next link in {page}"));
                links.insert(partner, link.to_owned());
            }

            for (owner, other) in [(Partner::A, Partner::B), (Partner::B, Partner::A)] {
                let link = &links[&owner];
                let case = format!("{owner:?}'s next link {link} sent by {other:?}");
                let send = |partner: Partner| {
                    fixture
                        .server
                        .client
                        .get(link)
                        .bearer_auth(fixture.token(partner))
                        .header("prefer", "odata.maxpagesize=2")
                        .send()
                };

                // The owner follows its link.
                let response = send(owner).await.unwrap();
                assert_eq!(response.status(), 200, "{case}: the owner was refused");

                // The other partner gets 400, not a page of the owner's rows nor of its own.
                let response = send(other).await.unwrap();
                let message = assert_graph_error(response, 400, "BadRequest").await;
                assert!(message.contains("$skiptoken"), "{case}: {message}");
            }
        }
    }
}

#[tokio::test]
async fn skiptokens_are_bound_to_their_query() {
    let fixture = Fixture::start().await;
    let filter = "numberOfCompliantDevices ge 0";
    let origin: &[(&str, &str)] = &[("$filter", filter), ("$orderby", "compliancePolicyName")];

    let response = fixture
        .request(Partner::A, Method::GET, &with_query(SEED, origin))
        .header("prefer", "odata.maxpagesize=2")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let page: Value = response.json().await.unwrap();
    let token = skiptoken_of(page["@odata.nextLink"].as_str().unwrap());

    let grouped_url = with_query(SEED, &[("$apply", "groupby((id))")]);
    let response = fixture
        .request(Partner::A, Method::GET, &grouped_url)
        .header("prefer", "odata.maxpagesize=2")
        .send()
        .await
        .unwrap();
    let grouped_page: Value = response.json().await.unwrap();
    let grouped_token = skiptoken_of(grouped_page["@odata.nextLink"].as_str().unwrap());

    // Each query differs from the origin in one option or in the view.
    let orderby = ("$orderby", "compliancePolicyName");
    let as_apply = format!("filter({filter})");
    let (token, grouped_token) = (token.as_str(), grouped_token.as_str());
    let replays = [
        ("the other view", GRAPH, vec![("$filter", filter), orderby], token),
        ("without $filter", SEED, vec![orderby], token),
        (
            "another $filter",
            SEED,
            vec![("$filter", "numberOfCompliantDevices ge 1"), orderby],
            token,
        ),
        (
            "another $orderby",
            SEED,
            vec![("$filter", filter), ("$orderby", "compliancePolicyName desc")],
            token,
        ),
        ("without $orderby", SEED, vec![("$filter", filter)], token),
        ("with $select", SEED, vec![("$filter", filter), orderby, ("$select", "id")], token),
        ("with $top", SEED, vec![("$filter", filter), orderby, ("$top", "50")], token),
        ("with $skip", SEED, vec![("$filter", filter), orderby, ("$skip", "1")], token),
        ("as $apply", SEED, vec![("$apply", as_apply.as_str()), orderby], token),
        ("grouped token on a listing", SEED, vec![("$filter", filter), orderby], grouped_token),
        ("listing token on a grouping", SEED, vec![("$apply", "groupby((id))")], token),
    ];
    for (case, collection, options, token) in replays {
        let mut options = options;
        options.push(("$skiptoken", token));
        let path = with_query(collection, &options);
        let response = fixture.request(Partner::A, Method::GET, &path).send().await.unwrap();
        let status = response.status().as_u16();
        if status != 400 {
            let text = response.text().await.unwrap();
            panic!("{case}: expected 400, got {status} with {text}");
        }
        let message = assert_graph_error(response, 400, "BadRequest").await;
        assert!(message.contains("$skiptoken"), "{case}: {message}");
    }

    // The origin query takes both tokens back.
    let mut options = origin.to_vec();
    options.push(("$skiptoken", token));
    let (status, page) = fixture.get(Partner::A, &with_query(SEED, &options)).await;
    assert_eq!(status, 200, "the origin query: {page}");
    assert!(!ids_of(&page).is_empty(), "the origin query");
    let path = format!("{grouped_url}&$skiptoken={grouped_token}");
    let (status, page) = fixture.get(Partner::A, &path).await;
    assert_eq!(status, 200, "the grouped query: {page}");
}

/// What a hostile request must get.
#[derive(Clone, Debug)]
enum Expect {
    /// `200` with exactly these ids of B, each entity as B's listing shows it.
    Rows(Vec<&'static str>),
    /// `200` with one grouped row whose property `name` is `value`.
    Aggregate(&'static str, Value),
    /// `400 BadRequest`.
    BadRequest,
}

/// Sends GET `path` as B and checks the response against `expect`.
async fn check_hostile_read(
    fixture: &Fixture,
    collection: &'static str,
    path: &str,
    expect: &Expect,
    case: &str,
) {
    let response = fixture.request(Partner::B, Method::GET, path).send().await.unwrap();
    let status = response.status().as_u16();
    assert!(status < 500, "{case}: status {status}");
    match expect {
        Expect::BadRequest => {
            if status != 400 {
                let text = response.text().await.unwrap();
                panic!("{case}: expected 400, got {status} with {text}");
            }
            assert_graph_error(response, 400, "BadRequest").await;
        }
        Expect::Rows(ids) => {
            let page: Value = response.json().await.unwrap();
            assert_eq!(status, 200, "{case}: {page}");
            assert_eq!(ids_of(&page), *ids, "{case}: ids");
            for entity in page["value"].as_array().unwrap() {
                let id = entity["id"].as_str().unwrap();
                let own = fixture.listed(Partner::B, collection, id);
                assert_eq!(entity, own, "{case}: the row {id} is not B's");
            }
        }
        Expect::Aggregate(name, value) => {
            let page: Value = response.json().await.unwrap();
            assert_eq!(status, 200, "{case}: {page}");
            let rows = page["value"].as_array().unwrap();
            assert_eq!(rows.len(), 1, "{case}: {page}");
            assert_eq!(&rows[0][*name], value, "{case}: {page}");
        }
    }
}

#[tokio::test]
async fn hostile_query_options_are_harmless() {
    let fixture = Fixture::start().await;
    let all_b = || Expect::Rows(B_IDS.to_vec());
    let none = || Expect::Rows(vec![]);
    let sum_b: i64 = ROWS_B.iter().map(|row| row.compliant).sum();
    let long_literal = format!("compliancePolicyPlatform eq '{}'", "x''".repeat(2000));
    let too_long = format!("compliancePolicyPlatform eq '{}'", "x".repeat(MAX_LENGTH));
    let partner_filter = format!("partner_tenant_id eq '{DEV_PARTNER_TENANT}'");

    let cases: Vec<(&str, &str, String, Expect)> = vec![
        // $filter string literals.
        ("doubled quote", "$filter", "compliancePolicyPlatform eq 'x'' OR 1=1 --'".into(), none()),
        (
            "doubled quotes around a tautology",
            "$filter",
            "compliancePolicyPlatform eq 'windows10AndLater'' OR ''1''=''1'".into(),
            none(),
        ),
        (
            "statement in a literal",
            "$filter",
            "compliancePolicyPlatform eq '''); DROP TABLE aggregated_policy_compliance; --'".into(),
            none(),
        ),
        (
            "statement after an empty literal",
            "$filter",
            "compliancePolicyPlatform eq ''); DROP TABLE aggregated_policy_compliance; --'".into(),
            Expect::BadRequest,
        ),
        (
            "statement after an open quote",
            "$filter",
            "compliancePolicyPlatform eq '); DROP TABLE aggregated_policy_compliance; --".into(),
            Expect::BadRequest,
        ),
        (
            "statement after a literal",
            "$filter",
            "compliancePolicyPlatform eq 'x'; DROP TABLE aggregated_policy_compliance".into(),
            Expect::BadRequest,
        ),
        ("backslash escape", "$filter", r"compliancePolicyPlatform eq 'x\' OR 1=1 --'".into(), Expect::BadRequest),
        ("OData tautology", "$filter", "compliancePolicyPlatform eq 'x' or 1 eq 1".into(), all_b()),
        ("unicode quotes in a literal", "$filter", "compliancePolicyPlatform eq 'x’ OR ’1’=’1'".into(), none()),
        ("unicode quotes as delimiters", "$filter", "compliancePolicyPlatform eq ’windows10AndLater’".into(), Expect::BadRequest),
        ("fullwidth quote", "$filter", "compliancePolicyPlatform eq 'x＇ or 1 eq 1 or ＇'".into(), none()),
        ("NUL at the end of a literal", "$filter", "compliancePolicyPlatform eq 'windows10AndLater\0'".into(), Expect::BadRequest),
        ("NUL before a tautology", "$filter", "id eq 'x\0' or '1' eq '1'".into(), Expect::BadRequest),
        ("NUL outside a literal", "$filter", "compliancePolicyPlatform eq 'x'\0 or true".into(), Expect::BadRequest),
        ("long literal", "$filter", long_literal, none()),
        ("literal over the length limit", "$filter", too_long, Expect::BadRequest),
        ("LIKE wildcard %", "$filter", "contains(compliancePolicyPlatform, '%')".into(), none()),
        ("LIKE wildcard _", "$filter", "startswith(id, '_')".into(), none()),
        ("GLOB wildcard", "$filter", "endswith(id, '*')".into(), none()),
        ("regular expression", "$filter", "matchesPattern(id, '.*')".into(), all_b()),
        ("the other partner's ids", "$filter", "id eq 'a-only-1' or id eq 'b-only-1'".into(), Expect::Rows(vec!["b-only-1"])),
        ("partner column", "$filter", partner_filter, Expect::BadRequest),
        ("SQL column name", "$filter", "compliance_policy_platform eq 'alphaOS'".into(), Expect::BadRequest),
        ("rowid", "$filter", "rowid gt 0".into(), Expect::BadRequest),
        ("subquery", "$filter", "id in (SELECT id FROM aggregated_policy_compliance)".into(), Expect::BadRequest),
        ("SQL comment", "$filter", "id eq 'x' /* comment */".into(), Expect::BadRequest),
        ("SQL function", "$filter", "sqlite_version() eq '3'".into(), Expect::BadRequest),
        ("closing parenthesis", "$filter", "1 eq 1) or (1 eq 1".into(), Expect::BadRequest),
        // $orderby.
        ("statement in $orderby", "$orderby", "id; DROP TABLE aggregated_policy_compliance".into(), Expect::BadRequest),
        ("subquery in $orderby", "$orderby", "id desc, (SELECT 1)".into(), Expect::BadRequest),
        ("partner column in $orderby", "$orderby", "partner_tenant_id".into(), Expect::BadRequest),
        ("SQL comment in $orderby", "$orderby", "id --".into(), Expect::BadRequest),
        ("SQL keyword in $orderby", "$orderby", "id COLLATE NOCASE".into(), Expect::BadRequest),
        ("valid $orderby", "$orderby", "compliancePolicyPlatform desc,id".into(), all_b()),
        // $select.
        ("partner column in $select", "$select", "id,partner_tenant_id".into(), Expect::BadRequest),
        ("statement in $select", "$select", "id; DROP TABLE aggregated_policy_compliance".into(), Expect::BadRequest),
        ("subquery in $select", "$select", "id,(SELECT 1)".into(), Expect::BadRequest),
        ("version column in $select", "$select", "version".into(), Expect::BadRequest),
        ("star in $select", "$select", "*".into(), all_b()),
        // $apply.
        ("partner column in groupby", "$apply", "groupby((partner_tenant_id))".into(), Expect::BadRequest),
        (
            "statement as an alias",
            "$apply",
            "aggregate(numberOfCompliantDevices with sum as x; DROP TABLE aggregated_policy_compliance)".into(),
            Expect::BadRequest,
        ),
        (
            "quoted alias",
            "$apply",
            "aggregate(numberOfCompliantDevices with sum as \"x\")".into(),
            Expect::BadRequest,
        ),
        (
            "statement after a transformation",
            "$apply",
            "aggregate($count as rows) DROP TABLE aggregated_policy_compliance".into(),
            Expect::BadRequest,
        ),
        (
            "SQL function as a method",
            "$apply",
            "aggregate(numberOfCompliantDevices with sqlite_version as v)".into(),
            Expect::BadRequest,
        ),
        (
            "partner column as an alias",
            "$apply",
            "aggregate(numberOfCompliantDevices with sum as partner_tenant_id)".into(),
            Expect::Aggregate("partner_tenant_id", json!(sum_b)),
        ),
        (
            "generated column name as an alias",
            "$apply",
            "aggregate(numberOfCompliantDevices with sum as c0)".into(),
            Expect::Aggregate("c0", json!(sum_b)),
        ),
        (
            "doubled quote in an $apply filter",
            "$apply",
            "filter(compliancePolicyPlatform eq 'x'' OR 1=1 --')/aggregate($count as rows)".into(),
            Expect::Aggregate("rows", json!(0)),
        ),
        (
            "tautology in an $apply filter",
            "$apply",
            "filter(1 eq 1)/aggregate($count as rows)".into(),
            Expect::Aggregate("rows", json!(ROWS_B.len())),
        ),
        // $top and $skip.
        ("statement in $top", "$top", "1; DROP TABLE aggregated_policy_compliance".into(), Expect::BadRequest),
        ("negative $skip", "$skip", "-1".into(), Expect::BadRequest),
        ("tautology in $top", "$top", "1 OR 1=1".into(), Expect::BadRequest),
        ("huge $skip", "$skip", u64::MAX.to_string(), none()),
    ];

    for collection in [SEED, GRAPH] {
        for (label, option, value, expect) in &cases {
            let case = format!("{label}: {collection}?{option}={value:?}");
            let path = with_query(collection, &[(option, value.as_str())]);
            check_hostile_read(&fixture, collection, &path, expect, &case).await;
        }
    }

    fixture.assert_intact("after the hostile query options").await;
    assert_database_intact(&fixture.server.data_dir, &fixture_row_counts(), "hostile options");
}

#[tokio::test]
async fn forged_skiptokens_are_rejected() {
    let fixture = Fixture::start().await;

    // B's own token from the first page of a plain listing, and its parts.
    let response = fixture
        .request(Partner::B, Method::GET, SEED)
        .header("prefer", "odata.maxpagesize=2")
        .send()
        .await
        .unwrap();
    let page: Value = response.json().await.unwrap();
    let token = skiptoken_of(page["@odata.nextLink"].as_str().unwrap());
    let (payload, signature) = token.split_once('.').unwrap();

    let mut flipped = token.clone().into_bytes();
    let last = flipped.len() - 1;
    flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).unwrap();
    let forged_payload = base64url(br#"{"k":[],"i":"a-only-1","n":0}"#);
    let injected_payload = base64url(br#"{"i":"' OR 1=1 --","n":0}"#);
    let cases: Vec<(&str, String)> = vec![
        ("a made-up word", "garbage".to_owned()),
        ("empty", String::new()),
        ("a lone dot", ".".to_owned()),
        ("two empty parts", "a.b".to_owned()),
        ("truncated by one character", token[..token.len() - 1].to_owned()),
        ("the payload alone", payload.to_owned()),
        ("the last character changed", flipped),
        ("another payload with the real signature", format!("{forged_payload}.{signature}")),
        ("SQL in the payload", format!("{injected_payload}.{signature}")),
        ("an unsigned payload", format!("{forged_payload}.")),
        ("base64 garbage", "%FF%FE%00.%00".to_owned()),
        ("standard base64 padding", format!("{payload}==.{signature}==")),
        ("SQL text", "' OR 1=1 --".to_owned()),
        ("a NUL byte", format!("{payload}%00.{signature}")),
        ("very long", format!("{}.{signature}", "A".repeat(6000))),
    ];

    for collection in [SEED, GRAPH] {
        for (label, forged) in &cases {
            let case = format!("{label}: {collection}?$skiptoken={forged:.60}");
            // The value is sent as written, so that `%` escapes reach the server unchanged.
            let path = format!("{collection}?$skiptoken={}", forged.replace(' ', "%20"));
            check_hostile_read(&fixture, collection, &path, &Expect::BadRequest, &case).await;
        }
    }

    // The untouched token resumes B's listing after its second row.
    let path = format!("{SEED}?$skiptoken={token}");
    let rest = Expect::Rows(B_IDS[2..].to_vec());
    check_hostile_read(&fixture, SEED, &path, &rest, "the untouched token").await;

    fixture.assert_intact("after the forged skiptokens").await;
    assert_database_intact(&fixture.server.data_dir, &fixture_row_counts(), "forged skiptokens");
}

#[tokio::test]
async fn hostile_ids_in_paths_match_nothing() {
    let fixture = Fixture::start().await;

    // Each path, the partner who sends it, and the status of GET, PATCH and DELETE.
    let cases: [(&str, String, Partner, u16); 14] = [
        ("tautology as a segment", format!("{SEED}/x'%20OR%20'1'%3D'1"), Partner::B, 404),
        ("tautology in parentheses", format!("{SEED}('x''%20OR%20''1''%3D''1')"), Partner::B, 404),
        (
            "unbalanced quotes in parentheses",
            format!("{SEED}('x'%20OR%20'1'%3D'1')"),
            Partner::B,
            400,
        ),
        (
            "statement as a segment",
            format!("{SEED}/'%3B%20DROP%20TABLE%20aggregated_policy_compliance%3B%20--"),
            Partner::B,
            404,
        ),
        ("quote after A's id", format!("{SEED}/a-only-1%27"), Partner::B, 404),
        ("encoded dot segments", format!("{SEED}/..%2Fa-only-1"), Partner::B, 404),
        ("encoded slash after the id", format!("{SEED}/a-only-1%2F.."), Partner::B, 404),
        ("a NUL byte alone", format!("{SEED}/%00"), Partner::B, 404),
        ("NUL after the owner's id", format!("{SEED}/a-only-1%00"), Partner::A, 404),
        ("NUL after B's id", format!("{GRAPH}('b-only-1%00')"), Partner::B, 404),
        ("% as a wildcard", format!("{SEED}/a-only-%25"), Partner::A, 404),
        ("_ as a wildcard", format!("{SEED}/a-only-_"), Partner::A, 404),
        ("another letter case", format!("{SEED}/A-ONLY-1"), Partner::A, 404),
        ("a trailing space", format!("{SEED}/shared-1%20"), Partner::B, 404),
    ];

    for (label, path, partner, status) in &cases {
        for method in [Method::GET, Method::PATCH, Method::DELETE] {
            let case = format!("{label}: {method} {path} as {partner:?}");
            let mut request = fixture.request(*partner, method.clone(), path);
            if method == Method::PATCH {
                request = request.json(&json!({"compliancePolicyName": "changed"}));
            }
            let response = request.send().await.unwrap();
            let code = if *status == 404 { "ResourceNotFound" } else { "BadRequest" };
            let actual = response.status().as_u16();
            if actual != *status {
                let text = response.text().await.unwrap();
                panic!("{case}: expected {status}, got {actual} with {text}");
            }
            assert_graph_error(response, *status, code).await;
        }
    }

    fixture.assert_intact("after the hostile paths").await;
    assert_database_intact(&fixture.server.data_dir, &fixture_row_counts(), "hostile paths");
}

#[tokio::test]
async fn hostile_ids_in_bodies_are_stored_as_given() {
    let fixture = Fixture::start().await;
    let ids = [
        "x' OR '1'='1",
        "'); DROP TABLE aggregated_policy_compliance; --",
        "a-only-1",
        "%",
        "_",
        "*",
        "’ OR ’1’=’1",
        "\\'; --",
    ];

    for (i, id) in ids.iter().enumerate() {
        let case = format!("B creates {id:?}");
        let row = row_b("placeholder", SEED, 100 + i as i64);
        let mut body = create_body(&row);
        body["id"] = json!(id);
        let response = fixture.request(Partner::B, Method::POST, SEED).json(&body).send().await;
        let response = response.unwrap();
        let status = response.status().as_u16();
        let created: Value = response.json().await.unwrap();
        assert_eq!(status, 201, "{case}: {created}");
        assert_eq!(created["id"], *id, "{case}");

        // B reads it back through both key forms, and A finds no such row of its own.
        for path in entity_paths(SEED, id) {
            let (status, read) = fixture.get(Partner::B, &path).await;
            assert_eq!(status, 200, "{case}: GET {path} as B");
            assert_eq!(read, created, "{case}: GET {path} as B");
        }
        if *id != "a-only-1" {
            let path = entity_paths(SEED, id)[0].clone();
            let (status, _) = fixture.get(Partner::A, &path).await;
            assert_eq!(status, 404, "{case}: GET {path} as A");
        }
    }

    // An id in an update's body is ignored: B's row keeps its id and A's row is untouched.
    let response = fixture
        .request(Partner::B, Method::PATCH, &format!("{SEED}/b-only-1"))
        .json(&json!({"id": "a-only-1", "compliancePolicyName": "renamed?"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204, "PATCH b-only-1 with A's id in the body");
    let (_, b_only) = fixture.get(Partner::B, &format!("{SEED}/b-only-1")).await;
    assert_eq!(b_only["compliancePolicyName"], "renamed?", "b-only-1 after the PATCH");
    let (_, a_only_of_b) = fixture.get(Partner::B, &format!("{SEED}/a-only-1")).await;
    assert_eq!(a_only_of_b["compliancePolicyName"], "Windows 10 baseline", "B's a-only-1");

    let b_rows = ROWS_B.len() + ids.len();
    assert_eq!(fixture.count(Partner::B, SEED).await, b_rows as u64, "B's count");
    fixture.assert_partner_intact(Partner::A, "after B's hostile ids").await;
    assert_database_intact(
        &fixture.server.data_dir,
        &[(DEV_PARTNER_TENANT, ROWS_A.len() as i64), (PARTNER_B, b_rows as i64)],
        "hostile body ids",
    );
}

#[tokio::test]
async fn strings_with_u0000_are_rejected() {
    // PostgreSQL text cannot contain U+0000, so neither store accepts it.
    let fixture = Fixture::start().await;
    let mut with_nul_id = create_body(&row_b("placeholder", SEED, 200));
    with_nul_id["id"] = json!("b\0nul");
    let mut with_nul_name = create_body(&row_b("nul-name", SEED, 201));
    with_nul_name["compliancePolicyName"] = json!("Windows\0baseline");

    let requests = [
        ("an id", Method::POST, SEED.to_owned(), with_nul_id),
        ("a name", Method::POST, SEED.to_owned(), with_nul_name),
        (
            "an update",
            Method::PATCH,
            format!("{GRAPH}/b-only-1"),
            json!({"tenantDisplayName": "\0"}),
        ),
        (
            "a replacement",
            Method::PUT,
            format!("{GRAPH}/b-only-1"),
            json!({"tenantDisplayName": "Fabrikam\0"}),
        ),
    ];
    for (case, method, path, body) in requests {
        let response = fixture.request(Partner::B, method, &path).json(&body).send().await;
        let message = assert_graph_error(response.unwrap(), 400, "BadRequest").await;
        assert!(message.contains("U+0000"), "{case}: {message}");
    }

    fixture.assert_intact("after strings with U+0000").await;
    assert_database_intact(&fixture.server.data_dir, &fixture_row_counts(), "U+0000");
}

#[tokio::test]
async fn oversized_and_deep_requests_are_rejected() {
    let fixture = Fixture::start().await;

    // Bodies just over the limit, each sent on a client of its own because the server closes
    // the connection after a 413.
    let padding = "x".repeat(MAX_BODY_BYTES);
    let mut create = create_body(&row_b("too-large", SEED, 1));
    create["compliancePolicyName"] = json!(padding);
    let batch = json!({"requests": [{
        "id": "1", "method": "POST", "url": SEED,
        "headers": {"Content-Type": "application/json"}, "body": create.clone(),
    }]});
    let bodies = [
        (Method::POST, SEED.to_owned(), create.clone()),
        (Method::PATCH, format!("{SEED}/b-only-1"), json!({"compliancePolicyName": padding})),
        (Method::PUT, format!("{GRAPH}/shared-2"), json!({"tenantDisplayName": padding})),
        (Method::POST, "$batch".to_owned(), batch),
    ];
    for (method, path, body) in bodies {
        let case = format!("{method} {path} with a body over {MAX_BODY_BYTES} bytes");
        let text = body.to_string();
        assert!(text.len() > MAX_BODY_BYTES, "{case}: the body is too small");
        let response = reqwest::Client::new()
            .request(method, fixture.server.url(&path))
            .bearer_auth(fixture.token(Partner::B))
            .header("content-type", "application/json")
            .body(text)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        assert_eq!(status, 413, "{case}");
        assert_graph_error(response, 413, "RequestEntityTooLarge").await;
    }

    let long_filter = format!("id eq '{}'", "x".repeat(MAX_LENGTH));
    let parentheses = format!("{}true{}", "(".repeat(MAX_DEPTH + 1), ")".repeat(MAX_DEPTH + 1));
    let negations = format!("{}true", "not ".repeat(MAX_DEPTH + 1));
    let chain = vec!["id eq 'x'"; MAX_DEPTH + 2].join(" or ");
    let calls =
        format!("{}id{} eq 'x'", "tolower(".repeat(MAX_DEPTH + 1), ")".repeat(MAX_DEPTH + 1));
    let many_stages = vec!["top(9)"; MAX_STAGES + 1].join("/");
    let more_stages_than_sqlite_nests = vec!["top(9)"; 500].join("/");
    let many_groupings = vec!["groupby((id))"; MAX_STAGES + 1].join("/");
    let many_keys = vec!["id"; MAX_ITEMS + 1].join(",");
    let more_keys_than_sqlite_sorts = vec!["id"; 2100].join(",");
    let long_select = vec!["id"; MAX_LENGTH / 2].join(",");
    let apply_keys = format!("orderby({more_keys_than_sqlite_sorts})/top(1)");
    let rejected: [(&str, &str, &str); 13] = [
        ("$filter over the length limit", "$filter", &long_filter),
        ("nested parentheses", "$filter", &parentheses),
        ("nested not", "$filter", &negations),
        ("a chain of or", "$filter", &chain),
        ("nested calls", "$filter", &calls),
        ("$apply over the stage limit", "$apply", &many_stages),
        ("$apply nested deeper than SQLite allows", "$apply", &more_stages_than_sqlite_nests),
        ("groupby over the stage limit", "$apply", &many_groupings),
        ("$orderby over the key limit", "$orderby", &many_keys),
        ("$orderby past SQLite's column limit", "$orderby", &more_keys_than_sqlite_sorts),
        ("orderby in $apply past SQLite's limit", "$apply", &apply_keys),
        ("$orderby on a grouping", "$orderby", &more_keys_than_sqlite_sorts),
        ("$select over the length limit", "$select", &long_select),
    ];
    for collection in [SEED, GRAPH] {
        for (label, option, value) in rejected {
            let case = format!("{label}: {collection}?{option}=({} characters)", value.len());
            let mut options = vec![(option, value)];
            if label == "$orderby on a grouping" {
                options.push(("$apply", "groupby((id))"));
            }
            let path = with_query(collection, &options);
            check_hostile_read(&fixture, collection, &path, &Expect::BadRequest, &case).await;
        }
    }

    // Right at the limits, the same shapes get 200.
    let parentheses = format!("{}true{}", "(".repeat(MAX_DEPTH - 2), ")".repeat(MAX_DEPTH - 2));
    let negations = format!("{}true", "not ".repeat(MAX_DEPTH - 2));
    let stages = vec!["top(9)"; MAX_STAGES].join("/");
    let keys = vec!["id desc"; MAX_ITEMS].join(",");
    let mut reversed = B_IDS.to_vec();
    reversed.reverse();
    let accepted: [(&str, &str, &str, Expect); 4] = [
        ("parentheses at the depth limit", "$filter", &parentheses, Expect::Rows(B_IDS.to_vec())),
        ("not at the depth limit", "$filter", &negations, Expect::Rows(B_IDS.to_vec())),
        ("$apply at the stage limit", "$apply", &stages, Expect::Rows(B_IDS.to_vec())),
        ("$orderby at the key limit", "$orderby", &keys, Expect::Rows(reversed)),
    ];
    for collection in [SEED, GRAPH] {
        for (label, option, value, expect) in &accepted {
            let case = format!("{label}: {collection}?{option}=({} characters)", value.len());
            let path = with_query(collection, &[(option, value)]);
            check_hostile_read(&fixture, collection, &path, expect, &case).await;
        }
    }

    fixture.assert_intact("after the oversized requests").await;
    assert_database_intact(&fixture.server.data_dir, &fixture_row_counts(), "oversized requests");
}
