//! Abuse limits: rate limits, URL and header bounds, and the connection limit. Each has its own
//! status and a Graph error body.
//!
//! Limits are set tiny so that each test crosses them with a few requests. A token bucket
//! refills while a test runs, so a test expects a `429` within the next few requests after the
//! burst rather than on exactly the next one.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{GRAPH, TestServer, assert_graph_error};

/// A partner tenant other than the default one of `beacon token`.
const OTHER_PARTNER: &str = "3f2a9c1e-7b4d-4e8a-9f6c-2d1b0a9e8c7d";

/// How many requests past the burst a test sends at most while it waits for a `429`.
const MAX_EXTRA_REQUESTS: usize = 20;

/// Returns the `Retry-After` of a response in seconds.
fn retry_after(response: &reqwest::Response) -> u64 {
    let value = response.headers().get("retry-after").expect("a Retry-After header");
    value.to_str().unwrap().parse().expect("Retry-After in whole seconds")
}

/// Sends requests built by `send` until one is not `expected_before`, and returns it. The first
/// `burst` requests must all get `expected_before`.
async fn send_until_rejected<F, Fut>(
    burst: usize,
    expected_before: u16,
    send: F,
) -> reqwest::Response
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = reqwest::Response>,
{
    for attempt in 0..burst + MAX_EXTRA_REQUESTS {
        let response = send().await;
        let status = response.status().as_u16();
        if attempt < burst {
            assert_eq!(status, expected_before, "request {attempt} of the burst");
        } else if status != expected_before {
            return response;
        }
    }
    panic!("no request was rejected after the burst and {MAX_EXTRA_REQUESTS} more");
}

#[tokio::test]
async fn partner_rate_limit_rejects_past_burst() {
    let server = TestServer::start_with(&["--rate-limit", "1", "--rate-burst", "3"]).await;
    let list = || async { server.request(Method::GET, GRAPH).send().await.unwrap() };

    let rejected = send_until_rejected(3, 200, list).await;

    let seconds = retry_after(&rejected);
    assert!(seconds >= 1, "Retry-After {seconds}");
    let message = assert_graph_error(rejected, 429, "TooManyRequests").await;
    assert!(message.contains("partner tenant"), "{message}");
    assert!(message.contains("Retry after"), "{message}");
}

