//! Faults of the environment: a full store, a write lock held by another process, PostgreSQL
//! stopped under load, an unwritable or replaced database file, and SIGTERM under load. Each
//! test shows what clients get while the fault lasts, and that the service comes back by
//! itself afterwards with nothing lost.
//!
//! The SQLite tests name their database with `--database`, so they test SQLite in the
//! PostgreSQL run of the suite too.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::crash::integrity_check;
use crate::helpers::*;
use crate::journal::{self, Client, Figures};
use crate::pg_cluster::{Cluster, command_output};

/// Returns the `--database` value of the SQLite file in `data_dir`.
fn sqlite_in(data_dir: &Path) -> String {
    data_dir.join("beacon.sqlite3").to_str().unwrap().to_owned()
}

/// Returns a Graph view create body whose strings fill most of the 1024-byte limit.
fn large_row(id: &str) -> serde_json::Value {
    json!({
        "id": id,
        "tenantDisplayName": "d".repeat(1000),
        "compliancePolicyName": "n".repeat(1000),
        "numberOfCompliantDevices": 1,
    })
}

/// Lists the ids of the Graph view.
async fn ids(server: &TestServer) -> BTreeSet<String> {
    let rows = server.list_all(GRAPH).await;
    rows.iter().map(|row| row["id"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn full_store_returns_507_until_freed() {
    let folder = DataFolder::new();
    let database = sqlite_in(folder.path());
    // 60 pages of 4 KiB: the schema and a few dozen large rows.
    let args = ["--database", &database, "--sqlite-max-page-count", "60"];
    let mut server = TestServer::start_in_with(folder.path(), &args).await;

    // Create rows eight at a time, so that the writer commits groups in which some writes fit
    // and others do not, until a whole round is rejected.
    let mut stored = BTreeSet::new();
    let mut rejected = 0;
    for round in 0..100 {
        let requests: Vec<_> = (0..8)
            .map(|i| {
                let id = format!("r{round:03}-{i}");
                let request = server.request(Method::POST, GRAPH).json(&large_row(&id));
                tokio::spawn(async move { (id, request.send().await.unwrap()) })
            })
            .collect();
        let mut full = 0;
        for request in requests {
            let (id, response) = request.await.unwrap();
            match response.status().as_u16() {
                201 => assert!(stored.insert(id)),
                _ => {
                    let message = assert_graph_error(response, 507, "InsufficientStorage").await;
                    assert!(message.contains("space"), "{message}");
                    full += 1;
                }
            }
        }
        rejected += full;
        if full == 8 {
            break;
        }
    }
    assert!(rejected >= 8, "the store never filled up: {} rows stored", stored.len());
    assert!(!stored.is_empty(), "no row fitted");

    // Reads keep working, and show exactly the acknowledged rows.
    assert_eq!(ids(&server).await, stored);
    let first = stored.iter().next().unwrap().clone();
    let (status, _) = server.get_json(&format!("{GRAPH}/{first}")).await;
    assert_eq!(status, 200);
    let ready = server.client.get(format!("{}/readyz", server.base)).send().await.unwrap();
    assert_eq!(ready.status(), 200);

    // Deleting rows frees pages, after which creates succeed again.
    let deleted: Vec<String> = stored.iter().take(stored.len() / 2 + 1).cloned().collect();
    for id in &deleted {
        let response =
            server.request(Method::DELETE, &format!("{GRAPH}/{id}")).send().await.unwrap();
        assert_eq!(response.status(), 204, "DELETE {id}");
        stored.remove(id);
    }
    for i in 0..3 {
        let id = format!("after-{i}");
        let response = server.create(GRAPH, &large_row(&id)).await;
        assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
        stored.insert(id);
    }

    // After a clean stop and a restart the store is intact.
    assert!(server.terminate().success());
    let restarted = TestServer::start_in_with(folder.path(), &args).await;
    assert_eq!(ids(&restarted).await, stored);
    assert_eq!(integrity_check(Path::new(&database)), "ok");
}

/// A small tmpfs mounted for one test, unmounted when dropped.
struct SmallFileSystem {
    dir: tempfile::TempDir,
}

impl SmallFileSystem {
    /// Mounts a tmpfs of `kib` KiB, or returns why it cannot (mounting needs root).
    fn mount(kib: u32) -> Result<SmallFileSystem, String> {
        let dir = tempfile::tempdir().map_err(|error| error.to_string())?;
        let size = format!("size={kib}k");
        let path = dir.path().to_str().unwrap();
        command_output("mount", &["-t", "tmpfs", "-o", &size, "tmpfs", path])?;
        Ok(SmallFileSystem { dir })
    }

    /// Sets the size to `kib` KiB, which frees space when it grows.
    fn resize(&self, kib: u32) {
        let options = format!("remount,size={kib}k");
        command_output("mount", &["-o", &options, self.dir.path().to_str().unwrap()]).unwrap();
    }
}

impl Drop for SmallFileSystem {
    fn drop(&mut self) {
        if let Err(error) = command_output("umount", &[self.dir.path().to_str().unwrap()]) {
            eprintln!("unmounting the test file system failed: {error}");
        }
    }
}

#[tokio::test]
async fn full_disk_returns_507_until_space_is_freed() {
    let test = "faults::full_disk_returns_507_until_space_is_freed";
    let disk = match SmallFileSystem::mount(400) {
        Ok(disk) => disk,
        Err(reason) => {
            eprintln!("SKIPPED {test}: cannot mount a small tmpfs ({reason})");
            return;
        }
    };
    let data_dir = disk.dir.path().join("data");
    let database = sqlite_in(&data_dir);
    let mut server = TestServer::start_in_with(&data_dir, &["--database", &database]).await;

    // Fill the disk: the write-ahead log grows until a write finds no space.
    let mut stored = BTreeSet::new();
    for i in 0..400 {
        let id = format!("r{i:03}");
        let response = server.create(GRAPH, &large_row(&id)).await;
        if response.status() == 201 {
            stored.insert(id);
            continue;
        }
        assert_graph_error(response, 507, "InsufficientStorage").await;
        break;
    }
    assert!(stored.len() < 400, "the disk never filled up");

    // Reads keep working while the disk is full, and writes keep getting 507.
    assert_eq!(ids(&server).await, stored);
    let response = server.create(GRAPH, &large_row("while-full")).await;
    assert_graph_error(response, 507, "InsufficientStorage").await;
    // A delete too needs space, for its frames in the write-ahead log.
    let first = stored.iter().next().unwrap().clone();
    let response =
        server.request(Method::DELETE, &format!("{GRAPH}/{first}")).send().await.unwrap();
    assert_graph_error(response, 507, "InsufficientStorage").await;
    assert_eq!(ids(&server).await, stored);

    // Once there is space again, writes succeed without a restart.
    disk.resize(4096);
    for i in 0..5 {
        let id = format!("after-{i}");
        let response = server.create(GRAPH, &large_row(&id)).await;
        assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
        stored.insert(id);
    }

    // A clean stop leaves an intact store with exactly the acknowledged rows.
    assert!(server.terminate().success());
    assert_eq!(integrity_check(Path::new(&database)), "ok");
    let restarted = TestServer::start_in_with(&data_dir, &["--database", &database]).await;
    assert_eq!(ids(&restarted).await, stored);
    drop(restarted);
}

#[tokio::test]
async fn held_write_lock_returns_503() {
    let folder = DataFolder::new();
    let database = sqlite_in(folder.path());
    let server = TestServer::start_in_with(folder.path(), &["--database", &database]).await;
    assert_eq!(server.create(GRAPH, &json!({"id": "before"})).await.status(), 201);

    // Another process takes SQLite's write lock and keeps it until the test releases it.
    let (locked, is_locked) = std::sync::mpsc::channel();
    let (release, released) = std::sync::mpsc::channel::<()>();
    let holder = std::thread::spawn({
        let database = database.clone();
        move || {
            let connection = rusqlite::Connection::open(&database).unwrap();
            connection.execute_batch("BEGIN IMMEDIATE").unwrap();
            locked.send(()).unwrap();
            let _ = released.recv_timeout(Duration::from_secs(60));
            connection.execute_batch("ROLLBACK").unwrap();
        }
    });
    is_locked.recv().unwrap();

    // Reads go on while the lock is held.
    let started = Instant::now();
    let (status, _) = server.get_json(&format!("{GRAPH}/before")).await;
    assert_eq!(status, 200);
    assert!(started.elapsed() < Duration::from_secs(2), "a read waited {:?}", started.elapsed());

    // A write waits for the lock up to SQLite's busy timeout of 5 seconds, then gets 503.
    let started = Instant::now();
    let response = server.create(GRAPH, &json!({"id": "during"})).await;
    let waited = started.elapsed();
    assert!(response.headers().contains_key("retry-after"), "{:?}", response.headers());
    assert_graph_error(response, 503, "ServiceUnavailable").await;
    assert!(waited >= Duration::from_secs(4), "gave up after {waited:?}");
    assert!(waited < Duration::from_secs(15), "waited {waited:?}");

    // Once the lock is released, writes succeed again, and the rejected one was not applied.
    release.send(()).unwrap();
    holder.join().unwrap();
    assert_eq!(server.create(GRAPH, &json!({"id": "after"})).await.status(), 201);
    assert_eq!(ids(&server).await, BTreeSet::from(["after".to_owned(), "before".to_owned()]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restart_loses_no_acknowledged_write() {
    let test = "faults::postgres_restart_loses_no_acknowledged_write";
    let Some(cluster) = Cluster::start_or_skip(test) else { return };
    let cluster = Arc::new(cluster);
    let folder = DataFolder::new();
    let url = cluster.url();
    let server = TestServer::start_in_with(folder.path(), &["--database", &url]).await;

    // Clients write from the start to the end; 503 is the only error they may get.
    let seed = journal::seed();
    eprintln!("{test}: seed {seed}");
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..4)
        .map(|index| {
            let mut client = Client::new(index, seed, &[503]);
            client.connect(&server.base, server.token());
            tokio::spawn(client.run(Arc::clone(&stop), false))
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;

    // While PostgreSQL is down, reads and writes get 503 with Retry-After, and so does /readyz.
    let stopping = Arc::clone(&cluster);
    tokio::task::spawn_blocking(move || stopping.stop_server("fast")).await.unwrap().unwrap();
    let down = Instant::now();
    for _ in 0..3 {
        for request in [
            server.request(Method::GET, GRAPH),
            server.request(Method::POST, GRAPH).json(&json!({"id": "while-down"})),
        ] {
            let response = request.send().await.unwrap();
            assert!(response.headers().contains_key("retry-after"), "{:?}", response.headers());
            assert_graph_error(response, 503, "ServiceUnavailable").await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let ready = server.client.get(format!("{}/readyz", server.base)).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    assert!(ready.headers().contains_key("retry-after"));

    // After PostgreSQL restarts, the pool reconnects by itself within a bound.
    let starting = Arc::clone(&cluster);
    tokio::task::spawn_blocking(move || starting.start_server()).await.unwrap().unwrap();
    let outage = down.elapsed();
    let restarted = Instant::now();
    loop {
        let ready = server.client.get(format!("{}/readyz", server.base)).send().await.unwrap();
        if ready.status() == 200 {
            break;
        }
        assert!(restarted.elapsed() < Duration::from_secs(30), "not ready 30 s after restart");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let reconnect = restarted.elapsed();
    let response = server.create(GRAPH, &json!({"id": "after-restart"})).await;
    assert_eq!(response.status(), 201);
    tokio::time::sleep(Duration::from_secs(1)).await;

    stop.store(true, Ordering::Relaxed);
    let mut clients = Vec::new();
    for task in tasks {
        clients.push(task.await.unwrap());
    }
    let mut figures = Figures::default();
    for client in &clients {
        figures.add(&client.figures);
    }
    let (compared, problems) = journal::check_all(&mut clients, &server.base, server.token()).await;
    eprintln!(
        "{test}: outage {} ms, ready {} ms after the restart, {} acknowledged writes, {} \
         unacknowledged, {compared} entities checked, statuses {:?}",
        outage.as_millis(),
        reconnect.as_millis(),
        figures.acknowledged,
        figures.unacknowledged,
        figures.statuses
    );
    assert!(figures.unexpected.is_empty(), "{:#?}", figures.unexpected);
    let problems: Vec<_> = problems.iter().filter(|p| !p.starts_with("after-restart:")).collect();
    assert!(problems.is_empty(), "{problems:#?}");
    assert!(figures.statuses.get(&503).is_some_and(|count| *count > 0), "no 503 while down");
}

/// Makes `path` unwritable even for root, and returns a guard that makes it writable again.
/// As root that takes `chattr +i`, since root writes past permissions; otherwise `chmod`.
/// Returns `None`, after printing why, where neither works.
fn make_unwritable(path: &Path, test: &str) -> Option<Unwritable> {
    let root = command_output("id", &["-u"]).is_ok_and(|uid| uid == "0");
    if root {
        let path_text = path.to_str().unwrap();
        match command_output("chattr", &["+i", path_text]) {
            Ok(_) => return Some(Unwritable { path: path.to_owned(), root }),
            Err(reason) => {
                eprintln!(
                    "SKIPPED {test}: as root only chattr +i stops writes, and it failed: {reason}"
                );
                return None;
            }
        }
    }
    use std::os::unix::fs::PermissionsExt as _;
    let mode = if path.is_dir() { 0o555 } else { 0o444 };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    Some(Unwritable { path: path.to_owned(), root })
}

/// Makes a path writable again when dropped.
struct Unwritable {
    path: PathBuf,
    root: bool,
}

impl Drop for Unwritable {
    fn drop(&mut self) {
        if self.root {
            let _ = command_output("chattr", &["-i", self.path.to_str().unwrap()]);
        } else {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = if self.path.is_dir() { 0o700 } else { 0o600 };
            let _ = std::fs::set_permissions(&self.path, std::fs::Permissions::from_mode(mode));
        }
    }
}

/// Returns every file of `dir` with its content.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            (entry.file_name().into_string().unwrap(), std::fs::read(entry.path()).unwrap())
        })
        .collect();
    files.sort();
    files
}

/// Creates a data folder with a database of one row, left by a clean stop.
async fn folder_with_one_row() -> DataFolder {
    let folder = DataFolder::new();
    let database = sqlite_in(folder.path());
    let mut server = TestServer::start_in_with(folder.path(), &["--database", &database]).await;
    assert_eq!(server.create(GRAPH, &json!({"id": "kept"})).await.status(), 201);
    assert!(server.terminate().success());
    folder
}

/// Runs `beacon serve` on `data_dir`, expects it to stop with an error within 20 seconds, and
/// returns its error output.
fn serve_expecting_failure(data_dir: &Path) -> String {
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut child = std::process::Command::new(beacon_binary())
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .args(["--database", &sqlite_in(data_dir)])
        .stdout(std::process::Stdio::null())
        .stderr(log.reopen().unwrap())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > Duration::from_secs(20) {
            child.kill().unwrap();
            child.wait().unwrap();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let message = std::fs::read_to_string(log.path()).unwrap();
    let status = status.unwrap_or_else(|| panic!("the server started and kept running: {message}"));
    assert!(!status.success(), "the server exited with 0: {message}");
    message
}

#[tokio::test]
async fn read_only_folder_stops_start_unchanged() {
    let test = "faults::read_only_folder_stops_start_unchanged";
    let folder = folder_with_one_row().await;
    let before = snapshot(folder.path());
    let Some(_guard) = make_unwritable(folder.path(), test) else { return };

    let message = serve_expecting_failure(folder.path());

    assert!(message.contains(folder.path().to_str().unwrap()), "{message}");
    assert!(message.contains("cannot write"), "{message}");
    assert_eq!(snapshot(folder.path()), before);
}

#[tokio::test]
async fn read_only_database_stops_start_unchanged() {
    let test = "faults::read_only_database_stops_start_unchanged";
    let folder = folder_with_one_row().await;
    let before = snapshot(folder.path());
    let database = folder.path().join("beacon.sqlite3");
    let Some(_guard) = make_unwritable(&database, test) else { return };

    let message = serve_expecting_failure(folder.path());

    assert!(message.contains(database.to_str().unwrap()), "{message}");
    assert!(message.contains("cannot write"), "{message}");
    assert_eq!(snapshot(folder.path()), before);
}

#[tokio::test]
async fn replaced_database_makes_server_unready() {
    let folder = DataFolder::new();
    let database = sqlite_in(folder.path());
    let mut server = TestServer::start_in_with(folder.path(), &["--database", &database]).await;
    assert_eq!(server.create(GRAPH, &json!({"id": "kept"})).await.status(), 201);

    // Something replaces the file under the running server.
    let garbage = b"these bytes are not a SQLite database".repeat(200);
    let replacement = folder.path().join("replacement");
    std::fs::write(&replacement, &garbage).unwrap();
    std::fs::rename(&replacement, &database).unwrap();

    // The server reports itself unready, and its log names the file and the problem.
    let response = server.client.get(format!("{}/readyz", server.base)).send().await.unwrap();
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
    let logged = server.wait_for_log("was replaced or removed").await;
    assert!(logged.contains(&database), "{logged}");
    assert!(logged.contains("was replaced or removed"), "{logged}");

    // Neither the stop nor a new start writes to the file.
    assert!(server.terminate().success());
    assert_eq!(std::fs::read(&database).unwrap(), garbage);
    let message = serve_expecting_failure(folder.path());
    assert!(message.contains(&database), "{message}");
    assert!(message.contains("not a database"), "{message}");
    assert_eq!(std::fs::read(&database).unwrap(), garbage);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_finishes_accepted_requests() {
    let folder = DataFolder::new();
    let sqlite = test_postgres_url().is_none();
    let mut server = TestServer::start_in_with(folder.path(), &["--shutdown-timeout", "20s"]).await;
    let seed = journal::seed();
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..4)
        .map(|index| {
            let mut client = Client::new(index, seed, &[]);
            client.connect(&server.base, server.token());
            tokio::spawn(client.run(Arc::clone(&stop), true))
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;

    // A request whose head and half of whose body the server has read when the signal comes.
    let address = server.base.trim_start_matches("http://").to_owned();
    let body = json!({"id": "in-flight"}).to_string();
    let (first, second) = body.split_at(body.len() / 2);
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    let head = format!(
        "POST /beta/{GRAPH} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{first}",
        server.token(),
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    let signalled = Instant::now();
    server.send_sigterm();
    tokio::time::sleep(Duration::from_millis(300)).await;

    // New connections are refused while the accepted request is still open.
    let refused = tokio::net::TcpStream::connect(&address).await;
    assert!(refused.is_err(), "a new connection was accepted after SIGTERM");

    // The accepted request completes with its normal status.
    stream.write_all(second.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let read = stream.read_to_end(&mut answer);
    tokio::time::timeout(Duration::from_secs(20), read).await.expect("no answer").unwrap();
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 201"), "{text}");

    // The process exits with 0 within a bound, and leaves no write-ahead log to recover.
    let status = tokio::task::spawn_blocking(move || {
        let status = server.wait_for_exit(Duration::from_secs(20));
        (status, server)
    });
    let (status, server) = status.await.unwrap();
    let status = status.expect("the server still runs 20 seconds after SIGTERM");
    assert!(status.success(), "exit status {status}");
    eprintln!("sigterm: exited {} ms after the signal", signalled.elapsed().as_millis());
    let wal = folder.path().join("beacon.sqlite3-wal");
    if sqlite {
        assert!(!wal.exists() || std::fs::metadata(&wal).unwrap().len() == 0, "a WAL is left");
    }
    drop(server);

    // Every response sent before the stop has its normal status, and nothing is lost.
    let mut clients = Vec::new();
    for task in tasks {
        clients.push(task.await.unwrap());
    }
    let mut figures = Figures::default();
    for client in &clients {
        figures.add(&client.figures);
    }
    assert!(figures.unexpected.is_empty(), "{:#?}", figures.unexpected);
    let restarted = TestServer::start_in(folder.path()).await;
    let (status, _) = restarted.get_json(&format!("{GRAPH}/in-flight")).await;
    assert_eq!(status, 200);
    let (_, problems) = journal::check_all(&mut clients, &restarted.base, restarted.token()).await;
    let problems: Vec<_> = problems.into_iter().filter(|p| !p.starts_with("in-flight:")).collect();
    assert!(problems.is_empty(), "{problems:#?}");
    if sqlite {
        assert_eq!(integrity_check(&folder.path().join("beacon.sqlite3")), "ok");
    }
    eprintln!(
        "sigterm: {} acknowledged writes, statuses {:?}",
        figures.acknowledged, figures.statuses
    );
}
