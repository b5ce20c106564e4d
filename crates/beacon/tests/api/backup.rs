//! `beacon backup` and `beacon restore` against the SQLite store of a running server.
//!
//! Every server here names its SQLite file with `--database`, so these tests use SQLite in
//! PostgreSQL runs too.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::{DataFolder, GRAPH, TestServer, beacon_command};

/// Runs `beacon` with `args` and no `BEACON_*` variables from the test's environment.
fn run_beacon(args: &[&str]) -> Output {
    beacon_command().args(args).output().unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Returns the SQLite file of a data folder.
fn database_of(data_dir: &Path) -> PathBuf {
    data_dir.join("beacon.sqlite3")
}

/// Starts a server on `data_dir` whose rows are in SQLite, whatever store the run uses.
async fn start_sqlite(data_dir: &Path) -> TestServer {
    let database = database_of(data_dir).to_str().unwrap().to_owned();
    TestServer::start_in_with(data_dir, &["--database", &database]).await
}

/// Runs `beacon backup DEST` for `data_dir` on a blocking thread.
async fn backup(data_dir: &Path, destination: &Path) -> Output {
    let args = [
        "backup".to_owned(),
        destination.to_str().unwrap().to_owned(),
        "--data-dir".to_owned(),
        data_dir.to_str().unwrap().to_owned(),
    ];
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_beacon(&args)
    })
    .await
    .unwrap()
}

/// Runs `beacon restore SRC` for `data_dir`.
fn restore(data_dir: &Path, source: &Path) -> Output {
    run_beacon(&["restore", source.to_str().unwrap(), "--data-dir", data_dir.to_str().unwrap()])
}

