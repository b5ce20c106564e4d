//! The embedded store: a SQLite database file in WAL mode.
//!
//! SQLite allows one writer at a time, so all writes go to a single writer thread through a
//! queue. The writer takes every write that is waiting and applies them in one transaction,
//! each under its own savepoint, so a failing write fails only its own request. It commits once
//! and only then replies to each request; if the commit fails, every write of the group fails.
//! With `synchronous=FULL`, a commit has been synced to disk when it returns, and concurrent
//! writers share the cost of that sync.
//!
//! Reads run on a few reader threads, each with a read-only connection of its own, which take
//! reads from one queue (see [`readers`]). They never wait for the writer and never block the
//! async runtime.
//!
//! The writer keeps the number of rows stored. It counts them when the store opens, and adds
//! the creates and deletes of each group after the group commits and before it replies. So the
//! count is exact whenever no write is in flight.

pub mod backup;
pub mod functions;
#[doc(hidden)]
pub mod fuzzing;
mod import;
mod migrate;
mod readers;
mod rows;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use async_trait::async_trait;
use beacon_odata::bind::Typed;
use beacon_odata::bind::apply::Plan;
use beacon_odata::entity::Entity;
use beacon_odata::etag::Precondition;
use rusqlite::{Connection, OpenFlags};
use tokio::sync::{mpsc, oneshot};

use crate::sql::{self, Sqlite, Statements, TABLE};
use crate::telemetry::{self, Operation, timed};
use crate::{
    ApplyQuery, ApplyRows, Change, Import, ListQuery, ListedEntity, OnConflict, PartnerTenantId,
    Store, StoreError, StoredEntity,
};

pub use migrate::MIGRATIONS;
use writer::{Write, WriteCommand};

/// How long a statement waits for a lock held by another connection before failing as busy.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The size in bytes past which the writer empties the write-ahead log.
const WAL_SIZE_LIMIT: i64 = 64 * 1024 * 1024;

/// How long the writer's size-triggered checkpoint waits for readers of older snapshots before
/// it gives up until its next try. Short reads finish well within it. A backup reads one
/// snapshot for seconds, and the writer, which commits nothing while it waits here, must not
/// stall for that long.
const CHECKPOINT_WAIT: Duration = Duration::from_millis(100);

/// The maximum length of a string or blob a query may compute, in bytes: 16 MiB, well above
/// the longest value a 1 MiB request body can store.
const MAX_VALUE_BYTES: i32 = 16 * 1024 * 1024;

/// How many writes may wait in the queue before new ones wait to enter it.
const WRITE_QUEUE_CAPACITY: usize = 4096;

/// Settings of the embedded store.
#[derive(Clone, Debug)]
pub struct SqliteOptions {
    /// How many read connections to open.
    pub readers: usize,
    /// The maximum number of pages the database file may hold (SQLite's `max_page_count`),
    /// past which writes fail as [`StoreError::Full`]; `None` keeps SQLite's default. The
    /// tests use it to fill the store without filling a disk.
    pub max_page_count: Option<u32>,
    /// Whether a file at an older schema version is upgraded. When false, such a file is
    /// rejected with [`OpenError::SchemaTooOld`], so that a tool run beside an older server
    /// leaves the schema that server reads alone. A new or empty file is still set up.
    pub upgrade: bool,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self { readers: 4, max_page_count: None, upgrade: true }
    }
}

