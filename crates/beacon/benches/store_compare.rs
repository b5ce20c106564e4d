//! SQLite and PostgreSQL side by side on the same requests, run on demand with
//! `cargo bench -p beacon --bench store_compare` (1,000,000 rows) or with `-- --quick`
//! (100,000 rows, fewer repetitions and shorter time budgets).
//!
//! The benchmark loads the same generated rows as `query_scale` into a fresh SQLite data
//! folder and into a fresh schema of a PostgreSQL database, then times five profiles on both
//! stores: create, get by id, a filtered page, a filtered `/$count` and a `$apply`
//! aggregation. Each profile runs on the two stores in alternation (SQLite, PostgreSQL,
//! SQLite, …), so drift in the machine's load affects both alike, first through
//! `beacon_store::Store` without HTTP and then through HTTP to two release servers, one per
//! store. It prints the medians, the 99th percentiles and the ratio of the PostgreSQL median
//! to the SQLite median of each profile, and both stores' plans of each read.
//! `docs/benchmarks.md` describes the profiles and records a run.
//!
//! Options after `--`:
//!
//! - `--quick`: the smaller mode.
//! - `--postgres URL`: the PostgreSQL database to create the schema in. The default is
//!   `BEACON_BENCH_POSTGRES_URL` or else
//!   `postgres://postgres@127.0.0.1:5432/test?sslmode=disable`.
//! - `--keep-data`: keep the data folders and the schema and print where they are.
//!
//! It is not a test: run without `--bench` (as `cargo test --benches` would), it only prints
//! how to run it.

#[path = "query_scale/dataset.rs"]
mod dataset;
#[path = "store_compare/http_level.rs"]
mod http_level;
#[path = "query_scale/machine.rs"]
mod machine;
#[path = "store_compare/postgres.rs"]
mod postgres;
#[path = "query_scale/queries.rs"]
mod queries;
// Shared with query_scale, which uses the parts that this benchmark does not.
#[path = "query_scale/server.rs"]
#[allow(dead_code)]
mod server;
#[path = "query_scale/stats.rs"]
#[allow(dead_code)]
mod stats;
#[path = "store_compare/store_level.rs"]
mod store_level;

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use beacon_server::auth::DEV_PARTNER_TENANT;
use dataset::{LoadReport, Shape};
use machine::{load_average, machine_summary};
use postgres::BenchSchema;
use server::{Server, encode_query};
use stats::{Layer, Runs, millis, percentile};

/// The database that the schema is created in unless `--postgres` or the variable names one.
/// The local test server's certificate is not valid for 127.0.0.1, so TLS is off.
const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable";

/// The number of synced writes that [`sync_latency`] times.
const SYNC_PROBES: usize = 20;

/// The variable that names the PostgreSQL database when `--postgres` does not.
const POSTGRES_URL_VARIABLE: &str = "BEACON_BENCH_POSTGRES_URL";

/// The tenant whose rows the filtered page selects; every tenant has at least 100 rows.
const TENANT_INDEX: usize = 42;

/// The rows of the filtered page.
const PAGE_ROWS: usize = 50;

/// The platform that the count filters on: 7 of the 50 policies, about 14% of the rows.
const COUNT_PLATFORM: &str = "windows10AndLater";

/// The aggregation profile's `$apply`, the same as case (d) of `query_scale`.
const APPLY: &str =
    "groupby((compliancePolicyPlatform),aggregate(numberOfNonCompliantDevices with sum as total))";

/// The profiles, in the order the report lists them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Profile {
    Create,
    Get,
    FilteredPage,
    Count,
    Aggregation,
}

impl Profile {
    fn name(self) -> &'static str {
        match self {
            Profile::Create => "create",
            Profile::Get => "get by id",
            Profile::FilteredPage => "filtered page",
            Profile::Count => "count",
            Profile::Aggregation => "aggregation",
        }
    }

    /// Returns the request that the profile sends, for the report.
    fn request(self) -> String {
        match self {
            Profile::Create => "POST of a full entity, durable on return".to_owned(),
            Profile::Get => format!("GET by key, cycling through {PAGE_ROWS} ids"),
            Profile::FilteredPage => format!("$filter=tenantId eq '…'&$top={PAGE_ROWS}"),
            Profile::Count => {
                format!("/$count?$filter=compliancePolicyPlatform eq '{COUNT_PLATFORM}'")
            }
            Profile::Aggregation => "$apply=groupby(platform), sum(nonCompliant)".to_owned(),
        }
    }
}

/// The data set of one mode and the repetitions of each profile, as pairs of one request to
/// each store.
#[derive(Clone, Copy, Debug)]
struct Plan {
    mode: &'static str,
    shape: Shape,
    /// Get by id and the filtered page.
    reads: Runs,
    creates: Runs,
    /// The count and the aggregation, which read many rows each.
    scans: Runs,
}

