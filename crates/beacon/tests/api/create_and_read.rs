//! Creating entities through both views and reading them back.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::*;

/// Builds the example body with the Graph view's property names.
fn graph_example() -> Value {
    let mut body = seed_example();
    let object = body.as_object_mut().unwrap();
    rename(object, "organizationId", "tenantId");
    rename(object, "organizationDisplayName", "tenantDisplayName");
    object.remove("@odata.type");
    body
}

#[tokio::test]
async fn seed_example_reads_back_through_both_views() {
    let server = TestServer::start().await;

    let response = server.create(SEED, &seed_example()).await;
    assert_eq!(response.status(), 201);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(response.headers()["content-type"], "application/json;odata.metadata=minimal");
    assert_eq!(response.headers()["odata-version"], "4.0");
    let created: Value = response.json().await.unwrap();

    // The body is the stored entity with the view's names, type and context.
    let id = created["id"].as_str().unwrap().to_owned();
    // Server-assigned ids are time-ordered UUIDs (version 7).
    assert!(is_lowercase_uuid(&id, b'7'), "id {id}");
    assert_eq!(location, server.url(&format!("{SEED}/{id}")));
    assert_eq!(
        created["@odata.type"],
        "#microsoft.management.services.api.aggregatedPolicyCompliance"
    );
    assert_eq!(
        created["@odata.context"],
        format!("{}/beta/$metadata#aggregatedPolicyCompliances/$entity", server.base)
    );
    for (name, value) in seed_example().as_object().unwrap() {
        if name != "@odata.type" {
            assert_eq!(&created[name], value, "property {name}");
        }
    }

    // The seed view reads back what it wrote, at the Location and by key.
    let (status, by_location) = server.get_json(&location[server.url("").len()..]).await;
    assert_eq!(status, 200);
    assert_eq!(by_location, created);
    let mut expected = created.clone();

    // The Graph view reads the same row with Graph's names.
    let (status, through_graph) = server.get_json(&format!("{GRAPH}/{id}")).await;
    assert_eq!(status, 200);
    let object = expected.as_object_mut().unwrap();
    rename(object, "organizationId", "tenantId");
    rename(object, "organizationDisplayName", "tenantDisplayName");
    object.insert(
        "@odata.type".into(),
        json!("#microsoft.graph.managedTenants.aggregatedPolicyCompliance"),
    );
    object.insert(
        "@odata.context".into(),
        json!(format!(
            "{}/beta/$metadata#tenantRelationships/managedTenants/aggregatedPolicyCompliances/$entity",
            server.base
        )),
    );
    assert_eq!(through_graph, expected);
}

#[tokio::test]
async fn graph_view_create_reads_back_in_seed() {
    let server = TestServer::start().await;

    let response = server.create(GRAPH, &graph_example()).await;
    assert_eq!(response.status(), 201);
    let created: Value = response.json().await.unwrap();
    assert_eq!(created["tenantDisplayName"], "Contoso Ltd");
    assert_eq!(
        created["@odata.type"],
        "#microsoft.graph.managedTenants.aggregatedPolicyCompliance"
    );

    let (_, through_seed) =
        server.get_json(&format!("{SEED}/{}", created["id"].as_str().unwrap())).await;
    assert_eq!(through_seed["organizationDisplayName"], "Contoso Ltd");
    assert!(through_seed.get("tenantDisplayName").is_none());
}

#[tokio::test]
async fn graph_view_sparse_body_gives_nulls() {
    let server = TestServer::start().await;

    let response = server.create(GRAPH, &json!({"tenantDisplayName": "Fabrikam"})).await;
    assert_eq!(response.status(), 201);
    let created: Value = response.json().await.unwrap();

    assert_eq!(created["tenantDisplayName"], "Fabrikam");
    assert_eq!(created["tenantId"], Value::Null);
    assert_eq!(created["numberOfErrorDevices"], Value::Null);
    assert_eq!(created["lastRefreshedDateTime"], Value::Null);
    let (_, through_seed) =
        server.get_json(&format!("{SEED}/{}", created["id"].as_str().unwrap())).await;
    assert_eq!(through_seed["organizationId"], Value::Null);
}

