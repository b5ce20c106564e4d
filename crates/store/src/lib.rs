//! Storage of `aggregatedPolicyCompliance` entities behind one trait.
//!
//! The HTTP layer talks only to [`Store`], so the embedded SQLite store and the PostgreSQL
//! store are interchangeable. Every operation is scoped by a [`PartnerTenantId`]: the partner
//! tenant is the first column of every key and the first condition of every query, so one
//! partner can never read or change another's rows, whatever ids they use.
//!
//! # Layout
//!
//! - [`sql`]: the table layout and the SQL text of each statement, written once and rendered
//!   per [`sql::Dialect`], with bound parameters only.
//! - [`sqlite`]: the embedded store: one writer thread that commits queued writes together,
//!   and a pool of read connections, both off the async runtime's worker threads.
//! - [`postgres`]: the PostgreSQL store, for several servers sharing one database: a pool of
//!   connections, row locks for conditional writes, and the same SQL in the PostgreSQL dialect.
//! - [`telemetry`]: the metrics both stores record through the `metrics` facade: operation
//!   durations, SQLite's group commits and write queue, connections, and rows stored.
//! - [`import`]: bulk loading, where rows are staged out of sight and committed at once.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use beacon_odata::bind::Typed;
use beacon_odata::bind::apply::Plan;
use beacon_odata::body::Patch;
use beacon_odata::entity::{Entity, Fields};
use beacon_odata::etag::Precondition;

pub use beacon_odata::entity::StoredEntity;

pub use import::{Import, ImportOutcome, KeyConflict, OnConflict};
pub use sql::apply::ApplyQuery;
pub use sql::compile::{OrderKey, Param};

pub mod import;
pub mod postgres;
pub mod sql;
pub mod sqlite;
pub mod telemetry;

/// The partner (managing) tenant whose data an operation may see.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PartnerTenantId(String);

impl PartnerTenantId {
    /// Wraps a tenant id that the caller has already authenticated and normalized.
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }

    /// Returns the id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PartnerTenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The change an update makes to a stored entity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// `PATCH`: set the fields given, keep the others.
    Merge(Patch),
    /// `PUT`: set every field.
    Replace(Fields),
}

impl Change {
    /// Applies the change to an entity's fields.
    pub fn apply_to(&self, fields: &mut Fields) {
        match self {
            Change::Replace(replacement) => *fields = replacement.clone(),
            Change::Merge(patch) => {
                for (field, given) in fields.iter_mut().zip(patch) {
                    if let Some(value) = given {
                        *field = value.clone();
                    }
                }
            }
        }
    }
}

/// A query over one partner's collection: which rows, in which order, from where, how many.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ListQuery {
    /// The `$filter` condition; a row qualifies where it is true.
    pub filter: Option<Typed>,
    /// The `$orderby` keys; the key `id` always follows them, so the order is total.
    pub order: Vec<OrderKey>,
    /// The position where a previous page ended: only rows after it are read.
    pub after: Option<Cursor>,
    /// How many qualifying rows to pass over first (`$skip`).
    pub offset: u64,
    /// The maximum number of rows to return.
    pub limit: usize,
}

/// The position of a row in a query's order: its order-key values and its key.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Cursor {
    /// The row's value of each order key, in order.
    pub keys: Vec<Param>,
    /// The row's key.
    pub id: String,
}

/// A row of a query result with its position, from which the next page can resume.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListedEntity {
    /// The entity.
    pub stored: StoredEntity,
    /// The row's position in the query's order.
    pub cursor: Cursor,
}

/// The rows of a `$apply` result.
#[derive(Clone, Debug, PartialEq)]
pub enum ApplyRows {
    /// The plan kept the entities' shape.
    Entities(Vec<StoredEntity>),
    /// The plan grouped: each row contains the plan's columns in order.
    Rows(Vec<Vec<Cell>>),
}

/// A value of a grouped result.
#[derive(Clone, Debug, PartialEq)]
pub enum Cell {
    /// Null.
    Null,
    /// An integer: a count, a sum, or ticks, days or a number as the column's type defines.
    Integer(i64),
    /// A double, such as an average.
    Real(f64),
    /// Text.
    Text(String),
}

