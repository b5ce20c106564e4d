//! Query latency of the collection API at scale, run on demand with
//! `cargo bench -p beacon --bench query_scale` (1,000,000 rows) or with `-- --quick`
//! (200,000 rows, fewer repetitions and shorter time budgets).
//!
//! The benchmark loads generated rows straight into the SQLite files of two data folders, a
//! large one and one of 10,000 rows. It then times the same OData queries twice: through
//! `beacon_store::Store` without HTTP, and through HTTP to the release `beacon serve` on
//! loopback with one keep-alive connection. Every request is sequential. It prints the
//! median and 99th percentile of each case, the ratios that the scaling targets are about,
//! and the SQLite query plan of the SQL behind each case. `docs/benchmarks.md` describes
//! the cases and records a run.
//!
//! Options after `--`:
//!
//! - `--quick`: the smaller mode.
//! - `--full-walk`: walk to the deep page with 100-row pages however long it takes.
//! - `--keep-data`: keep the data folders and print where they are.
//!
//! It is not a test: run without `--bench` (as `cargo test --benches` would), it only prints
//! how to run it.

// dataset and server are shared with store_compare, which uses the parts that this
// benchmark does not.
#[path = "query_scale/dataset.rs"]
#[allow(dead_code)]
mod dataset;
#[path = "query_scale/http_level.rs"]
mod http_level;
#[path = "query_scale/machine.rs"]
mod machine;
#[path = "query_scale/queries.rs"]
mod queries;
#[path = "query_scale/server.rs"]
#[allow(dead_code)]
mod server;
#[path = "query_scale/stats.rs"]
mod stats;
#[path = "query_scale/store_level.rs"]
mod store_level;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use beacon_server::auth::DEV_PARTNER_TENANT;
use dataset::{LoadReport, Shape};
use machine::{load_average, machine_summary};
use server::{Server, encode_query};
use stats::{Layer, Measurement, Ratio, Runs};

/// The tenant whose rows the equality filter selects; it exists in both data sets.
const TENANT_INDEX: usize = 42;

/// The platform that the count cases filter on: 7 of the 50 policies, about 14% of the rows.
const COUNT_PLATFORM: &str = "windows10AndLater";

/// The `$apply` case, timed once the server supports `$apply`.
const APPLY: &str =
    "groupby((compliancePolicyPlatform),aggregate(numberOfNonCompliantDevices with sum as total))";

/// The two sorted listings whose first and deep pages are compared: `$orderby` and a label.
const ORDERS: [(&str, &str); 2] = [
    ("numberOfNonCompliantDevices", "nonCompliant asc"),
    ("lastRefreshedDateTime desc", "lastRefreshed desc"),
];

const EQUALITY_CASE: &str = "a. tenantId eq, $top=100";
const COUNT_CASE: &str = "c. /$count, platform eq";
const COUNT_AND_TOP_CASE: &str = "c. $count=true&$top=1, platform eq";

/// The largest median ratio of the equality filter on the large data set to the small one.
const EQUALITY_TARGET: f64 = 2.0;

/// The largest median ratio of a deep page to the first page of the same listing.
const DEEP_PAGE_TARGET: f64 = 1.5;

/// The data sets of one mode of the benchmark and the repetitions of each case.
#[derive(Clone, Copy, Debug)]
struct Plan {
    mode: &'static str,
    large: Shape,
    small: Shape,
    /// The deep page compared with the first: page 5,000 at 1,000,000 rows, and the middle
    /// page of a smaller data set.
    deep_page: usize,
    equality: Runs,
    /// Pairs of first-page and deep-page requests.
    pages: Runs,
    counts: Runs,
    /// How long a walk to the deep page uses 100-row pages before it switches to 1,000-row
    /// pages, or `None` to use 100-row pages throughout.
    walk_budget: Option<Duration>,
}

impl Plan {
    fn new(quick: bool, full_walk: bool) -> Plan {
        let small = Shape { rows: 10_000, tenants: 100 };
        let (mode, large, budget, walk) = if quick {
            ("quick", Shape { rows: 200_000, tenants: 1_000 }, 6, 10)
        } else {
            ("full", Shape { rows: 1_000_000, tenants: 1_000 }, 60, 120)
        };
        let budget = Duration::from_secs(budget);
        let runs = |full: usize, quick_count: usize| Runs {
            count: if quick { quick_count } else { full },
            budget,
        };
        Plan {
            mode,
            large,
            small,
            deep_page: 5_000.min(large.rows / 100 / 2),
            equality: runs(500, 150),
            pages: runs(200, 60),
            counts: runs(50, 20),
            walk_budget: (!full_walk).then(|| Duration::from_secs(walk)),
        }
    }
}

/// A loaded data folder.
#[derive(Debug)]
struct DataSet {
    shape: Shape,
    dir: PathBuf,
    load: LoadReport,
}

impl DataSet {
    fn database(&self) -> PathBuf {
        self.dir.join("beacon.sqlite3")
    }
}

/// The store layer's results, which the HTTP responses must match.
#[derive(Debug, Default)]
struct Expected {
    /// The first id of the deep page of each listing in [`ORDERS`].
    deep_page_first_ids: Vec<String>,
    /// The number of rows on [`COUNT_PLATFORM`] in the large data set.
    platform_count: u64,
}

