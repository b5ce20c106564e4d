//! Copies of the database file taken while a server writes to it, and restores from them.
//!
//! A copy is made with `VACUUM INTO` on a read-only connection. The statement runs as one read
//! transaction, so the copy is the snapshot of the moment it starts: it contains every write
//! committed before that moment and none committed after. In WAL mode a reader never blocks the
//! writer, so the server keeps committing while the copy runs.
//!
//! Every process that opens the database holds a lock on the file [`lock_path`] beside it:
//! [`SqliteStore::open`](super::SqliteStore::open) and [`backup`] hold a shared lock, and
//! [`restore`] holds an exclusive one. So a restore fails while a server or a backup uses the
//! database, and a server fails to start while a restore runs. The locks are advisory
//! (`flock` on Unix), so a program that ignores them, such as the `sqlite3` shell, is not
//! kept out.
//!
//! Both operations write the new file beside its final name, sync it, and then rename it into
//! place, so that a crash leaves either the old file or the complete new one, never part of
//! one. A crash can leave the temporary file behind; the next run of the same operation
//! removes it.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};

use super::migrate::{APPLICATION_ID, MIGRATIONS};
use super::{BUSY_TIMEOUT, wal_path};

/// Failures of [`backup`], [`restore`] and [`verify`]. The `beacon` command reports them; they
/// never reach HTTP.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// A restore of the database is running, so it cannot be opened.
    #[error("a restore of the database {0} is running; wait for it to finish")]
    Restoring(PathBuf),
    /// A server or a backup has the database open, so it cannot be restored.
    #[error(
        "the database {0} is in use by a running beacon serve, backup or import; stop it first"
    )]
    InUse(PathBuf),
    /// There is no database file to copy.
    #[error("there is no database at {0}")]
    Missing(PathBuf),
    /// The destination of a backup exists already.
    #[error("{0} exists already; give a new file name, since a backup never overwrites a file")]
    DestinationExists(PathBuf),
    /// The source of a restore is the database it would replace.
    #[error("{0} is the database itself; give a backup file to restore from")]
    SameFile(PathBuf),
    /// SQLite failed to open, read or write a file.
    #[error("{action} {path}: {source}")]
    Sqlite {
        /// The failed action, such as "cannot copy".
        action: &'static str,
        /// The file involved.
        path: PathBuf,
        /// The driver's error.
        source: rusqlite::Error,
    },
    /// A file operation failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// The failed action, such as "cannot sync".
        action: &'static str,
        /// The file involved.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// SQLite's integrity check found problems.
    #[error("{path} failed SQLite's integrity check: {}", .problems.join("; "))]
    Corrupt {
        /// The file checked.
        path: PathBuf,
        /// The first problems the check listed.
        problems: Vec<String>,
    },
    /// The file is a SQLite database, but not one of Beacon's.
    #[error("{0} is not a Beacon database: it lacks Beacon's application id or its schema table")]
    NotBeacon(PathBuf),
    /// The file's schema is newer than this build supports.
    #[error(
        "{path} has schema version {found}, newer than version {known} that this build of \
         Beacon supports; restore it with a newer Beacon"
    )]
    SchemaTooNew {
        /// The file checked.
        path: PathBuf,
        /// The version recorded in the file.
        found: i64,
        /// The newest version this build supports.
        known: i64,
    },
}

/// The schema version and size of a Beacon database file, as [`verify`] found them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DatabaseSummary {
    /// The schema version recorded in `schema_migrations`.
    pub schema_version: i64,
    /// The rows of the entity table, for all partners.
    pub rows: i64,
}

/// The outcome of a [`backup`].
#[derive(Clone, Copy, Debug)]
pub struct BackupReport {
    /// The copy's schema version and rows.
    pub summary: DatabaseSummary,
    /// The size of the copy in bytes.
    pub bytes: u64,
    /// How long the read transaction on the source lasted: the time the copy took.
    pub snapshot: Duration,
}

/// Returns the path of the lock file of the database at `database`: its name with `.lock`
/// added, such as `beacon.sqlite3.lock`.
pub fn lock_path(database: &Path) -> PathBuf {
    with_suffix(database, ".lock")
}

/// Takes the lock that a process reading or writing the database holds, shared with other
/// such processes and exclusive of a restore. The lock lasts until the returned file is
/// dropped.
pub(super) fn lock_shared(database: &Path) -> Result<File, BackupError> {
    let file = open_lock_file(database)?;
    match file.try_lock_shared() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => Err(BackupError::Restoring(database.to_owned())),
        Err(TryLockError::Error(source)) => {
            Err(BackupError::Io { action: "cannot lock", path: lock_path(database), source })
        }
    }
}

