//! Tokens and permissions.
//!
//! Every API call needs `Authorization: Bearer <token>` with a token this server's key signed.
//! A rejected token gets `401 InvalidAuthenticationToken` with `WWW-Authenticate: Bearer`, a
//! missing permission gets `403 Authorization_RequestDenied`, and each partner tenant can
//! read only its own rows.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use beacon_server::auth::{DEV_AUDIENCE, DEV_ISSUER, DEV_PARTNER_TENANT};
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::*;

/// A partner tenant other than the one `beacon token` uses by default.
const OTHER_PARTNER: &str = "3f2a9c41-7d6e-4b58-a0c3-9e1b2d4f6a87";

/// The signing key's file name inside a data folder.
const SIGNING_KEY_FILE: &str = "signing-key.pem";

/// Asserts a `401 InvalidAuthenticationToken` with `WWW-Authenticate: Bearer`, and returns the
/// message.
async fn assert_unauthorized(response: reqwest::Response, case: &str) -> String {
    let status = response.status().as_u16();
    if status != 401 {
        let body = response.text().await.unwrap_or_default();
        panic!("{case}: expected status 401, got {status} with body {body}");
    }
    let challenge = response
        .headers()
        .get("www-authenticate")
        .unwrap_or_else(|| panic!("{case}: no WWW-Authenticate header"))
        .to_str()
        .unwrap()
        .to_owned();
    let scheme = challenge.split_whitespace().next().unwrap_or("");
    assert!(scheme.eq_ignore_ascii_case("bearer"), "{case}: WWW-Authenticate {challenge}");
    assert_graph_error(response, 401, "InvalidAuthenticationToken").await
}

/// Lists a collection with `token` and returns the status and the `value` array.
async fn list_with(server: &TestServer, collection: &str, token: &str) -> (u16, Vec<Value>) {
    let response =
        server.client.get(server.url(collection)).bearer_auth(token).send().await.unwrap();
    let status = response.status().as_u16();
    let page: Value = response.json().await.unwrap();
    let rows = page["value"].as_array().cloned().unwrap_or_default();
    (status, rows)
}

/// Sends a request with the `Authorization` header set to `authorization`, or with none. A
/// POST carries a body that the view of `path` accepts.
async fn send_with_authorization(
    server: &TestServer,
    method: Method,
    path: &str,
    authorization: Option<&str>,
) -> reqwest::Response {
    let mut request = server.client.request(method.clone(), server.url(path));
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    if method == Method::POST && path.starts_with(GRAPH) {
        request = request.json(&json!({"tenantDisplayName": "Contoso Ltd"}));
    } else if method == Method::POST {
        request = request.json(&seed_example());
    }
    request.send().await.unwrap()
}

/// Encodes `bytes` as base64url without padding, as JWTs encode their parts.
fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut text = String::new();
    for group in bytes.chunks(3) {
        let mut buffer = [0_u8; 3];
        buffer[..group.len()].copy_from_slice(group);
        let bits = u32::from(buffer[0]) << 16 | u32::from(buffer[1]) << 8 | u32::from(buffer[2]);
        for i in 0..=group.len() {
            let index = (bits >> (18 - 6 * i)) & 0x3f;
            text.push(char::from(ALPHABET[index as usize]));
        }
    }
    text
}

/// Signs `claims` as an ES256 JWT with the server's own key.
///
/// `beacon token` only mints tokens that are valid from now on, and the server allows 60
/// seconds of clock skew, so an expired token has to be built with chosen `exp` claims.
fn sign_with_server_key(server: &TestServer, claims: &Value) -> String {
    let pem = std::fs::read(server.data_dir.join(SIGNING_KEY_FILE)).unwrap();
    let key = jsonwebtoken::EncodingKey::from_ec_pem(&pem).unwrap();
    jsonwebtoken::encode(&jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256), claims, &key)
        .unwrap()
}

