//! Three `beacon serve` processes over one PostgreSQL schema, as behind a load balancer.
//!
//! The servers share the signing key file and the database and nothing else. These tests show
//! that no result depends on which server a request reaches. Rows written through one are read
//! through the others, and next links minted by one are followed on another. Entity tags decide
//! between concurrent updates sent to different servers, and killing a server loses no
//! acknowledged write.
//!
//! They need the PostgreSQL server at `BEACON_TEST_POSTGRES_URL` (default
//! [`DEFAULT_POSTGRES_URL`]). When it cannot be reached they print that they
//! were skipped and why, unless `BEACON_REQUIRE_POSTGRES=1` makes them fail.

use std::collections::BTreeSet;
use std::process::Child;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

/// The number of servers in the cluster.
const SERVERS: usize = 3;

/// Three servers on one PostgreSQL schema, with the token of one dev partner.
struct Cluster {
    bases: Vec<String>,
    children: Vec<Option<Child>>,
    token: String,
    client: reqwest::Client,
    // Dropped last: the folders hold the key file, and the first one's drop drops the schema.
    _folders: Vec<DataFolder>,
}

impl Cluster {
    /// Starts three servers on a fresh schema, or returns `None` after printing why the test is
    /// skipped.
    fn start(test: &str) -> Option<Cluster> {
        let url = postgres_url_or_skip(test)?;
        let folders: Vec<DataFolder> = (0..SERVERS).map(|_| DataFolder::new()).collect();
        let schema = folders[0].use_postgres_schema(&url);
        let database = url_with_schema(&url, &schema);

        // The first server creates the key in its data folder. The others get that file, as
        // every server behind one load balancer must.
        let first = spawn_serve(folders[0].path(), &["--database".to_owned(), database.clone()]);
        let key_file = folders[0].path().join("signing-key.pem");
        let mut children = vec![Some(first.0)];
        let mut bases = vec![first.1];
        for folder in &folders[1..] {
            let args = [
                "--database".to_owned(),
                database.clone(),
                "--signing-key-file".to_owned(),
                key_file.to_str().unwrap().to_owned(),
            ];
            let (child, base) = spawn_serve(folder.path(), &args);
            children.push(Some(child));
            bases.push(base);
        }

        let token = mint_token(folders[0].path(), &[]);
        Some(Cluster { bases, children, token, client: reqwest::Client::new(), _folders: folders })
    }

    /// Starts a request to server `index` with the partner's token.
    fn request(&self, index: usize, method: Method, path: &str) -> reqwest::RequestBuilder {
        let url = format!("{}/beta/{path}", self.bases[index]);
        self.client.request(method, url).bearer_auth(&self.token)
    }

    /// Lists every id of the Graph view through server `index`, following next links there.
    async fn ids_through(&self, index: usize) -> BTreeSet<String> {
        let mut ids = BTreeSet::new();
        let mut url = format!("{}/beta/{GRAPH}?$select=id", self.bases[index]);
        loop {
            let response = self.client.get(&url).bearer_auth(&self.token).send().await.unwrap();
            assert_eq!(response.status(), 200, "GET {url}");
            let page: Value = response.json().await.unwrap();
            for entity in page["value"].as_array().unwrap() {
                assert!(ids.insert(entity["id"].as_str().unwrap().to_owned()), "repeated {entity}");
            }
            match page["@odata.nextLink"].as_str() {
                Some(next) => url = next.to_owned(),
                None => return ids,
            }
        }
    }

