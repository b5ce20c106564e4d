//! Throughput and latency of the release `beacon serve` under load, as ratios to a baseline
//! server on the same machine. It runs on demand: `cargo bench -p beacon --bench load` on
//! 10,000, 100,000 and 1,000,000 stored rows, or with `-- --quick` on 10,000 and 100,000 rows
//! with fewer and shorter rounds.
//!
//! The baseline is the smallest hyper server that responds to every request with the bytes
//! of one of Beacon's single-entity responses (`load/baseline.rs`). This executable runs it in
//! a child process of its own. For each data set the benchmark loads generated rows into a
//! fresh data folder, starts one Beacon server on it, and then drives every profile
//! (`load/profiles.rs`) with 32 keep-alive connections on loopback. Each round runs the
//! baseline and then Beacon, profile after profile (A B A B), and the printed figures are
//! medians over the rounds: requests per second, median and 99th percentile latency, each
//! with its ratio to the baseline of the same round, and the Beacon server's peak resident
//! set size. `docs/benchmarks.md` describes the method and records a run.
//!
//! Options after `--`:
//!
//! - `--quick`: the smaller mode.
//! - `--keep-data`: keep the data folders and print where they are.
//! - `--only NAME[,NAME...]`: drive only these profiles, such as `--only bykey,list` while
//!   profiling the server.
//! - `--rounds N`: run N rounds in place of the mode's 3 (quick) or 5 (full).
//!
//! It is not a test: run without `--bench` (as `cargo test --benches` would), it only prints
//! how to run it.

#[path = "load/baseline.rs"]
mod baseline;
#[path = "query_scale/dataset.rs"]
// The load benchmark uses the loader and the tenant ids, not every helper of the module.
#[allow(dead_code)]
mod dataset;
#[path = "load/driver.rs"]
mod driver;
#[path = "query_scale/machine.rs"]
mod machine;
#[path = "load/process.rs"]
mod process;
#[path = "load/profiles.rs"]
mod profiles;
#[path = "load/report.rs"]
mod report;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use beacon_server::auth::{DEV_PARTNER_TENANT, READ_PERMISSION};
use dataset::Shape;
use driver::{Load, RequestSet};
use hyper::{Method, StatusCode};
use machine::{load_average, machine_summary};
use process::ServerProcess;
use profiles::{Facts, Profile};
use report::{Cell, Pair, Summary, group};

/// The argument that makes this executable the baseline server, followed by the body file.
pub const BASELINE_FLAG: &str = "--serve-baseline";

/// The `/proc` stat file of this process, which runs the driver.
const SELF_STAT: &str = "/proc/self/stat";

/// Concurrent keep-alive connections of every run.
const CONNECTIONS: usize = 32;

/// Rows of each `tenantId` value, so `list` matches 1,000 rows at every data set size.
const ROWS_PER_TENANT: usize = 1_000;

/// The data sets and the length of the rounds of one mode.
#[derive(Clone, Debug)]
struct Plan {
    mode: &'static str,
    /// Stored rows of each data set, smallest first.
    tiers: Vec<usize>,
    /// The profiles driven.
    profiles: Vec<Profile>,
    rounds: usize,
    load: Load,
}

impl Plan {
    fn new(quick: bool) -> Plan {
        if quick {
            Plan {
                mode: "quick",
                tiers: vec![10_000, 100_000],
                profiles: Profile::ALL.to_vec(),
                rounds: 3,
                load: Load {
                    connections: CONNECTIONS,
                    warmup: Duration::from_millis(100),
                    window: Duration::from_millis(500),
                    min_requests: CONNECTIONS / 2,
                    max_window: Duration::from_secs(10),
                },
            }
        } else {
            Plan {
                mode: "full",
                tiers: vec![10_000, 100_000, 1_000_000],
                profiles: Profile::ALL.to_vec(),
                rounds: 5,
                load: Load {
                    connections: CONNECTIONS,
                    warmup: Duration::from_millis(400),
                    window: Duration::from_secs(2),
                    min_requests: CONNECTIONS,
                    max_window: Duration::from_secs(20),
                },
            }
        }
    }
}

/// One data set with its server and the requests of every profile.
struct Tier {
    rows: usize,
    dir: PathBuf,
    server: ServerProcess,
    sets: Vec<(Profile, RequestSet)>,
    facts: Facts,
    /// The server's peak resident set size once the profiles were prepared, before any load.
    idle_rss: u64,
}