fn main() -> ExitCode {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| arguments.iter().any(|argument| argument == name);
    if !flag("--bench") {
        println!("query_scale is a benchmark: run cargo bench -p beacon --bench query_scale");
        return ExitCode::SUCCESS;
    }
    let plan = Plan::new(flag("--quick"), flag("--full-walk"));

    let outcome = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
        .and_then(|runtime| runtime.block_on(run(plan, flag("--keep-data"))));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(plan: Plan, keep_data: bool) -> anyhow::Result<()> {
    let started = Instant::now();
    println!("query_scale, {} mode, on {}", plan.mode, machine_summary());
    println!("binary: {}", server::beacon_binary().display());
    println!("load average at the start: {}", load_average());

    // Load both data sets into fresh data folders that the server's migrations created.
    let root = tempfile::Builder::new().prefix("beacon-query-scale-").tempdir()?;
    let small = prepare(root.path(), plan.small)?;
    let large = prepare(root.path(), plan.large)?;

    // Time the queries without HTTP, then through HTTP.
    let mut measurements = Vec::new();
    let expected = store_level::measure(&plan, &small, &large, &mut measurements).await?;
    http_level::measure(&plan, &small, &large, &expected, &mut measurements).await?;

    // Compare medians with the targets and print everything as Markdown.
    println!("\n## Results ({} mode)\n", plan.mode);
    for set in [&small, &large] {
        println!("load: {}", describe_load(set));
    }
    println!();
    print!("{}", stats::render_tables(&measurements, &ratios(&plan, &measurements)));
    println!("\ntotal time: {:.0} s", started.elapsed().as_secs_f64());
    println!("load average at the end: {}", load_average());

    if keep_data {
        println!("data folders kept in {}", root.keep().display());
    }
    Ok(())
}

/// Creates a data folder by starting and stopping the server once, then loads `shape` into it.
fn prepare(root: &Path, shape: Shape) -> anyhow::Result<DataSet> {
    let dir = root.join(format!("rows-{}", shape.rows));
    Server::start(&dir)?.stop().context("the server that created the data folder failed")?;

    println!("loading {} rows over {} tenants...", shape.rows, shape.tenants);
    let load = dataset::load(&dir.join("beacon.sqlite3"), DEV_PARTNER_TENANT, shape)?;
    let set = DataSet { shape, dir, load };
    println!("loaded {}", describe_load(&set));
    Ok(set)
}

fn describe_load(set: &DataSet) -> String {
    format!(
        "{} rows in {:.1} s ({:.0} rows/s)",
        set.load.rows,
        set.load.elapsed.as_secs_f64(),
        set.load.rows_per_second()
    )
}

/// Returns the query string of case (a): one tenant's rows, at most 100.
fn equality_query() -> String {
    let filter = format!("tenantId eq '{}'", dataset::tenant_id(TENANT_INDEX));
    encode_query(&[("$filter", filter.as_str()), ("$top", "100")])
}

/// Returns the query string of the `/$count` case: the filter on one platform.
fn platform_query() -> String {
    let filter = format!("compliancePolicyPlatform eq '{COUNT_PLATFORM}'");
    encode_query(&[("$filter", filter.as_str())])
}

/// Returns the query string of `$count=true&$top=1` with the platform filter.
fn count_and_top_query() -> String {
    format!("{}&$count=true&$top=1", platform_query())
}

fn first_page_case(label: &str) -> String {
    format!("b. {label}, page 1")
}

fn deep_page_case(label: &str, plan: &Plan) -> String {
    format!("b. {label}, page {}", plan.deep_page)
}

fn measurement(case: &str, set: &DataSet, layer: Layer, samples: Vec<Duration>) -> Measurement {
    Measurement { case: case.to_owned(), rows: set.shape.rows, layer, samples }
}

/// Computes the ratios of medians that the targets are about, for each layer.
fn ratios(plan: &Plan, measurements: &[Measurement]) -> Vec<Ratio> {
    let median = |case: &str, rows: usize, layer: Layer| {
        measurements
            .iter()
            .find(|m| m.case == case && m.rows == rows && m.layer == layer)
            .map(Measurement::median)
    };
    let mut ratios = Vec::new();
    for layer in [Layer::Store, Layer::Http] {
        let large = median(EQUALITY_CASE, plan.large.rows, layer);
        let small = median(EQUALITY_CASE, plan.small.rows, layer);
        if let (Some(large), Some(small)) = (large, small) {
            ratios.push(Ratio {
                name: format!("a. tenantId eq, {} vs {} rows", plan.large.rows, plan.small.rows),
                layer,
                numerator: large,
                denominator: small,
                target: EQUALITY_TARGET,
            });
        }
        for (_, label) in ORDERS {
            let first = median(&first_page_case(label), plan.large.rows, layer);
            let deep = median(&deep_page_case(label, plan), plan.large.rows, layer);
            if let (Some(deep), Some(first)) = (deep, first) {
                ratios.push(Ratio {
                    name: format!("b. {label}, page {} vs page 1", plan.deep_page),
                    layer,
                    numerator: deep,
                    denominator: first,
                    target: DEEP_PAGE_TARGET,
                });
            }
        }
    }
    ratios
}
