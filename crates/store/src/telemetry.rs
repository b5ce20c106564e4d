//! The store's metrics, recorded through the `metrics` facade.
//!
//! The store only records; the process that embeds it installs a recorder (Beacon's server
//! renders them at `/metrics`). Without a recorder every call here does nothing. Each metric
//! has fixed label values, so the macros build their keys once as statics and recording
//! allocates nothing.

use std::future::Future;
use std::time::{Duration, Instant};

use metrics::{Unit, describe_gauge, describe_histogram, gauge, histogram};

/// Histogram: seconds from the call of a [`crate::Store`] operation to its result, including
/// the wait for a connection or, for SQLite writes, for the writer thread. Label `operation`.
pub const OPERATION_DURATION: &str = "beacon_store_operation_duration_seconds";

/// Histogram: seconds the SQLite writer spends on one group transaction, from `BEGIN` to the
/// return of `COMMIT`, which includes the sync to disk.
pub const COMMIT_DURATION: &str = "beacon_store_commit_duration_seconds";

/// Histogram: the number of writes that one SQLite group transaction commits together.
pub const COMMIT_WRITES: &str = "beacon_store_commit_writes";

/// Gauge: writes waiting in the SQLite writer's queue when the gauges were last updated.
pub const WRITE_QUEUE_DEPTH: &str = "beacon_store_write_queue_depth";

/// Gauge: database connections by `state`, `in_use` or `idle`: SQLite's read connections,
/// or PostgreSQL's pooled connections.
pub const POOL_CONNECTIONS: &str = "beacon_store_pool_connections";

/// Gauge: operations waiting for a free PostgreSQL connection.
pub const POOL_WAITING: &str = "beacon_store_pool_waiting";

/// Gauge: the rows stored, for all partner tenants together.
pub const ROWS: &str = "beacon_store_rows";

/// Registers the help text and unit of each metric above with the installed recorder.
pub fn describe() {
    describe_histogram!(
        OPERATION_DURATION,
        Unit::Seconds,
        "Time from the call of a store operation to its result, including the wait for a \
         connection or for the SQLite writer."
    );
    describe_histogram!(
        COMMIT_DURATION,
        Unit::Seconds,
        "Time of one group transaction of the SQLite writer, including the sync to disk."
    );
    describe_histogram!(COMMIT_WRITES, "Writes committed by one SQLite group transaction.");
    describe_gauge!(WRITE_QUEUE_DEPTH, "Writes waiting for the SQLite writer thread.");
    describe_gauge!(POOL_CONNECTIONS, "Database connections, in use or idle.");
    describe_gauge!(POOL_WAITING, "Operations waiting for a free PostgreSQL connection.");
    describe_gauge!(
        ROWS,
        "Rows stored for all partner tenants; PostgreSQL's count is at most 30 seconds old."
    );
}

/// A [`crate::Store`] operation, as the `operation` label names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Operation {
    Create,
    Update,
    Delete,
    Get,
    List,
    Count,
    Apply,
    ApplyCount,
    CheckReady,
}

impl Operation {
    /// Records one operation that took `elapsed`.
    fn record(self, elapsed: Duration) {
        // One macro call per label value, so that each key is a static.
        let histogram = match self {
            Operation::Create => histogram!(OPERATION_DURATION, "operation" => "create"),
            Operation::Update => histogram!(OPERATION_DURATION, "operation" => "update"),
            Operation::Delete => histogram!(OPERATION_DURATION, "operation" => "delete"),
            Operation::Get => histogram!(OPERATION_DURATION, "operation" => "get"),
            Operation::List => histogram!(OPERATION_DURATION, "operation" => "list"),
            Operation::Count => histogram!(OPERATION_DURATION, "operation" => "count"),
            Operation::Apply => histogram!(OPERATION_DURATION, "operation" => "apply"),
            Operation::ApplyCount => histogram!(OPERATION_DURATION, "operation" => "apply_count"),
            Operation::CheckReady => histogram!(OPERATION_DURATION, "operation" => "check_ready"),
        };
        histogram.record(elapsed.as_secs_f64());
    }
}

/// Runs `operation` and records how long it took. An operation whose future is dropped before
/// it finishes, such as one whose request timed out, is not recorded.
pub(crate) async fn timed<T>(operation: Operation, future: impl Future<Output = T>) -> T {
    let started = Instant::now();
    let output = future.await;
    operation.record(started.elapsed());
    output
}

/// Records one committed or failed group transaction of the SQLite writer.
pub(crate) fn record_commit(elapsed: Duration, writes: usize) {
    histogram!(COMMIT_DURATION).record(elapsed.as_secs_f64());
    histogram!(COMMIT_WRITES).record(writes as f64);
}

/// Sets the connection gauges: connections in use, idle connections, and operations waiting.
pub(crate) fn set_pool(in_use: usize, idle: usize, waiting: Option<usize>) {
    gauge!(POOL_CONNECTIONS, "state" => "in_use").set(in_use as f64);
    gauge!(POOL_CONNECTIONS, "state" => "idle").set(idle as f64);
    if let Some(waiting) = waiting {
        gauge!(POOL_WAITING).set(waiting as f64);
    }
}

/// Sets the gauge of waiting writes.
pub(crate) fn set_write_queue_depth(depth: usize) {
    gauge!(WRITE_QUEUE_DEPTH).set(depth as f64);
}

/// Sets the gauge of rows stored.
pub(crate) fn set_rows(rows: i64) {
    gauge!(ROWS).set(rows as f64);
}