/// Failures to open the database.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// SQLite could not open or set up the file.
    #[error("cannot open the database {path}: {source}")]
    Open {
        /// The database file.
        path: PathBuf,
        /// The driver's error.
        source: rusqlite::Error,
    },
    /// The file's schema was written by a newer version of Beacon.
    #[error(
        "the database {path} has schema version {found}, newer than version {known} that this \
         build of Beacon knows; run a newer Beacon"
    )]
    SchemaTooNew {
        /// The database file.
        path: PathBuf,
        /// The version recorded in the file.
        found: i64,
        /// The newest version this build supports.
        known: i64,
    },
    /// The file's schema is older than this build's, and the caller asked not to upgrade it
    /// ([`SqliteOptions::upgrade`]).
    #[error(
        "the database {path} has schema version {found}, older than version {known} of this \
         build, which upgrades it when `beacon serve` of this build first starts on it; stop \
         the servers of the older version and start this one, then run this command again"
    )]
    SchemaTooOld {
        /// The database file.
        path: PathBuf,
        /// The version recorded in the file.
        found: i64,
        /// The newest version this build supports.
        known: i64,
    },
    /// The file is a SQLite database of another program: it has tables, and its header lacks
    /// Beacon's application id.
    #[error(
        "the database {path} was not created by Beacon (it contains the tables {}); give Beacon \
         a data folder of its own",
        .tables.join(", ")
    )]
    Foreign {
        /// The database file.
        path: PathBuf,
        /// The tables found.
        tables: Vec<String>,
    },
    /// The database file, or the folder where SQLite creates the write-ahead log beside it,
    /// cannot be written.
    #[error(
        "cannot write {}: {source}; the database {} and its folder must be writable by the \
         user that runs Beacon",
        .path.display(),
        .database.display()
    )]
    NotWritable {
        /// The file or folder that cannot be written.
        path: PathBuf,
        /// The database file.
        database: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A migration failed; the file is left at the last version that applied fully.
    #[error("cannot migrate the database {path}: {source}")]
    Migrate {
        /// The database file.
        path: PathBuf,
        /// The driver's error.
        source: rusqlite::Error,
    },
    /// The writer thread could not be started.
    #[error("cannot start the database writer thread: {0}")]
    Thread(std::io::Error),
    /// The lock beside the database could not be taken, because a restore holds it or the
    /// lock file cannot be opened.
    #[error(transparent)]
    Lock(backup::BackupError),
}

/// The embedded SQLite store.
#[derive(Debug)]
pub struct SqliteStore {
    /// The queue to the writer thread; `None` once closed.
    writes: Mutex<Option<mpsc::Sender<WriteCommand>>>,
    /// The writer thread, joined on close.
    writer: Mutex<Option<JoinHandle<()>>>,
    /// The queue to the reader threads; `None` once closed.
    reads: Mutex<Option<crossbeam_channel::Sender<readers::Job>>>,
    /// The reader threads, joined on close.
    reader_threads: Mutex<Vec<JoinHandle<()>>>,
    /// The state the reader threads share, including how many of them are busy.
    reader_state: Arc<readers::Shared>,
    /// The device and inode of the database file when the store opened it, so that the
    /// readiness check notices a file replaced or removed under the open connections.
    identity: Option<(u64, u64)>,
    /// The number of reader threads.
    reader_count: usize,
    /// The rows stored, which the writer thread keeps.
    rows: Arc<AtomicI64>,
    /// The shared lock beside the database, held while the store is open so that a restore
    /// cannot replace the file under it.
    _lock: std::fs::File,
}