fn main() -> ExitCode {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    if arguments.first().map(String::as_str) == Some(BASELINE_FLAG) {
        let Some(body_file) = arguments.get(1) else {
            eprintln!("error: {BASELINE_FLAG} needs the path of the body file");
            return ExitCode::FAILURE;
        };
        return match baseline::serve(Path::new(body_file)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("error: {error:#}");
                ExitCode::FAILURE
            }
        };
    }

    let flag = |name: &str| arguments.iter().any(|argument| argument == name);
    if !flag("--bench") {
        println!("load is a benchmark: run cargo bench -p beacon --bench load [-- --quick]");
        return ExitCode::SUCCESS;
    }
    let mut plan = Plan::new(flag("--quick"));
    if let Some(at) = arguments.iter().position(|argument| argument == "--rounds") {
        match arguments.get(at + 1).and_then(|n| n.parse::<usize>().ok()).filter(|n| *n > 0) {
            Some(rounds) => plan.rounds = rounds,
            None => {
                eprintln!("error: --rounds takes a number of rounds from 1 up");
                return ExitCode::FAILURE;
            }
        }
    }
    if let Some(at) = arguments.iter().position(|argument| argument == "--only") {
        let names = arguments.get(at + 1).map_or("", String::as_str);
        plan.profiles = Profile::ALL
            .into_iter()
            .filter(|profile| names.split(',').any(|name| name == profile.name()))
            .collect();
        if plan.profiles.is_empty() {
            let known: Vec<&str> = Profile::ALL.iter().map(|p| p.name()).collect();
            eprintln!(
                "error: --only takes profile names separated by commas: {}",
                known.join(", ")
            );
            return ExitCode::FAILURE;
        }
    }

    // The driver runs on one thread, so it takes at most one of the machine's cores.
    let outcome = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
        .and_then(|runtime| runtime.block_on(run(&plan, flag("--keep-data"))));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(plan: &Plan, keep_data: bool) -> anyhow::Result<()> {
    let started = Instant::now();
    println!("load, {} mode, on {}", plan.mode, machine_summary());
    println!("binary: {}", process::beacon_binary().display());
    println!("load average at the start: {}", load_average());

    let root = tempfile::Builder::new().prefix("beacon-load-").tempdir()?;
    let mut tiers = Vec::new();
    for &rows in &plan.tiers {
        tiers.push(prepare_tier(root.path(), rows, &plan.profiles).await?);
    }

    // The baseline responds with the body of a single-entity response of the smallest data set.
    let smallest = &tiers[0];
    let body = profiles::entity_body(&smallest.server, &smallest.dir, &smallest.facts).await?;
    let body_file = root.path().join("baseline-body.json");
    std::fs::write(&body_file, &body)?;
    let baseline = ServerProcess::baseline(&body_file)?;
    println!("baseline: {} bytes of JSON a response, on {}", body.len(), baseline.address);
    let read_token = process::mint_token(&smallest.dir, DEV_PARTNER_TENANT, READ_PERMISSION)?;
    let baseline_set = RequestSet {
        method: Method::GET,
        targets: Arc::new(vec![format!(
            "{}/{}",
            profiles::COLLECTION,
            smallest.facts.sample_ids[0]
        )]),
        token: read_token,
        body: None,
        expected: StatusCode::OK,
    };

    // Every round drives the baseline and then Beacon, for each profile of each data set.
    let mut cells: Vec<Cell> = Vec::new();
    for tier in &tiers {
        for (profile, _) in &tier.sets {
            cells.push(Cell { rows: tier.rows, profile: *profile, pairs: Vec::new(), peak_rss: 0 });
        }
    }
    for round in 1..=plan.rounds {
        let round_started = Instant::now();
        for tier in &tiers {
            for (profile, set) in &tier.sets {
                let base =
                    measure(&baseline, &baseline_set, plan.load).await.with_context(|| {
                        format!("driving the baseline failed: {}", baseline.log_tail())
                    })?;
                let beacon = measure(&tier.server, set, plan.load).await.with_context(|| {
                    format!(
                        "{} on {} failed; its last log lines:\n{}",
                        profile.name(),
                        tier.server.name,
                        tier.server.log_tail()
                    )
                })?;
                let pair = Pair { baseline: base, beacon };
                let cell = cells
                    .iter_mut()
                    .find(|c| c.rows == tier.rows && c.profile == *profile)
                    .context("every profile has a cell")?;
                cell.pairs.push(pair);
                cell.peak_rss = tier.server.peak_rss()?;
                println!(
                    "round {round}/{}: {:>5} on {:>9} rows: {:>8.0} req/s, baseline {:>8.0} req/s",
                    plan.rounds,
                    profile.name(),
                    group(tier.rows),
                    pair.beacon.rate,
                    pair.baseline.rate,
                );
            }
        }
        println!(
            "round {round} took {:.0} s, load average {}",
            round_started.elapsed().as_secs_f64(),
            load_average()
        );
    }

    // Stop every server, so a server that fails at shutdown fails the run.
    let mut idle = Vec::new();
    for tier in tiers {
        idle.push((tier.rows, tier.idle_rss));
        let posted = tier.dir.join("beacon.sqlite3");
        tier.server.stop()?;
        println!("{} rows: post created {} rows", group(tier.rows), posted_rows(&posted)?);
    }
    baseline.stop().context("the baseline server failed")?;

    println!("\n## Results ({} mode)\n", plan.mode);
    println!(
        "{CONNECTIONS} connections, {} rounds. Each run: {:.2} s of warm-up, then a window of at \
         least {:.2} s and {} completions, closed after {:.0} s at the latest.",
        plan.rounds,
        plan.load.warmup.as_secs_f64(),
        plan.load.window.as_secs_f64(),
        plan.load.min_requests,
        plan.load.max_window.as_secs_f64()
    );
    for (rows, rss) in idle {
        println!(
            "{} rows: peak RSS before any load {:.1} MiB",
            group(rows),
            rss as f64 / 1_048_576.0
        );
    }
    println!();
    print!("{}", report::render(&cells, &plan.tiers));
    println!("\ntotal time: {:.0} s", started.elapsed().as_secs_f64());
    println!("load average at the end: {}", load_average());
    if keep_data {
        println!("data folders kept in {}", root.keep().display());
    }
    Ok(())
}