    /// Kills server `index` with SIGKILL.
    fn kill(&mut self, index: usize) {
        let mut child = self.children[index].take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for child in self.children.iter_mut().flatten() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Returns a realistic Graph view body for row `i`.
fn row(i: usize) -> Value {
    json!({
        "id": format!("row-{i:03}"),
        "tenantId": format!("7f1e2d3c-0000-4000-8000-{i:012}"),
        "tenantDisplayName": format!("Customer {i}"),
        "compliancePolicyName": "Windows baseline",
        "compliancePolicyPlatform": "windows10AndLater",
        "numberOfCompliantDevices": 9_007_199_254_740_993_i64 + i as i64,
        "numberOfNonCompliantDevices": i,
        "numberOfErrorDevices": 0,
        "lastRefreshedDateTime": "2026-11-30T08:15:00.1234567Z"
    })
}

/// Creates `count` rows, spread round-robin over the servers, all at once.
async fn create_spread(cluster: &Cluster, count: usize) -> Vec<Value> {
    let requests: Vec<_> = (0..count)
        .map(|i| {
            let request = cluster.request(i % SERVERS, Method::POST, GRAPH).json(&row(i));
            tokio::spawn(async move {
                let response = request.send().await.unwrap();
                assert_eq!(response.status(), 201);
                response.json::<Value>().await.unwrap()
            })
        })
        .collect();
    let mut created = Vec::new();
    for request in requests {
        created.push(request.await.unwrap());
    }
    created
}

#[tokio::test]
async fn rows_created_anywhere_are_read_everywhere() {
    let Some(cluster) = Cluster::start("rows_created_anywhere_are_read_everywhere") else { return };

    let created = create_spread(&cluster, 30).await;

    let expected: BTreeSet<String> =
        created.iter().map(|entity| entity["id"].as_str().unwrap().to_owned()).collect();
    for index in 0..SERVERS {
        assert_eq!(cluster.ids_through(index).await, expected, "listing through server {index}");
    }
    // Each row reads back equal, Int64 and seven-digit fractions included, on another server.
    for (i, entity) in created.iter().enumerate() {
        let id = entity["id"].as_str().unwrap();
        let response = cluster
            .request((i + 1) % SERVERS, Method::GET, &format!("{GRAPH}/{id}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let read: Value = response.json().await.unwrap();
        for (name, value) in entity.as_object().unwrap() {
            if name != "@odata.context" {
                assert_eq!(&read[name], value, "{id}: {name}");
            }
        }
    }
}

#[tokio::test]
async fn next_links_work_across_servers() {
    let Some(cluster) = Cluster::start("next_links_work_across_servers") else { return };
    create_spread(&cluster, 25).await;

    // Each page is asked of the next server, with the link the previous server wrote.
    let mut seen = Vec::new();
    let mut url = format!(
        "{}/beta/{GRAPH}?$orderby=numberOfNonCompliantDevices%20desc&$select=id",
        cluster.bases[0]
    );
    let mut pages = 0;
    loop {
        let response = cluster
            .client
            .get(&url)
            .bearer_auth(&cluster.token)
            .header("prefer", "odata.maxpagesize=4")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "GET {url}");
        let page: Value = response.json().await.unwrap();
        seen.extend(page["value"].as_array().unwrap().iter().map(|e| e["id"].clone()));
        pages += 1;
        let Some(next) = page["@odata.nextLink"].as_str() else { break };
        let minted_by = cluster.bases.iter().position(|base| next.starts_with(base.as_str()));
        let minted_by = minted_by.expect("the next link names a server");
        let other = (minted_by + 1) % SERVERS;
        url = next.replacen(&cluster.bases[minted_by], &cluster.bases[other], 1);
    }

    let expected: Vec<Value> = (0..25).rev().map(|i| json!(format!("row-{i:03}"))).collect();
    assert_eq!(seen, expected);
    assert_eq!(pages, 7);
}

#[tokio::test]
async fn concurrent_if_match_updates_have_one_winner() {
    let Some(cluster) = Cluster::start("concurrent_if_match_updates_have_one_winner") else {
        return;
    };
    let created = create_spread(&cluster, 8).await;

    for entity in &created {
        let id = entity["id"].as_str().unwrap();
        let etag = entity["@odata.etag"].as_str().unwrap();

        // Two updates per server, all carrying the tag of the version they read.
        let updates: Vec<_> = (0..2 * SERVERS)
            .map(|attempt| {
                let request = cluster
                    .request(attempt % SERVERS, Method::PATCH, &format!("{GRAPH}/{id}"))
                    .header("if-match", etag)
                    .json(&json!({"tenantDisplayName": format!("attempt {attempt}")}));
                tokio::spawn(async move {
                    let response = request.send().await.unwrap();
                    let tag = response.headers().get("etag").map(|v| v.to_str().unwrap().into());
                    (attempt, response.status(), tag)
                })
            })
            .collect();
        let mut winners = Vec::new();
        for update in updates {
            let (attempt, status, tag): (usize, StatusCode, Option<String>) = update.await.unwrap();
            match status.as_u16() {
                204 => winners.push((attempt, tag.unwrap())),
                412 => {}
                other => panic!("{id}: attempt {attempt} got {other}"),
            }
        }

        assert_eq!(winners.len(), 1, "{id}: winners {winners:?}");
        let (attempt, tag) = &winners[0];
        let response =
            cluster.request(0, Method::GET, &format!("{GRAPH}/{id}")).send().await.unwrap();
        let read: Value = response.json().await.unwrap();
        assert_eq!(read["tenantDisplayName"], format!("attempt {attempt}"));
        assert_eq!(read["@odata.etag"], tag.as_str());
    }
}

#[tokio::test]
async fn killed_server_loses_no_acknowledged_write() {
    let Some(mut cluster) = Cluster::start("killed_server_loses_no_acknowledged_write") else {
        return;
    };

    // Writers send creates to every server while the second one is killed.
    let requests: Vec<_> = (0..120)
        .map(|i| {
            let request = cluster.request(i % SERVERS, Method::POST, GRAPH).json(&row(i));
            tokio::spawn(async move {
                tokio::time::sleep(std::time::Duration::from_millis(2 * i as u64)).await;
                match request.send().await {
                    Ok(response) if response.status() == 201 => Some(i),
                    Ok(response) => {
                        panic!("create {i} got {} instead of 201", response.status())
                    }
                    // A request to the killed server may lose its connection: not acknowledged.
                    Err(_) => None,
                }
            })
        })
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    cluster.kill(1);

    let mut acknowledged = BTreeSet::new();
    let mut lost_connections = 0;
    for request in requests {
        match request.await.unwrap() {
            Some(i) => {
                acknowledged.insert(format!("row-{i:03}"));
            }
            None => lost_connections += 1,
        }
    }
    assert!(lost_connections > 0, "the kill came after every request to server 1");

    // Every acknowledged row is stored, and an unacknowledged one may be too, but whole.
    for survivor in [0, 2] {
        let stored = cluster.ids_through(survivor).await;
        let missing: Vec<_> = acknowledged.difference(&stored).collect();
        assert!(missing.is_empty(), "acknowledged but missing through {survivor}: {missing:?}");
    }
    for id in cluster.ids_through(0).await {
        let response =
            cluster.request(2, Method::GET, &format!("{GRAPH}/{id}")).send().await.unwrap();
        let read: Value = response.json().await.unwrap();
        let i: usize = id["row-".len()..].parse().unwrap();
        assert_eq!(read["tenantDisplayName"], row(i)["tenantDisplayName"], "{id}");
        assert_eq!(read["numberOfCompliantDevices"], row(i)["numberOfCompliantDevices"], "{id}");
    }
}
