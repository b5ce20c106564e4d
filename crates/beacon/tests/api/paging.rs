//! Server-driven paging and `$top`.

use std::collections::HashSet;

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::*;

async fn create_numbered(server: &TestServer, count: usize) {
    for i in 0..count {
        let response = server.create(GRAPH, &json!({"id": format!("row-{i:04}")})).await;
        assert_eq!(response.status(), 201);
    }
}

async fn page(server: &TestServer, url: &str) -> Value {
    let response = server.client.get(url).bearer_auth(server.token()).send().await.unwrap();
    assert_eq!(response.status(), 200, "GET {url}");
    response.json().await.unwrap()
}

fn ids(page: &Value) -> Vec<String> {
    page["value"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn pages_have_100_rows_in_key_order() {
    let server = TestServer::start().await;
    create_numbered(&server, 230).await;

    let first = page(&server, &server.url(GRAPH)).await;
    let next = first["@odata.nextLink"].as_str().expect("a next link").to_owned();
    let second = page(&server, &next).await;
    let third = page(&server, second["@odata.nextLink"].as_str().unwrap()).await;

    assert_eq!(ids(&first).len(), 100);
    assert_eq!(ids(&second).len(), 100);
    assert_eq!(ids(&third).len(), 30);
    assert!(third.get("@odata.nextLink").is_none());
    assert!(next.starts_with(&server.url(GRAPH)), "next link {next}");
    let all: Vec<String> = [ids(&first), ids(&second), ids(&third)].concat();
    let expected: Vec<String> = (0..230).map(|i| format!("row-{i:04}")).collect();
    assert_eq!(all, expected);
}

#[tokio::test]
async fn top_limits_the_whole_result_across_pages() {
    let server = TestServer::start().await;
    create_numbered(&server, 150).await;

    let first = page(&server, &server.url(&format!("{SEED}?$top=120"))).await;
    let next = first["@odata.nextLink"].as_str().unwrap().to_owned();
    let second = page(&server, &next).await;

    assert_eq!(ids(&first).len(), 100);
    assert!(next.contains("$top=120"), "the next link keeps the option as sent: {next}");
    assert_eq!(ids(&second).len(), 20);
    assert!(second.get("@odata.nextLink").is_none());

    let small = page(&server, &server.url(&format!("{SEED}?$top=3"))).await;
    assert_eq!(ids(&small), ["row-0000", "row-0001", "row-0002"]);
    assert!(small.get("@odata.nextLink").is_none());
    let none = page(&server, &server.url(&format!("{SEED}?$top=0"))).await;
    assert!(ids(&none).is_empty());
}

#[tokio::test]
async fn max_page_size_preference_is_honoured() {
    let server = TestServer::start().await;
    create_numbered(&server, 12).await;

    let response = server
        .request(Method::GET, GRAPH)
        .header("prefer", "odata.maxpagesize=5")
        .send()
        .await
        .unwrap();

    assert_eq!(response.headers()["preference-applied"], "odata.maxpagesize=5");
    let first: Value = response.json().await.unwrap();
    assert_eq!(ids(&first).len(), 5);
    assert!(first["@odata.nextLink"].is_string());
}

#[tokio::test]
async fn paging_during_inserts_returns_rows_once() {
    let server = TestServer::start().await;
    create_numbered(&server, 250).await;

    // Walk the pages while a second task inserts rows that sort before, inside and after them.
    let writer = {
        let client = server.client.clone();
        let url = server.url(GRAPH);
        let token = server.token().to_owned();
        tokio::spawn(async move {
            for i in 0..120 {
                let id = match i % 3 {
                    0 => format!("a-before-{i:04}"),
                    1 => format!("row-{:04}x", i * 2),
                    _ => format!("z-after-{i:04}"),
                };
                let response = client
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&json!({"id": id}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 201);
            }
        })
    };
    let mut seen = Vec::new();
    let mut url = server.url(GRAPH);
    let mut pages = 0;
    loop {
        let current = page(&server, &url).await;
        seen.extend(ids(&current));
        pages += 1;
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        match current["@odata.nextLink"].as_str() {
            Some(next) => url = next.to_owned(),
            None => break,
        }
    }
    writer.await.unwrap();

    // No row repeats, every original row appears, and the walk stayed in key order.
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "a row was returned twice");
    for i in 0..250 {
        assert!(unique.contains(&format!("row-{i:04}")), "row-{i:04} was lost");
    }
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "pages are out of key order");
    assert!(pages >= 3);
}

#[tokio::test]
async fn tampered_skiptoken_is_rejected() {
    let server = TestServer::start().await;

    let response =
        server.request(Method::GET, &format!("{GRAPH}?$skiptoken=garbage")).send().await.unwrap();

    let message = assert_graph_error(response, 400, "BadRequest").await;
    assert!(message.contains("$skiptoken"), "{message}");
}

#[tokio::test]
async fn sorted_filtered_paging_during_inserts_returns_rows_once() {
    let server = TestServer::start().await;
    for i in 0..150 {
        let body = json!({"id": format!("row-{i:04}"), "numberOfErrorDevices": (i * 7) % 10,
                          "tenantId": if i % 5 == 0 { "skip" } else { "keep" }});
        assert_eq!(server.create(GRAPH, &body).await.status(), 201);
    }

    // Insert rows with every counter value while the sorted, filtered walk goes on.
    let writer = {
        let client = server.client.clone();
        let url = server.url(GRAPH);
        let token = server.token().to_owned();
        tokio::spawn(async move {
            for i in 0..60 {
                let body = json!({"id": format!("new-{i:04}"), "numberOfErrorDevices": i % 10,
                                  "tenantId": "keep"});
                let response = client.post(&url).bearer_auth(&token).json(&body).send().await;
                assert_eq!(response.unwrap().status(), 201);
            }
        })
    };
    let query = "$filter=tenantId%20eq%20'keep'&$orderby=numberOfErrorDevices%20desc";
    let mut url = server.url(&format!("{GRAPH}?{query}"));
    let mut seen: Vec<(i64, String)> = Vec::new();
    loop {
        let current = get_page(&server, &url, 7).await;
        for entity in current["value"].as_array().unwrap() {
            let errors = entity["numberOfErrorDevices"].as_i64().unwrap();
            seen.push((errors, entity["id"].as_str().unwrap().to_owned()));
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        match current["@odata.nextLink"].as_str() {
            Some(next) => url = next.to_owned(),
            None => break,
        }
    }
    writer.await.unwrap();

    // Every original row that passes the filter appears once, and the walk kept its order:
    // counters descending, then ids ascending.
    let unique: HashSet<&String> = seen.iter().map(|(_, id)| id).collect();
    assert_eq!(unique.len(), seen.len(), "a row was returned twice");
    for i in (0..150).filter(|i| i % 5 != 0) {
        assert!(unique.contains(&format!("row-{i:04}")), "row-{i:04} was lost");
    }
    assert!(
        !unique.iter().any(|id| id.starts_with("row-") && id[4..].parse::<i32>().unwrap() % 5 == 0)
    );
    let in_order =
        seen.windows(2).all(|w| w[0].0 > w[1].0 || (w[0].0 == w[1].0 && w[0].1 < w[1].1));
    assert!(in_order, "pages are out of order: {seen:?}");
}
