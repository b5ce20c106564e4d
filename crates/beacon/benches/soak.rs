//! A long run of mixed load at a fixed rate against the release `beacon serve`, which samples
//! the server's memory, open file descriptors, latency and write-ahead log as it goes, to show
//! whether any of them grows with time. It runs on demand:
//!
//! ```sh
//! cargo bench -p beacon --bench soak                  # 30 minutes
//! cargo bench -p beacon --bench soak -- --minutes 2   # a short check of the setup
//! ```
//!
//! The benchmark loads 100,000 generated rows into a new data folder, starts one server on it
//! and sends requests at a fixed rate, whether or not earlier ones have finished (an open
//! loop): reads by id, filtered lists, counts, aggregations, creates, `PATCH`es with
//! `If-Match` and deletes. Every 10 seconds it reads the server's resident set size and open
//! file descriptors (sockets apart from other files) from `/proc`, the size of the write-ahead log, and the 99th percentile
//! latency of the requests that completed in those 10 seconds. At the end it writes the
//! samples as CSV and as an SVG chart, and says for each measure whether it stayed flat after
//! the warm-up.
//!
//! Options after `--`:
//!
//! - `--minutes N`: the length of the load (30). The first tenth, and at least one minute, is
//!   the warm-up, but never more than half of the run.
//! - `--rate N`: requests a second (300).
//! - `--out DIR`: where to write `soak.csv` and `soak.svg` (`target/soak`).
//!
//! `docs/benchmarks.md` records a run.

#[path = "query_scale/dataset.rs"]
// The soak uses the loader only, not every helper of the module.
#[allow(dead_code)]
mod dataset;
#[path = "query_scale/machine.rs"]
mod machine;
#[path = "load/process.rs"]
// The soak starts Beacon servers and mints tokens; it has no baseline server.
#[allow(dead_code)]
mod process;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use beacon_server::auth::{DEV_PARTNER_TENANT, READ_WRITE_PERMISSION};
use dataset::Shape;
use machine::{load_average, machine_summary};
use process::ServerProcess;
use serde_json::{Value, json};
use tokio::sync::Semaphore;

/// Unused here: the load benchmark's process module names its own baseline flag.
pub const BASELINE_FLAG: &str = "--serve-baseline";

/// The Graph view's collection.
const COLLECTION: &str = "/beta/tenantRelationships/managedTenants/aggregatedPolicyCompliances";

/// Rows loaded before the load starts.
const ROWS: usize = 100_000;

/// Rows of each `tenantId` value.
const ROWS_PER_TENANT: usize = 1_000;

/// Time between two samples.
const SAMPLE_EVERY: Duration = Duration::from_secs(10);

/// Requests in flight at most. A request that would pass this is counted as skipped, which
/// shows that the server fell behind the rate.
const MAX_IN_FLIGHT: usize = 256;

/// Ids of created rows kept for later `PATCH`es and deletes.
const KEPT_CREATED: usize = 2_000;

/// The largest growth of the resident set size after the warm-up that still counts as flat.
const RSS_GROWTH_LIMIT: f64 = 0.10;

/// The write-ahead log size past which the server empties it, from the SQLite store.
const WAL_LIMIT_BYTES: u64 = 64 * 1024 * 1024;

/// The settings of one run.
#[derive(Clone, Debug)]
struct Settings {
    minutes: f64,
    rate: u32,
    out: PathBuf,
}

/// One sample of the server's state and of the requests of the last period.
#[derive(Clone, Debug, Default)]
struct Sample {
    /// Seconds since the load started.
    seconds: f64,
    rss_bytes: u64,
    /// Open file descriptors other than sockets: the database, its log and lock files.
    open_files: usize,
    /// Open sockets, which follow the number of client connections.
    sockets: usize,
    wal_bytes: u64,
    /// The 99th percentile latency of the requests completed in the period, in milliseconds.
    p99_ms: f64,
    completed: usize,
    /// Responses with a status other than the expected ones, and failed connections.
    errors: usize,
    /// Requests not sent because too many were in flight.
    skipped: usize,
}

/// The kinds of request of the mix, with their share of every 100 requests.
#[derive(Clone, Copy, Debug)]
enum Kind {
    ByKey,
    List,
    Count,
    Apply,
    Create,
    Update,
    Delete,
}

