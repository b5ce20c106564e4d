//! Updates, deletes, entity tags and preconditions through both views, with the store checked
//! unchanged after every rejected request.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{GRAPH, SEED, TestServer, assert_graph_error, seed_example};

/// A partner tenant other than the one `beacon token` uses by default.
const OTHER_PARTNER: &str = "7c2e9a55-0b1d-4a52-9d0e-5f3c9b1e2a44";

/// Creates the seed example with `id` and returns the created entity's JSON.
async fn create_example(server: &TestServer, id: &str) -> Value {
    let mut body = seed_example();
    body["id"] = json!(id);
    let response = server.create(SEED, &body).await;
    assert_eq!(response.status(), 201);
    response.json().await.unwrap()
}

/// Sends a request with a JSON body and optional extra headers.
async fn send(
    server: &TestServer,
    method: Method,
    path: &str,
    body: Option<Value>,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let mut request = server.request(method, path);
    if let Some(body) = body {
        request = request.json(&body);
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

/// Reads an entity and returns its body; fails unless the status is 200.
async fn read(server: &TestServer, path: &str) -> Value {
    let (status, body) = server.get_json(path).await;
    assert_eq!(status, 200, "GET {path}: {body}");
    body
}

#[tokio::test]
async fn patch_merges_the_sent_properties() {
    let server = TestServer::start().await;
    let created = create_example(&server, "p1").await;

    let response = send(
        &server,
        Method::PATCH,
        &format!("{GRAPH}/p1"),
        Some(json!({"tenantDisplayName": "Fabrikam", "numberOfErrorDevices": 9})),
        &[],
    )
    .await;
    assert_eq!(response.status(), 204);
    let etag = response.headers()["etag"].to_str().unwrap().to_owned();
    assert_ne!(etag, created["@odata.etag"].as_str().unwrap());
    assert!(response.bytes().await.unwrap().is_empty());

    let after = read(&server, &format!("{SEED}/p1")).await;
    assert_eq!(after["organizationDisplayName"], "Fabrikam");
    assert_eq!(after["numberOfErrorDevices"], 9);
    assert_eq!(after["@odata.etag"], etag.as_str());
    for unchanged in ["organizationId", "compliancePolicyName", "numberOfCompliantDevices"] {
        assert_eq!(after[unchanged], created[unchanged], "{unchanged}");
    }
}

#[tokio::test]
async fn patch_ignores_the_body_id() {
    let server = TestServer::start().await;
    create_example(&server, "keep").await;

    let body = json!({"id": "renamed", "organizationDisplayName": "Northwind"});
    let response = send(&server, Method::PATCH, &format!("{SEED}/keep"), Some(body), &[]).await;
    assert_eq!(response.status(), 204);

    assert_eq!(
        read(&server, &format!("{SEED}/keep")).await["organizationDisplayName"],
        "Northwind"
    );
    let (status, _) = server.get_json(&format!("{SEED}/renamed")).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn representation_is_returned_when_preferred() {
    let server = TestServer::start().await;
    create_example(&server, "r1").await;

    let response = send(
        &server,
        Method::PATCH,
        &format!("{GRAPH}/r1"),
        Some(json!({"numberOfCompliantDevices": 9007199254740993_i64})),
        &[("prefer", "return=representation")],
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["preference-applied"], "return=representation");
    let etag = response.headers()["etag"].to_str().unwrap().to_owned();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["numberOfCompliantDevices"], 9007199254740993_i64);
    assert_eq!(body["@odata.etag"], etag.as_str());
    assert!(body["@odata.context"].as_str().unwrap().ends_with(&format!("#{GRAPH}/$entity")));
    assert_eq!(body, read(&server, &format!("{GRAPH}/r1")).await);
}

#[tokio::test]
async fn rejected_patches_change_nothing() {
    let server = TestServer::start().await;
    create_example(&server, "x").await;
    let before = read(&server, &format!("{SEED}/x")).await;

    let cases = [
        (SEED, json!({"organizationId": null}), "required property 'organizationId'"),
        (GRAPH, json!({"organizationId": "a"}), "does not exist"),
        (GRAPH, json!({"numberOfErrorDevices": -1}), "numberOfErrorDevices"),
        (GRAPH, json!({"@odata.type": "#microsoft.graph.user"}), "#microsoft.graph.user"),
        (GRAPH, json!({"lastRefreshedDateTime": "yesterday"}), "lastRefreshedDateTime"),
        (GRAPH, json!([1]), "JSON object"),
    ];
    for (collection, body, expected) in cases {
        let path = format!("{collection}/x");
        let response = send(&server, Method::PATCH, &path, Some(body.clone()), &[]).await;
        let message = assert_graph_error(response, 400, "BadRequest").await;
        assert!(message.contains(expected), "PATCH {body}: {message}");
        assert_eq!(read(&server, &format!("{SEED}/x")).await, before, "PATCH {body}");
    }

    // A body that is not JSON at all.
    let response = server
        .request(Method::PATCH, &format!("{SEED}/x"))
        .header("content-type", "text/plain")
        .body("name=x")
        .send()
        .await
        .unwrap();
    assert_graph_error(response, 415, "UnsupportedMediaType").await;
    assert_eq!(read(&server, &format!("{SEED}/x")).await, before);
}

#[tokio::test]
async fn put_replaces_the_whole_entity() {
    let server = TestServer::start().await;
    create_example(&server, "put").await;

    // Through the Graph view, omitted properties become null.
    let body = json!({"tenantId": "t-2", "numberOfErrorDevices": 4});
    let response = send(&server, Method::PUT, &format!("{GRAPH}/put"), Some(body), &[]).await;
    assert_eq!(response.status(), 204);
    let after = read(&server, &format!("{GRAPH}/put")).await;
    assert_eq!(after["tenantId"], "t-2");
    assert_eq!(after["numberOfErrorDevices"], 4);
    assert_eq!(after["tenantDisplayName"], Value::Null);
    assert_eq!(after["lastRefreshedDateTime"], Value::Null);

    // Through the seed view, every required property must be given.
    let response = send(
        &server,
        Method::PUT,
        &format!("{SEED}/put"),
        Some(json!({"organizationId": "z"})),
        &[],
    )
    .await;
    let message = assert_graph_error(response, 400, "BadRequest").await;
    assert!(message.contains("are missing"), "{message}");
    assert_eq!(read(&server, &format!("{GRAPH}/put")).await, after);

    let response =
        send(&server, Method::PUT, &format!("{SEED}/put"), Some(seed_example()), &[]).await;
    assert_eq!(response.status(), 204);
    assert_eq!(
        read(&server, &format!("{SEED}/put")).await["organizationDisplayName"],
        "Contoso Ltd"
    );
}

#[tokio::test]
async fn change_of_absent_entity_is_not_found() {
    let server = TestServer::start().await;
    for (method, body) in [
        (Method::PATCH, Some(json!({"tenantId": "a"}))),
        (Method::PUT, Some(json!({"tenantId": "a"}))),
        (Method::DELETE, None),
    ] {
        for headers in [&[][..], &[("if-match", "*")][..], &[("if-match", "W/\"5\"")][..]] {
            let response =
                send(&server, method.clone(), &format!("{GRAPH}/absent"), body.clone(), headers)
                    .await;
            let case = format!("{method} with {headers:?}");
            let message = assert_graph_error(response, 404, "ResourceNotFound").await;
            assert!(message.contains("'absent'"), "{case}: {message}");
        }
    }
    // PUT does not create.
    assert!(server.list_all(GRAPH).await.is_empty());
}

#[tokio::test]
async fn delete_succeeds_only_once() {
    let server = TestServer::start().await;
    create_example(&server, "d").await;

    let response = send(&server, Method::DELETE, &format!("{SEED}/d"), None, &[]).await;
    assert_eq!(response.status(), 204);
    assert!(response.bytes().await.unwrap().is_empty());
    let (status, _) = server.get_json(&format!("{GRAPH}/d")).await;
    assert_eq!(status, 404);

    let response = send(&server, Method::DELETE, &format!("{GRAPH}('d')"), None, &[]).await;
    assert_graph_error(response, 404, "ResourceNotFound").await;
}

#[tokio::test]
async fn create_with_return_minimal_has_no_body() {
    let server = TestServer::start().await;
    let mut body = seed_example();
    body["id"] = json!("a/b c");
    let response =
        send(&server, Method::POST, SEED, Some(body), &[("prefer", "return=minimal")]).await;
    assert_eq!(response.status(), 204);
    let headers = response.headers().clone();
    assert_eq!(headers["preference-applied"], "return=minimal");
    let location = headers["location"].to_str().unwrap();
    assert_eq!(location, server.url(&format!("{SEED}/a%2Fb%20c")));
    assert_eq!(headers["odata-entityid"], location);
    assert!(headers.contains_key("etag"));
    assert!(response.bytes().await.unwrap().is_empty());

    let entity: Value = server
        .client
        .get(location)
        .bearer_auth(server.token())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(entity["id"], "a/b c");
    assert_eq!(entity["@odata.etag"], headers["etag"].to_str().unwrap());
}

#[tokio::test]
async fn stale_if_match_fails_the_precondition() {
    let server = TestServer::start().await;
    let created = create_example(&server, "e").await;
    let first = created["@odata.etag"].as_str().unwrap().to_owned();

    // The current tag lets the change through; the same tag afterwards is stale.
    let path = format!("{GRAPH}/e");
    let change = json!({"numberOfErrorDevices": 2});
    let response =
        send(&server, Method::PATCH, &path, Some(change.clone()), &[("if-match", &first)]).await;
    assert_eq!(response.status(), 204);
    let current = read(&server, &path).await;

    for (method, body) in [
        (Method::PATCH, Some(change.clone())),
        (Method::PUT, Some(change.clone())),
        (Method::DELETE, None),
    ] {
        for stale in [first.as_str(), "\"0\"", "W/\"not-ours\""] {
            let response =
                send(&server, method.clone(), &path, body.clone(), &[("if-match", stale)]).await;
            assert_graph_error(response, 412, "PreconditionFailed").await;
            assert_eq!(read(&server, &path).await, current, "{method} If-Match {stale}");
        }
    }

    // `*` matches any version of an existing entity, and so does the current tag.
    let response = send(&server, Method::PATCH, &path, Some(change), &[("if-match", "*")]).await;
    assert_eq!(response.status(), 204);
    let now = read(&server, &path).await["@odata.etag"].as_str().unwrap().to_owned();
    let response = send(&server, Method::DELETE, &path, None, &[("if-match", &now)]).await;
    assert_eq!(response.status(), 204);
}

#[tokio::test]
async fn malformed_preconditions_are_rejected() {
    let server = TestServer::start().await;
    create_example(&server, "m").await;
    let path = format!("{SEED}/m");
    let before = read(&server, &path).await;
    for value in ["42", "W/42", "*, W/\"1\""] {
        let response = send(&server, Method::DELETE, &path, None, &[("if-match", value)]).await;
        let message = assert_graph_error(response, 400, "BadRequest").await;
        assert!(message.contains("If-Match"), "{value}: {message}");
    }
    assert_eq!(read(&server, &path).await, before);
}

#[tokio::test]
async fn if_none_match_on_unchanged_entity() {
    let server = TestServer::start().await;
    create_example(&server, "n").await;
    let path = format!("{GRAPH}/n");
    let response = send(&server, Method::GET, &path, None, &[]).await;
    let etag = response.headers()["etag"].to_str().unwrap().to_owned();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["@odata.etag"], etag.as_str());

    let response = send(&server, Method::GET, &path, None, &[("if-none-match", &etag)]).await;
    assert_eq!(response.status(), 304);
    assert_eq!(response.headers()["etag"], etag.as_str());
    assert!(response.bytes().await.unwrap().is_empty());
    let response = send(&server, Method::GET, &path, None, &[("if-none-match", "*")]).await;
    assert_eq!(response.status(), 304);

    // After a change, the old tag no longer matches and the new entity comes back.
    send(&server, Method::PATCH, &path, Some(json!({"tenantId": "t"})), &[]).await;
    let response = send(&server, Method::GET, &path, None, &[("if-none-match", &etag)]).await;
    assert_eq!(response.status(), 200);
    assert_ne!(response.headers()["etag"], etag.as_str());
}

#[tokio::test]
async fn recreated_entity_gets_a_new_etag() {
    let server = TestServer::start().await;
    let old = create_example(&server, "again").await["@odata.etag"].as_str().unwrap().to_owned();
    send(&server, Method::DELETE, &format!("{SEED}/again"), None, &[]).await;
    let new = create_example(&server, "again").await["@odata.etag"].as_str().unwrap().to_owned();
    assert_ne!(old, new);

    let path = format!("{SEED}/again");
    let response = send(&server, Method::DELETE, &path, None, &[("if-match", &old)]).await;
    assert_graph_error(response, 412, "PreconditionFailed").await;
}

#[tokio::test]
async fn concurrent_patches_with_one_etag() {
    let server = TestServer::start().await;

    // Race many pairs, each on its own entity, so that the requests really overlap.
    let mut rounds = Vec::new();
    for round in 0..20 {
        let id = format!("race-{round}");
        let etag = create_example(&server, &id).await["@odata.etag"].as_str().unwrap().to_owned();
        rounds.push((id, etag));
    }
    let mut tasks = Vec::new();
    for (id, etag) in &rounds {
        for side in 0..2 {
            let request = server
                .request(Method::PATCH, &format!("{GRAPH}/{id}"))
                .header("if-match", etag.as_str())
                .json(&json!({"tenantDisplayName": format!("writer {side}")}));
            tasks.push(tokio::spawn(async move { request.send().await.unwrap() }));
        }
    }
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap().status().as_u16());
    }
    for (pair, (id, _)) in statuses.chunks(2).zip(&rounds) {
        let mut sorted = pair.to_vec();
        sorted.sort();
        assert_eq!(sorted, [204, 412], "{id}");

        // The stored name is the winner's.
        let winner = pair.iter().position(|s| *s == 204).unwrap();
        let stored = read(&server, &format!("{GRAPH}/{id}")).await;
        assert_eq!(stored["tenantDisplayName"], format!("writer {winner}"));
    }
}