#[tokio::test]
async fn int64_past_2_pow_53_is_exact() {
    let server = TestServer::start().await;
    let body = r#"{"id":"big","numberOfCompliantDevices":9007199254740993,"numberOfErrorDevices":9223372036854775807}"#;

    let response = server
        .request(Method::POST, GRAPH)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);

    // Compare the text, since a JSON library could round through f64.
    let text = server
        .request(Method::GET, &format!("{GRAPH}/big"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains(r#""numberOfCompliantDevices":9007199254740993,"#), "{text}");
    assert!(text.contains(r#""numberOfErrorDevices":9223372036854775807,"#), "{text}");
}

#[tokio::test]
async fn int64_as_string_with_ieee754() {
    let server = TestServer::start().await;

    let response = server
        .request(Method::POST, GRAPH)
        .header("content-type", "application/json;IEEE754Compatible=true")
        .header("accept", "application/json;IEEE754Compatible=true")
        .body(
            r#"{"id":"s","numberOfCompliantDevices":"9007199254740993","numberOfErrorDevices":4}"#,
        )
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 201);
    assert!(
        response.headers()["content-type"].to_str().unwrap().contains("IEEE754Compatible=true")
    );
    let created: Value = response.json().await.unwrap();
    assert_eq!(created["numberOfCompliantDevices"], "9007199254740993");
    assert_eq!(created["numberOfErrorDevices"], "4");
    let (_, plain) = server.get_json(&format!("{GRAPH}/s")).await;
    assert_eq!(plain["numberOfErrorDevices"], 4);
}

#[tokio::test]
async fn date_time_normalized_to_utc_keeps_digits() {
    let server = TestServer::start().await;
    let body = json!({
        "id": "dates",
        "policyModifiedDateTime": "2024-03-01T13:00:00.100+05:30",
        "lastRefreshedDateTime": "2024-03-01T07:30:00.1234567Z"
    });

    let created: Value = server.create(GRAPH, &body).await.json().await.unwrap();

    assert_eq!(created["policyModifiedDateTime"], "2024-03-01T07:30:00.100Z");
    assert_eq!(created["lastRefreshedDateTime"], "2024-03-01T07:30:00.1234567Z");
    let (_, read) = server.get_json(&format!("{SEED}/dates")).await;
    assert_eq!(read["policyModifiedDateTime"], "2024-03-01T07:30:00.100Z");
}

#[tokio::test]
async fn ids_that_need_percent_encoding_are_addressable() {
    let server = TestServer::start().await;

    for id in ["a/b", "it's", "with space", "100%", "ü/😀?#&"] {
        let mut body = seed_example();
        body["id"] = json!(id);
        let response = server.create(SEED, &body).await;
        assert_eq!(response.status(), 201, "id {id}");
        let location = response.headers()["location"].to_str().unwrap().to_owned();

        // The Location header, the key segment and the parenthesized key all find it.
        let by_location: Value = server
            .client
            .get(&location)
            .bearer_auth(server.token())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(by_location["id"], id, "Location {location}");
        let quoted = id.replace('\'', "''");
        let encoded = percent_encode(&quoted);
        let (status, by_key) = server.get_json(&format!("{GRAPH}('{encoded}')")).await;
        assert_eq!((status, by_key["id"].as_str()), (200, Some(id)));
    }
}

#[tokio::test]
async fn location_resolves_path_like_ids() {
    let server = TestServer::start().await;

    for id in [".", "..", "$count", "$metadata", "$x'y"] {
        let response = server.create(GRAPH, &json!({"id": id})).await;
        assert_eq!(response.status(), 201, "id {id}");
        let location = response.headers()["location"].to_str().unwrap().to_owned();

        let response =
            server.client.get(&location).bearer_auth(server.token()).send().await.unwrap();
        assert_eq!(response.status(), 200, "Location {location}");
        let read: Value = response.json().await.unwrap();
        assert_eq!(read["id"], id, "Location {location}");
    }
}

#[tokio::test]
async fn missing_entity_is_404_in_graph_shape() {
    let server = TestServer::start().await;

    let response = server.request(Method::GET, &format!("{SEED}/no-such-id")).send().await.unwrap();

    let message = assert_graph_error(response, 404, "ResourceNotFound").await;
    assert!(message.contains("no-such-id"), "{message}");
}

#[tokio::test]
async fn request_ids_are_echoed_and_new() {
    let server = TestServer::start().await;

    let response = server
        .request(Method::GET, SEED)
        .header("client-request-id", "my-trace-42")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["client-request-id"], "my-trace-42");
    let first = response.headers()["request-id"].to_str().unwrap().to_owned();
    assert!(is_lowercase_uuid(&first, b'4'), "request-id {first}");

    let response = server.request(Method::GET, SEED).send().await.unwrap();
    let second = response.headers()["request-id"].to_str().unwrap().to_owned();
    assert_ne!(first, second);
    assert_eq!(response.headers()["client-request-id"].to_str().unwrap(), second);
}

#[tokio::test]
async fn head_answers_like_get_without_a_body() {
    let server = TestServer::start().await;
    server.create(SEED, &seed_example()).await;

    let response = server.request(Method::HEAD, SEED).send().await.unwrap();

    assert_eq!(response.status(), 200);
    assert!(response.bytes().await.unwrap().is_empty());
}

fn rename(object: &mut serde_json::Map<String, Value>, from: &str, to: &str) {
    let value = object.remove(from).unwrap();
    object.insert(to.to_owned(), value);
}

/// Checks that `text` is a UUID in lowercase hexadecimal with the given version digit.
fn is_lowercase_uuid(text: &str, version: u8) -> bool {
    let bytes = text.as_bytes();
    bytes.len() == 36
        && bytes[14] == version
        && bytes.iter().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => *b == b'-',
            _ => b.is_ascii_digit() || (b'a'..=b'f').contains(b),
        })
}

/// Percent-encodes everything but RFC 3986's unreserved characters and `'`.
fn percent_encode(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~'".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[tokio::test]
async fn service_root_lists_the_entity_set() {
    let server = TestServer::start().await;
    let root = server.url("");
    for url in [root.trim_end_matches('/'), root.as_str()] {
        let response = server.client.get(url).bearer_auth(server.token()).send().await.unwrap();
        assert_eq!(response.status(), 200, "{url}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["@odata.context"], server.url("$metadata"));
        assert_eq!(body["value"][0]["name"], "aggregatedPolicyCompliances");
        assert_eq!(body["value"][0]["kind"], "EntitySet");
    }

    let unauthenticated = server.client.get(&root).send().await.unwrap();
    assert_graph_error(unauthenticated, 401, "InvalidAuthenticationToken").await;
    let post = server.client.post(&root).bearer_auth(server.token()).send().await.unwrap();
    assert_eq!(post.headers()["allow"], "GET, HEAD");
    assert_graph_error(post, 405, "MethodNotAllowed").await;
}