impl Kind {
    /// Picks the kind of the `n`th request: 50 reads by id, 15 lists, 5 counts, 1 aggregation,
    /// 17 creates, 8 updates and 4 deletes in every 100.
    fn of(n: u64) -> Kind {
        match n % 100 {
            0..50 => Kind::ByKey,
            50..65 => Kind::List,
            65..70 => Kind::Count,
            70 => Kind::Apply,
            71..88 => Kind::Create,
            88..96 => Kind::Update,
            _ => Kind::Delete,
        }
    }
}

/// The figures that the requests of the current period record.
#[derive(Debug, Default)]
struct Period {
    latencies: Vec<Duration>,
    errors: usize,
    skipped: usize,
}

/// The state the request tasks share.
struct Shared {
    client: reqwest::Client,
    base: String,
    token: String,
    loaded_ids: Vec<String>,
    /// Rows created by the soak, with their latest ETag, oldest first.
    created: Mutex<std::collections::VecDeque<(String, String)>>,
    period: Mutex<Period>,
}

fn main() -> ExitCode {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    if !arguments.iter().any(|argument| argument == "--bench") {
        println!("soak is a benchmark: run cargo bench -p beacon --bench soak [-- --minutes N]");
        return ExitCode::SUCCESS;
    }
    let outcome = settings(&arguments).and_then(|settings| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the async runtime")?
            .block_on(run(&settings))
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Reads the options after `--`.
fn settings(arguments: &[String]) -> anyhow::Result<Settings> {
    let value = |name: &str| {
        arguments.iter().position(|argument| argument == name).map(|at| arguments.get(at + 1))
    };
    let mut settings =
        Settings { minutes: 30.0, rate: 300, out: PathBuf::from("target").join("soak") };
    if let Some(given) = value("--minutes") {
        settings.minutes = given
            .and_then(|text| text.parse::<f64>().ok())
            .filter(|minutes| *minutes >= 1.0)
            .context("--minutes takes a number of minutes from 1 up")?;
    }
    if let Some(given) = value("--rate") {
        settings.rate = given
            .and_then(|text| text.parse::<u32>().ok())
            .filter(|rate| (1..=100_000).contains(rate))
            .context("--rate takes a number of requests a second from 1 to 100000")?;
    }
    if let Some(given) = value("--out") {
        settings.out = given.map(PathBuf::from).context("--out takes a folder")?;
    }
    Ok(settings)
}

async fn run(settings: &Settings) -> anyhow::Result<()> {
    println!("soak on {}", machine_summary());
    println!("binary: {}", process::beacon_binary().display());
    println!("load average at the start: {}", load_average());

    // The server's migrations create the schema; the rows are then written straight to SQLite.
    let root = tempfile::Builder::new().prefix("beacon-soak-").tempdir()?;
    let dir = root.path().join("data");
    ServerProcess::beacon("beacon".to_owned(), &dir)?
        .stop()
        .context("creating the data folder failed")?;
    let database = dir.join("beacon.sqlite3");
    dataset::load(
        &database,
        DEV_PARTNER_TENANT,
        Shape { rows: ROWS, tenants: ROWS / ROWS_PER_TENANT },
    )?;
    let loaded_ids = sample_ids(&database)?;
    let server = ServerProcess::beacon("beacon".to_owned(), &dir)?;
    let token = process::mint_token(&dir, DEV_PARTNER_TENANT, READ_WRITE_PERMISSION)?;

    let shared = Arc::new(Shared {
        client: reqwest::Client::builder()
            .pool_max_idle_per_host(MAX_IN_FLIGHT)
            .pool_idle_timeout(None)
            .timeout(Duration::from_secs(60))
            .build()?,
        base: format!("http://{}", server.address),
        token,
        loaded_ids,
        created: Mutex::new(std::collections::VecDeque::new()),
        period: Mutex::new(Period::default()),
    });
    let samples = drive(settings, &shared, &server, &dir.join("beacon.sqlite3-wal")).await?;
    server.stop()?;

    std::fs::create_dir_all(&settings.out)
        .with_context(|| format!("cannot create {}", settings.out.display()))?;
    let csv = settings.out.join("soak.csv");
    std::fs::write(&csv, to_csv(&samples))
        .with_context(|| format!("cannot write {}", csv.display()))?;
    let svg = settings.out.join("soak.svg");
    std::fs::write(&svg, to_svg(&samples, settings))
        .with_context(|| format!("cannot write {}", svg.display()))?;
    println!("wrote {} and {}", csv.display(), svg.display());
    println!("load average at the end: {}", load_average());
    print_verdicts(&samples, warm_up(settings));
    Ok(())
}

/// Reads up to 10,000 ids spread over the loaded rows.
fn sample_ids(database: &Path) -> anyhow::Result<Vec<String>> {
    let connection = rusqlite::Connection::open(database)?;
    let mut statement = connection.prepare(
        "SELECT id FROM aggregated_policy_compliance WHERE (abs(random()) % 10) = 0 LIMIT 10000",
    )?;
    let ids = statement.query_map([], |row| row.get(0))?.collect::<Result<Vec<String>, _>>()?;
    if ids.is_empty() {
        bail!("the data set has no rows");
    }
    Ok(ids)
}

/// Returns the length of the warm-up: a tenth of the run and at least one minute, but at most
/// half of the run, so that a short run has samples after it.
fn warm_up(settings: &Settings) -> Duration {
    Duration::from_secs_f64((settings.minutes * 6.0).max(60.0).min(settings.minutes * 30.0))
}

/// Sends requests at the fixed rate until the run ends, and samples every period.
async fn drive(
    settings: &Settings,
    shared: &Arc<Shared>,
    server: &ServerProcess,
    wal: &Path,
) -> anyhow::Result<Vec<Sample>> {
    let length = Duration::from_secs_f64(settings.minutes * 60.0);
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut ticks = tokio::time::interval(Duration::from_secs(1) / settings.rate);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut sampling = tokio::time::interval(SAMPLE_EVERY);
    sampling.tick().await;
    let started = Instant::now();
    let mut samples = Vec::new();
    let mut sent: u64 = 0;

    while started.elapsed() < length {
        tokio::select! {
            _ = ticks.tick() => {
                let Ok(permit) = Arc::clone(&in_flight).try_acquire_owned() else {
                    lock(&shared.period).skipped += 1;
                    continue;
                };
                let shared = Arc::clone(shared);
                let kind = Kind::of(sent.wrapping_mul(37));
                let index = sent;
                sent += 1;
                tokio::spawn(async move {
                    let began = Instant::now();
                    let ok = send(&shared, kind, index).await;
                    let mut period = lock(&shared.period);
                    period.latencies.push(began.elapsed());
                    if !ok {
                        period.errors += 1;
                    }
                    drop(permit);
                });
            }
            _ = sampling.tick() => {
                let sample = take_sample(started, shared, server, wal)?;
                println!(
                    "{:>6.0} s  rss {:>6.1} MiB  files {:>3}  sockets {:>3}  wal {:>6.1} MiB  \
                     p99 {:>7.2} ms  done {:>5}  errors {}  skipped {}",
                    sample.seconds,
                    mib(sample.rss_bytes),
                    sample.open_files,
                    sample.sockets,
                    mib(sample.wal_bytes),
                    sample.p99_ms,
                    sample.completed,
                    sample.errors,
                    sample.skipped
                );
                samples.push(sample);
            }
        }
    }

    // Let the requests in flight finish before the server stops.
    let _all = in_flight.acquire_many(MAX_IN_FLIGHT as u32).await?;
    Ok(samples)
}

/// Reads the server's state and takes the figures of the period that just ended.
fn take_sample(
    started: Instant,
    shared: &Shared,
    server: &ServerProcess,
    wal: &Path,
) -> anyhow::Result<Sample> {
    let period = std::mem::take(&mut *lock(&shared.period));
    let mut latencies = period.latencies;
    latencies.sort_unstable();
    let p99 = match latencies.len() {
        0 => Duration::ZERO,
        n => latencies[(n * 99).div_ceil(100).saturating_sub(1)],
    };
    let pid = server.pid();
    let (mut open_files, mut sockets) = (0, 0);
    for entry in std::fs::read_dir(format!("/proc/{pid}/fd"))
        .with_context(|| format!("cannot list the open files of process {pid}"))?
    {
        // A descriptor closed since the listing has no link to read; it is not counted.
        match std::fs::read_link(entry?.path()) {
            Ok(target) if target.to_string_lossy().starts_with("socket:") => sockets += 1,
            Ok(_) => open_files += 1,
            Err(_) => {}
        }
    }
    Ok(Sample {
        seconds: started.elapsed().as_secs_f64(),
        rss_bytes: current_rss(pid)?,
        open_files,
        sockets,
        wal_bytes: std::fs::metadata(wal).map_or(0, |metadata| metadata.len()),
        p99_ms: p99.as_secs_f64() * 1_000.0,
        completed: latencies.len(),
        errors: period.errors,
        skipped: period.skipped,
    })
}

/// Reads the resident set size (`VmRSS`) of process `pid` in bytes.
fn current_rss(pid: u32) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    let kib = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|number| number.parse::<u64>().ok())
        .with_context(|| format!("{path} has no VmRSS line"))?;
    Ok(kib * 1024)
}

