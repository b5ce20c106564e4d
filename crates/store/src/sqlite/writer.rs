//! The writer thread: group commit of queued writes.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::thread::{self, JoinHandle};
use std::time::Instant;

use beacon_odata::entity::Entity;
use beacon_odata::etag::Precondition;
use rusqlite::{Connection, TransactionBehavior, params_from_iter};
use tokio::sync::{mpsc, oneshot};

use super::{classify, rows};
use crate::sql::Statements;
use crate::telemetry;
use crate::{Change, PartnerTenantId, StoreError, StoredEntity, initial_version, next_version};

/// The maximum number of writes in one transaction, which bounds the latency a group adds.
const MAX_GROUP: usize = 512;

/// The channel on which the writer thread sends the outcome of a write.
pub(super) type Reply = oneshot::Sender<Result<StoredEntity, StoreError>>;

/// A write waiting for the writer thread.
#[derive(Debug)]
pub(super) struct WriteCommand {
    /// The partner whose entity the write changes.
    pub partner: PartnerTenantId,
    /// The change to apply.
    pub write: Write,
    /// The channel for the outcome.
    pub reply: Reply,
}

/// The kinds of write.
#[derive(Debug)]
pub(super) enum Write {
    /// Insert a new entity.
    Create(Entity),
    /// Change an existing entity if its version satisfies the precondition.
    Update { id: String, change: Change, precondition: Precondition },
    /// Delete an existing entity if its version satisfies the precondition.
    Delete { id: String, precondition: Precondition },
}

/// How many committed groups pass between two checks of the write-ahead log's size.
const WAL_CHECK_EVERY_GROUPS: usize = 100;

/// How many committed groups pass between two checks of the query planner's statistics, and
/// between two recounts of the rows.
const STATISTICS_CHECK_EVERY_GROUPS: usize = 1_000;

/// The values the writer thread keeps for the store.
pub(super) struct Counters {
    /// Counts the refreshes of the planner's statistics.
    pub statistics: Arc<AtomicU64>,
    /// The rows stored.
    pub rows: Arc<AtomicI64>,
}

pub(super) fn spawn(
    connection: Connection,
    receiver: mpsc::Receiver<WriteCommand>,
    statements: Arc<Statements>,
    counters: Counters,
    wal: PathBuf,
) -> std::io::Result<JoinHandle<()>> {
    thread::Builder::new()
        .name("beacon-sqlite-writer".to_owned())
        .spawn(move || run(connection, receiver, &statements, &counters, &wal))
}

fn run(
    mut connection: Connection,
    mut receiver: mpsc::Receiver<WriteCommand>,
    statements: &Statements,
    counters: &Counters,
    wal: &Path,
) {
    // Wait for one write, then take every other write already waiting.
    let mut since_check = 0_usize;
    while let Some(first) = receiver.blocking_recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match receiver.try_recv() {
                Ok(command) => group.push(command),
                Err(_) => break,
            }
        }

        let outcomes = apply_group(&mut connection, statements, &group);

        // Count the rows before replying, so that a client that has received its reply reads a
        // count that includes its write.
        let added: i64 = group
            .iter()
            .zip(&outcomes)
            .map(|(command, outcome)| match (&command.write, outcome) {
                (Write::Create(_), Ok(_)) => 1,
                (Write::Delete { .. }, Ok(_)) => -1,
                _ => 0,
            })
            .sum();
        counters.rows.fetch_add(added, Ordering::Release);
        for (command, outcome) in group.into_iter().zip(outcomes) {
            // The requester may have gone away, but its write is committed all the same.
            let _ = command.reply.send(outcome);
        }

        // Keep the write-ahead log bounded, and check the planner's statistics as the table
        // grows, both after the replies are out.
        since_check += 1;
        if since_check.is_multiple_of(WAL_CHECK_EVERY_GROUPS) {
            super::checkpoint(&connection, wal, false);
        }
        if since_check >= STATISTICS_CHECK_EVERY_GROUPS {
            since_check = 0;
            recount(&connection, counters);
        }
    }
    // A clean stop leaves an empty log, so the next start has nothing to replay.
    super::checkpoint(&connection, wal, true);
    tracing::debug!("database writer stopped");
}

