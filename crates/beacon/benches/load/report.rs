//! The figures of a run: medians over the rounds, ratios to the baseline, the targets, and
//! the Markdown tables the benchmark prints.
//!
//! Each round pairs one baseline run with the Beacon run right after it. A ratio is the
//! median over the rounds of the ratio within each pair, so that a change in the machine's load
//! between rounds moves both sides of a ratio alike.

use std::fmt::Write as _;
use std::time::Duration;

use crate::driver::RunResult;
use crate::profiles::Profile;

/// The largest ratio of a profile's request rate at the smallest data set to its rate at the
/// largest, where both are measured.
const SCALING_TARGET: f64 = 2.0;

/// The largest ratio of `bykey`'s 99th percentile latency to the baseline's.
const BYKEY_P99_TARGET: f64 = 3.0;

/// The largest peak resident set size of the server on 1,000,000 rows.
const RSS_TARGET_BYTES: u64 = 64 * 1024 * 1024;

/// The data set size at which the memory target applies.
const RSS_TARGET_ROWS: usize = 1_000_000;

/// One run's request rate and latencies.
#[derive(Clone, Copy, Debug)]
pub struct Summary {
    pub rate: f64,
    pub p50: Option<Duration>,
    pub p99: Option<Duration>,
    /// The server's CPU time (user and system) over the whole run, divided by every request
    /// that completed in it.
    pub cpu_per_request: Duration,
    /// The share of the responses inside the window that were `503`, from 0 to 1.
    pub error_share: f64,
    /// The driver's CPU time over the run divided by every request that completed in it.
    pub driver_cpu_per_request: Duration,
}

impl Summary {
    /// Summarizes `result`, during which the server used `cpu` and the driver `driver_cpu`
    /// of CPU time.
    pub fn of(result: &RunResult, cpu: Duration, driver_cpu: Duration) -> Summary {
        let requests = u32::try_from(result.total.max(1)).unwrap_or(u32::MAX);
        Summary {
            rate: result.requests_per_second(),
            p50: result.latency(0.50),
            p99: result.latency(0.99),
            cpu_per_request: cpu / requests,
            driver_cpu_per_request: driver_cpu / requests,
            error_share: result.errors as f64 / (result.errors + result.completed).max(1) as f64,
        }
    }
}

/// A baseline run and the Beacon run right after it.
#[derive(Clone, Copy, Debug)]
pub struct Pair {
    pub baseline: Summary,
    pub beacon: Summary,
}

/// Every round of one profile on one data set.
#[derive(Clone, Debug)]
pub struct Cell {
    pub rows: usize,
    pub profile: Profile,
    pub pairs: Vec<Pair>,
    /// The server's peak resident set size right after this profile's last run.
    pub peak_rss: u64,
}

/// The medians of a cell.
#[derive(Clone, Copy, Debug)]
pub struct Medians {
    pub rate: f64,
    pub baseline_rate: f64,
    pub rate_ratio: f64,
    pub p50: Option<Duration>,
    pub p50_ratio: Option<f64>,
    pub p99: Option<Duration>,
    pub p99_ratio: Option<f64>,
    pub cpu_per_request: Duration,
    pub baseline_cpu_per_request: Duration,
    pub error_share: f64,
}

impl Cell {
    pub fn medians(&self) -> Medians {
        let pairs = &self.pairs;
        let rate = median(pairs.iter().map(|p| p.beacon.rate));
        let baseline_rate = median(pairs.iter().map(|p| p.baseline.rate));
        let rate_ratio = median(pairs.iter().map(|p| p.beacon.rate / p.baseline.rate));
        let latency = |pick: fn(&Summary) -> Option<Duration>| {
            let values: Vec<f64> =
                pairs.iter().filter_map(|p| pick(&p.beacon)).map(|d| d.as_secs_f64()).collect();
            let ratios: Vec<f64> = pairs
                .iter()
                .filter_map(|p| {
                    Some(pick(&p.beacon)?.as_secs_f64() / pick(&p.baseline)?.as_secs_f64())
                })
                .collect();
            let value = (!values.is_empty()).then(|| Duration::from_secs_f64(median(values)));
            let ratio = (!ratios.is_empty()).then(|| median(ratios));
            (value, ratio)
        };
        let (p50, p50_ratio) = latency(|s| s.p50);
        let (p99, p99_ratio) = latency(|s| s.p99);
        let cpu = |pick: fn(&Pair) -> Duration| {
            Duration::from_secs_f64(median(pairs.iter().map(|p| pick(p).as_secs_f64())))
        };
        Medians {
            rate,
            baseline_rate,
            rate_ratio,
            p50,
            p50_ratio,
            p99,
            p99_ratio,
            cpu_per_request: cpu(|p| p.beacon.cpu_per_request),
            baseline_cpu_per_request: cpu(|p| p.baseline.cpu_per_request),
            error_share: median(pairs.iter().map(|p| p.beacon.error_share)),
        }
    }
}