impl SqliteStore {
    /// Opens or creates the database at `path`, applies pending migrations and starts the
    /// writer thread.
    pub fn open(path: &Path, options: &SqliteOptions) -> Result<Self, OpenError> {
        let open_error = |source| OpenError::Open { path: path.to_owned(), source };

        // Reject a file that cannot be written, or that is not Beacon's, before anything can
        // write to it, then let the writer connection create the file and own the schema. The
        // lock file is created only once the checks pass, so a rejected file leaves the folder
        // as it was. A restore that runs between the check and the lock has checked its file in
        // the same way.
        check_writable(path)?;
        let found = migrate::inspect(path)?;
        let known = migrate::MIGRATIONS.last().map_or(0, |(version, _, _)| *version);
        if !options.upgrade && found > 0 && found < known {
            return Err(OpenError::SchemaTooOld { path: path.to_owned(), found, known });
        }
        let lock = backup::lock_shared(path).map_err(OpenError::Lock)?;
        let mut connection = Connection::open(path).map_err(open_error)?;
        configure(&connection, false).map_err(open_error)?;
        if let Some(pages) = options.max_page_count {
            connection
                .pragma_update(None, "max_page_count", i64::from(pages))
                .map_err(open_error)?;
        }
        migrate::run(&mut connection, path)?;
        let rows = count_rows(&connection).map_err(open_error)?;
        refresh_statistics(&connection, rows);
        let identity = file_identity(path);

        let connections = (0..options.readers.max(1))
            .map(|_| open_reader(path))
            .collect::<Result<Vec<_>, rusqlite::Error>>()
            .map_err(open_error)?;

        let statements = Arc::new(Statements::new(&Sqlite));
        let statistics = Arc::new(AtomicU64::new(0));
        let rows = Arc::new(AtomicI64::new(rows));
        let (sender, receiver) = mpsc::channel(WRITE_QUEUE_CAPACITY);
        let writer = writer::spawn(
            connection,
            receiver,
            Arc::clone(&statements),
            writer::Counters { statistics: Arc::clone(&statistics), rows: Arc::clone(&rows) },
            wal_path(path),
        )
        .map_err(OpenError::Thread)?;

        let reader_count = connections.len();
        let reader_state = Arc::new(readers::Shared {
            path: Arc::new(path.to_owned()),
            statistics,
            statements,
            busy: Arc::new(AtomicUsize::new(0)),
        });
        let (reads, queue) = crossbeam_channel::unbounded();
        let reader_threads =
            readers::spawn(connections, &queue, &reader_state).map_err(OpenError::Thread)?;

        Ok(Self {
            writes: Mutex::new(Some(sender)),
            writer: Mutex::new(Some(writer)),
            reads: Mutex::new(Some(reads)),
            reader_threads: Mutex::new(reader_threads),
            reader_state,
            identity,
            reader_count,
            rows,
            _lock: lock,
        })
    }

    /// Queues a write and waits for the writer thread to reply.
    async fn write(
        &self,
        partner: &PartnerTenantId,
        write: Write,
    ) -> Result<StoredEntity, StoreError> {
        let sender = lock(&self.writes).clone().ok_or(StoreError::ShuttingDown)?;
        let (reply, answer) = oneshot::channel();
        let command = WriteCommand { partner: partner.clone(), write, reply };
        sender.send(command).await.map_err(|_| StoreError::ShuttingDown)?;
        answer.await.map_err(|_| StoreError::ShuttingDown)?
    }

    /// Runs `read` on the next free reader thread and waits for its outcome.
    ///
    /// Dropping the returned future (the client hung up, or the request timed out) cancels the
    /// read: it is skipped if it has not started and interrupted if it has, so an abandoned
    /// query does not keep a reader busy.
    async fn read<T: Send + 'static>(
        &self,
        read: impl FnOnce(&Connection, &Statements) -> Result<T, rusqlite::Error> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel();
        let cancelled = Arc::new(AtomicBool::new(false));
        let job = readers::Job {
            run: Box::new(move |connection, statements| {
                let _ = reply.send(read(connection, statements));
            }),
            cancelled: Arc::clone(&cancelled),
            span: tracing::Span::current(),
        };
        lock(&self.reads)
            .as_ref()
            .ok_or(StoreError::ShuttingDown)?
            .send(job)
            .map_err(|_| StoreError::ShuttingDown)?;

