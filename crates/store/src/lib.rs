//! Storage of `aggregatedPolicyCompliance` entities behind one trait.
//!
//! The HTTP layer talks only to [`Store`], so the embedded SQLite store and a later PostgreSQL
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

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use beacon_odata::entity::Entity;

pub mod sql;
pub mod sqlite;

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

/// An entity as stored, with its version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredEntity {
    /// The entity's values.
    pub entity: Entity,
    /// A counter that starts at 1 and grows with every write of the entity.
    pub version: i64,
}

/// A page of a collection to read: entities in ascending key order after a given key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PageRequest {
    /// Read only keys greater than this one, by code point; `None` starts at the first key.
    pub after: Option<String>,
    /// The maximum number of entities to return.
    pub limit: usize,
}

/// A store operation failure. The HTTP layer maps each variant to one status.
#[derive(Clone, Debug, thiserror::Error)]
pub enum StoreError {
    /// An entity with the given key already exists for this partner; becomes `409`.
    #[error("an entity with this id already exists")]
    Conflict,
    /// The database stayed locked by another writer past the wait bound; becomes `503`.
    #[error("the database is busy")]
    Busy,
    /// The disk or the database's size limit is full; becomes `507`.
    #[error("the database is full")]
    Full,
    /// The store is shutting down and takes no more work; becomes `503`.
    #[error("the store is shutting down")]
    ShuttingDown,
    /// Any other failure of the database or its driver; becomes `500` and is logged.
    #[error("the database failed")]
    Internal(#[source] Arc<dyn StdError + Send + Sync>),
}

/// The operations Beacon needs from a database.
#[async_trait]
pub trait Store: Send + Sync + fmt::Debug + 'static {
    /// Inserts a new entity with version 1; fails with [`StoreError::Conflict`] when the key
    /// exists. Returns only once the entity is durable.
    async fn create(
        &self,
        partner: &PartnerTenantId,
        entity: Entity,
    ) -> Result<StoredEntity, StoreError>;

    /// Reads one entity by key.
    async fn get(
        &self,
        partner: &PartnerTenantId,
        id: &str,
    ) -> Result<Option<StoredEntity>, StoreError>;

    /// Reads one page of the partner's entities in ascending key order.
    async fn list(
        &self,
        partner: &PartnerTenantId,
        page: PageRequest,
    ) -> Result<Vec<StoredEntity>, StoreError>;

    /// Finishes the writes already accepted and stops taking new ones.
    async fn close(&self);
}