#[tokio::test]
async fn other_partner_cannot_change() {
    let server = TestServer::start().await;
    create_example(&server, "mine").await;
    let before = read(&server, &format!("{SEED}/mine")).await;
    let other = server.token_with(&["--tenant", OTHER_PARTNER]);

    for (method, body) in [
        (Method::PATCH, Some(json!({"tenantId": "stolen"}))),
        (Method::PUT, Some(json!({"tenantId": "stolen"}))),
        (Method::DELETE, None),
    ] {
        let mut request = server.client.request(method, server.url(&format!("{GRAPH}/mine")));
        request = request.bearer_auth(&other).header("if-match", "*");
        if let Some(body) = body {
            request = request.json(&body);
        }
        assert_graph_error(request.send().await.unwrap(), 404, "ResourceNotFound").await;
    }
    assert_eq!(read(&server, &format!("{SEED}/mine")).await, before);
}

#[tokio::test]
async fn read_only_token_cannot_change() {
    let server = TestServer::start().await;
    create_example(&server, "ro").await;
    let before = read(&server, &format!("{SEED}/ro")).await;
    let read_only = server.token_with(&["--scope", crate::helpers::READ]);

    for (method, body) in [
        (Method::PATCH, Some(json!({"tenantId": "x"}))),
        (Method::PUT, Some(json!({"tenantId": "x"}))),
        (Method::DELETE, None),
    ] {
        let mut request = server.client.request(method, server.url(&format!("{GRAPH}/ro")));
        request = request.bearer_auth(&read_only);
        if let Some(body) = body {
            request = request.json(&body);
        }
        assert_graph_error(request.send().await.unwrap(), 403, "Authorization_RequestDenied").await;
    }
    assert_eq!(read(&server, &format!("{SEED}/ro")).await, before);
}

