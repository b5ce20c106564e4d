//! Durability across `kill -9`, restarts and graceful shutdown.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::*;

#[tokio::test]
async fn created_row_survives_kill_nine_right_after_201() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let mut server = TestServer::start_in(&data_dir).await;

    let response = server.create(SEED, &seed_example()).await;
    assert_eq!(response.status(), 201);
    let created: Value = response.json().await.unwrap();
    server.kill();

    let restarted = TestServer::start_in(&data_dir).await;
    let (status, read) = restarted
        .get_json(&format!("{SEED}/{}", created["id"].as_str().unwrap()))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        read,
        created.clone().tap_context(&server.base, &restarted.base)
    );
}

#[tokio::test]
async fn concurrent_creates_all_survive_kill_nine() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let mut server = TestServer::start_in(&data_dir).await;

    // Many clients at once, so the writer commits them in groups.
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let request = server
                .request(Method::POST, GRAPH)
                .json(&json!({"id": format!("c{i:02}")}));
            tokio::spawn(async move { request.send().await.unwrap().status().as_u16() })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), 201);
    }
    server.kill();

    let restarted = TestServer::start_in(&data_dir).await;
    assert_eq!(restarted.list_all(GRAPH).await.len(), 64);
}

#[tokio::test]
async fn token_minted_before_a_restart_still_works() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let mut server = TestServer::start_in(&data_dir).await;
    let token = server.token().to_owned();
    server.kill();

    let restarted = TestServer::start_in(&data_dir).await;
    let response = restarted
        .client
        .get(restarted.url(SEED))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn sigterm_shuts_down_cleanly() {
    let mut server = TestServer::start().await;
    server.create(SEED, &seed_example()).await;

    let status = server.terminate();

    assert!(status.success(), "exit status {status}");
}

#[tokio::test]
async fn healthz_needs_no_token() {
    let server = TestServer::start().await;

    let response = server
        .client
        .get(format!("{}/healthz", server.base))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 200);
}

/// Rewrites the `@odata.context` host of a body read before a restart, since the restarted
/// server listens on another port.
trait ContextHost {
    fn tap_context(self, old_base: &str, new_base: &str) -> Value;
}

impl ContextHost for Value {
    fn tap_context(mut self, old_base: &str, new_base: &str) -> Value {
        let context = self["@odata.context"]
            .as_str()
            .unwrap()
            .replace(old_base, new_base);
        self["@odata.context"] = json!(context);
        self
    }
}
