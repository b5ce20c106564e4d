//! Progress of a long import: a bar on a terminal, a log line every few seconds otherwise.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How often a log line reports progress when standard error is not a terminal.
const LOG_EVERY: Duration = Duration::from_secs(5);

/// Reports rows read, rows a second and, when the input's size is known, time left.
#[derive(Debug)]
pub(crate) struct Progress {
    /// The bar, on a terminal only.
    bar: Option<ProgressBar>,
    /// The input's size in bytes, when known.
    total_bytes: Option<u64>,
    started: Instant,
    last_log: Instant,
}

impl Progress {
    /// Starts reporting for an input of `total_bytes`, or of unknown size.
    pub(crate) fn start(total_bytes: Option<u64>) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = match total_bytes {
                Some(total) => ProgressBar::with_draw_target(
                    Some(total),
                    ProgressDrawTarget::stderr_with_hz(4),
                )
                .with_style(
                    ProgressStyle::with_template("{bar:30} {percent:>3}% {msg}, {eta} left")
                        .unwrap_or_else(|_| ProgressStyle::default_bar()),
                ),
                None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr_with_hz(4))
                    .with_style(
                        ProgressStyle::with_template("{spinner} {msg}")
                            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                    ),
            };
            bar.enable_steady_tick(Duration::from_millis(250));
            bar
        });
        let now = Instant::now();
        Self { bar, total_bytes, started: now, last_log: now }
    }

    /// Records that `rows` rows and `bytes` bytes of the input have been read.
    pub(crate) fn update(&mut self, rows: u64, bytes: u64) {
        let rate = self.rate(rows);
        if let Some(bar) = &self.bar {
            bar.set_position(bytes);
            bar.set_message(format!("{rows} rows, {rate:.0} rows/s"));
            return;
        }
        if self.last_log.elapsed() < LOG_EVERY {
            return;
        }
        self.last_log = Instant::now();
        match self.total_bytes {
            Some(total) if total > 0 && bytes > 0 => {
                let done = bytes as f64 / total as f64;
                let elapsed = self.started.elapsed().as_secs_f64();
                let left_s = (elapsed / done - elapsed).max(0.0).round() as u64;
                let percent = (done * 100.0).round() as u64;
                tracing::info!(
                    rows,
                    rows_per_s = rate.round() as u64,
                    percent,
                    left_s,
                    "importing"
                );
            }
            _ => tracing::info!(rows, rows_per_s = rate.round() as u64, "importing"),
        }
    }

    /// Removes the bar, leaving the terminal to the summary.
    pub(crate) fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }

    /// Returns the rows a second since the start.
    pub(crate) fn rate(&self, rows: u64) -> f64 {
        rows as f64 / self.started.elapsed().as_secs_f64().max(0.001)
    }
}
