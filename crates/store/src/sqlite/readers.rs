//! The reader threads: a fixed set of threads that each own a read-only connection and take
//! reads from one shared queue.
//!
//! A read is a closure sent through the queue with a channel for its result. A reader that is
//! busy takes the next read as soon as it finishes one, with no wake-up of another thread, and
//! an idle reader sleeps until a read arrives. This costs fewer thread switches a request than
//! running each read as a task on the runtime's blocking pool.
//!
//! A read whose caller went away (the client hung up or the request timed out) is skipped if it
//! has not started. If it has, SQLite's progress handler stops it, so an abandoned query does
//! not keep a reader busy. The handler checks a flag, which the caller sets whenever it
//! goes away, so cancellation cannot be lost between the start of a read and the start of its
//! statement.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::thread::{self, JoinHandle};

use rusqlite::Connection;

use crate::sql::Statements;

/// How many SQLite virtual machine steps pass between two checks of a read's cancellation flag.
const PROGRESS_STEPS: i32 = 10_000;

/// A read that runs on a reader thread's connection and sends its outcome to its caller.
pub(super) type ReadFn = Box<dyn FnOnce(&Connection, &Statements) + Send>;

/// A read waiting for a reader thread.
pub(super) struct Job {
    /// Runs the read and sends its outcome to the caller.
    pub run: ReadFn,
    /// Set once the caller no longer waits for the outcome.
    pub cancelled: Arc<AtomicBool>,
    /// The request's span, which the read's log lines belong to.
    pub span: tracing::Span,
}

/// The state that every reader thread shares.
#[derive(Debug)]
pub(super) struct Shared {
    /// The database file, for reopening connections.
    pub path: Arc<PathBuf>,
    /// Counts the refreshes of the planner's statistics. SQLite loads statistics when a
    /// connection opens, so a connection older than the last refresh is reopened.
    pub statistics: Arc<AtomicU64>,
    /// The statement texts.
    pub statements: Arc<Statements>,
    /// How many reads are running now.
    pub busy: Arc<AtomicUsize>,
}

/// Starts one reader thread for each connection.
pub(super) fn spawn(
    connections: Vec<Connection>,
    queue: &crossbeam_channel::Receiver<Job>,
    shared: &Arc<Shared>,
) -> std::io::Result<Vec<JoinHandle<()>>> {
    connections
        .into_iter()
        .enumerate()
        .map(|(index, connection)| {
            let queue = queue.clone();
            let shared = Arc::clone(shared);
            thread::Builder::new()
                .name(format!("beacon-sqlite-reader-{index}"))
                .spawn(move || run(connection, &queue, &shared))
        })
        .collect()
}

/// Takes reads from the queue until the store drops its end.
fn run(mut connection: Connection, queue: &crossbeam_channel::Receiver<Job>, shared: &Shared) {
    let mut generation = shared.statistics.load(Ordering::Acquire);
    while let Ok(job) = queue.recv() {
        if job.cancelled.load(Ordering::Acquire) {
            continue;
        }
        let _entered = job.span.enter();

        // A connection opened before the last statistics refresh plans with old ones.
        let current = shared.statistics.load(Ordering::Acquire);
        if generation < current {
            match super::open_reader(&shared.path) {
                Ok(fresh) => (connection, generation) = (fresh, current),
                Err(error) => tracing::warn!(%error, "reopening a read connection failed"),
            }
        }

        let cancelled = Arc::clone(&job.cancelled);
        let watch = move || cancelled.load(Ordering::Relaxed);
        if let Err(error) = connection.progress_handler(PROGRESS_STEPS, Some(watch)) {
            tracing::warn!(%error, "setting the cancellation check of a read failed");
        }
        shared.busy.fetch_add(1, Ordering::Relaxed);
        // A panicking read drops its result channel, which its caller sees as a failed read.
        // The thread and its connection stay in service for the next read.
        let outcome = catch_unwind(AssertUnwindSafe(|| (job.run)(&connection, &shared.statements)));
        shared.busy.fetch_sub(1, Ordering::Relaxed);
        let _ = connection.progress_handler(0, None::<fn() -> bool>);
        if outcome.is_err() {
            tracing::error!("a read panicked, so its request failed");
        }
    }
}
