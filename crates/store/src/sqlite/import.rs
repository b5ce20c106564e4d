//! Bulk import into the SQLite store, on a connection of its own.
//!
//! The rows are staged in a temporary table, which lives in the connection's own temporary
//! database, so staging takes no lock on the database file and a server on the same file
//! keeps writing. The commit indexes and checks the staged rows, still without a lock, and
//! only then takes the write lock for one `INSERT … SELECT` into the table. When the import at
//! least doubles the table, the same transaction drops the table's secondary indexes before
//! the insert and creates them again after it. A server's writes wait for that transaction
//! (see docs/benchmarks.md for how long it takes), and fail as busy after [`BUSY_TIMEOUT`].

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use beacon_odata::entity::Entity;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension, Statement, TransactionBehavior};

use super::{BUSY_TIMEOUT, classify, count_rows, refresh_statistics, rows};
use crate::sql::import::{ImportStatements, STAGED_ROWS_PER_INSERT};
use crate::sql::{Sqlite, TABLE};
use crate::{Import, ImportOutcome, KeyConflict, OnConflict, StoreError, initial_version};

/// The page cache of the temporary database that contains the staged rows, in KiB. A larger
/// cache keeps more of the staging table and its index out of the temporary file.
const STAGING_CACHE_KIB: i64 = 256 * 1024;

/// The page cache of the database file on the import's connection, in KiB. The merge inserts
/// into every index of the table at scattered places. With SQLite's default cache of 2 MiB,
/// most of those inserts read and write pages on disk, and the write lock was held about twice
/// as long for 1,000,000 rows.
const TABLE_CACHE_KIB: i64 = 1024 * 1024;

/// An import in progress into the SQLite store.
#[derive(Debug)]
pub(super) struct SqliteImport {
    /// The import's connection; taken by each blocking task and put back when it ends.
    connection: Option<Connection>,
    /// The partner whose rows the import stores.
    partner: Arc<str>,
    /// The rule for rows whose key exists.
    on_conflict: OnConflict,
    /// The statement texts of this import.
    statements: Arc<ImportStatements>,
    /// Whether the keys staged so far ascend strictly, in staging order.
    ascending: bool,
    /// The last key staged so far.
    last_key: Option<String>,
}

impl SqliteImport {
    /// Opens a connection to the database at `path` and creates the staging table.
    pub(super) async fn begin(
        path: &Path,
        partner: &str,
        on_conflict: OnConflict,
    ) -> Result<Self, StoreError> {
        let statements = Arc::new(ImportStatements::new(&Sqlite, on_conflict));
        let path = path.to_owned();
        let texts = Arc::clone(&statements);
        let connection = tokio::task::spawn_blocking(move || {
            let connection = Connection::open(&path)?;
            connection.busy_timeout(BUSY_TIMEOUT)?;
            connection.pragma_update(None, "synchronous", "FULL")?;
            connection.pragma_update(Some("temp"), "cache_size", -STAGING_CACHE_KIB)?;
            connection.pragma_update(Some("main"), "cache_size", -TABLE_CACHE_KIB)?;
            connection.execute(&texts.create_staging, [])?;
            // One transaction over all of staging saves the per-commit upkeep of the temporary
            // database. It writes only that database, so it takes no lock on the file.
            connection.execute_batch("BEGIN")?;
            Ok(connection)
        })
        .await
        .map_err(|error| StoreError::Internal(Arc::new(error)))?
        .map_err(classify)?;
        Ok(Self {
            connection: Some(connection),
            partner: Arc::from(partner),
            on_conflict,
            statements,
            ascending: true,
            last_key: None,
        })
    }

    /// Notes whether the keys of `batch` continue the strictly ascending order of the keys
    /// staged before it. Input exported from Beacon or paged from Graph comes in key order.
    fn observe_key_order(&mut self, batch: &[(u64, Entity)]) {
        let Some((_, last)) = batch.last() else { return };
        if self.ascending {
            let previous = self.last_key.as_deref();
            let first = batch.first().map(|(_, entity)| entity.id.as_str());
            let joined = previous.zip(first).is_none_or(|(previous, first)| previous < first);
            let within = batch.windows(2).all(|pair| pair[0].1.id < pair[1].1.id);
            self.ascending = joined && within;
        }
        self.last_key = Some(last.id.clone());
    }

