//! Import speed into SQLite, run on demand with `cargo bench -p beacon --bench import_speed`
//! (1,000,000 rows) or with `-- --quick` (100,000 rows).
//!
//! The benchmark writes generated rows as NDJSON and as CSV to a temporary folder, then runs
//! the release `beacon import` on each into a new data folder and times the whole process:
//! start, parsing, the body checks of a `POST`, staging, the commit and the upkeep after it.
//! It reads how long the commit held the database's write lock from the import's log line,
//! since that is how long a server on the same file has its writes wait. Last it times
//! `beacon export` of the imported rows. `docs/benchmarks.md` records a run.
//!
//! It is not a test: run without `--bench` (as `cargo test --benches` would), it only prints
//! how to run it.

#[path = "query_scale/machine.rs"]
mod machine;

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

use machine::{load_average, machine_summary};

/// The rows of a full run, and of a quick one.
const FULL_ROWS: usize = 1_000_000;
const QUICK_ROWS: usize = 100_000;

/// The import speed that a full run should reach, in rows a second.
const TARGET_ROWS_PER_S: f64 = 100_000.0;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.iter().any(|arg| arg == "--bench") {
        println!(
            "import_speed runs only as a benchmark: cargo bench -p beacon --bench import_speed"
        );
        return ExitCode::SUCCESS;
    }
    let rows = if args.iter().any(|arg| arg == "--quick") { QUICK_ROWS } else { FULL_ROWS };
    match run(rows) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run(rows: usize) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    println!("machine: {}", machine_summary());
    println!("load average at start: {}", load_average());

    let ndjson = dir.path().join("rows.ndjson");
    let csv = dir.path().join("rows.csv");
    write_rows(&ndjson, &csv, rows).map_err(|e| format!("writing the rows failed: {e}"))?;
    let size = |path: &Path| std::fs::metadata(path).map_or(0, |m| m.len()) / (1024 * 1024);
    println!("{rows} rows: NDJSON {} MiB, CSV {} MiB", size(&ndjson), size(&csv));

    let mut report = String::new();
    for (name, input) in [("ndjson", &ndjson), ("csv", &csv)] {
        let data_dir = dir.path().join(format!("data-{name}"));
        let cpu_before = children_cpu_seconds();
        let (seconds, log) = time_beacon(&["import", "--data-dir"], &data_dir, &[input])?;
        let cpu = children_cpu_seconds() - cpu_before;
        let rate = rows as f64 / seconds;
        let lock_ms = field(&log, "lock_ms").unwrap_or_else(|| "?".to_owned());
        let verdict = if rate >= TARGET_ROWS_PER_S { "meets" } else { "misses" };
        let _ = writeln!(
            report,
            "import {name}: {seconds:.2} s, {rate:.0} rows/s ({verdict} the target of \
             {TARGET_ROWS_PER_S:.0}), write lock held {lock_ms} ms, {cpu:.1} s of CPU time"
        );
    }
    let data_dir = dir.path().join("data-ndjson");
    let output = dir.path().join("export.ndjson");
    let (seconds, _) = time_beacon(&["export", "--data-dir"], &data_dir, &[&output])?;
    let _ = writeln!(report, "export ndjson: {seconds:.2} s, {:.0} rows/s", rows as f64 / seconds);
    let same = std::fs::read(&output).ok() == std::fs::read(&ndjson).ok();
    let _ = writeln!(report, "export equals the imported NDJSON byte for byte: {same}");

    print!("{report}");
    println!("load average at end: {}", load_average());
    let _ = std::io::stdout().flush();
    Ok(())
}

/// Runs the release binary with `args`, the data folder and `rest`, and returns the seconds
/// it took and its log.
fn time_beacon(args: &[&str], data_dir: &Path, rest: &[&Path]) -> Result<(f64, String), String> {
    let started = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_beacon"))
        .args(args)
        .arg(data_dir)
        .args(rest)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run beacon: {e}"))?;
    let seconds = started.elapsed().as_secs_f64();
    let log = String::from_utf8_lossy(&output.stderr).into_owned();
    if !output.status.success() {
        return Err(format!("beacon {args:?} failed: {log}"));
    }
    Ok((seconds, log))
}

/// Returns the CPU time (user and system) of the waited-for child processes so far, in
/// seconds, from `/proc/self/stat`, which counts it in clock ticks of 1/100 s on Linux.
fn children_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command name, which is in parentheses and may contain spaces.
    let rest = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // cutime and cstime are fields 16 and 17 of the line, 14 and 15 after the name.
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(13) + ticks(14)) / 100.0
}

/// Returns the value of `name=` in a log line.
fn field(log: &str, name: &str) -> Option<String> {
    let at = log.find(&format!("{name}="))? + name.len() + 1;
    Some(log[at..].split_whitespace().next()?.to_owned())
}

/// Writes the same generated rows as NDJSON, in key order as `beacon export` writes them, and
/// as CSV. The values are spread like a provider's: 5,000 tenants, 97 policies on 4
/// platforms, small counters, and 7-digit fractions.
fn write_rows(ndjson: &Path, csv: &Path, rows: usize) -> std::io::Result<()> {
    let mut json_out = std::io::BufWriter::new(std::fs::File::create(ndjson)?);
    let mut csv_out = std::io::BufWriter::new(std::fs::File::create(csv)?);
    writeln!(
        csv_out,
        "id,tenantId,tenantDisplayName,compliancePolicyId,compliancePolicyName,\
         compliancePolicyType,compliancePolicyPlatform,numberOfCompliantDevices,\
         numberOfNonCompliantDevices,numberOfErrorDevices,policyModifiedDateTime,\
         lastRefreshedDateTime\r"
    )?;
    let platforms = ["android", "iOS", "macOS", "windows10AndLater"];
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        // xorshift64: the same rows on every run.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for i in 0..rows {
        let tenant = i % 5_000;
        let policy = i % 97;
        let (compliant, non_compliant, errors) = (next() % 100_000, next() % 1_000, next() % 10);
        let fraction = next() % 10_000_000;
        let platform = platforms[policy % 4];
        writeln!(
            json_out,
            "{{\"id\":\"row-{i:07}\",\"tenantId\":\"00000000-0000-4000-8000-{tenant:012}\",\
             \"tenantDisplayName\":\"Tenant {tenant}, \\\"Ltd\\\"\",\
             \"compliancePolicyId\":\"policy-{policy}\",\"compliancePolicyName\":\"Baseline {policy}\",\
             \"compliancePolicyType\":\"deviceCompliancePolicy\",\"compliancePolicyPlatform\":\"{platform}\",\
             \"numberOfCompliantDevices\":{compliant},\"numberOfNonCompliantDevices\":{non_compliant},\
             \"numberOfErrorDevices\":{errors},\"policyModifiedDateTime\":\"2024-02-12T09:15:00Z\",\
             \"lastRefreshedDateTime\":\"2024-03-01T07:30:{:02}.{fraction:07}Z\"}}",
            i % 60
        )?;
        writeln!(
            csv_out,
            "row-{i:07},00000000-0000-4000-8000-{tenant:012},\"Tenant {tenant}, \"\"Ltd\"\"\",\
             policy-{policy},Baseline {policy},deviceCompliancePolicy,{platform},{compliant},\
             {non_compliant},{errors},2024-02-12T09:15:00Z,2024-03-01T07:30:{:02}.{fraction:07}Z\r",
            i % 60
        )?;
    }
    json_out.flush()?;
    csv_out.flush()
}