        let _cancel = CancelOnDrop(cancelled);
        match answer.await {
            Ok(result) => result.map_err(classify),
            // The reader threads stop only when the store closes; otherwise the read panicked.
            Err(_) if lock(&self.reads).is_none() => Err(StoreError::ShuttingDown),
            Err(_) => Err(StoreError::Internal(Arc::new(std::io::Error::other(
                "a read ended without an outcome",
            )))),
        }
    }

    /// Stops the reader threads once they have finished the reads already queued, and waits
    /// for them.
    fn stop_readers(&self) -> Vec<JoinHandle<()>> {
        drop(lock(&self.reads).take());
        std::mem::take(&mut *lock(&self.reader_threads))
    }

    /// Checks that the writer thread runs and that a new read-only connection opens the file
    /// and finds the schema at the newest version. A new connection, rather than one of the
    /// pool, keeps the check from waiting behind long reads, and notices a database file that
    /// was removed or can no longer be read.
    async fn check_ready_now(&self) -> Result<(), StoreError> {
        let writer_runs = lock(&self.writes).is_some()
            && lock(&self.writer).as_ref().is_some_and(|writer| !writer.is_finished());
        if !writer_runs {
            return Err(StoreError::ShuttingDown);
        }
        let path = Arc::clone(&self.reader_state.path);
        if file_identity(&path) != self.identity {
            let replaced = FileError::Replaced { path: path.to_path_buf() };
            return Err(StoreError::Internal(Arc::new(replaced)));
        }
        let task = tokio::task::spawn_blocking({
            let path = Arc::clone(&path);
            move || {
                let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
                let connection = Connection::open_with_flags(path.as_path(), flags)?;
                connection.busy_timeout(BUSY_TIMEOUT)?;
                migrate::recorded_version(&connection)
            }
        });
        let found = task.await.map_err(|error| StoreError::Internal(Arc::new(error)))?;
        // A file that cannot be read fails here, with an error that names the file.
        let found = found.map_err(|source| match source.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
                StoreError::Busy
            }
            _ => {
                StoreError::Internal(Arc::new(FileError::Read { path: path.to_path_buf(), source }))
            }
        })?;
        crate::check_schema_version(found, MIGRATIONS)
    }
}

/// A failure of the readiness check's look at the database file, with the file's path.
#[derive(Debug, thiserror::Error)]
enum FileError {
    /// A new connection cannot read the file.
    #[error("cannot read the database {path}: {source}")]
    Read {
        /// The database file.
        path: PathBuf,
        /// The driver's error.
        source: rusqlite::Error,
    },
    /// Another file, or none, is at the path now. The store's connections still use the file
    /// they opened, which is no longer the one at the path.
    #[error(
        "the database file {path} was replaced or removed after the server opened it; restore \
         it, or restart the server to open the file now at that path"
    )]
    Replaced {
        /// The database file.
        path: PathBuf,
    },
}

/// Returns the device and inode of the file at `path`, or `None` when it cannot be read.
#[cfg(unix)]
fn file_identity(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata(path).ok().map(|metadata| (metadata.dev(), metadata.ino()))
}

/// Returns `None`: outside Unix the readiness check does not compare file identities.
#[cfg(not(unix))]
fn file_identity(_path: &Path) -> Option<(u64, u64)> {
    None
}