/// Sends request `index` of kind `kind` and reports whether its status was an expected one.
async fn send(shared: &Shared, kind: Kind, index: u64) -> bool {
    let url = |path: &str| format!("{}{COLLECTION}{path}", shared.base);
    let pick = |values: usize| {
        usize::try_from(index.wrapping_mul(2_654_435_761) % 1_000_003).unwrap_or(0) % values
    };
    let client = &shared.client;
    let request = match kind {
        Kind::ByKey => {
            client.get(url(&format!("/{}", shared.loaded_ids[pick(shared.loaded_ids.len())])))
        }
        Kind::List => client.get(url(&format!(
            "?$filter=tenantId eq '{}'&$top=50",
            dataset::tenant_id(pick(ROWS / ROWS_PER_TENANT))
        ))),
        Kind::Count => client.get(url("/$count?$filter=compliancePolicyPlatform eq 'iOS'")),
        Kind::Apply => client.get(url(
            "?$apply=groupby((compliancePolicyPlatform),aggregate(numberOfNonCompliantDevices \
             with sum as nonCompliant))",
        )),
        Kind::Create => client.post(url("")).json(&entity(index)),
        Kind::Update | Kind::Delete => {
            let Some((id, tag)) = take_created(shared, kind) else {
                // Nothing created yet: read instead.
                return check(
                    client.get(url("/$count")).bearer_auth(&shared.token).send().await,
                    &[200],
                )
                .await
                .is_some();
            };
            let request = match kind {
                Kind::Update => client
                    .patch(url(&format!("/{id}")))
                    .header("Prefer", "return=representation")
                    .json(&json!({ "numberOfErrorDevices": index % 1_000 })),
                _ => client.delete(url(&format!("/{id}"))),
            };
            let response = request.bearer_auth(&shared.token).header("If-Match", &tag).send().await;
            let body = check(response, &[200, 204]).await;
            if let (Kind::Update, Some(body)) = (kind, &body) {
                keep_created(shared, body);
            }
            return body.is_some();
        }
    };
    let expected: &[u16] = match kind {
        Kind::Create => &[201],
        _ => &[200],
    };
    let body = check(request.bearer_auth(&shared.token).send().await, expected).await;
    if let (Kind::Create, Some(body)) = (kind, &body) {
        keep_created(shared, body);
    }
    body.is_some()
}

