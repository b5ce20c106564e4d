//! Crash consistency: cycles of concurrent writes, `kill -9` at a random moment, and a restart,
//! with the journal of every acknowledged write checked against the rows after each restart.
//!
//! By default the test runs 100 short cycles, which took 35 seconds on a 2-core machine. The
//! environment sets longer runs. `BEACON_CRASH_CYCLES` is the number of cycles, and
//! `BEACON_CRASH_LOAD_MS` the maximum time the clients write before the kill, which each cycle
//! picks at random from 0 up to it. `BEACON_CRASH_CLIENTS` is the number of clients writing at
//! once, and `BEACON_TEST_SEED` repeats a run. With `BEACON_TEST_STORE=postgres` the server
//! stores its rows in PostgreSQL, and SQLite's integrity check is left out.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use crate::helpers::*;
use crate::journal::{self, Client, Figures, Rng};

/// The maximum time from a restart until `/readyz` returns `200`.
const READY_BOUND: Duration = Duration::from_secs(15);

/// Reads a number from the environment, or returns `default`.
fn setting(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(text) => text.parse().unwrap_or_else(|_| panic!("{name} must be a number: {text:?}")),
        Err(_) => default,
    }
}

/// Starts a server on `data_dir` and waits until `/readyz` returns `200`. Returns the process,
/// its base URL and the time from the start to ready.
pub async fn start_ready(
    data_dir: &std::path::Path,
    args: &[String],
) -> (std::process::Child, String, Duration) {
    let started = Instant::now();
    let (child, base) = tokio::task::spawn_blocking({
        let (data_dir, args) = (data_dir.to_owned(), args.to_vec());
        move || spawn_serve(&data_dir, &args)
    })
    .await
    .unwrap();
    let http = reqwest::Client::new();
    loop {
        let ready = http.get(format!("{base}/readyz")).send().await;
        if ready.is_ok_and(|response| response.status() == 200) {
            return (child, base, started.elapsed());
        }
        assert!(started.elapsed() < READY_BOUND, "not ready within {READY_BOUND:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Runs SQLite's integrity check on the database file beside a running server.
pub fn integrity_check(path: &std::path::Path) -> String {
    let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY;
    let connection = rusqlite::Connection::open_with_flags(path, flags).unwrap();
    connection.busy_timeout(Duration::from_secs(10)).unwrap();
    let lines: Vec<String> = connection
        .prepare("PRAGMA integrity_check")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    lines.join("\n")
}

/// Waits until no PostgreSQL session holds a lock on a table of `schema`, and returns how long
/// that took.
///
/// A killed server's sessions live on until PostgreSQL notices the closed connection, and one
/// whose `COMMIT` had been sent commits even so, after its client is gone. Until then a write
/// that was never acknowledged may still appear, so the rows are read only after it.
async fn wait_for_orphaned_transactions(url: &str, schema: &str) -> Duration {
    let started = Instant::now();
    let query = format!(
        "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = '{schema}' AND l.pid <> pg_backend_pid()"
    );
    loop {
        let (url, query) = (url.to_owned(), query.clone());
        let counts = tokio::task::spawn_blocking(move || {
            postgres_query(&url, &query, |row| row.get::<_, i64>(0))
        });
        if counts.await.unwrap() == [0] {
            return started.elapsed();
        }
        assert!(started.elapsed() < Duration::from_secs(60), "sessions kept locks for 60 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kill_nine_cycles() {
    let cycles = setting("BEACON_CRASH_CYCLES", 100);
    let max_load_ms = setting("BEACON_CRASH_LOAD_MS", 150);
    let client_count = setting("BEACON_CRASH_CLIENTS", 4) as usize;
    let seed = journal::seed();
    let mut rng = Rng::new(seed);
    let store = if test_postgres_url().is_some() { "postgres" } else { "sqlite" };
    eprintln!("crash test: store {store}, seed {seed} (set BEACON_TEST_SEED to repeat)");

    let folder = DataFolder::new();
    let database = folder.path().join("beacon.sqlite3");
    let mut clients: Vec<Client> =
        (0..client_count).map(|index| Client::new(index, seed, &[])).collect();
    let mut token = String::new();
    let mut problems = Vec::new();
    let (mut compared, mut slowest_ready, mut slowest_orphan) = (0, Duration::ZERO, Duration::ZERO);
    let started = Instant::now();

    for cycle in 0..=cycles {
        // Restart, and check every acknowledged write before anything new is written.
        let (mut child, base, ready) = start_ready(folder.path(), &[]).await;
        slowest_ready = slowest_ready.max(ready);
        if token.is_empty() {
            token = mint_token(folder.path(), &[]);
        }
        let (count, found) = journal::check_all(&mut clients, &base, &token).await;
        compared += count;
        problems.extend(found.into_iter().map(|problem| format!("cycle {cycle}: {problem}")));
        if store == "sqlite" {
            let integrity = integrity_check(&database);
            if integrity != "ok" {
                problems.push(format!("cycle {cycle}: integrity check: {integrity}"));
            }
        }
        if cycle == cycles {
            child.kill().unwrap();
            child.wait().unwrap();
            break;
        }

        // Write from every client at once, and kill the server at a random moment.
        let stop = Arc::new(AtomicBool::new(false));
        let tasks: Vec<_> = clients
            .drain(..)
            .map(|mut client| {
                client.connect(&base, &token);
                tokio::spawn(client.run(Arc::clone(&stop), true))
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(rng.below(max_load_ms + 1))).await;
        child.kill().unwrap();
        child.wait().unwrap();
        for task in tasks {
            clients.push(task.await.unwrap());
        }
        if let Some(url) = test_postgres_url() {
            let waited = wait_for_orphaned_transactions(&url, &schema_name(folder.path())).await;
            slowest_orphan = slowest_orphan.max(waited);
        }
    }

    let mut figures = Figures::default();
    for client in &clients {
        figures.add(&client.figures);
    }
    eprintln!(
        "crash test: {cycles} cycles in {:.1} s on {store}: {} acknowledged writes, {} \
         unacknowledged, {compared} entity checks, {} problems, slowest restart to ready {} ms, \
         longest wait for a killed server's transactions {} ms, statuses {:?}",
        started.elapsed().as_secs_f64(),
        figures.acknowledged,
        figures.unacknowledged,
        problems.len(),
        slowest_ready.as_millis(),
        slowest_orphan.as_millis(),
        figures.statuses,
    );
    assert!(figures.unexpected.is_empty(), "unexpected responses: {:#?}", figures.unexpected);
    assert!(problems.is_empty(), "{} problems: {:#?}", problems.len(), problems);
    assert!(figures.acknowledged > 0, "no write was acknowledged");
}