/// Counts the rows again, which also corrects the count should it ever have drifted, and
/// refreshes the planner's statistics when the count has changed tenfold.
fn recount(connection: &Connection, counters: &Counters) {
    match super::count_rows(connection) {
        Ok(rows) => {
            counters.rows.store(rows, Ordering::Release);
            if super::refresh_statistics(connection, rows) {
                counters.statistics.fetch_add(1, Ordering::Release);
            }
        }
        Err(error) => tracing::warn!(%error, "counting the rows failed"),
    }
}

/// Applies each write under its own savepoint inside one transaction, then commits once,
/// and records the transaction's duration and size. If the commit fails, every write of the
/// group fails with that error.
fn apply_group(
    connection: &mut Connection,
    statements: &Statements,
    group: &[WriteCommand],
) -> Vec<Result<StoredEntity, StoreError>> {
    let started = Instant::now();
    let outcomes = apply_in_transaction(connection, statements, group);
    telemetry::record_commit(started.elapsed(), group.len());
    outcomes
}

/// Applies the group in one transaction. On some errors (a full disk or database, an I/O
/// error) SQLite rolls back the whole transaction rather than the one statement, which undoes
/// the writes before it in the group. Such a write fails, and the others run again in a new
/// transaction, so no write is reported as applied unless its transaction commits.
fn apply_in_transaction(
    connection: &mut Connection,
    statements: &Statements,
    group: &[WriteCommand],
) -> Vec<Result<StoredEntity, StoreError>> {
    // Each attempt adds one write to `failed`, so there are at most as many as writes.
    let mut failed: Vec<Option<StoreError>> = vec![None; group.len()];
    loop {
        match attempt(connection, statements, group, &failed) {
            Attempt::Finished(outcomes) => return outcomes,
            Attempt::RolledBack { index, error } => {
                tracing::warn!(
                    error.message = %error,
                    writes = group.len(),
                    "a write rolled back its whole group; applying the others again"
                );
                failed[index] = Some(error);
            }
        }
    }
}

/// The end of one attempt at a group's transaction.
enum Attempt {
    /// The transaction committed, or failed as a whole: the outcome of every write.
    Finished(Vec<Result<StoredEntity, StoreError>>),
    /// The write at `index` failed, and SQLite rolled back the whole transaction with it.
    RolledBack { index: usize, error: StoreError },
}

/// Applies each write of the group under its own savepoint, skipping those already in
/// `failed`, and commits once.
fn attempt(
    connection: &mut Connection,
    statements: &Statements,
    group: &[WriteCommand],
    failed: &[Option<StoreError>],
) -> Attempt {
    let fail_all = |error: rusqlite::Error| {
        let error = classify(error);
        let outcomes = failed.iter().map(|own| Err(own.clone().unwrap_or_else(|| error.clone())));
        Attempt::Finished(outcomes.collect())
    };
    let mut transaction = match connection.transaction_with_behavior(TransactionBehavior::Immediate)
    {
        Ok(transaction) => transaction,
        Err(error) => return fail_all(error),
    };

    let mut outcomes = Vec::with_capacity(group.len());
    for (index, command) in group.iter().enumerate() {
        if let Some(error) = &failed[index] {
            outcomes.push(Err(error.clone()));
            continue;
        }
        let outcome = match transaction.savepoint() {
            Ok(mut savepoint) => match apply(&savepoint, statements, command) {
                Ok(stored) => savepoint.commit().map(|()| stored).map_err(classify),
                Err(error) => {
                    // The write's own error is its outcome, whatever the rollback reports.
                    let _ = savepoint.rollback();
                    let _ = savepoint.commit();
                    Err(error)
                }
            },
            Err(error) => Err(classify(error)),
        };
        if let Err(error) = &outcome
            && transaction.is_autocommit()
        {
            return Attempt::RolledBack { index, error: error.clone() };
        }
        outcomes.push(outcome);
    }

    match transaction.commit() {
        Ok(()) => Attempt::Finished(outcomes),
        Err(error) => fail_all(error),
    }
}