/// Takes the lock that a restore holds, which no other process may share.
fn lock_exclusive(database: &Path) -> Result<File, BackupError> {
    let file = open_lock_file(database)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => Err(BackupError::InUse(database.to_owned())),
        Err(TryLockError::Error(source)) => {
            Err(BackupError::Io { action: "cannot lock", path: lock_path(database), source })
        }
    }
}

fn open_lock_file(database: &Path) -> Result<File, BackupError> {
    let path = lock_path(database);
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| BackupError::Io { action: "cannot open the lock file", path, source })
}

/// Copies the database at `source` to the new file `destination` while servers keep writing
/// to it.
///
/// The copy is written to `destination` with `.partial` added, checked with [`verify`], synced
/// and renamed to `destination`. It contains every write committed before the copy started.
pub fn backup(source: &Path, destination: &Path) -> Result<BackupReport, BackupError> {
    if !source.exists() {
        return Err(BackupError::Missing(source.to_owned()));
    }
    if destination.exists() {
        return Err(BackupError::DestinationExists(destination.to_owned()));
    }
    let folder = parent_folder(destination);
    if !folder.is_dir() {
        return Err(BackupError::Io {
            action: "cannot write the backup into",
            path: folder.to_owned(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such folder"),
        });
    }
    let _lock = lock_shared(source)?;
    let partial = with_suffix(destination, ".partial");
    remove_if_present(&partial)?;

    let started = Instant::now();
    let copied = copy_snapshot(source, &partial).and_then(|()| {
        let snapshot = started.elapsed();
        let summary = verify(&partial)?;
        sync_file(&partial)?;
        Ok((summary, snapshot))
    });
    let (summary, snapshot) = match copied {
        Ok(done) => done,
        Err(error) => {
            let _ = std::fs::remove_file(&partial);
            return Err(error);
        }
    };

    // A file that appeared meanwhile is kept: a backup never replaces a file.
    if destination.exists() {
        let _ = std::fs::remove_file(&partial);
        return Err(BackupError::DestinationExists(destination.to_owned()));
    }
    rename_synced(&partial, destination)?;
    let bytes = std::fs::metadata(destination).map_or(0, |metadata| metadata.len());
    Ok(BackupReport { summary, bytes, snapshot })
}

/// Replaces the database at `target` with a copy of the backup at `source`, and returns what
/// the restored database contains.
///
/// Fails without changing anything while another process holds the database's lock, and
/// when `source` is not an intact Beacon database with a schema this build supports. The
/// current database's write-ahead log is checkpointed into it before the file is replaced,
/// because a log left beside the new file would be replayed into it.
pub fn restore(source: &Path, target: &Path) -> Result<DatabaseSummary, BackupError> {
    if !source.exists() {
        return Err(BackupError::Missing(source.to_owned()));
    }
    if target.exists()
        && let (Ok(a), Ok(b)) = (source.canonicalize(), target.canonicalize())
        && a == b
    {
        return Err(BackupError::SameFile(source.to_owned()));
    }
    let _lock = lock_exclusive(target)?;
    verify(source)?;

    // Build the new file beside the target, complete and synced, before touching the target.
    let incoming = with_suffix(target, ".restoring");
    remove_if_present(&incoming)?;
    let prepared = copy_snapshot(source, &incoming).and_then(|()| {
        let summary = verify(&incoming)?;
        sync_file(&incoming)?;
        Ok(summary)
    });
    let summary = match prepared {
        Ok(summary) => summary,
        Err(error) => {
            let _ = std::fs::remove_file(&incoming);
            return Err(error);
        }
    };

    // Empty the current log into the current file, so that removing the log loses nothing
    // should the rename below not happen.
    if target.exists()
        && let Err(error) = checkpoint_and_close(target)
    {
        let _ = std::fs::remove_file(&incoming);
        return Err(error);
    }
    for leftover in [wal_path(target), with_suffix(target, "-shm")] {
        remove_if_present(&leftover)?;
    }
    rename_synced(&incoming, target)?;
    Ok(summary)
}

/// Checks that the file at `path` is an intact Beacon database whose schema this build can
/// open, and returns its schema version and row count.
pub fn verify(path: &Path) -> Result<DatabaseSummary, BackupError> {
    let sqlite_error =
        |action| move |source| BackupError::Sqlite { action, path: path.to_owned(), source };
    if !path.exists() {
        return Err(BackupError::Missing(path.to_owned()));
    }
    let connection = open_read_only(path)?;

    let problems: Vec<String> = connection
        .prepare("PRAGMA integrity_check(10)")
        .and_then(|mut statement| statement.query_map([], |row| row.get(0))?.collect())
        .map_err(sqlite_error("cannot check"))?;
    if problems != ["ok"] {
        return Err(BackupError::Corrupt { path: path.to_owned(), problems });
    }

    let application_id: i64 = connection
        .query_row("PRAGMA application_id", [], |row| row.get(0))
        .map_err(sqlite_error("cannot read"))?;
    let has_schema_table: bool = connection
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'schema_migrations')",
            [],
            |row| row.get(0),
        )
        .map_err(sqlite_error("cannot read"))?;
    if application_id != APPLICATION_ID || !has_schema_table {
        return Err(BackupError::NotBeacon(path.to_owned()));
    }

    let schema_version = super::migrate::recorded_version(&connection)
        .map_err(sqlite_error("cannot read the schema version of"))?;
    let known = MIGRATIONS.last().map_or(0, |(version, _, _)| *version);
    if schema_version > known {
        return Err(BackupError::SchemaTooNew {
            path: path.to_owned(),
            found: schema_version,
            known,
        });
    }
    let rows = super::count_rows(&connection).map_err(sqlite_error("cannot count the rows of"))?;
    Ok(DatabaseSummary { schema_version, rows })
}