/// Builds the claims of a development token for the default partner with read and write
/// rights, with `exp` set `expires_in_seconds` from now (negative for the past).
fn claims_expiring_in(expires_in_seconds: i64) -> Value {
    let now =
        i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()).unwrap();
    let issued = now.min(now + expires_in_seconds) - 3600;
    json!({
        "iss": DEV_ISSUER,
        "aud": DEV_AUDIENCE,
        "sub": "beacon-test-user",
        "tid": DEV_PARTNER_TENANT,
        "scp": READ_WRITE,
        "iat": issued,
        "nbf": issued,
        "exp": now + expires_in_seconds,
    })
}

#[tokio::test]
async fn missing_or_malformed_token_gets_401() {
    let server = TestServer::start().await;
    let created: Value = server.create(SEED, &seed_example()).await.json().await.unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    let seed_before = server.list_all(SEED).await;
    let graph_before = server.list_all(GRAPH).await;

    // A valid token with one character of its payload changed, so its signature no longer
    // matches.
    let token = server.token();
    let payload_start = token.find('.').unwrap() + 1;
    let mut tampered = token.as_bytes().to_vec();
    tampered[payload_start + 4] = if tampered[payload_start + 4] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let unsigned = format!(
        "{}.{}.",
        base64url(br#"{"alg":"none","typ":"JWT"}"#),
        base64url(claims_expiring_in(3600).to_string().as_bytes())
    );

    let authorizations = [
        ("no Authorization header", None),
        ("the Basic scheme", Some("Basic dXNlcjpwYXNzd29yZA==".to_owned())),
        ("the Basic scheme with a valid token", Some(format!("Basic {token}"))),
        ("the token without a scheme", Some(token.to_owned())),
        ("an empty header", Some(String::new())),
        ("Bearer alone", Some("Bearer".to_owned())),
        ("an empty token", Some("Bearer    ".to_owned())),
        ("a garbage token", Some("Bearer garbage".to_owned())),
        ("three empty parts", Some("Bearer a.b.c".to_owned())),
        ("a tampered payload", Some(format!("Bearer {tampered}"))),
        ("an unsigned token", Some(format!("Bearer {unsigned}"))),
        ("a scheme glued to the token", Some(format!("Bearer{token}"))),
    ];
    let requests = [
        (Method::GET, SEED.to_owned()),
        (Method::GET, GRAPH.to_owned()),
        (Method::GET, format!("{SEED}/{id}")),
        (Method::GET, format!("{GRAPH}/{id}")),
        (Method::POST, SEED.to_owned()),
        (Method::POST, GRAPH.to_owned()),
    ];
    for (name, authorization) in &authorizations {
        for (method, path) in &requests {
            let case = format!("{method} {path} with {name}");
            let response =
                send_with_authorization(&server, method.clone(), path, authorization.as_deref())
                    .await;
            assert_unauthorized(response, &case).await;
        }
    }

    // Two Authorization headers are ambiguous, even when both carry the valid token.
    let response = server
        .client
        .get(server.url(SEED))
        .header("authorization", format!("Bearer {token}"))
        .header("authorization", format!("Bearer {token}"))
        .send()
        .await
        .unwrap();
    assert_unauthorized(response, "two Authorization headers").await;

    // None of the rejected creates stored anything.
    assert_eq!(server.list_all(SEED).await, seed_before);
    assert_eq!(server.list_all(GRAPH).await, graph_before);
}

#[tokio::test]
async fn bearer_scheme_is_case_insensitive() {
    let server = TestServer::start().await;

    for scheme in ["bearer", "BEARER", "BeArEr"] {
        let authorization = format!("{scheme} {}", server.token());
        for collection in [SEED, GRAPH] {
            let case = format!("{scheme} on {collection}");
            let response =
                send_with_authorization(&server, Method::GET, collection, Some(&authorization))
                    .await;
            assert_eq!(response.status(), 200, "GET with {case}");
            let response =
                send_with_authorization(&server, Method::POST, collection, Some(&authorization))
                    .await;
            assert_eq!(response.status(), 201, "POST with {case}");
        }
    }
    assert_eq!(server.list_all(SEED).await.len(), 6);
}

#[tokio::test]
async fn token_from_another_key_is_rejected() {
    let server = TestServer::start().await;
    let other_folder = tempfile::tempdir().unwrap();
    let foreign = mint_token(other_folder.path(), &[]);
    let authorization = format!("Bearer {foreign}");

    for (method, collection) in
        [(Method::GET, SEED), (Method::GET, GRAPH), (Method::POST, SEED), (Method::POST, GRAPH)]
    {
        let case = format!("{method} {collection} with another folder's token");
        let response =
            send_with_authorization(&server, method, collection, Some(&authorization)).await;
        assert_unauthorized(response, &case).await;
    }
    assert!(server.list_all(SEED).await.is_empty());
}

#[tokio::test]
async fn expired_token_is_rejected() {
    let server = TestServer::start().await;

    // The same construction with a future expiry is accepted, so a rejection below is about
    // the expiry and not about how the token was built.
    let valid = sign_with_server_key(&server, &claims_expiring_in(3600));
    let response =
        send_with_authorization(&server, Method::GET, SEED, Some(&format!("Bearer {valid}"))).await;
    assert_eq!(response.status(), 200, "the control token was rejected");

    // Expired an hour ago, and expired just past the 60 seconds of allowed clock skew.
    for expired_seconds_ago in [3600, 120] {
        let expired = sign_with_server_key(&server, &claims_expiring_in(-expired_seconds_ago));
        let authorization = format!("Bearer {expired}");
        for (method, collection) in
            [(Method::GET, SEED), (Method::GET, GRAPH), (Method::POST, SEED)]
        {
            let case = format!("{method} {collection}, expired {expired_seconds_ago} s ago");
            let response =
                send_with_authorization(&server, method, collection, Some(&authorization)).await;
            let message = assert_unauthorized(response, &case).await;
            assert!(message.contains("expired"), "{case}: message {message}");
        }
    }
    assert!(server.list_all(SEED).await.is_empty());
}

#[tokio::test]
async fn cached_token_expires_on_time() {
    // A verified token is cached, and the cache must not keep it past its expiry.
    let server = TestServer::start_with(&["--clock-skew", "0s"]).await;
    let token = sign_with_server_key(&server, &claims_expiring_in(2));
    let authorization = format!("Bearer {token}");

    for _ in 0..3 {
        let response =
            send_with_authorization(&server, Method::GET, SEED, Some(&authorization)).await;
        assert_eq!(response.status(), 200, "the token was rejected before its expiry");
    }
    tokio::time::sleep(Duration::from_millis(3200)).await;

    let response = send_with_authorization(&server, Method::GET, SEED, Some(&authorization)).await;
    let message = assert_unauthorized(response, "after the expiry").await;
    assert!(message.contains("expired"), "message {message}");
}

#[tokio::test]
async fn read_only_token_reads_but_cannot_create() {
    let server = TestServer::start().await;
    let created: Value = server.create(SEED, &seed_example()).await.json().await.unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    let seed_before = server.list_all(SEED).await;
    let graph_before = server.list_all(GRAPH).await;
    let read_only = server.token_with(&["--scope", READ]);

    // Lists and single reads succeed through both views.
    for collection in [SEED, GRAPH] {
        let (status, rows) = list_with(&server, collection, &read_only).await;
        assert_eq!(status, 200, "list {collection}");
        assert_eq!(rows.len(), 1, "list {collection}");
        let response = server
            .client
            .get(server.url(&format!("{collection}/{id}")))
            .bearer_auth(&read_only)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "get {collection}/{id}");
        let entity: Value = response.json().await.unwrap();
        assert_eq!(entity["id"], id.as_str());
    }

    // Creates are denied through both views, and store nothing.
    for collection in [SEED, GRAPH] {
        let response = server
            .client
            .post(server.url(collection))
            .bearer_auth(&read_only)
            .json(&seed_example())
            .send()
            .await
            .unwrap();
        assert_graph_error(response, 403, "Authorization_RequestDenied").await;
        assert_eq!(server.list_all(SEED).await, seed_before, "POST {collection}");
        assert_eq!(server.list_all(GRAPH).await, graph_before, "POST {collection}");
    }
}