/// Marks a read as cancelled when its caller stops waiting for it. Setting the flag after the
/// read has finished does nothing.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn create(
        &self,
        partner: &PartnerTenantId,
        entity: Entity,
    ) -> Result<StoredEntity, StoreError> {
        timed(Operation::Create, self.write(partner, Write::Create(entity))).await
    }

    async fn update(
        &self,
        partner: &PartnerTenantId,
        id: &str,
        change: Change,
        precondition: Precondition,
    ) -> Result<StoredEntity, StoreError> {
        let write = Write::Update { id: id.to_owned(), change, precondition };
        timed(Operation::Update, self.write(partner, write)).await
    }

    async fn delete(
        &self,
        partner: &PartnerTenantId,
        id: &str,
        precondition: Precondition,
    ) -> Result<StoredEntity, StoreError> {
        let write = Write::Delete { id: id.to_owned(), precondition };
        timed(Operation::Delete, self.write(partner, write)).await
    }

    async fn get(
        &self,
        partner: &PartnerTenantId,
        id: &str,
    ) -> Result<Option<StoredEntity>, StoreError> {
        let partner = partner.as_str().to_owned();
        let id = id.to_owned();
        let read = self.read(move |connection, statements| {
            rows::select_one(connection, statements, &partner, &id)
        });
        timed(Operation::Get, read).await
    }

    async fn list(
        &self,
        partner: &PartnerTenantId,
        query: ListQuery,
    ) -> Result<Vec<ListedEntity>, StoreError> {
        let (statements, params) = sql::select_statements(&Sqlite, partner.as_str(), &query);
        let (keys, limit) = (query.order.len(), query.limit);
        let read = self.read(move |connection, _| {
            // The statements select consecutive runs of the order; stop once the page is full.
            // One read transaction gives them all the same snapshot.
            let snapshot = connection.unchecked_transaction()?;
            let mut listed = Vec::new();
            for text in statements {
                listed.extend(rows::select_listed(connection, &text, params.clone(), keys)?);
                if listed.len() >= limit {
                    listed.truncate(limit);
                    break;
                }
            }
            drop(snapshot);
            Ok(listed)
        });
        timed(Operation::List, read).await
    }

    async fn count(
        &self,
        partner: &PartnerTenantId,
        filter: Option<Typed>,
    ) -> Result<u64, StoreError> {
        let (text, params) = sql::count_query(&Sqlite, partner.as_str(), filter.as_ref());
        let read = self.read(move |connection, _| rows::count(connection, &text, params));
        timed(Operation::Count, read).await
    }

    async fn apply(
        &self,
        partner: &PartnerTenantId,
        query: ApplyQuery,
    ) -> Result<ApplyRows, StoreError> {
        let (text, params) = sql::apply::select_query(&Sqlite, partner.as_str(), &query);
        let grouped = query.plan.columns.as_ref().map(Vec::len);
        let read = self
            .read(move |connection, _| rows::select_applied(connection, &text, params, grouped));
        timed(Operation::Apply, read).await
    }

    async fn apply_count(
        &self,
        partner: &PartnerTenantId,
        plan: Plan,
        filter: Option<Typed>,
    ) -> Result<u64, StoreError> {
        let (text, params) =
            sql::apply::count_query(&Sqlite, partner.as_str(), &plan, filter.as_ref());
        let read = self.read(move |connection, _| rows::count(connection, &text, params));
        timed(Operation::ApplyCount, read).await
    }

    async fn check_ready(&self) -> Result<(), StoreError> {
        timed(Operation::CheckReady, self.check_ready_now()).await
    }

    async fn begin_import(
        &self,
        partner: &PartnerTenantId,
        on_conflict: OnConflict,
    ) -> Result<Box<dyn Import>, StoreError> {
        if lock(&self.writes).is_none() {
            return Err(StoreError::ShuttingDown);
        }
        let import =
            import::SqliteImport::begin(&self.reader_state.path, partner.as_str(), on_conflict)
                .await?;
        Ok(Box::new(import))
    }

    async fn update_gauges(&self) {
        if let Some(sender) = lock(&self.writes).as_ref() {
            telemetry::set_write_queue_depth(sender.max_capacity() - sender.capacity());
        }
        let busy = self.reader_state.busy.load(Ordering::Relaxed).min(self.reader_count);
        telemetry::set_pool(busy, self.reader_count - busy, None);
        telemetry::set_rows(self.rows.load(Ordering::Acquire));
    }

    async fn close(&self) {
        // Dropping the sender lets the writer finish the queue and return.
        drop(lock(&self.writes).take());
        let writer = lock(&self.writer).take();
        let readers = self.stop_readers();
        let _ = tokio::task::spawn_blocking(move || {
            if let Some(writer) = writer {
                let _ = writer.join();
            }
            for reader in readers {
                let _ = reader.join();
            }
        })
        .await;
    }
}

