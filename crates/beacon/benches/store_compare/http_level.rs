//! The profiles timed through HTTP against two release servers, one on the SQLite data folder
//! and one on the PostgreSQL schema, in alternation, each with one keep-alive connection.

use std::cell::Cell;
use std::future::Future;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, ensure};
use beacon_server::auth::READ_WRITE_PERMISSION;

use crate::server::{self, Client, Server};
use crate::stats::{Layer, Runs, alternate};
use crate::{
    Comparison, Expected, PAGE_ROWS, Plan, Profile, Stores, TENANT_INDEX, apply_query, count_query,
    dataset, example_body, page_query, print_sync_latency, sync_latency,
};

/// A server and a client with a read-write token for it.
#[derive(Debug)]
struct Endpoint {
    server: Server,
    client: Client,
}

impl Endpoint {
    fn start(data_dir: &Path, database: Option<&str>) -> anyhow::Result<Endpoint> {
        let server = Server::start_on(data_dir, database)?;
        let token = server::mint_token_with_scope(data_dir, READ_WRITE_PERMISSION)?;
        Ok(Endpoint { server, client: Client::new(token)? })
    }

    fn stop(self) -> anyhow::Result<()> {
        // Close the keep-alive connection first, so the server stops at once.
        drop(self.client);
        self.server.stop()
    }
}

/// Runs `request` against the SQLite server and the PostgreSQL server in alternation, as
/// often as `runs` allows, and returns their durations in that order.
async fn time<'a, F, Fut>(
    runs: Runs,
    endpoints: &'a [Endpoint; 2],
    request: F,
) -> anyhow::Result<(Vec<Duration>, Vec<Duration>)>
where
    F: Fn(&'a Endpoint) -> Fut,
    Fut: Future<Output = anyhow::Result<Duration>>,
{
    alternate(runs, || request(&endpoints[0]), || request(&endpoints[1])).await
}

/// Times every profile through HTTP and checks the responses against the store layer's
/// results.
pub async fn measure(
    plan: &Plan,
    root: &Path,
    stores: &Stores<'_>,
    expected: &Expected,
    out: &mut Vec<Comparison>,
) -> anyhow::Result<()> {
    println!("\n## HTTP layer\n");
    // The PostgreSQL server keeps its signing key in a data folder of its own.
    let postgres_url = stores.schema.url();
    let endpoints = [
        Endpoint::start(&stores.sqlite_dir, None)?,
        Endpoint::start(&root.join("postgres-server"), Some(&postgres_url))?,
    ];
    let mut record = |profile, (sqlite, postgres)| {
        out.push(Comparison { profile, layer: Layer::Http, sqlite, postgres });
    };

    let query = page_query();
    record(Profile::FilteredPage, time(plan.reads, &endpoints, |e| time_page(e, &query)).await?);

    let next = Cell::new(0);
    let samples = time(plan.reads, &endpoints, |endpoint| {
        let id = &expected.page_ids[next.get() / 2 % expected.page_ids.len()];
        next.set(next.get() + 1);
        time_get(endpoint, id)
    })
    .await?;
    record(Profile::Get, samples);

    let query = count_query();
    let count = expected.platform_count;
    record(Profile::Count, time(plan.scans, &endpoints, |e| time_count(e, &query, count)).await?);

    let query = apply_query();
    record(Profile::Aggregation, time(plan.scans, &endpoints, |e| time_apply(e, &query)).await?);

    let body = example_body();
    let sync_before = sync_latency(root)?;
    record(Profile::Create, time(plan.creates, &endpoints, |e| time_create(e, &body)).await?);
    print_sync_latency("http", sync_before, sync_latency(root)?);

    let [sqlite, postgres] = endpoints;
    sqlite.stop()?;
    postgres.stop()
}

async fn time_page(endpoint: &Endpoint, query: &str) -> anyhow::Result<Duration> {
    let url = endpoint.server.collection_url(query);
    let response = endpoint.client.get(&url, None).await?;
    let page = response.json(&url)?;
    let rows = page["value"].as_array().context("the page has no value array")?;
    ensure!(rows.len() == PAGE_ROWS, "the filtered page has {} rows, not {PAGE_ROWS}", rows.len());
    let tenant = dataset::tenant_id(TENANT_INDEX);
    ensure!(rows.iter().all(|row| row["tenantId"] == tenant), "a row of another tenant came back");
    Ok(response.elapsed)
}

async fn time_get(endpoint: &Endpoint, id: &str) -> anyhow::Result<Duration> {
    let url = endpoint.server.entity_url(id);
    let response = endpoint.client.get(&url, None).await?;
    let entity = response.json(&url)?;
    ensure!(entity["id"] == id, "GET {url} returned the entity {}", entity["id"]);
    Ok(response.elapsed)
}

async fn time_count(endpoint: &Endpoint, query: &str, expected: u64) -> anyhow::Result<Duration> {
    let url = endpoint.server.count_url(query);
    let response = endpoint.client.get(&url, None).await?;
    let text = String::from_utf8_lossy(&response.body);
    ensure!(response.status == 200, "GET {url} returned {}: {text}", response.status);
    ensure!(text == expected.to_string(), "/$count returned {text}, not {expected}");
    Ok(response.elapsed)
}

async fn time_apply(endpoint: &Endpoint, query: &str) -> anyhow::Result<Duration> {
    let url = endpoint.server.collection_url(query);
    let response = endpoint.client.get(&url, None).await?;
    let groups = response.json(&url)?["value"].as_array().map_or(0, Vec::len);
    let platforms = dataset::PLATFORMS.len();
    ensure!(groups == platforms, "$apply returned {groups} groups, not {platforms}");
    Ok(response.elapsed)
}

async fn time_create(endpoint: &Endpoint, body: &serde_json::Value) -> anyhow::Result<Duration> {
    let url = endpoint.server.collection_url("");
    let response = endpoint.client.post_json(&url, body).await?;
    ensure!(
        response.status == 201,
        "POST {url} returned {}: {}",
        response.status,
        String::from_utf8_lossy(&response.body)
    );
    Ok(response.elapsed)
}