/// Reads the ids stored in a database file, after SQLite's integrity check passes.
fn stored_ids(database: &Path) -> BTreeSet<String> {
    let connection =
        rusqlite::Connection::open_with_flags(database, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let check: String =
        connection.query_row("PRAGMA integrity_check", [], |row| row.get(0)).unwrap();
    assert_eq!(check, "ok", "integrity check of {}", database.display());
    let application_id: i64 =
        connection.query_row("PRAGMA application_id", [], |row| row.get(0)).unwrap();
    assert_eq!(application_id, 0x4245_4143, "Beacon's application id");
    let mut statement = connection.prepare("SELECT id FROM aggregated_policy_compliance").unwrap();
    statement.query_map([], |row| row.get(0)).unwrap().map(Result::unwrap).collect()
}

async fn create(server: &TestServer, id: &str) {
    let response = server.create(GRAPH, &json!({ "id": id, "tenantDisplayName": "Contoso" })).await;
    assert_eq!(response.status(), 201, "create {id}");
}

/// Waits until at least `count` writes were acknowledged after `since`, for up to 30 seconds.
async fn wait_for_writes(
    acknowledged: &Mutex<Vec<(String, Instant)>>,
    since: Instant,
    count: usize,
) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let done = acknowledged.lock().unwrap().iter().filter(|(_, at)| *at > since).count();
        if done >= count || Instant::now() > deadline {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn backup_during_writes_keeps_acknowledged_rows() {
    let folder = DataFolder::new();
    let server = Arc::new(start_sqlite(folder.path()).await);
    for index in 0..200 {
        create(&server, &format!("before-{index:04}")).await;
    }

    // Four writers create rows until the test stops them, and record each acknowledged id
    // with the time of its 201.
    let acknowledged: Arc<Mutex<Vec<(String, Instant)>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = Vec::new();
    for writer in 0..4 {
        let (server, acknowledged, stop) =
            (Arc::clone(&server), Arc::clone(&acknowledged), Arc::clone(&stop));
        writers.push(tokio::spawn(async move {
            let mut index = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let id = format!("during-{writer}-{index:05}");
                let body = json!({ "id": id, "numberOfCompliantDevices": index });
                let response = server.create(GRAPH, &body).await;
                assert_eq!(response.status(), 201, "create {id}");
                acknowledged.lock().unwrap().push((id, Instant::now()));
                index += 1;
            }
        }));
    }
    wait_for_writes(&acknowledged, Instant::now(), 20).await;

    // Every row acknowledged before the backup starts must be in the copy.
    let destination = folder.path().with_file_name("copy.sqlite3");
    let backup_started = Instant::now();
    let output = backup(folder.path(), &destination).await;
    let backup_ended = Instant::now();
    assert!(output.status.success(), "backup failed: {}", stderr(&output));
    wait_for_writes(&acknowledged, backup_ended, 20).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for writer in writers {
        writer.await.unwrap();
    }

    let copied = stored_ids(&destination);
    let acknowledged = acknowledged.lock().unwrap().clone();
    let before: Vec<&String> =
        acknowledged.iter().filter(|(_, at)| *at < backup_started).map(|(id, _)| id).collect();
    let after = acknowledged.iter().filter(|(_, at)| *at > backup_ended).count();
    assert!(before.len() >= 20, "only {} writes before the backup", before.len());
    assert!(after >= 20, "only {after} writes after the backup: the writers stalled");
    for id in &before {
        assert!(copied.contains(*id), "{id} was acknowledged before the backup but is missing");
    }
    for index in 0..200 {
        assert!(copied.contains(&format!("before-{index:04}")));
    }

    // The copy contains no row that was never written, and not every row written later.
    let written: BTreeSet<&String> = acknowledged.iter().map(|(id, _)| id).collect();
    for id in copied.iter().filter(|id| id.starts_with("during-")) {
        assert!(written.contains(id), "{id} in the copy was never acknowledged");
    }
    assert!(copied.len() < 200 + acknowledged.len(), "the copy has rows written after it");
    assert!(String::from_utf8_lossy(&output.stdout).contains("rows"), "{output:?}");
}

#[tokio::test]
async fn backup_never_overwrites_a_file() {
    let folder = DataFolder::new();
    let server = start_sqlite(folder.path()).await;
    create(&server, "a").await;
    let destination = folder.path().with_file_name("taken.sqlite3");
    std::fs::write(&destination, b"keep me").unwrap();

    let output = backup(folder.path(), &destination).await;

    assert!(!output.status.success());
    assert!(stderr(&output).contains("exists already"), "{}", stderr(&output));
    assert_eq!(std::fs::read(&destination).unwrap(), b"keep me");
}

#[tokio::test]
async fn restore_rejected_while_server_runs() {
    // Arrange: a backup with row "kept", then a row "later" that the backup lacks.
    let folder = DataFolder::new();
    let mut server = start_sqlite(folder.path()).await;
    create(&server, "kept").await;
    let copy = folder.path().with_file_name("copy.sqlite3");
    let output = backup(folder.path(), &copy).await;
    assert!(output.status.success(), "backup failed: {}", stderr(&output));
    create(&server, "later").await;

    // Act and assert: the running server keeps its database.
    let output = restore(folder.path(), &copy);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("in use by a running beacon serve"), "{}", stderr(&output));
    let (status, _) = server.get_json(&format!("{GRAPH}/later")).await;
    assert_eq!(status, 200, "the refused restore changed the store");
    assert!(!folder.path().join("beacon.sqlite3.restoring").exists());

    // Once the server has stopped, the restore replaces the database.
    assert!(server.terminate().success());
    let output = restore(folder.path(), &copy);
    assert!(output.status.success(), "restore failed: {}", stderr(&output));
    assert_eq!(stored_ids(&database_of(folder.path())), BTreeSet::from(["kept".to_owned()]));
    let server = start_sqlite(folder.path()).await;
    let (status, _) = server.get_json(&format!("{GRAPH}/kept")).await;
    assert_eq!(status, 200);
    let (status, _) = server.get_json(&format!("{GRAPH}/later")).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn restore_after_crash_drops_old_log() {
    // A server killed with SIGKILL leaves its write-ahead log, which must not be replayed
    // into the restored file.
    let folder = DataFolder::new();
    let mut server = start_sqlite(folder.path()).await;
    create(&server, "kept").await;
    let copy = folder.path().with_file_name("copy.sqlite3");
    assert!(backup(folder.path(), &copy).await.status.success());
    for index in 0..50 {
        create(&server, &format!("after-{index}")).await;
    }
    server.kill();

    let output = restore(folder.path(), &copy);

    assert!(output.status.success(), "restore failed: {}", stderr(&output));
    assert!(!folder.path().join("beacon.sqlite3-wal").exists());
    assert_eq!(stored_ids(&database_of(folder.path())), BTreeSet::from(["kept".to_owned()]));
}

#[tokio::test]
async fn restore_rejects_non_beacon_files() {
    let folder = DataFolder::new();
    let mut server = start_sqlite(folder.path()).await;
    create(&server, "kept").await;
    let good = folder.path().with_file_name("good.sqlite3");
    assert!(backup(folder.path(), &good).await.status.success());
    assert!(server.terminate().success());
    let before = std::fs::read(database_of(folder.path())).unwrap();
    let scratch = folder.path().with_file_name("scratch");
    std::fs::create_dir(&scratch).unwrap();

    // A text file, a truncated copy, another program's database and a newer schema.
    let text = scratch.join("notes.txt");
    std::fs::write(&text, "not a database".repeat(100)).unwrap();
    let truncated = scratch.join("truncated.sqlite3");
    let bytes = std::fs::read(&good).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let foreign = scratch.join("foreign.sqlite3");
    rusqlite::Connection::open(&foreign)
        .unwrap()
        .execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);")
        .unwrap();
    let newer = scratch.join("newer.sqlite3");
    std::fs::copy(&good, &newer).unwrap();
    rusqlite::Connection::open(&newer)
        .unwrap()
        .execute_batch(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (999, 'x', 'now')",
        )
        .unwrap();
    let missing = scratch.join("missing.sqlite3");

    for (source, expected) in [
        (&text, "file is not a database"),
        (&truncated, "malformed"),
        (&foreign, "is not a Beacon database"),
        (&newer, "schema version 999"),
        (&missing, "there is no database"),
    ] {
        let output = restore(folder.path(), source);
        assert!(!output.status.success(), "{} was restored", source.display());
        let message = stderr(&output);
        assert!(message.contains(expected), "{}: {message}", source.display());
        assert_eq!(std::fs::read(database_of(folder.path())).unwrap(), before);
        assert!(!folder.path().join("beacon.sqlite3.restoring").exists());
    }
}