impl Drop for SqliteStore {
    /// Stops the writer thread and waits for it, so the database file is closed once the store
    /// is gone, even without [`Store::close`].
    fn drop(&mut self) {
        drop(lock(&self.writes).take());
        if let Some(writer) = lock(&self.writer).take() {
            let _ = writer.join();
        }
        for reader in self.stop_readers() {
            let _ = reader.join();
        }
    }
}

/// Checks that the database file at `path`, if it exists, opens for writing, and that its
/// folder takes new files, as SQLite's write-ahead log and shared-memory files need. Without
/// this check SQLite opens a read-only file read-only, and every write would fail later.
///
/// The folder check creates and removes an empty file named `.beacon-write-check-<pid>`; no
/// existing file is changed.
fn check_writable(path: &Path) -> Result<(), OpenError> {
    let folder = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
        _ => PathBuf::from("."),
    };
    let not_writable = |failed: &Path, source| OpenError::NotWritable {
        path: failed.to_owned(),
        database: path.to_owned(),
        source,
    };

    if path.exists() {
        std::fs::OpenOptions::new().write(true).open(path).map_err(|e| not_writable(path, e))?;
    }
    let probe = folder.join(format!(".beacon-write-check-{}", std::process::id()));
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .map_err(|e| not_writable(&folder, e))?;
    if let Err(error) = std::fs::remove_file(&probe) {
        tracing::warn!(path = %probe.display(), %error, "removing the write check file failed");
    }
    Ok(())
}

/// Returns the path of the write-ahead log of the database at `path`.
fn wal_path(path: &Path) -> PathBuf {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    PathBuf::from(wal)
}

/// Opens a read-only connection.
fn open_reader(path: &Path) -> Result<Connection, rusqlite::Error> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let reader = Connection::open_with_flags(path, flags)?;
    configure(&reader, true)?;
    Ok(reader)
}

/// Counts the rows of the table, for all partners.
fn count_rows(connection: &Connection) -> Result<i64, rusqlite::Error> {
    connection.query_row(&format!("SELECT COUNT(*) FROM {TABLE}"), [], |row| row.get(0))
}

/// Gathers the statistics SQLite's query planner needs to choose an index, such as the
/// tenant index for `tenantId eq '…'` over the key order, when the table, which has `rows`
/// rows, has no statistics yet or has grown or shrunk tenfold since the last analysis.
/// Returns whether it analyzed.
///
/// The analysis reads every index in full. Sampling (`analysis_limit`, which `PRAGMA optimize`
/// also applies) misjudges the partner column that leads every index, and then the planner
/// scans the key order instead. A full analysis of 200,000 rows took 0.4 seconds on the
/// benchmark machine. A failure only costs speed, so it is logged and otherwise ignored.
fn refresh_statistics(connection: &Connection, rows: i64) -> bool {
    let recorded: Option<i64> = connection
        .query_row(
            &format!(
                "SELECT CAST(substr(stat, 1, instr(stat, ' ') - 1) AS INTEGER) FROM sqlite_stat1 \
                 WHERE tbl = '{TABLE}' AND idx = '{TABLE}'"
            ),
            [],
            |row| row.get(0),
        )
        .ok();
    let stale = match recorded {
        None => rows > 0,
        Some(recorded) => rows > recorded.max(1) * 10 || rows * 10 < recorded,
    };
    if !stale {
        return false;
    }
    let result = connection.execute_batch(&format!("PRAGMA analysis_limit = 0; ANALYZE {TABLE};"));
    match result {
        Ok(()) => {
            tracing::info!(rows, "refreshed the query planner statistics");
            true
        }
        Err(error) => {
            tracing::warn!(%error, "refreshing the query planner statistics failed");
            false
        }
    }
}