impl Plan {
    fn new(quick: bool) -> Plan {
        let (mode, rows, budget) =
            if quick { ("quick", 100_000, 8) } else { ("full", 1_000_000, 45) };
        let budget = Duration::from_secs(budget);
        let runs = |full: usize, quick_count: usize| Runs {
            count: if quick { quick_count } else { full },
            budget,
        };
        Plan {
            mode,
            shape: Shape { rows, tenants: 1_000 },
            reads: runs(1_000, 300),
            creates: runs(300, 100),
            scans: runs(50, 30),
        }
    }
}

/// The timings of one profile on one layer, on both stores, in the order run.
#[derive(Debug)]
struct Comparison {
    profile: Profile,
    layer: Layer,
    sqlite: Vec<Duration>,
    postgres: Vec<Duration>,
}

impl Comparison {
    /// Returns the ratio of the PostgreSQL median to the SQLite median.
    fn ratio(&self) -> f64 {
        let sqlite = percentile(&self.sqlite, 50.0).as_secs_f64();
        percentile(&self.postgres, 50.0).as_secs_f64() / sqlite
    }
}

/// The store layer's results, which the HTTP responses must match.
#[derive(Debug, Default)]
struct Expected {
    /// The ids of the filtered page, which the get profile cycles through.
    page_ids: Vec<String>,
    /// The number of rows on [`COUNT_PLATFORM`].
    platform_count: u64,
}

/// The two stores' data: an SQLite data folder and a PostgreSQL schema.
#[derive(Debug)]
struct Stores<'a> {
    sqlite_dir: PathBuf,
    schema: &'a BenchSchema,
}

impl Stores<'_> {
    fn sqlite_database(&self) -> PathBuf {
        self.sqlite_dir.join("beacon.sqlite3")
    }
}