#[tokio::test]
async fn metadata_levels_choose_the_control_information() {
    let server = TestServer::start().await;
    create_example(&server, "m").await;
    let get = |path: String, accept: &'static str| {
        let request = server.request(Method::GET, &path).header("accept", accept);
        async move {
            let response = request.send().await.unwrap();
            let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
            (content_type, response.json::<Value>().await.unwrap())
        }
    };

    let (content_type, none) =
        get(format!("{GRAPH}?$count=true"), "application/json;odata.metadata=none").await;
    assert_eq!(content_type, "application/json;odata.metadata=none");
    assert!(none.get("@odata.context").is_none());
    assert_eq!(none["@odata.count"], 1);
    let names: Vec<&String> = none["value"][0].as_object().unwrap().keys().collect();
    assert!(names.iter().all(|name| !name.contains('@')), "{names:?}");

    let (content_type, full) =
        get(format!("{GRAPH}/m"), "application/json;odata.metadata=full").await;
    assert_eq!(content_type, "application/json;odata.metadata=full");
    let url = server.url(&format!("{GRAPH}/m"));
    assert_eq!(full["@odata.id"], url.as_str());
    assert_eq!(full["@odata.editLink"], url.as_str());
    assert_eq!(full["numberOfErrorDevices@odata.type"], "#Int64");
    assert_eq!(full["policyModifiedDateTime@odata.type"], "#DateTimeOffset");

    // $format overrides Accept.
    let (content_type, none) = get(
        format!("{SEED}/m?$format=application/json;odata.metadata=none"),
        "application/json;odata.metadata=full",
    )
    .await;
    assert_eq!(content_type, "application/json;odata.metadata=none");
    assert!(none.get("@odata.context").is_none());
    assert!(none.get("@odata.etag").is_none());

    // An unknown level cannot be served.
    let response = server
        .request(Method::GET, GRAPH)
        .header("accept", "application/json;odata.metadata=most")
        .send()
        .await
        .unwrap();
    assert_graph_error(response, 406, "NotAcceptable").await;
}

