//! Repeated timing of a case, the median and 99th percentile of its samples, and the printed
//! results tables.

use std::fmt::Write as _;
use std::future::Future;
use std::time::{Duration, Instant};

/// How often to time a case: `count` times, or fewer once `budget` is spent, but never fewer
/// than [`MIN_RUNS`].
#[derive(Clone, Copy, Debug)]
pub struct Runs {
    pub count: usize,
    pub budget: Duration,
}

/// The fewest timed runs of a case, whatever its budget.
pub const MIN_RUNS: usize = 20;

impl Runs {
    /// Untimed runs before a case: a tenth of the timed ones, at least 3 and at most 10.
    fn warmup(self) -> usize {
        (self.count / 10).clamp(3, 10)
    }

    /// Returns whether another timed run is due after `done` runs that started at `started`.
    fn more(self, done: usize, started: Instant) -> bool {
        done < self.count && (done < MIN_RUNS || started.elapsed() < self.budget)
    }
}

/// Runs `timed` for warm-up, then as often as `runs` allows, and returns the durations it
/// reports.
pub async fn repeat<F, Fut>(runs: Runs, mut timed: F) -> anyhow::Result<Vec<Duration>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Duration>>,
{
    for _ in 0..runs.warmup() {
        timed().await?;
    }
    let started = Instant::now();
    let mut samples = Vec::with_capacity(runs.count);
    while runs.more(samples.len(), started) {
        samples.push(timed().await?);
    }
    Ok(samples)
}

/// Runs `first` and `second` alternately (A B A B) as often as `runs` allows for each pair,
/// so that drift in the machine's load affects both alike.
pub async fn alternate<A, FutA, B, FutB>(
    runs: Runs,
    mut first: A,
    mut second: B,
) -> anyhow::Result<(Vec<Duration>, Vec<Duration>)>
where
    A: FnMut() -> FutA,
    FutA: Future<Output = anyhow::Result<Duration>>,
    B: FnMut() -> FutB,
    FutB: Future<Output = anyhow::Result<Duration>>,
{
    for _ in 0..runs.warmup() {
        first().await?;
        second().await?;
    }
    let started = Instant::now();
    let (mut a, mut b) = (Vec::with_capacity(runs.count), Vec::with_capacity(runs.count));
    while runs.more(a.len(), started) {
        a.push(first().await?);
        b.push(second().await?);
    }
    Ok((a, b))
}

/// The layer through which a case is timed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layer {
    /// Through `beacon_store::Store` on an opened store, without HTTP.
    Store,
    /// Through HTTP to the release server on loopback, with keep-alive.
    Http,
}

impl Layer {
    pub fn name(self) -> &'static str {
        match self {
            Layer::Store => "store",
            Layer::Http => "http",
        }
    }
}

/// The timings of one case on one layer and data set.
#[derive(Clone, Debug)]
pub struct Measurement {
    /// A short case name, such as `a. tenantId eq`.
    pub case: String,
    /// The data set's row count.
    pub rows: usize,
    pub layer: Layer,
    /// Every timed repetition, in the order run.
    pub samples: Vec<Duration>,
}

impl Measurement {
    pub fn median(&self) -> Duration {
        percentile(&self.samples, 50.0)
    }

    pub fn p99(&self) -> Duration {
        percentile(&self.samples, 99.0)
    }
}

/// Returns the nearest-rank percentile `p` (0 to 100) of `samples`; zero when there are none.
pub fn percentile(samples: &[Duration], p: f64) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Formats a duration in milliseconds with microsecond precision.
pub fn millis(duration: Duration) -> String {
    format!("{:.3}", duration.as_secs_f64() * 1000.0)
}

/// A comparison of two medians against a target ratio.
#[derive(Clone, Debug)]
pub struct Ratio {
    pub name: String,
    pub layer: Layer,
    pub numerator: Duration,
    pub denominator: Duration,
    /// The largest ratio that meets the target.
    pub target: f64,
}

impl Ratio {
    pub fn value(&self) -> f64 {
        self.numerator.as_secs_f64() / self.denominator.as_secs_f64()
    }

    pub fn met(&self) -> bool {
        self.value() <= self.target
    }
}

/// Renders the measurements and ratios as Markdown tables.
pub fn render_tables(measurements: &[Measurement], ratios: &[Ratio]) -> String {
    let mut out = String::new();
    out.push_str("| case | rows | layer | runs | median ms | p99 ms |\n");
    out.push_str("|---|---:|---|---:|---:|---:|\n");
    for m in measurements {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} |",
            m.case,
            m.rows,
            m.layer.name(),
            m.samples.len(),
            millis(m.median()),
            millis(m.p99())
        );
    }

    out.push('\n');
    out.push_str("| ratio of medians | layer | value | target | verdict |\n");
    out.push_str("|---|---|---:|---:|---|\n");
    for ratio in ratios {
        let _ = writeln!(
            out,
            "| {} | {} | {:.2} | <= {:.1} | {} |",
            ratio.name,
            ratio.layer.name(),
            ratio.value(),
            ratio.target,
            if ratio.met() { "met" } else { "missed" }
        );
    }
    out
}