/// Applies one write. An update or delete reads the current row first, inside the group's
/// transaction, so its precondition and its change see the same version.
fn apply(
    connection: &Connection,
    statements: &Statements,
    command: &WriteCommand,
) -> Result<StoredEntity, StoreError> {
    let partner = command.partner.as_str();
    let current = |id: &str, precondition: &Precondition| {
        let stored = rows::select_one(connection, statements, partner, id)
            .map_err(classify)?
            .ok_or(StoreError::NotFound)?;
        match precondition.allows(stored.version) {
            true => Ok(stored),
            false => Err(StoreError::PreconditionFailed),
        }
    };

    match &command.write {
        Write::Create(entity) => {
            if let Some(register) = &statements.register_partner {
                let mut register = connection.prepare_cached(register).map_err(classify)?;
                register.execute([partner]).map_err(classify)?;
            }
            let stored = StoredEntity { entity: entity.clone(), version: initial_version() };
            execute(connection, &statements.insert, partner, &stored)?;
            Ok(stored)
        }
        Write::Update { id, change, precondition } => {
            let mut stored = current(id, precondition)?;
            change.apply_to(&mut stored.entity.fields);
            stored.version = next_version(stored.version);
            execute(connection, &statements.update, partner, &stored)?;
            Ok(stored)
        }
        Write::Delete { id, precondition } => {
            let stored = current(id, precondition)?;
            let mut delete = connection.prepare_cached(&statements.delete).map_err(classify)?;
            delete.execute((partner, id)).map_err(classify)?;
            Ok(stored)
        }
    }
}

/// Runs a statement that binds the partner and every entity column, as an insert does.
fn execute(
    connection: &Connection,
    text: &str,
    partner: &str,
    stored: &StoredEntity,
) -> Result<(), StoreError> {
    let values = rows::insert_values(partner, &stored.entity, stored.version);
    let mut statement = connection.prepare_cached(text).map_err(classify)?;
    statement.execute(params_from_iter(values)).map_err(classify)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use beacon_odata::entity::{Fields, Value};
    use beacon_odata::model::Property;

    use super::*;
    use crate::sql::Sqlite;
    use crate::sqlite::{SqliteOptions, SqliteStore};

    /// Returns a create of an entity whose display name is `name_bytes` long.
    fn create(id: &str, name_bytes: usize) -> (WriteCommand, oneshot::Receiver<()>) {
        let mut fields: Fields = Default::default();
        let name = Property::TenantDisplayName.field_index().unwrap();
        fields[name] = Some(Value::String("n".repeat(name_bytes)));
        let entity = Entity { id: id.to_owned(), fields };
        let (reply, _) = oneshot::channel();
        let (_keep, closed) = oneshot::channel();
        let command = WriteCommand {
            partner: PartnerTenantId::new("p"),
            write: Write::Create(entity),
            reply,
        };
        (command, closed)
    }

    #[test]
    fn full_database_fails_only_the_oversized_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("beacon.sqlite3");
        drop(SqliteStore::open(&path, &SqliteOptions::default()).unwrap());
        let mut connection = Connection::open(&path).unwrap();
        super::super::configure(&connection, false).unwrap();
        let pages: i64 = connection.query_row("PRAGMA page_count", [], |row| row.get(0)).unwrap();
        connection.pragma_update(None, "max_page_count", pages + 8).unwrap();
        let statements = Statements::new(&Sqlite);

        // The middle write needs far more than the 8 free pages. SQLite then rolls back the
        // whole transaction, the small writes before it included.
        let group: Vec<WriteCommand> = [("before", 10), ("huge", 200_000), ("after", 10)]
            .into_iter()
            .map(|(id, bytes)| create(id, bytes).0)
            .collect();
        let outcomes = apply_group(&mut connection, &statements, &group);

        assert!(outcomes[0].is_ok(), "{:?}", outcomes[0]);
        assert!(matches!(outcomes[1], Err(StoreError::Full)), "{:?}", outcomes[1]);
        assert!(outcomes[2].is_ok(), "{:?}", outcomes[2]);
        for (id, stored) in [("before", true), ("huge", false), ("after", true)] {
            let found = rows::select_one(&connection, &statements, "p", id).unwrap();
            assert_eq!(found.is_some(), stored, "{id}");
        }

        // The writer's connection is not left inside a transaction, so later groups commit.
        assert!(connection.is_autocommit());
        let outcomes = apply_group(&mut connection, &statements, &[create("later", 10).0]);
        assert!(outcomes[0].is_ok(), "{:?}", outcomes[0]);
    }
}
