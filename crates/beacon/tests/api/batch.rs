//! `POST /beta/$batch`: Graph's JSON batching.
//!
//! Each request inside a batch must get exactly what it would get alone. The main test runs a
//! batch on one server and the same requests one by one on a second server with the same rows,
//! and compares them. The other tests cover `dependsOn`, envelopes that are rejected as a whole
//! (after which nothing is stored), and tokens.

use reqwest::Method;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

use crate::helpers::*;

/// The Graph view's `@odata.type`.
const GRAPH_TYPE: &str = "#microsoft.graph.managedTenants.aggregatedPolicyCompliance";

/// Builds the example create body of the seed view with the given `id`.
fn seed_body(id: &str) -> Value {
    let mut body = seed_example();
    body["id"] = json!(id);
    body
}

/// Builds the example create body of the Graph view with the given `id`.
fn graph_body(id: &str) -> Value {
    let mut body = seed_example();
    let object = body.as_object_mut().unwrap();
    let tenant_id = object.remove("organizationId").unwrap();
    let tenant_name = object.remove("organizationDisplayName").unwrap();
    object.insert("tenantId".to_owned(), tenant_id);
    object.insert("tenantDisplayName".to_owned(), tenant_name);
    object.insert("@odata.type".to_owned(), json!(GRAPH_TYPE));
    object.insert("numberOfNonCompliantDevices".to_owned(), json!(3));
    object.insert("id".to_owned(), json!(id));
    body
}

/// Builds a request object of a batch that POSTs `body` as JSON.
fn post(id: &str, url: &str, body: Value) -> Value {
    json!({
        "id": id,
        "method": "POST",
        "url": url,
        "headers": {"Content-Type": "application/json"},
        "body": body,
    })
}

/// Builds a request object of a batch that GETs `url`.
fn get(id: &str, url: &str) -> Value {
    json!({"id": id, "method": "GET", "url": url})
}

/// POSTs `body` to `/beta/$batch` with the server's token.
async fn send_batch(server: &TestServer, body: &Value) -> reqwest::Response {
    server.request(Method::POST, "$batch").json(body).send().await.unwrap()
}

/// POSTs a batch, expects `200` with JSON, and returns the `responses` array.
async fn run_batch(server: &TestServer, body: &Value) -> Vec<Value> {
    let response = send_batch(server, body).await;
    let status = response.status().as_u16();
    let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
    let text = response.text().await.unwrap();
    assert_eq!(status, 200, "batch answered {status}: {text}");
    assert!(content_type.starts_with("application/json"), "content type {content_type}");
    let document: Value = serde_json::from_str(&text).unwrap();
    document["responses"].as_array().expect("a responses array").clone()
}

/// Returns the entry with `id` from a batch's responses.
fn entry<'a>(responses: &'a [Value], id: &str) -> &'a Value {
    responses
        .iter()
        .find(|entry| entry["id"] == id)
        .unwrap_or_else(|| panic!("no response with the id '{id}' in {responses:?}"))
}