/// A store operation failure. The HTTP layer maps each variant to one status.
#[derive(Clone, Debug, thiserror::Error)]
pub enum StoreError {
    /// An entity with the given key already exists for this partner; becomes `409`.
    #[error("an entity with this id already exists")]
    Conflict,
    /// No entity with the given key exists for this partner; becomes `404`.
    #[error("no entity with this id exists")]
    NotFound,
    /// The entity's version does not satisfy the request's precondition; becomes `412`.
    #[error("the entity's version does not satisfy the precondition")]
    PreconditionFailed,
    /// The database stayed locked by another writer past the wait bound; becomes `503`.
    #[error("the database is busy")]
    Busy,
    /// The disk or the database's size limit is full; becomes `507`.
    #[error("the database is full")]
    Full,
    /// The store is shutting down and takes no more work; becomes `503`.
    #[error("the store is shutting down")]
    ShuttingDown,
    /// The schema's recorded version is not the one this build migrated it to: the migration
    /// record is gone, or a newer Beacon has migrated the schema further. Only
    /// [`Store::check_ready`] checks it; becomes `503`.
    #[error("the database schema has version {found}, but this server runs version {expected}")]
    SchemaMismatch {
        /// The highest version recorded in `schema_migrations`, 0 when none is.
        found: i64,
        /// The newest version of this build's migrations.
        expected: i64,
    },
    /// A query could not be evaluated for a reason the client controls, such as an overflow
    /// in its arithmetic or an invalid pattern; becomes `400` with this message.
    #[error("{0}")]
    InvalidQuery(String),
    /// Any other failure of the database or its driver; becomes `500` and is logged.
    #[error("the database failed")]
    Internal(#[source] Arc<dyn StdError + Send + Sync>),
}

/// Checks a schema version read from `schema_migrations` against the newest of `migrations`.
fn check_schema_version(found: i64, migrations: &[(i64, &str, &str)]) -> Result<(), StoreError> {
    let expected = migrations.last().map_or(0, |(version, _, _)| *version);
    match found == expected {
        true => Ok(()),
        false => Err(StoreError::SchemaMismatch { found, expected }),
    }
}

/// Returns the version of a newly created entity: a random number from 1 to 2^62, far from
/// overflowing however often the entity changes.
///
/// The number comes from rand's thread-local ChaCha12 generator, which is seeded from the
/// operating system and reseeded after every 64 KiB of output (rand 0.10), so most calls make
/// no system call.
pub fn initial_version() -> i64 {
    let random: u64 = rand::random();
    (random >> 2) as i64 + 1
}

/// Returns the version that follows `version`.
pub fn next_version(version: i64) -> i64 {
    version.checked_add(1).unwrap_or_else(initial_version)
}

/// The operations Beacon needs from a database.
#[async_trait]
pub trait Store: Send + Sync + fmt::Debug + 'static {
    /// Inserts a new entity at a random version, so that a key deleted and created again
    /// does not repeat an earlier version; fails with [`StoreError::Conflict`] when the key
    /// exists. Returns only once the entity is durable.
    async fn create(
        &self,
        partner: &PartnerTenantId,
        entity: Entity,
    ) -> Result<StoredEntity, StoreError>;

    /// Changes an existing entity and gives it a new version, if its current version satisfies
    /// `precondition`; fails with [`StoreError::NotFound`] or
    /// [`StoreError::PreconditionFailed`] otherwise. The check and the change are one atomic
    /// step, so of two updates that expect the same version, only one succeeds. Returns only
    /// once the change is durable.
    async fn update(
        &self,
        partner: &PartnerTenantId,
        id: &str,
        change: Change,
        precondition: Precondition,
    ) -> Result<StoredEntity, StoreError>;

    /// Deletes an existing entity under the same conditions as [`Store::update`], and returns
    /// what was deleted. Returns only once the delete is durable.
    async fn delete(
        &self,
        partner: &PartnerTenantId,
        id: &str,
        precondition: Precondition,
    ) -> Result<StoredEntity, StoreError>;

    /// Reads one entity by key.
    async fn get(
        &self,
        partner: &PartnerTenantId,
        id: &str,
    ) -> Result<Option<StoredEntity>, StoreError>;

    /// Reads the rows of a query, in its order.
    async fn list(
        &self,
        partner: &PartnerTenantId,
        query: ListQuery,
    ) -> Result<Vec<ListedEntity>, StoreError>;

    /// Counts the rows that satisfy `filter` (all of the partner's rows without one).
    async fn count(
        &self,
        partner: &PartnerTenantId,
        filter: Option<Typed>,
    ) -> Result<u64, StoreError>;

    /// Reads a page of the result of a `$apply` plan.
    async fn apply(
        &self,
        partner: &PartnerTenantId,
        query: ApplyQuery,
    ) -> Result<ApplyRows, StoreError>;

    /// Counts the rows of the result of a `$apply` plan that satisfy `filter`.
    async fn apply_count(
        &self,
        partner: &PartnerTenantId,
        plan: Plan,
        filter: Option<Typed>,
    ) -> Result<u64, StoreError>;

    /// Checks that the store can serve: the database completes a query, its schema is at the
    /// version this build migrated it to ([`StoreError::SchemaMismatch`] otherwise), and the
    /// store is not closed ([`StoreError::ShuttingDown`]). The SQLite store opens a connection
    /// of its own for the check, so that it does not wait behind long reads. The PostgreSQL
    /// store takes one from its pool.
    async fn check_ready(&self) -> Result<(), StoreError>;

    /// Sets the store's gauges in the `metrics` recorder: connections, waiting writes and rows
    /// stored. The server calls it before each rendering of the metrics, so that values which
    /// are costly to keep current are read only when someone looks.
    async fn update_gauges(&self);

    /// Starts a bulk import of `partner`'s rows on a connection of its own. Rows staged into
    /// it stay invisible to every other operation until [`Import::commit`], which stores all
    /// of them or none; dropping the import discards them.
    async fn begin_import(
        &self,
        partner: &PartnerTenantId,
        on_conflict: OnConflict,
    ) -> Result<Box<dyn Import>, StoreError>;

    /// Finishes the writes already accepted and stops taking new ones.
    async fn close(&self);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initial_versions_are_in_range_and_distinct() {
        // 20,000 draws take 160,000 bytes of output, so the generator reseeds on the way.
        let versions: Vec<i64> = (0..20_000).map(|_| initial_version()).collect();
        assert!(versions.iter().all(|v| (1..=1 << 62).contains(v)));
        let distinct: std::collections::HashSet<_> = versions.iter().collect();
        assert_eq!(distinct.len(), versions.len());
    }

    #[test]
    fn initial_versions_differ_between_threads() {
        let on_this_thread = initial_version();
        let on_another_thread = std::thread::spawn(initial_version).join().unwrap();
        assert_ne!(on_this_thread, on_another_thread);
    }
}