#[tokio::test]
async fn serve_rejected_during_restore() {
    // A restore holds the exclusive lock beside the database while it replaces the file.
    let folder = DataFolder::new();
    std::fs::create_dir_all(folder.path()).unwrap();
    let lock = std::fs::File::create(folder.path().join("beacon.sqlite3.lock")).unwrap();
    lock.lock().unwrap();

    let database = database_of(folder.path());
    let output = run_beacon(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        folder.path().to_str().unwrap(),
        "--database",
        database.to_str().unwrap(),
    ]);

    assert!(!output.status.success());
    assert!(stderr(&output).contains("a restore of the database"), "{}", stderr(&output));
    assert!(!database.exists(), "the server created the database during a restore");
}

#[test]
fn postgres_database_names_pg_tools() {
    let url = "postgres://beacon:secret@127.0.0.1:5432/beacon";
    for (verb, file) in [("backup", "/tmp/none-backup.sqlite3"), ("restore", "/tmp/none.sqlite3")] {
        let output = run_beacon(&[verb, file, "--database", url]);
        assert_eq!(output.status.code(), Some(1), "{verb}: {}", stderr(&output));
        let message = stderr(&output);
        assert!(message.contains("pg_dump"), "{message}");
        assert!(message.contains("pg_restore"), "{message}");
        assert!(!message.contains("secret"), "{message}");
    }
}