/// Returns the body of a response with an expected status, or `None`.
async fn check(
    response: Result<reqwest::Response, reqwest::Error>,
    expected: &[u16],
) -> Option<Value> {
    let response = response.ok()?;
    if !expected.contains(&response.status().as_u16()) {
        return None;
    }
    let bytes = response.bytes().await.ok()?;
    if bytes.is_empty() {
        return Some(Value::Null);
    }
    Some(serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

/// Keeps the id and ETag of a created or updated entity for later writes.
fn keep_created(shared: &Shared, body: &Value) {
    let (Some(id), Some(tag)) = (body["id"].as_str(), body["@odata.etag"].as_str()) else {
        return;
    };
    let mut created = lock(&shared.created);
    created.push_back((id.to_owned(), tag.to_owned()));
    if created.len() > KEPT_CREATED {
        created.pop_front();
    }
}

/// Takes a created entity to update (the oldest) or delete (the newest but one hundred), so
/// that no two writes in flight use the same entity.
fn take_created(shared: &Shared, kind: Kind) -> Option<(String, String)> {
    let mut created = lock(&shared.created);
    match kind {
        Kind::Delete if created.len() > 100 => {
            let at = created.len() - 100;
            created.remove(at)
        }
        Kind::Delete => None,
        _ => created.pop_front(),
    }
}

/// Returns a complete entity in the Graph view's names.
fn entity(index: u64) -> Value {
    json!({
        "tenantId": dataset::tenant_id(usize::try_from(index % 97).unwrap_or(0)),
        "tenantDisplayName": format!("Soak tenant {}", index % 97),
        "compliancePolicyId": "0c4bd1d4-1d3f-4b86-8b93-3f0a5d0e5c21",
        "compliancePolicyName": "Windows 10 baseline",
        "compliancePolicyType": "deviceCompliancePolicy",
        "compliancePolicyPlatform": dataset::PLATFORMS[usize::try_from(index % 8).unwrap_or(0)],
        "numberOfCompliantDevices": index % 500,
        "numberOfNonCompliantDevices": index % 40,
        "numberOfErrorDevices": index % 3,
        "policyModifiedDateTime": "2026-11-30T08:15:00Z",
        "lastRefreshedDateTime": "2026-12-01T06:00:00.1234567Z",
    })
}

/// Writes the samples as CSV with a header line.
fn to_csv(samples: &[Sample]) -> String {
    let mut csv = String::from(
        "seconds,rss_bytes,open_files,sockets,wal_bytes,p99_ms,completed,errors,skipped\n",
    );
    for s in samples {
        let _ = writeln!(
            csv,
            "{:.1},{},{},{},{},{:.3},{},{},{}",
            s.seconds,
            s.rss_bytes,
            s.open_files,
            s.sockets,
            s.wal_bytes,
            s.p99_ms,
            s.completed,
            s.errors,
            s.skipped
        );
    }
    csv
}

/// Reads one measure of a sample, as drawn in a chart.
type Measure = fn(&Sample) -> f64;

/// Draws the five measures over time as stacked line charts in one SVG document, with
/// the end of the warm-up marked.
fn to_svg(samples: &[Sample], settings: &Settings) -> String {
    const WIDTH: f64 = 720.0;
    const PANEL: f64 = 150.0;
    const LEFT: f64 = 70.0;
    const RIGHT: f64 = 20.0;
    const TOP: f64 = 40.0;
    let panels: [(&str, Measure); 5] = [
        ("resident set size (MiB)", |s| mib(s.rss_bytes)),
        ("open files other than sockets", |s| s.open_files as f64),
        ("open sockets", |s| s.sockets as f64),
        ("p99 latency (ms)", |s| s.p99_ms),
        ("write-ahead log (MiB)", |s| mib(s.wal_bytes)),
    ];
    let height = TOP + PANEL * panels.len() as f64 + 30.0;
    let end = samples.last().map_or(1.0, |s| s.seconds.max(1.0));
    let plot_width = WIDTH - LEFT - RIGHT;
    let x = |seconds: f64| LEFT + seconds / end * plot_width;

    let mut svg = String::new();
    let _ = writeln!(
        svg,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height}\" \
         font-family=\"sans-serif\" font-size=\"12\">"
    );
    let _ = writeln!(svg, "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>");
    let _ = writeln!(
        svg,
        "<text x=\"{LEFT}\" y=\"20\" font-size=\"14\">Soak: {} minutes at {} requests/s, \
         sampled every {} s</text>",
        settings.minutes,
        settings.rate,
        SAMPLE_EVERY.as_secs()
    );
    let warm = x(warm_up(settings).as_secs_f64().min(end));
    for (number, (title, value)) in panels.iter().enumerate() {
        let top = TOP + PANEL * number as f64;
        let bottom = top + PANEL - 30.0;
        let highest = samples.iter().map(value).fold(0.0_f64, f64::max).max(1e-9) * 1.1;
        let y = |v: f64| bottom - v / highest * (bottom - top - 10.0);
        let _ = writeln!(svg, "<text x=\"{LEFT}\" y=\"{}\">{title}</text>", top + 5.0);
        let _ = writeln!(
            svg,
            "<line x1=\"{LEFT}\" y1=\"{bottom}\" x2=\"{}\" y2=\"{bottom}\" stroke=\"#888\"/>",
            WIDTH - RIGHT
        );
        let _ = writeln!(
            svg,
            "<line x1=\"{LEFT}\" y1=\"{}\" x2=\"{LEFT}\" y2=\"{bottom}\" stroke=\"#888\"/>",
            top + 10.0
        );
        for fraction in [0.0, 0.5, 1.0] {
            let v = highest / 1.1 * fraction;
            let _ = writeln!(
                svg,
                "<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{v:.1}</text>",
                LEFT - 6.0,
                y(v) + 4.0
            );
        }
        let _ = writeln!(
            svg,
            "<line x1=\"{warm:.1}\" y1=\"{}\" x2=\"{warm:.1}\" y2=\"{bottom}\" stroke=\"#c60\" \
             stroke-dasharray=\"4 3\"/>",
            top + 10.0
        );
        let points: Vec<String> =
            samples.iter().map(|s| format!("{:.1},{:.1}", x(s.seconds), y(value(s)))).collect();
        let _ = writeln!(
            svg,
            "<polyline fill=\"none\" stroke=\"#1f5fa8\" stroke-width=\"1.5\" points=\"{}\"/>",
            points.join(" ")
        );
    }
    let _ = writeln!(
        svg,
        "<text x=\"{LEFT}\" y=\"{}\">minutes 0 to {:.0}; the dashed line ends the warm-up</text>",
        height - 8.0,
        end / 60.0
    );
    svg.push_str("</svg>\n");
    svg
}

/// Prints whether each measure stayed flat after the warm-up.
fn print_verdicts(samples: &[Sample], warm_up: Duration) {
    let errors: usize = samples.iter().map(|s| s.errors).sum();
    let skipped: usize = samples.iter().map(|s| s.skipped).sum();
    let completed: usize = samples.iter().map(|s| s.completed).sum();
    println!("requests: {completed} completed, {errors} unexpected statuses, {skipped} skipped");
    let largest_wal = samples.iter().map(|s| s.wal_bytes).max().unwrap_or(0);
    println!(
        "write-ahead log: {:.1} MiB at most ({})",
        mib(largest_wal),
        if largest_wal <= WAL_LIMIT_BYTES + WAL_LIMIT_BYTES / 4 {
            "bounded by checkpoints"
        } else {
            "past the checkpoint limit"
        }
    );

    let after: Vec<&Sample> =
        samples.iter().filter(|s| s.seconds >= warm_up.as_secs_f64()).collect();
    let (Some(first), Some(last)) = (after.first(), after.last()) else {
        println!("no samples after the warm-up");
        return;
    };
    let highest_rss = after.iter().map(|s| s.rss_bytes).max().unwrap_or(0);
    let growth = highest_rss as f64 / first.rss_bytes.max(1) as f64 - 1.0;
    println!(
        "rss: {:.1} MiB after the warm-up, {:.1} MiB at most, {:.1} MiB at the end: growth {:.1}% \
         ({})",
        mib(first.rss_bytes),
        mib(highest_rss),
        mib(last.rss_bytes),
        growth * 100.0,
        if growth < RSS_GROWTH_LIMIT { "flat: under 10%" } else { "grew: 10% or more" }
    );
    let fewest = after.iter().map(|s| s.open_files).min().unwrap_or(0);
    let most = after.iter().map(|s| s.open_files).max().unwrap_or(0);
    println!(
        "open files other than sockets: {fewest} to {most} after the warm-up, {} at the end ({})",
        last.open_files,
        if fewest == most { "constant" } else { "not constant" }
    );
    let fewest = after.iter().map(|s| s.sockets).min().unwrap_or(0);
    let most = after.iter().map(|s| s.sockets).max().unwrap_or(0);
    println!(
        "open sockets: {fewest} to {most} after the warm-up, {} at the end (they follow the \
         client's connections)",
        last.sockets
    );
    let p99s: Vec<f64> = after.iter().map(|s| s.p99_ms).collect();
    let first_p99 = p99s.iter().take(3).sum::<f64>() / p99s.len().clamp(1, 3) as f64;
    let last_p99 = p99s.iter().rev().take(3).sum::<f64>() / p99s.len().clamp(1, 3) as f64;
    println!(
        "p99 latency: {first_p99:.2} ms over the first three periods after the warm-up, \
         {last_p99:.2} ms over the last three, {:.2} ms at most",
        p99s.iter().copied().fold(0.0_f64, f64::max)
    );
}

/// Converts bytes to mebibytes.
fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Locks a mutex, taking the data even if a task panicked while holding it.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