/// Writes a consistent copy of `source` to the new file `destination` in one read
/// transaction.
fn copy_snapshot(source: &Path, destination: &Path) -> Result<(), BackupError> {
    let connection = open_read_only(source)?;
    // SQLite takes a file name here; an absolute path keeps a name such as `file:x` from
    // being read as a URI.
    let absolute = std::path::absolute(destination).map_err(|source| BackupError::Io {
        action: "cannot resolve",
        path: destination.to_owned(),
        source,
    })?;
    let name = absolute.to_str().ok_or_else(|| BackupError::Io {
        action: "cannot use",
        path: destination.to_owned(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "the path is not UTF-8"),
    })?;
    connection.execute("VACUUM INTO ?1", [name]).map_err(|error| BackupError::Sqlite {
        action: "cannot copy the database to",
        path: destination.to_owned(),
        source: error,
    })?;
    Ok(())
}

fn open_read_only(path: &Path) -> Result<Connection, BackupError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let connection = Connection::open_with_flags(path, flags).map_err(|source| {
        BackupError::Sqlite { action: "cannot open", path: path.to_owned(), source }
    })?;
    connection.busy_timeout(BUSY_TIMEOUT).map_err(|source| BackupError::Sqlite {
        action: "cannot open",
        path: path.to_owned(),
        source,
    })?;
    Ok(connection)
}

/// Copies the write-ahead log of the database at `path` into the file and closes it, which
/// removes the log. Only called under the exclusive lock, so no other Beacon process has the
/// database open.
fn checkpoint_and_close(path: &Path) -> Result<(), BackupError> {
    let failed = |source| BackupError::Sqlite {
        action: "cannot checkpoint the current database (move it and its -wal file aside and \
                 restore again)",
        path: path.to_owned(),
        source,
    };
    let connection = Connection::open(path).map_err(failed)?;
    connection.busy_timeout(BUSY_TIMEOUT).map_err(failed)?;
    let busy: i64 = connection
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| row.get(0))
        .map_err(failed)?;
    if busy != 0 {
        return Err(failed(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
            Some("another connection kept the write-ahead log from being emptied".to_owned()),
        )));
    }
    connection.close().map_err(|(_, source)| failed(source))
}

/// Makes a new file readable by its owner only, since it contains every partner's rows, and
/// syncs its contents to disk.
fn sync_file(path: &Path) -> Result<(), BackupError> {
    let file = File::open(path).map_err(|source| BackupError::Io {
        action: "cannot open",
        path: path.to_owned(),
        source,
    })?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600)).map_err(|source| {
            BackupError::Io {
                action: "cannot set the permissions of",
                path: path.to_owned(),
                source,
            }
        })?;
    }
    file.sync_all().map_err(|source| BackupError::Io {
        action: "cannot sync",
        path: path.to_owned(),
        source,
    })
}

/// Returns the folder that contains `path`, `.` for a bare file name.
fn parent_folder(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

/// Renames `from` to `to` and syncs their folder, so the rename survives a crash.
fn rename_synced(from: &Path, to: &Path) -> Result<(), BackupError> {
    std::fs::rename(from, to).map_err(|source| BackupError::Io {
        action: "cannot move the new file into place at",
        path: to.to_owned(),
        source,
    })?;
    let folder = parent_folder(to);
    // Folders cannot be opened for syncing on every platform; on Unix this makes the rename
    // durable.
    #[cfg(unix)]
    File::open(folder).and_then(|dir| dir.sync_all()).map_err(|source| BackupError::Io {
        action: "cannot sync the folder",
        path: folder.to_owned(),
        source,
    })?;
    #[cfg(not(unix))]
    let _ = folder;
    Ok(())
}

fn remove_if_present(path: &Path) -> Result<(), BackupError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => {
            Err(BackupError::Io { action: "cannot remove", path: path.to_owned(), source })
        }
    }
}

/// Returns `path` with `suffix` appended to its file name.
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}