#[tokio::test]
async fn every_listed_entity_carries_its_etag() {
    let server = TestServer::start().await;
    for id in ["a", "b"] {
        create_example(&server, id).await;
    }
    for row in server.list_all(GRAPH).await {
        let single = read(&server, &format!("{GRAPH}/{}", row["id"].as_str().unwrap())).await;
        assert_eq!(row["@odata.etag"], single["@odata.etag"]);
    }
}

#[tokio::test]
async fn metadata_document_is_served_without_a_token() {
    let server = TestServer::start().await;
    let get = |query: &'static str, accept: &'static str| {
        let request = server
            .client
            .get(format!("{}{query}", server.url("$metadata")))
            .header("accept", accept);
        async move { request.send().await.unwrap() }
    };

    let response = get("", "*/*").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/xml");
    let xml = response.text().await.unwrap();
    assert!(xml.contains(r#"<EntityType Name="aggregatedPolicyCompliance""#), "{xml}");
    assert!(xml.contains(r#"Name="numberOfErrorDevices" Type="Edm.Int64""#), "{xml}");

    for (query, accept) in [("", "application/json"), ("?$format=json", "application/xml")] {
        let response = get(query, accept).await;
        assert_eq!(response.status(), 200, "{query} {accept}");
        assert_eq!(response.headers()["content-type"], "application/json");
        let document: Value = response.json().await.unwrap();
        assert_eq!(document["$Version"], "4.0");
    }

    let response = get("?$top=1", "*/*").await;
    assert_graph_error(response, 400, "BadRequest").await;
    let response = get("", "text/html").await;
    assert_graph_error(response, 406, "NotAcceptable").await;
}

#[tokio::test]
async fn service_document_lists_the_entity_sets() {
    let server = TestServer::start().await;
    let (status, document) = server.get_json("").await;
    assert_eq!(status, 200);
    assert!(document["@odata.context"].as_str().unwrap().ends_with("/beta/$metadata"));
    let names: Vec<&str> = document["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|set| set["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["aggregatedPolicyCompliances", "tenantRelationships"]);

    // The singleton and the entity it contains lead to the Graph view's collection.
    let (status, relationships) = server.get_json("tenantRelationships").await;
    assert_eq!(status, 200);
    assert!(relationships["@odata.context"].as_str().unwrap().ends_with("#tenantRelationships"));
    assert_eq!(relationships["@odata.type"], "#microsoft.graph.tenantRelationship");
    let (status, managed) = server.get_json("tenantRelationships/managedTenants").await;
    assert_eq!(status, 200);
    assert_eq!(managed["@odata.type"], "#microsoft.graph.managedTenants.managedTenant");
    assert_eq!(managed["id"], relationships["id"]);
}