#[tokio::test]
async fn partner_rate_limit_leaves_other_partners_alone() {
    let server = TestServer::start_with(&["--rate-limit", "1", "--rate-burst", "3"]).await;
    let list = || async { server.request(Method::GET, GRAPH).send().await.unwrap() };
    let rejected = send_until_rejected(3, 200, list).await;
    assert_eq!(rejected.status(), 429);

    let other = server.token_with(&["--tenant", OTHER_PARTNER]);
    let response = server.client.get(server.url(GRAPH)).bearer_auth(&other).send().await.unwrap();

    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn partner_rate_limit_passes_after_retry_after() {
    let server = TestServer::start_with(&["--rate-limit", "1", "--rate-burst", "3"]).await;
    let list = || async { server.request(Method::GET, GRAPH).send().await.unwrap() };
    let rejected = send_until_rejected(3, 200, list).await;
    let seconds = retry_after(&rejected);

    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let response = server.request(Method::GET, GRAPH).send().await.unwrap();

    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn requests_without_token_are_limited_per_address() {
    let server = TestServer::start_with(&[
        "--rate-limit",
        "0",
        "--client-rate-limit",
        "1",
        "--client-rate-burst",
        "3",
    ])
    .await;
    let anonymous = || async { server.client.get(server.url(GRAPH)).send().await.unwrap() };

    let rejected = send_until_rejected(3, 401, anonymous).await;

    assert!(retry_after(&rejected) >= 1);
    let message = assert_graph_error(rejected, 429, "TooManyRequests").await;
    assert!(message.contains("without a valid access token"), "{message}");
}

#[tokio::test]
async fn bad_tokens_are_limited_per_address() {
    let server =
        TestServer::start_with(&["--client-rate-limit", "1", "--client-rate-burst", "3"]).await;
    let guess = || async {
        let url = server.url(GRAPH);
        server.client.get(url).bearer_auth("eyJhbGciOiJFUzI1NiJ9.e30.c2ln").send().await.unwrap()
    };

    let rejected = send_until_rejected(3, 401, guess).await;

    assert_graph_error(rejected, 429, "TooManyRequests").await;
}

#[tokio::test]
async fn client_rate_limit_applies_to_valid_tokens() {
    let server =
        TestServer::start_with(&["--client-rate-limit", "1", "--client-rate-burst", "3"]).await;
    let list = || async { server.request(Method::GET, GRAPH).send().await.unwrap() };

    let rejected = send_until_rejected(3, 200, list).await;

    let message = assert_graph_error(rejected, 429, "TooManyRequests").await;
    assert!(message.contains("This client"), "{message}");
}

#[tokio::test]
async fn batch_requests_count_one_each() {
    let server = TestServer::start_with(&["--rate-limit", "1", "--rate-burst", "3"]).await;
    let requests: Vec<Value> = (1..=5)
        .map(|id| json!({"id": id.to_string(), "method": "GET", "url": format!("/{GRAPH}")}))
        .collect();

    // The batch takes one token and leaves two for the five requests inside it.
    let response = server
        .request(Method::POST, "$batch")
        .json(&json!({ "requests": requests }))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let responses = body["responses"].as_array().unwrap();
    let statuses: Vec<u64> = responses.iter().map(|r| r["status"].as_u64().unwrap()).collect();
    let passed = statuses.iter().filter(|&&status| status == 200).count();
    assert!((2..5).contains(&passed), "statuses {statuses:?}");
    let rejected = responses.iter().find(|r| r["status"] == 429).expect("a 429 in the batch");
    assert_eq!(rejected["body"]["error"]["code"], "TooManyRequests", "{rejected}");
    let retry_after = rejected["headers"]["Retry-After"].as_str().expect("Retry-After");
    assert!(retry_after.parse::<u64>().unwrap() >= 1, "{rejected}");
}

#[tokio::test]
async fn long_url_gets_414() {
    let server = TestServer::start_with(&["--max-url-bytes", "2048"]).await;
    let filter = format!("tenantId eq '{}'", "x".repeat(2048));

    let path = format!("{GRAPH}?$filter={filter}");
    let response = server.request(Method::GET, &path).send().await.unwrap();

    let message = assert_graph_error(response, 414, "RequestUriTooLong").await;
    assert!(message.contains("limit of 2048 bytes"), "{message}");
}

#[tokio::test]
async fn default_url_limit_is_16_kib() {
    let server = TestServer::start().await;
    let within = format!("{GRAPH}?$filter=tenantId eq '{}'", "x".repeat(8000));
    let past = format!("{GRAPH}?a={}", "x".repeat(20 * 1024));

    let response = server.request(Method::GET, &within).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let response = server.request(Method::GET, &past).send().await.unwrap();
    assert_graph_error(response, 414, "RequestUriTooLong").await;
}

#[tokio::test]
async fn large_headers_get_431() {
    let server = TestServer::start().await;

    let response = server
        .request(Method::GET, GRAPH)
        .header("x-padding", "x".repeat(40 * 1024))
        .send()
        .await
        .unwrap();

    let message = assert_graph_error(response, 431, "RequestHeaderFieldsTooLarge").await;
    assert!(message.contains("limit of 32768 bytes"), "{message}");
}

#[tokio::test]
async fn too_many_headers_get_431() {
    let server = TestServer::start().await;
    let mut request = server.request(Method::GET, GRAPH);
    for index in 0..150 {
        request = request.header(format!("x-extra-{index}"), "1");
    }

    let response = request.send().await.unwrap();

    let message = assert_graph_error(response, 431, "RequestHeaderFieldsTooLarge").await;
    assert!(message.contains("limit of 100"), "{message}");
}

#[tokio::test]
async fn headers_within_limits_pass() {
    let server = TestServer::start().await;
    let mut request = server.request(Method::GET, GRAPH);
    for index in 0..90 {
        request = request.header(format!("x-extra-{index}"), "y".repeat(200));
    }

    let response = request.send().await.unwrap();

    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn orderby_with_too_many_keys_is_rejected() {
    let server = TestServer::start().await;
    let keys = vec!["id"; 33].join(",");

    let path = format!("{GRAPH}?$orderby={keys}");
    let response = server.request(Method::GET, &path).send().await.unwrap();

    let message = assert_graph_error(response, 400, "BadRequest").await;
    assert!(message.contains("more than 32 sort keys"), "{message}");
}

/// A response read from a raw socket.
struct RawResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// Sends `GET /healthz` on a new connection and reads the response until the server closes
/// the connection.
fn get_health_raw(address: &str) -> RawResponse {
    let mut stream = TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let head = format!("GET /healthz HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    let mut received = Vec::new();
    stream.read_to_end(&mut received).unwrap();

    let end = received.windows(4).position(|w| w == b"\r\n\r\n").expect("a response head");
    let head = std::str::from_utf8(&received[..end]).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers = lines
        .map(|line| {
            let (name, value) = line.split_once(':').unwrap();
            (name.to_ascii_lowercase(), value.trim().to_owned())
        })
        .collect();
    RawResponse { status, headers, body: received[end + 4..].to_vec() }
}

#[tokio::test]
async fn connection_past_limit_gets_503() {
    let server = TestServer::start_with(&["--max-connections", "2"]).await;
    let address = server.base.strip_prefix("http://").unwrap().to_owned();
    let first = TcpStream::connect(&address).unwrap();
    let _second = TcpStream::connect(&address).unwrap();

    let rejected = tokio::task::spawn_blocking({
        let address = address.clone();
        move || get_health_raw(&address)
    })
    .await
    .unwrap();

    assert_eq!(rejected.status, 503);
    let header =
        |name: &str| rejected.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
    assert_eq!(header("retry-after").as_deref(), Some("1"));
    assert!(header("content-type").unwrap().starts_with("application/json"));
    let body: Value = serde_json::from_slice(&rejected.body).unwrap();
    assert_eq!(body["error"]["code"], "ServiceUnavailable", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("limit of 2 open connections"), "{message}");
    assert_eq!(body["error"]["innerError"]["request-id"].as_str(), header("request-id").as_deref());

    // Once a connection closes, its slot is free again. The server notices the close
    // asynchronously, so poll for a while.
    drop(first);
    let served = tokio::task::spawn_blocking(move || {
        for _ in 0..200 {
            if get_health_raw(&address).status == 200 {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    })
    .await
    .unwrap();
    assert!(served, "no connection was served within 10 seconds after one closed");
}