/// Returns the number of rows in the seed view, read through `/$count`.
async fn stored_count(server: &TestServer) -> u64 {
    let response = server.request(Method::GET, &format!("{SEED}/$count")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.text().await.unwrap().parse().unwrap()
}

/// Removes what differs between two sends of one request: the `innerError` of an error body,
/// which contains the time and the request ids, and the server's base URL, which differs between
/// servers.
fn comparable(body: &Value, base: &str) -> Value {
    let mut body = body.clone();
    if let Some(error) = body.get_mut("error").and_then(Value::as_object_mut) {
        let inner = error.remove("innerError");
        assert!(inner.is_some_and(|inner| inner["request-id"].is_string()), "no innerError");
    }
    let text = body.to_string().replace(base, "BASE");
    let mut body = serde_json::from_str(&text).unwrap();
    hide_etags(&mut body);
    body
}

/// Replaces every `@odata.etag` with a placeholder: each server starts its entities at random
/// versions, so two servers never give the same tags.
fn hide_etags(value: &mut Value) {
    match value {
        Value::Object(members) => {
            if let Some(tag) = members.get_mut("@odata.etag") {
                assert!(tag.as_str().is_some_and(|tag| tag.starts_with("W/\"")), "tag {tag}");
                *tag = json!("ETAG");
            }
            members.values_mut().for_each(hide_etags);
        }
        Value::Array(items) => items.iter_mut().for_each(hide_etags),
        _ => {}
    }
}

/// The response to a request sent alone: its status, headers and body in the form of a batch
/// entry (JSON as JSON, text as a string, nothing when empty).
struct Alone {
    status: u16,
    headers: HeaderMap,
    body: Option<Value>,
}

/// Sends one request alone, with a JSON body if given.
async fn send_alone(server: &TestServer, method: Method, url: &str, body: Option<&Value>) -> Alone {
    let mut request = server.request(method, url);
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let content_type = headers["content-type"].to_str().unwrap().to_owned();
    let text = response.text().await.unwrap();
    let body = if text.is_empty() {
        None
    } else if content_type.starts_with("application/json") {
        Some(serde_json::from_str(&text).unwrap())
    } else {
        Some(Value::String(text))
    };
    Alone { status, headers, body }
}

#[tokio::test]
async fn batch_entries_match_requests_sent_alone() {
    // Two servers with the same starting row: one runs the batch, the other each request alone.
    let batched = TestServer::start().await;
    let alone = TestServer::start().await;
    for server in [&batched, &alone] {
        assert_eq!(server.create(SEED, &seed_body("row-0")).await.status(), 201);
    }

    // Reads that see the new rows depend on the creates, so both servers see the same rows.
    let filtered = format!("{GRAPH}?$filter=numberOfNonCompliantDevices gt 2&$top=2&$count=true");
    let requests = vec![
        post("seed-create", &format!("/{SEED}"), seed_body("row-1")),
        post("graph-create", GRAPH, graph_body("row-2")),
        get("by-id", &format!("/{SEED}/row-0")),
        json!({"id": "filtered", "method": "GET", "url": filtered,
               "dependsOn": ["seed-create", "graph-create"]}),
        json!({"id": "count", "method": "GET", "url": format!("{SEED}/$count"),
               "dependsOn": ["seed-create", "graph-create"]}),
        get("missing", &format!("/{SEED}/no-such-row")),
        post("bad-body", SEED, json!({"organizationId": 5})),
    ];
    let responses = run_batch(&batched, &json!({"requests": requests})).await;
    assert_eq!(responses.len(), requests.len());
    let order: Vec<&str> = responses.iter().map(|entry| entry["id"].as_str().unwrap()).collect();
    let expected_order: Vec<&str> =
        requests.iter().map(|request| request["id"].as_str().unwrap()).collect();
    assert_eq!(order, expected_order, "entries are in request order");

    for request in &requests {
        let id = request["id"].as_str().unwrap();
        let method = Method::from_bytes(request["method"].as_str().unwrap().as_bytes()).unwrap();
        let url = request["url"].as_str().unwrap().trim_start_matches('/');
        let reference = send_alone(&alone, method, url, request.get("body")).await;
        let entry = entry(&responses, id);

        assert_eq!(entry["status"], reference.status, "{id}: status");
        let body = entry.get("body").filter(|body| !body.is_null());
        assert_eq!(
            body.map(|body| comparable(body, &batched.base)),
            reference.body.as_ref().map(|body| comparable(body, &alone.base)),
            "{id}: body"
        );
        let headers = &entry["headers"];
        assert_eq!(
            headers["Content-Type"].as_str(),
            reference.headers.get("content-type").map(|value| value.to_str().unwrap()),
            "{id}: Content-Type"
        );
        assert_eq!(
            headers
                .get("Location")
                .map(|value| value.as_str().unwrap().replace(&batched.base, "BASE")),
            reference
                .headers
                .get("location")
                .map(|value| { value.to_str().unwrap().replace(&alone.base, "BASE") }),
            "{id}: Location"
        );
        assert_eq!(headers["OData-Version"], "4.0", "{id}: OData-Version");
    }

    // The spot checks that the comparison alone would not catch.
    assert_eq!(entry(&responses, "seed-create")["status"], 201);
    assert_eq!(entry(&responses, "graph-create")["body"]["@odata.type"], GRAPH_TYPE);
    assert_eq!(entry(&responses, "filtered")["body"]["@odata.count"], 3);
    assert_eq!(entry(&responses, "count")["body"], "3");
    assert_eq!(entry(&responses, "missing")["body"]["error"]["code"], "ResourceNotFound");
    assert_eq!(entry(&responses, "bad-body")["status"], 400);
    assert_eq!(stored_count(&batched).await, 3);
}

#[tokio::test]
async fn urls_with_and_without_leading_slash_agree() {
    let server = TestServer::start().await;
    assert_eq!(server.create(SEED, &seed_body("row-0")).await.status(), 201);

    let requests = json!({"requests": [
        get("slash", &format!("/{GRAPH}/row-0")),
        get("no-slash", &format!("{GRAPH}/row-0")),
        get("parenthesized", &format!("{SEED}('row-0')?$select=organizationId")),
    ]});
    let responses = run_batch(&server, &requests).await;
    assert_eq!(entry(&responses, "slash")["status"], 200);
    assert_eq!(entry(&responses, "slash")["body"], entry(&responses, "no-slash")["body"]);
    assert_eq!(entry(&responses, "slash")["body"]["tenantId"], seed_example()["organizationId"]);
    let selected = &entry(&responses, "parenthesized")["body"];
    assert_eq!(selected["organizationId"], seed_example()["organizationId"]);
    assert!(selected.get("compliancePolicyName").is_none(), "$select applies: {selected}");
}

#[tokio::test]
async fn failed_dependency_gives_424_transitively() {
    let server = TestServer::start().await;

    let requests = json!({"requests": [
        get("missing", &format!("{SEED}/no-such-row")),
        {"id": "after-missing", "method": "POST", "url": SEED, "dependsOn": ["missing"],
         "headers": {"Content-Type": "application/json"}, "body": seed_body("never-1")},
        {"id": "after-after", "method": "POST", "url": SEED, "dependsOn": ["AFTER-MISSING"],
         "headers": {"Content-Type": "application/json"}, "body": seed_body("never-2")},
        post("create", SEED, seed_body("row-1")),
        {"id": "after-create", "method": "GET", "url": format!("{SEED}/row-1"),
         "dependsOn": ["create"]},
        {"id": "after-both", "method": "GET", "url": format!("{SEED}/row-1"),
         "dependsOn": ["create", "missing"]},
    ]});
    let responses = run_batch(&server, &requests).await;

    assert_eq!(entry(&responses, "missing")["status"], 404);
    for id in ["after-missing", "after-after", "after-both"] {
        let failed = entry(&responses, id);
        assert_eq!(failed["status"], 424, "{id}");
        let error = &failed["body"]["error"];
        assert_eq!(error["code"], "FailedDependency", "{id}");
        assert!(error["message"].as_str().unwrap().contains(id), "{id}: {error}");
        assert!(error["innerError"]["request-id"].is_string(), "{id}");
        assert!(
            failed["headers"]["Content-Type"].as_str().unwrap().starts_with("application/json")
        );
    }
    assert_eq!(entry(&responses, "create")["status"], 201);
    assert_eq!(entry(&responses, "after-create")["status"], 200);
    assert_eq!(entry(&responses, "after-create")["body"]["id"], "row-1");

    // Only the independent create ran.
    assert_eq!(stored_count(&server).await, 1);
}

#[tokio::test]
async fn invalid_dependencies_reject_the_whole_batch() {
    let server = TestServer::start().await;

    let cases = [
        ("forward", json!(["later"])),
        ("unknown", json!(["nobody"])),
        ("self", json!(["second"])),
        ("not an array", json!("first")),
        ("not strings", json!([1])),
    ];
    for (case, depends_on) in cases {
        let requests = json!({"requests": [
            post("first", SEED, seed_body("row-1")),
            {"id": "second", "method": "POST", "url": SEED, "dependsOn": depends_on,
             "headers": {"Content-Type": "application/json"}, "body": seed_body("row-2")},
            post("later", SEED, seed_body("row-3")),
        ]});
        let response = send_batch(&server, &requests).await;
        let message = assert_graph_error(response, 400, "BadRequest").await;
        assert!(message.contains("second"), "{case}: {message}");
        assert_eq!(stored_count(&server).await, 0, "{case}: something was stored");
    }
}

#[tokio::test]
async fn more_than_twenty_requests_are_rejected() {
    let server = TestServer::start().await;

    let too_many: Vec<Value> =
        (0..21).map(|i| post(&i.to_string(), SEED, seed_body(&format!("row-{i}")))).collect();
    let response = send_batch(&server, &json!({"requests": too_many})).await;
    let message = assert_graph_error(response, 400, "BadRequest").await;
    assert!(message.contains("20"), "{message}");
    assert_eq!(stored_count(&server).await, 0);

    // Twenty independent creates all run.
    let twenty: Vec<Value> =
        (0..20).map(|i| post(&i.to_string(), SEED, seed_body(&format!("row-{i}")))).collect();
    let responses = run_batch(&server, &json!({"requests": twenty})).await;
    assert_eq!(responses.len(), 20);
    for response in &responses {
        assert_eq!(response["status"], 201, "{response}");
    }
    assert_eq!(stored_count(&server).await, 20);
}

#[tokio::test]
async fn malformed_envelopes_are_rejected() {
    let server = TestServer::start().await;
    let valid = post("valid", SEED, seed_body("row-1"));

    let cases = [
        ("empty object", json!({})),
        ("requests missing", json!({"request": [valid.clone()]})),
        ("requests an object", json!({"requests": {"valid": valid.clone()}})),
        ("requests a string", json!({"requests": "valid"})),
        ("no requests", json!({"requests": []})),
        ("body an array", json!([valid.clone()])),
        ("request a string", json!({"requests": [valid.clone(), "GET /"]})),
        ("duplicate ids", json!({"requests": [valid.clone(), get("VALID", SEED)]})),
        ("missing id", json!({"requests": [valid.clone(), {"method": "GET", "url": SEED}]})),
        (
            "numeric id",
            json!({"requests": [valid.clone(), {"id": 2, "method": "GET", "url": SEED}]}),
        ),
        ("missing method", json!({"requests": [valid.clone(), {"id": "2", "url": SEED}]})),
        (
            "unknown method",
            json!({"requests": [valid.clone(), {"id": "2", "method": "FETCH", "url": SEED}]}),
        ),
        ("missing url", json!({"requests": [valid.clone(), {"id": "2", "method": "GET"}]})),
        (
            "numeric url",
            json!({"requests": [valid.clone(), {"id": "2", "method": "GET", "url": 5}]}),
        ),
        ("absolute url", json!({"requests": [valid.clone(), get("2", &server.url(SEED))]})),
        ("versioned url", json!({"requests": [valid.clone(), get("2", &format!("/beta/{SEED}"))]})),
        ("nested batch", json!({"requests": [valid.clone(), get("2", "/$batch")]})),
        (
            "string body declared JSON",
            json!({"requests": [valid.clone(),
            {"id": "2", "method": "POST", "url": SEED,
             "headers": {"Content-Type": "application/json"}, "body": "{}"}]}),
        ),
        (
            "number body declared JSON",
            json!({"requests": [valid.clone(),
            {"id": "2", "method": "POST", "url": SEED,
             "headers": {"Content-Type": "application/json"}, "body": 7}]}),
        ),
        (
            "body without Content-Type",
            json!({"requests": [valid.clone(),
            {"id": "2", "method": "POST", "url": SEED, "body": seed_body("row-2")}]}),
        ),
        (
            "body on a GET",
            json!({"requests": [valid.clone(),
            {"id": "2", "method": "GET", "url": SEED,
             "headers": {"Content-Type": "application/json"}, "body": {}}]}),
        ),
        (
            "header value a number",
            json!({"requests": [valid.clone(),
            {"id": "2", "method": "GET", "url": SEED, "headers": {"Prefer": 5}}]}),
        ),
        (
            "headers an array",
            json!({"requests": [valid.clone(),
            {"id": "2", "method": "GET", "url": SEED, "headers": ["Prefer"]}]}),
        ),
    ];
    for (case, body) in cases {
        let response = send_batch(&server, &body).await;
        let status = response.status().as_u16();
        if status != 400 {
            let text = response.text().await.unwrap_or_default();
            panic!("{case}: expected 400, got {status} with {text}");
        }
        assert_graph_error(response, 400, "BadRequest").await;
        assert_eq!(stored_count(&server).await, 0, "{case}: something was stored");
    }

    // Text that is not JSON at all.
    let response = server
        .request(Method::POST, "$batch")
        .header("content-type", "application/json")
        .body("{\"requests\": [")
        .send()
        .await
        .unwrap();
    assert_graph_error(response, 400, "BadRequest").await;
}

#[tokio::test]
async fn batch_body_must_be_json() {
    let server = TestServer::start().await;
    let body = json!({"requests": [post("1", SEED, seed_body("row-1"))]}).to_string();

    let response = server
        .request(Method::POST, "$batch")
        .header("content-type", "text/plain")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_graph_error(response, 415, "UnsupportedMediaType").await;
    assert_eq!(stored_count(&server).await, 0);
}

#[tokio::test]
async fn batch_without_token_gets_401() {
    let server = TestServer::start().await;
    let body = json!({"requests": [post("1", SEED, seed_body("row-1"))]});

    let response = server.client.post(server.url("$batch")).json(&body).send().await.unwrap();
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    assert_graph_error(response, 401, "InvalidAuthenticationToken").await;

    // A token given only inside the batch does not authenticate the batch.
    let inner = json!({"requests": [{
        "id": "1", "method": "GET", "url": SEED,
        "headers": {"Authorization": format!("Bearer {}", server.token())},
    }]});
    let response = server.client.post(server.url("$batch")).json(&inner).send().await.unwrap();
    assert_graph_error(response, 401, "InvalidAuthenticationToken").await;
    assert_eq!(stored_count(&server).await, 0);
}

#[tokio::test]
async fn inner_tokens_replace_the_batch_token() {
    let server = TestServer::start().await;
    let read_only = server.token_with(&["--scope", READ]);

    let requests = json!({"requests": [
        {"id": "bad-token", "method": "GET", "url": SEED,
         "headers": {"Authorization": "Bearer not-a-token"}},
        {"id": "read-only-create", "method": "POST", "url": SEED,
         "headers": {"Authorization": format!("Bearer {read_only}"),
                     "Content-Type": "application/json"},
         "body": seed_body("row-1")},
        {"id": "read-only-list", "method": "GET", "url": SEED,
         "headers": {"authorization": format!("Bearer {read_only}")}},
        get("batch-token", SEED),
    ]});
    let responses = run_batch(&server, &requests).await;

    let bad = entry(&responses, "bad-token");
    assert_eq!(bad["status"], 401);
    assert_eq!(bad["body"]["error"]["code"], "InvalidAuthenticationToken");
    assert_eq!(bad["headers"]["WWW-Authenticate"], "Bearer");
    let forbidden = entry(&responses, "read-only-create");
    assert_eq!(forbidden["status"], 403);
    assert_eq!(forbidden["body"]["error"]["code"], "Authorization_RequestDenied");
    assert_eq!(entry(&responses, "read-only-list")["status"], 200);
    assert_eq!(entry(&responses, "batch-token")["status"], 200);
    assert_eq!(stored_count(&server).await, 0);
}

#[tokio::test]
async fn get_on_batch_gets_405() {
    let server = TestServer::start().await;

    for path in ["$batch", "$BATCH"] {
        let response = server.request(Method::GET, path).send().await.unwrap();
        assert_eq!(response.headers()["allow"], "POST", "{path}");
        assert_graph_error(response, 405, "MethodNotAllowed").await;
    }
    let response = server.request(Method::PUT, "$batch").send().await.unwrap();
    assert_graph_error(response, 405, "MethodNotAllowed").await;
}

#[tokio::test]
async fn batch_segment_is_case_insensitive() {
    let server = TestServer::start().await;
    let body = json!({"requests": [get("1", SEED)]});

    let response = server.request(Method::POST, "$Batch").json(&body).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let document: Value = response.json().await.unwrap();
    assert_eq!(document["responses"][0]["status"], 200);
}

#[tokio::test]
async fn inner_headers_apply_to_their_request_only() {
    let server = TestServer::start().await;
    for i in 0..3 {
        assert_eq!(server.create(SEED, &seed_body(&format!("row-{i}"))).await.status(), 201);
    }

    // The batch's own Prefer and Accept do not reach the requests inside it.
    let requests = json!({"requests": [
        {"id": "paged", "method": "GET", "url": SEED,
         "headers": {"Prefer": "odata.maxpagesize=2"}},
        get("unpaged", SEED),
        {"id": "int64-strings", "method": "GET", "url": format!("{SEED}/row-0"),
         "headers": {"Accept": "application/json;IEEE754Compatible=true"}},
    ]});
    let response = server
        .request(Method::POST, "$batch")
        .header("prefer", "odata.maxpagesize=1")
        .header("accept", "application/json;IEEE754Compatible=true")
        .json(&requests)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let document: Value = response.json().await.unwrap();
    let responses = document["responses"].as_array().unwrap();

    let paged = entry(responses, "paged");
    assert_eq!(paged["body"]["value"].as_array().unwrap().len(), 2);
    assert!(paged["body"]["@odata.nextLink"].is_string());
    assert_eq!(paged["headers"]["Preference-Applied"], "odata.maxpagesize=2");
    let unpaged = entry(responses, "unpaged");
    assert_eq!(unpaged["body"]["value"].as_array().unwrap().len(), 3);
    assert!(unpaged["headers"].get("Preference-Applied").is_none());
    assert_eq!(unpaged["body"]["value"][0]["numberOfCompliantDevices"], 120);
    assert_eq!(entry(responses, "int64-strings")["body"]["numberOfCompliantDevices"], "120");
}

#[tokio::test]
async fn batch_runs_updates_deletes_and_preconditions() {
    let server = TestServer::start().await;
    for id in ["u1", "u2", "u3"] {
        assert_eq!(server.create(SEED, &seed_body(id)).await.status(), 201);
    }
    let (_, u1) = server.get_json(&format!("{SEED}/u1")).await;
    let current = u1["@odata.etag"].as_str().unwrap().to_owned();
    let patch = |id: &str, url: String, body: Value, headers: Value| {
        let mut headers = headers;
        headers["Content-Type"] = json!("application/json");
        json!({"id": id, "method": "PATCH", "url": url, "headers": headers, "body": body})
    };

    let requests = json!({"requests": [
        patch("merge", format!("{GRAPH}/u1"), json!({"tenantDisplayName": "Merged"}),
              json!({"If-Match": current})),
        patch("stale", format!("{SEED}/u1"), json!({"organizationDisplayName": "Stale"}),
              json!({"If-Match": "W/\"1\""})),
        {"id": "replace", "method": "PUT", "url": format!("{GRAPH}('u2')"),
         "headers": {"Content-Type": "application/json", "Prefer": "return=representation"},
         "body": {"tenantId": "replaced"}},
        {"id": "delete", "method": "DELETE", "url": format!("/{SEED}/u3")},
        {"id": "read-deleted", "method": "GET", "url": format!("{GRAPH}/u3"),
         "dependsOn": ["delete"]},
        {"id": "delete-again", "method": "DELETE", "url": format!("{SEED}/u3"),
         "dependsOn": ["delete"]},
        {"id": "after-missing", "method": "GET", "url": format!("{SEED}/u1"),
         "dependsOn": ["delete-again"]},
    ]});
    let responses = run_batch(&server, &requests).await;

    let merge = entry(&responses, "merge");
    assert_eq!(merge["status"], 204);
    assert!(merge.get("body").is_none_or(Value::is_null), "{merge}");
    let new_tag = merge["headers"]["ETag"].as_str().unwrap();
    assert_ne!(new_tag, current);

    let stale = entry(&responses, "stale");
    assert_eq!(stale["status"], 412);
    assert_eq!(stale["body"]["error"]["code"], "PreconditionFailed");

    let replace = entry(&responses, "replace");
    assert_eq!(replace["status"], 200);
    assert_eq!(replace["headers"]["Preference-Applied"], "return=representation");
    assert_eq!(replace["body"]["tenantId"], "replaced");
    assert_eq!(replace["body"]["tenantDisplayName"], Value::Null);

    assert_eq!(entry(&responses, "delete")["status"], 204);
    assert_eq!(entry(&responses, "read-deleted")["status"], 404);
    assert_eq!(entry(&responses, "delete-again")["status"], 404);
    assert_eq!(entry(&responses, "after-missing")["status"], 424);

    // The store contains what the entries report, and the stale PATCH changed nothing.
    let (_, u1) = server.get_json(&format!("{SEED}/u1")).await;
    assert_eq!(u1["organizationDisplayName"], "Merged");
    assert_eq!(u1["@odata.etag"], new_tag);
    let (_, u2) = server.get_json(&format!("{SEED}/u2")).await;
    assert_eq!(u2["organizationId"], "replaced");
    assert_eq!(stored_count(&server).await, 2);
}

#[tokio::test]
async fn not_modified_does_not_fail_a_dependency() {
    let server = TestServer::start().await;
    assert_eq!(server.create(SEED, &seed_body("nm")).await.status(), 201);
    let (_, row) = server.get_json(&format!("{SEED}/nm")).await;
    let tag = row["@odata.etag"].as_str().unwrap();

    let requests = json!({"requests": [
        {"id": "check", "method": "GET", "url": format!("{SEED}/nm"),
         "headers": {"If-None-Match": tag}},
        {"id": "change", "method": "PATCH", "url": format!("{SEED}/nm"), "dependsOn": ["check"],
         "headers": {"Content-Type": "application/json"},
         "body": {"organizationDisplayName": "Changed"}},
    ]});
    let responses = run_batch(&server, &requests).await;
    assert_eq!(entry(&responses, "check")["status"], 304);
    assert_eq!(entry(&responses, "change")["status"], 204);
}
