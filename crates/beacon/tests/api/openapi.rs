use reqwest::Method;
use serde_json::Value;

use crate::helpers::*;

/// Returns the OpenAPI description committed at `docs/openapi.json`.
fn committed_document() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json");
    std::fs::read_to_string(path).unwrap()
}

/// Resolves a local `$ref` of `document`, or returns `value` when it is no reference.
fn resolved<'a>(document: &'a Value, value: &'a Value) -> &'a Value {
    match value["$ref"].as_str() {
        Some(reference) => document.pointer(reference.trim_start_matches('#')).unwrap(),
        None => value,
    }
}

#[tokio::test]
async fn openapi_document_is_served_without_a_token() {
    let server = TestServer::start().await;
    let url = server.url("openapi.json");

    let response = server.client.get(&url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    // The server URL is the relative `/beta`, so the served document is the committed one
    // byte for byte.
    assert_eq!(response.text().await.unwrap(), committed_document());

    let head = server.client.head(&url).send().await.unwrap();
    assert_eq!(head.status(), 200);
    assert!(head.bytes().await.unwrap().is_empty());

    let json = server.client.get(format!("{url}?$format=json")).send().await.unwrap();
    assert_eq!(json.status(), 200);
}

#[tokio::test]
async fn openapi_document_rejects_other_requests() {
    let server = TestServer::start().await;
    let url = server.url("openapi.json");

    let post = server.client.post(&url).send().await.unwrap();
    assert_eq!(post.headers()["allow"], "GET, HEAD");
    assert_graph_error(post, 405, "MethodNotAllowed").await;

    let xml = server.client.get(format!("{url}?$format=xml")).send().await.unwrap();
    assert_graph_error(xml, 400, "BadRequest").await;
    let top = server.client.get(format!("{url}?$top=1")).send().await.unwrap();
    assert_graph_error(top, 400, "BadRequest").await;
    let html = server.client.get(&url).header("accept", "text/html").send().await.unwrap();
    assert_graph_error(html, 406, "NotAcceptable").await;
    let below = server.client.get(format!("{url}/x")).send().await.unwrap();
    assert_graph_error(below, 400, "BadRequest").await;
}

#[tokio::test]
async fn documented_operations_succeed_with_their_examples() {
    let server = TestServer::start().await;
    let (status, document) = server.get_json("openapi.json").await;
    assert_eq!(status, 200);

    // Each view gets one entity for the operations on `{id}`, which end with its DELETE.
    let mut ids = Vec::new();
    for collection in [SEED, GRAPH] {
        let body = document["paths"][format!("/{collection}")]["post"]["requestBody"]["content"]
            ["application/json"]["example"]
            .clone();
        let response = server.create(collection, &body).await;
        assert_eq!(response.status(), 201, "POST {collection}");
        let created: Value = response.json().await.unwrap();
        ids.push(created["id"].as_str().unwrap().to_owned());
    }

    let mut checked = 0;
    for (path, item) in document["paths"].as_object().unwrap() {
        let id = if path.starts_with(&format!("/{GRAPH}")) { &ids[1] } else { &ids[0] };
        let target = path.trim_start_matches('/').replace("{id}", id);
        for (method, operation) in item.as_object().unwrap() {
            if method == "parameters" {
                continue;
            }
            let case = format!("{} {path}", method.to_uppercase());
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let mut request = server.request(method.clone(), &target);
            if let Some(body) = operation.pointer("/requestBody/content/application~1json/example")
            {
                request = request.json(body);
            }
            let response = request.send().await.unwrap();
            let status = response.status();

            // The example request succeeds with a status the operation documents, and with the
            // headers that status requires.
            assert!(status.is_success(), "{case}: {status}");
            let documented = resolved(&document, &operation["responses"][status.as_str()]);
            assert!(documented.is_object(), "{case}: {status} is not documented");
            for (name, header) in documented["headers"].as_object().unwrap() {
                let header = resolved(&document, header);
                if header["required"] == true {
                    assert!(response.headers().contains_key(name.as_str()), "{case}: no {name}");
                }
            }

            // A body comes in a media type the status documents.
            let content_type = response
                .headers()
                .get("content-type")
                .map(|value| value.to_str().unwrap().to_owned());
            let body = response.bytes().await.unwrap();
            if method != Method::HEAD && !body.is_empty() {
                let content_type = content_type.expect("a body without Content-Type");
                let essence = content_type.split(';').next().unwrap();
                assert!(documented["content"].get(essence).is_some(), "{case}: {content_type}");
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 31);
}
