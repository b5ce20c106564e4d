//! The dashboard's files at `/dashboard`: served without a token, with a strict
//! Content-Security-Policy and revalidation by entity tag, and charged to the client address.
//!
//! What the page shows is tested in a browser by `tests/clients/browser`.

use reqwest::{Method, StatusCode};

use crate::helpers::{TestServer, assert_graph_error};

/// Each file and the start of its `Content-Type`.
const FILES: [(&str, &str); 4] = [
    ("/dashboard", "text/html"),
    ("/dashboard/app.js", "text/javascript"),
    ("/dashboard/app.css", "text/css"),
    ("/dashboard/icon.svg", "image/svg+xml"),
];

#[tokio::test]
async fn dashboard_files_need_no_token() {
    let server = TestServer::start().await;

    for (path, content_type) in FILES {
        let response = server.client.get(format!("{}{path}", server.base)).send().await.unwrap();

        assert_eq!(response.status(), 200, "{path}");
        let headers = response.headers();
        let served_type = headers["content-type"].to_str().unwrap();
        assert!(served_type.starts_with(content_type), "{path}: {served_type}");
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(headers["cache-control"], "no-cache", "{path}");
        assert_eq!(headers["x-frame-options"], "DENY", "{path}");
        assert_eq!(headers["referrer-policy"], "no-referrer", "{path}");
        assert!(headers.contains_key("etag"), "{path}: no ETag");
        assert!(!response.bytes().await.unwrap().is_empty(), "{path}: empty body");
    }
}

#[tokio::test]
async fn dashboard_policy_allows_only_its_own_origin() {
    let server = TestServer::start().await;

    let response = server.client.get(format!("{}/dashboard", server.base)).send().await.unwrap();

    let policy = response.headers()["content-security-policy"].to_str().unwrap();
    let directives: Vec<&str> = policy.split(';').map(str::trim).collect();
    for expected in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(directives.contains(&expected), "{expected} missing from {policy}");
    }
    assert!(!policy.contains("unsafe"), "{policy}");
}

#[tokio::test]
async fn dashboard_revalidates_by_etag() {
    let server = TestServer::start().await;
    let url = format!("{}/dashboard/app.js", server.base);
    let first = server.client.get(&url).send().await.unwrap();
    let etag = first.headers()["etag"].clone();

    let again = server.client.get(&url).header("if-none-match", &etag).send().await.unwrap();

    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(again.headers()["etag"], etag);
    assert!(again.bytes().await.unwrap().is_empty());
    let other = server.client.get(&url).header("if-none-match", "\"other\"").send().await.unwrap();
    assert_eq!(other.status(), 200);
}

#[tokio::test]
async fn dashboard_head_sends_headers_only() {
    let server = TestServer::start().await;
    let url = format!("{}/dashboard", server.base);

    let response = server.client.head(&url).send().await.unwrap();

    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(response.headers().contains_key("content-security-policy"));
    assert!(response.bytes().await.unwrap().is_empty());
}

#[tokio::test]
async fn dashboard_rejects_other_methods() {
    let server = TestServer::start().await;

    let response = server
        .client
        .request(Method::POST, format!("{}/dashboard", server.base))
        .send()
        .await
        .unwrap();

    assert!(response.headers().contains_key("allow"), "no Allow header");
    assert_graph_error(response, 405, "MethodNotAllowed").await;
}

#[tokio::test]
async fn dashboard_counts_against_address_limit() {
    let server =
        TestServer::start_with(&["--client-rate-limit", "1", "--client-rate-burst", "3"]).await;
    let url = format!("{}/dashboard", server.base);

    // The burst of 3 passes. The bucket refills one token a second, so a 429 follows soon.
    let mut statuses = Vec::new();
    for _ in 0..10 {
        let response = server.client.get(&url).send().await.unwrap();
        statuses.push(response.status().as_u16());
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            assert_graph_error(response, 429, "TooManyRequests").await;
            break;
        }
    }

    assert_eq!(statuses[..3], [200, 200, 200], "statuses {statuses:?}");
    assert_eq!(statuses.last(), Some(&429), "statuses {statuses:?}");
}
