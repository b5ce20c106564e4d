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

fn apply_in_transaction(
    connection: &mut Connection,
    statements: &Statements,
    group: &[WriteCommand],
) -> Vec<Result<StoredEntity, StoreError>> {
    let mut transaction = match connection.transaction_with_behavior(TransactionBehavior::Immediate)
    {
        Ok(transaction) => transaction,
        Err(error) => return fail_all(group.len(), error),
    };

    let mut outcomes = Vec::with_capacity(group.len());
    for command in group {
        let outcome = match transaction.savepoint() {
            Ok(mut savepoint) => {
                let result = apply(&savepoint, statements, command);
                if result.is_err() {
                    let _ = savepoint.rollback();
                }
                match savepoint.commit() {
                    Ok(()) => result,
                    Err(error) => Err(classify(error)),
                }
            }
            Err(error) => Err(classify(error)),
        };
        outcomes.push(outcome);
    }

    if let Err(error) = transaction.commit() {
        return fail_all(group.len(), error);
    }
    outcomes
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

/// Gives every write of a group the error that failed the group's transaction.
fn fail_all(count: usize, error: rusqlite::Error) -> Vec<Result<StoredEntity, StoreError>> {
    vec![Err(classify(error)); count]
}