/// Returns the median of `values`: the middle one, or the mean of the two middle ones.
fn median(values: impl IntoIterator<Item = f64>) -> f64 {
    let mut values: Vec<f64> = values.into_iter().collect();
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    if values.len() % 2 == 1 { values[middle] } else { (values[middle - 1] + values[middle]) / 2.0 }
}

/// A target and how the run fared against it.
#[derive(Clone, Debug)]
pub struct Verdict {
    pub target: String,
    pub measured: String,
    /// `Some(true)` when met, `None` when this run cannot judge it.
    pub met: Option<bool>,
}

/// Judges every target that the run's data sets allow.
pub fn verdicts(cells: &[Cell], tiers: &[usize]) -> Vec<Verdict> {
    let find = |profile: Profile, rows: usize| {
        cells.iter().find(|c| c.profile == profile && c.rows == rows)
    };
    let mut verdicts = Vec::new();

    for profile in Profile::ALL {
        let Some(target) = profile.rate_target() else { continue };
        let rows = profile.target_rows();
        let text =
            format!("{} at {} rows: req/s >= {target}x baseline", profile.name(), group(rows));
        let verdict = match find(profile, rows) {
            Some(cell) => {
                let ratio = cell.medians().rate_ratio;
                Verdict {
                    target: text,
                    measured: format!("{}x", small(ratio)),
                    met: Some(ratio >= target),
                }
            }
            None => Verdict { target: text, measured: "not run".to_owned(), met: None },
        };
        verdicts.push(verdict);
    }

    let text = format!("bykey p99 <= {BYKEY_P99_TARGET}x baseline p99");
    verdicts.push(match find(Profile::ByKey, Profile::ByKey.target_rows()).map(Cell::medians) {
        Some(Medians { p99_ratio: Some(ratio), .. }) => Verdict {
            target: text,
            measured: format!("{ratio:.2}x"),
            met: Some(ratio <= BYKEY_P99_TARGET),
        },
        _ => Verdict { target: text, measured: "not run".to_owned(), met: None },
    });

    let largest = tiers.iter().copied().max().unwrap_or(0);
    let peak = cells.iter().filter(|c| c.rows == largest).map(|c| c.peak_rss).max().unwrap_or(0);
    let text =
        format!("peak RSS <= {} MiB with {} rows", RSS_TARGET_BYTES >> 20, group(RSS_TARGET_ROWS));
    let measured = format!("{} at {} rows", mib(peak), group(largest));
    verdicts.push(Verdict {
        target: text,
        measured,
        met: (largest >= RSS_TARGET_ROWS).then_some(peak <= RSS_TARGET_BYTES),
    });

    let smallest = tiers.iter().copied().min().unwrap_or(0);
    for profile in Profile::ALL {
        let text = format!(
            "{}: req/s at {} rows within {SCALING_TARGET}x of {} rows",
            profile.name(),
            group(RSS_TARGET_ROWS),
            group(smallest)
        );
        let (Some(small), Some(large)) = (find(profile, smallest), find(profile, largest)) else {
            continue;
        };
        let slowdown = small.medians().rate / large.medians().rate;
        let measured = format!("{slowdown:.2}x slower at {} rows", group(largest));
        let met = (largest >= RSS_TARGET_ROWS).then_some(slowdown <= SCALING_TARGET);
        verdicts.push(Verdict { target: text, measured, met });
    }
    verdicts
}