#[tokio::test]
async fn token_without_permissions_is_denied() {
    let server = TestServer::start().await;
    let created: Value = server.create(SEED, &seed_example()).await.json().await.unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    // `beacon token` grants only the two permissions Beacon checks, so sign this one here.
    let mut claims = claims_expiring_in(3600);
    claims["scp"] = json!("User.Read");
    let unrelated = sign_with_server_key(&server, &claims);

    for collection in [SEED, GRAPH] {
        for (method, path) in [
            (Method::GET, collection.to_owned()),
            (Method::GET, format!("{collection}/{id}")),
            (Method::POST, collection.to_owned()),
        ] {
            let case = format!("{method} {path} with only User.Read");
            let authorization = format!("Bearer {unrelated}");
            let response =
                send_with_authorization(&server, method, &path, Some(&authorization)).await;
            let status = response.status().as_u16();
            assert_eq!(status, 403, "{case}");
            assert_graph_error(response, 403, "Authorization_RequestDenied").await;
        }
    }
    assert_eq!(server.list_all(SEED).await.len(), 1);
}

#[tokio::test]
async fn token_command_rejects_unknown_scopes() {
    let server = TestServer::start().await;

    let output = std::process::Command::new(beacon_binary())
        .args(["token", "--scope", "User.Read", "--data-dir"])
        .arg(&server.data_dir)
        .output()
        .unwrap();

    assert!(!output.status.success());
    let message = String::from_utf8_lossy(&output.stderr);
    assert!(message.contains("'User.Read'"), "{message}");
    assert!(output.stdout.is_empty());
}