/// Drives `server` with `set` once and summarizes the run, with the CPU time the server and
/// this process (the driver) used.
async fn measure(server: &ServerProcess, set: &RequestSet, load: Load) -> anyhow::Result<Summary> {
    let (server_before, driver_before) = (server.cpu_time()?, process::cpu_time(SELF_STAT)?);
    let result = driver::run(server.address, set, load).await?;
    let server_cpu = server.cpu_time()?.saturating_sub(server_before);
    let driver_cpu = process::cpu_time(SELF_STAT)?.saturating_sub(driver_before);
    if let Some(error) = &result.first_error {
        println!(
            "{} answered {} requests in the window with 503, the first with: {error}",
            server.name, result.errors
        );
    }
    Ok(Summary::of(&result, server_cpu, driver_cpu))
}

/// Creates and loads the data set of `rows` rows, starts its server and prepares every
/// profile's requests.
async fn prepare_tier(root: &Path, rows: usize, profiles: &[Profile]) -> anyhow::Result<Tier> {
    let dir = root.join(format!("rows-{rows}"));
    let name = format!("beacon ({} rows)", group(rows));

    // The server's migrations create the schema; the rows are then written straight to SQLite.
    ServerProcess::beacon(name.clone(), &dir)?.stop().context("creating the data folder failed")?;
    let shape = Shape { rows, tenants: rows / ROWS_PER_TENANT };
    let database = dir.join("beacon.sqlite3");
    let load = dataset::load(&database, DEV_PARTNER_TENANT, shape)?;
    println!(
        "loaded {} rows over {} tenants in {:.1} s",
        group(rows),
        shape.tenants,
        load.elapsed.as_secs_f64()
    );
    let facts = Facts::read(&database, rows, shape.tenants)?;

    let server = ServerProcess::beacon(name, &dir)?;
    let sets = profiles::prepare(&server, &dir, &facts, profiles).await?;
    let idle_rss = server.peak_rss()?;
    Ok(Tier { rows, dir, server, sets, facts, idle_rss })
}

/// Counts the rows that `post` created in the database at `database`.
fn posted_rows(database: &Path) -> anyhow::Result<i64> {
    let connection = rusqlite::Connection::open(database)?;
    let text = format!(
        "SELECT COUNT(*) FROM {} WHERE {}",
        beacon_store::sql::TABLE,
        beacon_store::sql::Dialect::partner_condition(&beacon_store::sql::Sqlite, "?1")
    );
    Ok(connection.query_row(&text, [profiles::WRITE_PARTNER], |row| row.get(0))?)
}