/// Writes the figures table of every cell, the scaling table and the verdicts as Markdown.
pub fn render(cells: &[Cell], tiers: &[usize]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| profile | stored rows | req/s | baseline req/s | req/s ratio | p50 ms | p50 ratio | \
         p99 ms | p99 ratio | CPU µs/req | baseline CPU µs/req | 503s | peak RSS MiB |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for &rows in tiers {
        for cell in cells.iter().filter(|c| c.rows == rows) {
            let m = cell.medians();
            let _ = writeln!(
                out,
                "| {} | {} | {} | {:.0} | {} | {} | {} | {} | {} | {:.0} | {:.0} | {:.0}% | {} |",
                cell.profile.name(),
                group(rows),
                rate(m.rate),
                m.baseline_rate,
                small(m.rate_ratio),
                millis(m.p50),
                ratio(m.p50_ratio),
                millis(m.p99),
                ratio(m.p99_ratio),
                m.cpu_per_request.as_secs_f64() * 1e6,
                m.baseline_cpu_per_request.as_secs_f64() * 1e6,
                m.error_share * 100.0,
                mib(cell.peak_rss).trim_end_matches(" MiB"),
            );
        }
    }

    let driver = |pick: fn(&Pair) -> &Summary| {
        let all =
            cells.iter().flat_map(|c| c.pairs.iter().map(move |p| pick(p).driver_cpu_per_request));
        median(all.map(|d| d.as_secs_f64() * 1e6))
    };
    let _ = writeln!(
        out,
        "\nThe driver's CPU per request: {:.0} µs in the baseline's runs and {:.0} µs in \
         Beacon's (medians of every run).",
        driver(|p| &p.baseline),
        driver(|p| &p.beacon)
    );
    let _ = writeln!(out, "\nRequests per second by stored rows:\n");
    let mut header = "| profile |".to_owned();
    let mut rule = "|---|".to_owned();
    for &rows in tiers {
        let _ = write!(header, " {} |", group(rows));
        rule.push_str("---:|");
    }
    let _ = writeln!(out, "{header} slowdown, smallest to largest |\n{rule}---:|");
    for profile in Profile::ALL {
        let rates: Vec<Option<f64>> = tiers
            .iter()
            .map(|&rows| {
                cells
                    .iter()
                    .find(|c| c.profile == profile && c.rows == rows)
                    .map(|c| c.medians().rate)
            })
            .collect();
        let mut line = format!("| {} |", profile.name());
        for rate in &rates {
            let _ = write!(line, " {} |", rate.map_or("-".to_owned(), self::rate));
        }
        let slowdown = match (rates.first().copied().flatten(), rates.last().copied().flatten()) {
            (Some(first), Some(last)) => format!("{:.2}x", first / last),
            _ => "-".to_owned(),
        };
        let _ = writeln!(out, "{line} {slowdown} |");
    }

    let _ = writeln!(out, "\n| target | measured | verdict |\n|---|---|---|");
    for verdict in verdicts(cells, tiers) {
        let outcome = match verdict.met {
            Some(true) => "met",
            Some(false) => "missed",
            None => "not judged in this mode",
        };
        let _ = writeln!(out, "| {} | {} | {outcome} |", verdict.target, verdict.measured);
    }
    out
}

/// Writes a request rate with two significant digits at least.
fn rate(value: f64) -> String {
    if value >= 100.0 { format!("{value:.0}") } else { format!("{value:.2}") }
}

/// Writes a ratio with three decimals, or with two significant digits when it is smaller.
fn small(value: f64) -> String {
    if value >= 0.01 || value <= 0.0 {
        return format!("{value:.3}");
    }
    let decimals = (1.0 - value.log10().floor()) as usize;
    format!("{value:.decimals$}")
}

fn millis(value: Option<Duration>) -> String {
    value.map_or("-".to_owned(), |d| format!("{:.3}", d.as_secs_f64() * 1000.0))
}

fn ratio(value: Option<f64>) -> String {
    value.map_or("-".to_owned(), |r| format!("{r:.2}"))
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// Writes a count with thousands separators, such as `100,000`.
pub fn group(number: usize) -> String {
    let digits = number.to_string();
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}