    /// Runs `work` with the connection on the blocking thread pool.
    async fn with_connection<T: Send + 'static>(
        &mut self,
        work: impl FnOnce(&mut Connection, &ImportStatements, &str) -> Result<T, rusqlite::Error>
        + Send
        + 'static,
    ) -> Result<T, StoreError> {
        let mut connection = self.connection.take().ok_or(StoreError::ShuttingDown)?;
        let statements = Arc::clone(&self.statements);
        let partner = Arc::clone(&self.partner);
        let task = tokio::task::spawn_blocking(move || {
            let result = work(&mut connection, &statements, &partner);
            (connection, result)
        });
        let (connection, result) =
            task.await.map_err(|error| StoreError::Internal(Arc::new(error)))?;
        self.connection = Some(connection);
        result.map_err(classify)
    }
}

#[async_trait]
impl Import for SqliteImport {
    async fn stage(&mut self, batch: Vec<(u64, Entity)>) -> Result<(), StoreError> {
        self.observe_key_order(&batch);
        self.with_connection(move |connection, statements, _| {
            // Whole groups go through the many-row insert, the rest one row at a time. The
            // values are bound from the entities, without cloning their strings.
            let mut group_insert = connection.prepare_cached(&statements.stage_many)?;
            let mut chunks = batch.chunks_exact(STAGED_ROWS_PER_INSERT);
            for chunk in &mut chunks {
                let mut index = 1;
                for (position, entity) in chunk {
                    index = bind_staged(&mut group_insert, index, *position, entity)?;
                }
                group_insert.raw_execute()?;
            }
            let mut row_insert = connection.prepare_cached(&statements.stage)?;
            for (position, entity) in chunks.remainder() {
                bind_staged(&mut row_insert, 1, *position, entity)?;
                row_insert.raw_execute()?;
            }
            Ok(())
        })
        .await
    }

    async fn commit(mut self: Box<Self>) -> Result<ImportOutcome, StoreError> {
        let on_conflict = self.on_conflict;
        let ascending = self.ascending;
        self.with_connection(move |connection, statements, partner| {
            commit(connection, statements, partner, on_conflict, ascending)
        })
        .await
    }
}

/// Binds one staged row from parameter `first` on: its position in the input, then the
/// entity columns. Returns the next parameter index.
fn bind_staged(
    statement: &mut Statement<'_>,
    first: usize,
    position: u64,
    entity: &Entity,
) -> Result<usize, rusqlite::Error> {
    let seq = ValueRef::Integer(i64::try_from(position).unwrap_or(i64::MAX));
    rows::bind_insert_values(statement, first, seq, entity, initial_version())
}