#[tokio::test]
async fn other_partner_sees_none_of_the_rows() {
    let server = TestServer::start().await;
    let mut body = seed_example();
    body["id"] = json!("row-from-seed");
    assert_eq!(server.create(SEED, &body).await.status(), 201);
    let body = json!({"id": "row-from-graph", "tenantDisplayName": "Fabrikam"});
    assert_eq!(server.create(GRAPH, &body).await.status(), 201);
    let ids = ["row-from-seed", "row-from-graph"];

    let other = server.token_with(&["--tenant", OTHER_PARTNER]);
    for collection in [SEED, GRAPH] {
        let (status, rows) = list_with(&server, collection, &other).await;
        assert_eq!(status, 200, "list {collection}");
        assert!(rows.is_empty(), "the other partner sees {rows:?}");

        for id in ids {
            let response = server
                .client
                .get(server.url(&format!("{collection}/{id}")))
                .bearer_auth(&other)
                .send()
                .await
                .unwrap();
            assert_graph_error(response, 404, "ResourceNotFound").await;
        }
    }

    // The other partner's own row stays out of the first partner's lists.
    let response = server
        .client
        .post(server.url(GRAPH))
        .bearer_auth(&other)
        .json(&json!({"id": "row-of-the-other-partner"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    assert_eq!(server.list_all(SEED).await.len(), 2);
    assert_eq!(server.list_all(GRAPH).await.len(), 2);
    let (status, _) = server.get_json(&format!("{GRAPH}/row-of-the-other-partner")).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn healthz_needs_no_token() {
    let server = TestServer::start().await;

    let response = server.client.get(format!("{}/healthz", server.base)).send().await.unwrap();

    assert_eq!(response.status(), 200);
    let request_id = response.headers()["request-id"].to_str().unwrap();
    assert_eq!(request_id.len(), 36, "request-id {request_id}");
    assert_eq!(response.headers()["client-request-id"], request_id);
}
