//! The writer thread: group commit of queued writes.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::{self, JoinHandle};

use beacon_odata::entity::Entity;
use rusqlite::{Connection, TransactionBehavior, params_from_iter};
use tokio::sync::{mpsc, oneshot};

use super::{classify, rows};
use crate::sql::Statements;
use crate::{PartnerTenantId, StoreError, StoredEntity};

/// The maximum number of writes in one transaction, which bounds the latency a group adds.
const MAX_GROUP: usize = 512;

/// A write waiting for the writer thread.
#[derive(Debug)]
pub(super) enum WriteCommand {
    /// Insert a new entity.
    Create {
        partner: PartnerTenantId,
        entity: Entity,
        reply: oneshot::Sender<Result<StoredEntity, StoreError>>,
    },
}

/// How many committed groups pass between two checks of the write-ahead log's size.
const WAL_CHECK_EVERY_GROUPS: usize = 100;

/// How many committed groups pass between two checks of the query planner's statistics.
const STATISTICS_CHECK_EVERY_GROUPS: usize = 1_000;

pub(super) fn spawn(
    connection: Connection,
    receiver: mpsc::Receiver<WriteCommand>,
    statements: Arc<Statements>,
    statistics: Arc<AtomicU64>,
    wal: PathBuf,
) -> std::io::Result<JoinHandle<()>> {
    thread::Builder::new()
        .name("beacon-sqlite-writer".to_owned())
        .spawn(move || run(connection, receiver, &statements, &statistics, &wal))
}

fn run(
    mut connection: Connection,
    mut receiver: mpsc::Receiver<WriteCommand>,
    statements: &Statements,
    statistics: &AtomicU64,
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
        for (command, outcome) in group.into_iter().zip(outcomes) {
            let WriteCommand::Create { reply, .. } = command;
            // The requester may have gone away, but its write is committed all the same.
            let _ = reply.send(outcome);
        }

        // Keep the write-ahead log bounded, and check the planner's statistics as the table
        // grows, both after the replies are out.
        since_check += 1;
        if since_check.is_multiple_of(WAL_CHECK_EVERY_GROUPS) {
            super::checkpoint(&connection, wal, false);
        }
        if since_check >= STATISTICS_CHECK_EVERY_GROUPS {
            since_check = 0;
            if super::refresh_statistics(&connection) {
                statistics.fetch_add(1, Ordering::Release);
            }
        }
    }
    // A clean stop leaves an empty log, so the next start has nothing to replay.
    super::checkpoint(&connection, wal, true);
    tracing::debug!("database writer stopped");
}

/// Applies each write under its own savepoint inside one transaction, then commits once.
/// If the commit fails, every write of the group fails with that error.
fn apply_group(
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
                    Err(error) => Err(error),
                }
            }
            Err(error) => Err(error),
        };
        outcomes.push(outcome.map_err(classify));
    }

    if let Err(error) = transaction.commit() {
        return fail_all(group.len(), error);
    }
    outcomes
}

fn apply(
    connection: &Connection,
    statements: &Statements,
    command: &WriteCommand,
) -> Result<StoredEntity, rusqlite::Error> {
    match command {
        WriteCommand::Create { partner, entity, .. } => {
            let version = 1;
            let values = rows::insert_values(partner.as_str(), entity, version);
            connection.prepare_cached(&statements.insert)?.execute(params_from_iter(values))?;
            Ok(StoredEntity { entity: entity.clone(), version })
        }
    }
}

/// Gives every write of a group the error that failed the group's transaction.
fn fail_all(count: usize, error: rusqlite::Error) -> Vec<Result<StoredEntity, StoreError>> {
    vec![Err(classify(error)); count]
}