/// Sets the pragmas every connection needs.
fn configure(connection: &Connection, read_only: bool) -> Result<(), rusqlite::Error> {
    connection.busy_timeout(BUSY_TIMEOUT)?;
    functions::register(connection)?;
    if read_only {
        connection.pragma_update(None, "query_only", true)?;
        // A query may build strings (with concat, say) far longer than any stored value. Past
        // this length SQLite fails the statement, so memory does not grow without bound.
        connection.set_limit(rusqlite::limits::Limit::SQLITE_LIMIT_LENGTH, MAX_VALUE_BYTES)?;
    } else {
        connection.pragma_update(None, "journal_mode", "WAL")?;
        connection.pragma_update(None, "synchronous", "FULL")?;
        // After a checkpoint that resets the log, cut the file back to this size.
        connection.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT)?;
    }
    Ok(())
}

/// Copies the write-ahead log into the database and empties it once it is larger than
/// [`WAL_SIZE_LIMIT`], or always when `force` is set.
///
/// SQLite's automatic checkpoints run in PASSIVE mode and never wait for readers, and while reads keep overlapping,
/// none of them can start the log over, so the log grows with every write. A `TRUNCATE`
/// checkpoint waits for the readers of older snapshots to finish, which takes milliseconds
/// for the short reads of requests, then empties the file. It waits at most
/// [`CHECKPOINT_WAIT`], or the busy timeout when `force` is set, because a backup's read can
/// last seconds. The frames it could copy are copied all the same.
pub(super) fn checkpoint(connection: &Connection, wal: &Path, force: bool) {
    let size = std::fs::metadata(wal).map_or(0, |metadata| metadata.len());
    if !force && size <= WAL_SIZE_LIMIT as u64 {
        return;
    }
    let wait = if force { BUSY_TIMEOUT } else { CHECKPOINT_WAIT };
    if let Err(error) = connection.busy_timeout(wait) {
        tracing::warn!(%error, "setting the checkpoint's wait failed");
    }
    let outcome =
        connection.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| row.get::<_, i64>(0));
    if let Err(error) = connection.busy_timeout(BUSY_TIMEOUT) {
        tracing::warn!(%error, "restoring the busy timeout failed");
    }
    match outcome {
        Ok(0) => tracing::debug!(wal.bytes = size, "checkpointed the write-ahead log"),
        Ok(_) => {
            tracing::warn!(wal.bytes = size, "readers kept the write-ahead log from being emptied")
        }
        Err(error) => tracing::warn!(%error, "checkpointing the write-ahead log failed"),
    }
}

/// Maps a driver error to the store's error kinds.
fn classify(error: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode;

    if let Some(message) = functions::evaluation_error(&error) {
        return StoreError::InvalidQuery(message);
    }
    // SQLite's sum() fails this way when an integer sum leaves the 64-bit range.
    if let rusqlite::Error::SqliteFailure(_, Some(message)) = &error
        && message == "integer overflow"
    {
        return StoreError::InvalidQuery(
            "An aggregated sum is outside the range of Edm.Int64.".to_owned(),
        );
    }

    match error.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => StoreError::Busy,
        Some(ErrorCode::TooBig) => StoreError::InvalidQuery(format!(
            "A value computed by the query is longer than the limit of {} MiB.",
            MAX_VALUE_BYTES / (1024 * 1024)
        )),
        // Only a read whose request was dropped is interrupted, so this outcome is never sent.
        Some(ErrorCode::OperationInterrupted) => StoreError::Busy,
        Some(ErrorCode::DiskFull) => StoreError::Full,
        Some(ErrorCode::ConstraintViolation)
            if matches!(
                error,
                rusqlite::Error::SqliteFailure(ref failure, _)
                    if failure.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
            ) =>
        {
            StoreError::Conflict
        }
        _ => StoreError::Internal(Arc::new(error)),
    }
}