/// Checks the staged rows and copies them into the table in one transaction. `ascending` is
/// true when the staged keys ascend strictly in staging order, so that none repeats.
fn commit(
    connection: &mut Connection,
    statements: &ImportStatements,
    partner: &str,
    on_conflict: OnConflict,
    ascending: bool,
) -> Result<ImportOutcome, rusqlite::Error> {
    // Everything up to the merge reads the staged rows or the committed table, so a server on
    // the same file keeps writing meanwhile. Only keys out of order need the staging index,
    // to find repeated keys and to merge in key order.
    let started = Instant::now();
    connection.execute_batch("COMMIT")?;
    if !ascending {
        connection.execute(&statements.index_staging, [])?;
    }
    let staged: i64 = connection.query_row(&statements.count_staged, [], |row| row.get(0))?;
    tracing::debug!(ascending, index_ms = started.elapsed().as_millis(), "counted the staged rows");
    if on_conflict == OnConflict::Fail {
        if !ascending && let Some(conflict) = first_repeated_key(connection, statements)? {
            return Ok(ImportOutcome::Conflict(conflict));
        }
        if let Some(conflict) = first_existing_key(connection, statements, partner)? {
            return Ok(ImportOutcome::Conflict(conflict));
        }
    }

    tracing::debug!(check_ms = started.elapsed().as_millis(), "checked the staged keys");

    // A row the server created since the check makes the merge fail on the key, and the
    // check, run again, names it.
    let existing = count_rows(connection)?;
    let locked = Instant::now();
    let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;

    // An import that at least doubles the table is faster with the indexes built afresh, by
    // sorting, than with each row inserted into each of them. The change is part of the
    // transaction, so other connections see the old indexes until the commit.
    let rebuilt = match staged > existing {
        true => drop_indexes(&transaction)?,
        false => Vec::new(),
    };
    if let Some(register) = &statements.register_partner {
        transaction.execute(register, [partner])?;
    }
    let merge = match ascending {
        true => &statements.merge_ascending,
        false => &statements.merge,
    };
    let merged = transaction.execute(merge, [partner]);
    let merged = merged.and_then(|stored| {
        for definition in &rebuilt {
            transaction.execute(definition, [])?;
        }
        Ok(stored)
    });
    let stored = match merged {
        Ok(stored) => stored,
        Err(error) if on_conflict == OnConflict::Fail && is_key_violation(&error) => {
            drop(transaction);
            return match first_existing_key(connection, statements, partner)? {
                Some(conflict) => Ok(ImportOutcome::Conflict(conflict)),
                None => Err(error),
            };
        }
        Err(error) => return Err(error),
    };
    transaction.commit()?;
    let lock_ms = locked.elapsed().as_millis();
    tracing::info!(rows.staged = staged, rows.stored = stored, lock_ms, "import committed");

    // Copy what fits of the log into the database without blocking the server's writes, as a
    // TRUNCATE checkpoint would. The server empties the log later, past its size limit.
    if let Err(error) = connection.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
        tracing::warn!(%error, "checkpointing the write-ahead log failed");
    }

    // The planner's statistics should fit the table's new size at once; the server refreshes
    // them by the same rule, but only every 1,000 write groups.
    let rows = count_rows(connection)?;
    refresh_statistics(connection, rows);

    let stored = stored as u64;
    let skipped = u64::try_from(staged).unwrap_or(0).saturating_sub(stored);
    Ok(ImportOutcome::Committed { stored, skipped })
}

/// Drops the table's secondary indexes and returns the statements that create them again.
fn drop_indexes(connection: &Connection) -> Result<Vec<String>, rusqlite::Error> {
    let mut select = connection.prepare(&format!(
        "SELECT name, sql FROM sqlite_schema WHERE type = 'index' AND tbl_name = '{TABLE}' \
         AND sql IS NOT NULL"
    ))?;
    let indexes: Vec<(String, String)> =
        select.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?.collect::<Result<_, _>>()?;
    for (name, _) in &indexes {
        connection.execute(&format!("DROP INDEX \"{name}\""), [])?;
    }
    Ok(indexes.into_iter().map(|(_, definition)| definition).collect())
}

/// Returns the first staged row whose key an earlier staged row has.
fn first_repeated_key(
    connection: &Connection,
    statements: &ImportStatements,
) -> Result<Option<KeyConflict>, rusqlite::Error> {
    // The cheap scan of the index finds whether any key repeats; only then is it worth
    // finding the first row that repeats one.
    let any: Option<String> =
        connection.query_row(&statements.any_repeated_key, [], |row| row.get(0)).optional()?;
    if any.is_none() {
        return Ok(None);
    }
    connection
        .query_row(&statements.first_repeated_key, [], |row| {
            Ok(KeyConflict {
                position: position(row.get(0)?),
                id: row.get(1)?,
                earlier: Some(position(row.get(2)?)),
            })
        })
        .optional()
}

/// Returns the first staged row whose key the partner already has.
fn first_existing_key(
    connection: &Connection,
    statements: &ImportStatements,
    partner: &str,
) -> Result<Option<KeyConflict>, rusqlite::Error> {
    connection
        .query_row(&statements.first_existing_key, [partner], |row| {
            Ok(KeyConflict { position: position(row.get(0)?), id: row.get(1)?, earlier: None })
        })
        .optional()
}

fn position(seq: i64) -> u64 {
    u64::try_from(seq).unwrap_or(0)
}

fn is_key_violation(error: &rusqlite::Error) -> bool {
    matches!(
        error,
        rusqlite::Error::SqliteFailure(failure, _)
            if failure.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
    )
}