fn main() -> ExitCode {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| arguments.iter().any(|argument| argument == name);
    if !flag("--bench") {
        println!("store_compare is a benchmark: run cargo bench -p beacon --bench store_compare");
        return ExitCode::SUCCESS;
    }
    let plan = Plan::new(flag("--quick"));

    let outcome = postgres_url(&arguments).and_then(|url| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the async runtime")?
            .block_on(run(plan, &url, flag("--keep-data")))
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Reads `--postgres URL` or `--postgres=URL`, or else the variable or the default.
fn postgres_url(arguments: &[String]) -> anyhow::Result<String> {
    for (index, argument) in arguments.iter().enumerate() {
        if let Some(url) = argument.strip_prefix("--postgres=") {
            return Ok(url.to_owned());
        }
        if argument == "--postgres" {
            return match arguments.get(index + 1) {
                Some(url) => Ok(url.clone()),
                None => bail!("--postgres needs a URL, such as {DEFAULT_POSTGRES_URL}"),
            };
        }
    }
    Ok(std::env::var(POSTGRES_URL_VARIABLE).unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_owned()))
}

async fn run(plan: Plan, postgres_url: &str, keep_data: bool) -> anyhow::Result<()> {
    let started = Instant::now();
    println!("store_compare, {} mode, on {}", plan.mode, machine_summary());
    println!("binary: {}", server::beacon_binary().display());
    println!("PostgreSQL: {}", postgres_version(postgres_url).await?);
    println!("load average at the start: {}", load_average());

    let root = tempfile::Builder::new().prefix("beacon-store-compare-").tempdir()?;
    let schema = BenchSchema::create(postgres_url).await?;
    println!("schema: {}", schema.name());

    let outcome = compare(plan, root.path(), &schema).await;
    let dropped = if keep_data {
        println!("data folders kept in {}", root.keep().display());
        println!("schema kept: {}", schema.url());
        Ok(())
    } else {
        schema.drop_schema().await
    };
    // A failed run's error comes first, since it may explain why the drop failed.
    let comparisons = outcome?;
    dropped?;

    println!("\n## Results ({} mode)\n", plan.mode);
    print!("{}", render_table(&comparisons));
    println!("\ntotal time: {:.0} s", started.elapsed().as_secs_f64());
    println!("load average at the end: {}", load_average());
    Ok(())
}

/// Loads both stores, then times every profile on the store layer and through HTTP.
async fn compare(plan: Plan, root: &Path, schema: &BenchSchema) -> anyhow::Result<Vec<Comparison>> {
    let stores = Stores { sqlite_dir: root.join("sqlite"), schema };

    // The server's migrations create the SQLite schema, as in query_scale.
    Server::start(&stores.sqlite_dir)?
        .stop()
        .context("the server that created the data folder failed")?;
    println!("loading {} rows over {} tenants...", plan.shape.rows, plan.shape.tenants);
    let load = dataset::load(&stores.sqlite_database(), DEV_PARTNER_TENANT, plan.shape)?;
    println!("SQLite: {}", describe_load(&load));
    let load = postgres::load(schema, DEV_PARTNER_TENANT, plan.shape).await?;
    println!("PostgreSQL: {} (COPY, then VACUUM (ANALYZE))", describe_load(&load));
    flush_loads(schema).await?;

    let mut comparisons = Vec::new();
    let expected = store_level::measure(&plan, &stores, &mut comparisons).await?;
    http_level::measure(&plan, root, &stores, &expected, &mut comparisons).await?;
    comparisons.sort_by_key(|comparison| (comparison.profile, comparison.layer == Layer::Http));
    Ok(comparisons)
}

/// Writes PostgreSQL's dirty buffers with `CHECKPOINT` and then the kernel's dirty pages with
/// `sync`, so that the writeback of about a gigabyte of loaded data (in full mode) does not
/// slow the commits that the create profile times.
async fn flush_loads(schema: &BenchSchema) -> anyhow::Result<()> {
    let started = Instant::now();
    schema
        .client()
        .await?
        .batch_execute("CHECKPOINT")
        .await
        .context("CHECKPOINT failed; the role needs the pg_checkpoint privilege")?;
    let status = std::process::Command::new("sync").status().context("cannot run sync")?;
    if !status.success() {
        bail!("sync failed with {status}");
    }
    println!("CHECKPOINT and sync: {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// Times 4 KiB appends to a file in `dir`, each followed by `fdatasync`, and returns the
/// median: the cost of the sync that every durable commit pays, at that moment.
///
/// On a shared virtual machine this varies several-fold within minutes with other work's
/// disk writes, so the report prints it next to each create profile.
fn sync_latency(dir: &Path) -> anyhow::Result<Duration> {
    let path = dir.join("sync-probe");
    let mut file = std::fs::File::create(&path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    let block = [0_u8; 4096];
    let mut samples = Vec::with_capacity(SYNC_PROBES);
    for _ in 0..SYNC_PROBES {
        let started = Instant::now();
        file.write_all(&block)?;
        file.sync_data()?;
        samples.push(started.elapsed());
    }
    drop(file);
    std::fs::remove_file(&path)?;
    Ok(percentile(&samples, 50.0))
}

/// Prints the sync latency measured before and after the create profile on `layer`.
fn print_sync_latency(layer: &str, before: Duration, after: Duration) {
    println!(
        "create ({layer}): a 4 KiB fdatasync took {} ms before the profile and {} ms after it \
         (medians of {SYNC_PROBES})",
        millis(before),
        millis(after)
    );
}

fn describe_load(load: &LoadReport) -> String {
    format!(
        "{} rows in {:.1} s ({:.0} rows/s)",
        load.rows,
        load.elapsed.as_secs_f64(),
        load.rows_per_second()
    )
}

/// Returns the query string of the filtered page: one tenant's rows, at most [`PAGE_ROWS`].
fn page_query() -> String {
    let filter = format!("tenantId eq '{}'", dataset::tenant_id(TENANT_INDEX));
    encode_query(&[("$filter", filter.as_str()), ("$top", &PAGE_ROWS.to_string())])
}

/// Returns the query string of the count: the filter on one platform.
fn count_query() -> String {
    let filter = format!("compliancePolicyPlatform eq '{COUNT_PLATFORM}'");
    encode_query(&[("$filter", filter.as_str())])
}

/// Returns the query string of the aggregation.
fn apply_query() -> String {
    encode_query(&[("$apply", APPLY)])
}

/// Returns the body that the create profile posts: every property of the Graph view, with
/// realistic values, and no key, so the server assigns one.
fn example_body() -> serde_json::Value {
    serde_json::json!({
        "tenantId": dataset::tenant_id(TENANT_INDEX + 1),
        "tenantDisplayName": "Contoso Ltd",
        "compliancePolicyId": "0c4bd1d4-1d3f-4b86-8b93-3f0a5d0e5c21",
        "compliancePolicyName": "macOS baseline",
        "compliancePolicyType": "deviceCompliancePolicy",
        "compliancePolicyPlatform": "macOS",
        "numberOfCompliantDevices": 120,
        "numberOfNonCompliantDevices": 7,
        "numberOfErrorDevices": 1,
        "policyModifiedDateTime": "2024-02-12T09:15:00Z",
        "lastRefreshedDateTime": "2024-03-01T07:30:00.1234567Z"
    })
}

/// Renders the comparisons as a Markdown table.
fn render_table(comparisons: &[Comparison]) -> String {
    let mut out = String::new();
    out.push_str(
        "| profile | request | layer | pairs | SQLite median ms | PostgreSQL median ms | \
         PostgreSQL / SQLite | SQLite p99 ms | PostgreSQL p99 ms |\n",
    );
    out.push_str("|---|---|---|---:|---:|---:|---:|---:|---:|\n");
    for comparison in comparisons {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {:.2} | {} | {} |",
            comparison.profile.name(),
            comparison.profile.request(),
            comparison.layer.name(),
            comparison.sqlite.len(),
            millis(percentile(&comparison.sqlite, 50.0)),
            millis(percentile(&comparison.postgres, 50.0)),
            comparison.ratio(),
            millis(percentile(&comparison.sqlite, 99.0)),
            millis(percentile(&comparison.postgres, 99.0)),
        );
    }
    out
}

/// Returns the server's `version()`.
async fn postgres_version(url: &str) -> anyhow::Result<String> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .with_context(|| format!("cannot connect to PostgreSQL at {url}; pass --postgres URL"))?;
    let connection = tokio::spawn(connection);
    let version: String = client.query_one("SELECT version()", &[]).await?.get(0);
    drop(client);
    let _ = connection.await;
    Ok(version)
}