/// Locks a mutex, taking the data even if a thread panicked while holding it: every value
/// guarded here stays valid across a panic.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Opens a store with one read connection in a new folder.
    fn one_reader() -> (tempfile::TempDir, Arc<SqliteStore>) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(
            &dir.path().join("beacon.sqlite3"),
            &SqliteOptions { readers: 1, ..SqliteOptions::default() },
        )
        .unwrap();
        (dir, Arc::new(store))
    }

    /// Waits up to 20 seconds for `read`, or fails with `failure`. On failure it leaks the
    /// store, whose drop would wait for the reader still running the endless query, so that a
    /// regression fails the test rather than hanging the test run.
    async fn within_bound<T>(
        store: &Arc<SqliteStore>,
        read: impl Future<Output = T>,
        failure: &str,
    ) -> T {
        match tokio::time::timeout(Duration::from_secs(20), read).await {
            Ok(value) => value,
            Err(_) => {
                std::mem::forget(Arc::clone(store));
                panic!("{failure}");
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn dropped_read_returns_its_connection() {
        let (_dir, store) = one_reader();

        // A query that would run for minutes, dropped once it has started.
        let (started, running) = std::sync::mpsc::channel();
        let slow = Arc::clone(&store);
        let task = tokio::spawn(async move {
            slow.read(move |connection, _| {
                started.send(()).unwrap();
                connection.query_row(
                    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) \
                     SELECT count(*) FROM n",
                    [],
                    |row| row.get::<_, i64>(0),
                )
            })
            .await
        });
        tokio::task::spawn_blocking(move || running.recv().unwrap()).await.unwrap();
        task.abort();
        assert!(task.await.unwrap_err().is_cancelled());

        // The only connection comes back, so the next reads succeed.
        for _ in 0..3 {
            let next =
                store.read(|connection, _| connection.query_row("SELECT 1", [], |r| r.get(0)));
            let value: i64 =
                within_bound(&store, next, "the interrupted query kept the reader").await.unwrap();
            assert_eq!(value, 1);
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn read_dropped_while_queued_never_keeps_the_reader() {
        let (_dir, store) = one_reader();

        // The only reader waits inside a first read until the test lets it go.
        let (release, held) = std::sync::mpsc::channel::<()>();
        let (started, running) = std::sync::mpsc::channel();
        let holder = Arc::clone(&store);
        let first = tokio::spawn(async move {
            holder
                .read(move |connection, _| {
                    started.send(()).unwrap();
                    held.recv().unwrap();
                    connection.query_row("SELECT 1", [], |row| row.get::<_, i64>(0))
                })
                .await
        });
        tokio::task::spawn_blocking(move || running.recv().unwrap()).await.unwrap();

        // A query that would never end is queued behind it, then dropped before it starts.
        let endless = Arc::clone(&store);
        let queued = tokio::spawn(async move {
            endless
                .read(|connection, _| {
                    connection.query_row(
                        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) \
                         SELECT count(*) FROM n",
                        [],
                        |row| row.get::<_, i64>(0),
                    )
                })
                .await
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        queued.abort();
        assert!(queued.await.unwrap_err().is_cancelled());
        release.send(()).unwrap();
        assert_eq!(first.await.unwrap().unwrap(), 1);

        // The reader skips the dropped query and serves the next read.
        let next = store.read(|connection, _| connection.query_row("SELECT 2", [], |r| r.get(0)));
        let value: i64 =
            within_bound(&store, next, "the dropped query kept the only reader").await.unwrap();
        assert_eq!(value, 2);
    }

    #[tokio::test]
    async fn strings_past_the_length_limit_fail_the_query() {
        let (_dir, store) = one_reader();
        let error = store
            .read(|connection, _| {
                connection.query_row("SELECT length(zeroblob(?1))", [MAX_VALUE_BYTES + 1], |row| {
                    row.get::<_, i64>(0)
                })
            })
            .await
            .unwrap_err();
        assert!(matches!(error, StoreError::InvalidQuery(_)), "{error:?}");
    }
}
