//! Bulk loading: rows are staged out of sight of every other connection and made visible
//! together in one commit.
//!
//! Each staged row carries its position in the input (a line or record number), so that a key
//! conflict found when committing names the row that caused it. Validation happens before
//! staging, in the caller: the store takes only entities that already passed the rules of a
//! create.

use std::fmt;

use async_trait::async_trait;
use beacon_odata::entity::Entity;

use crate::StoreError;

/// The rule an import applies to a row whose key the partner already has, or whose key an earlier
/// row of the same import has.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum OnConflict {
    /// Store nothing and report the first such row.
    #[default]
    Fail,
    /// Keep the stored row, or the import's first row with that key.
    Skip,
    /// Overwrite the stored row with the import's last row with that key.
    Replace,
}

impl fmt::Display for OnConflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OnConflict::Fail => "fail",
            OnConflict::Skip => "skip",
            OnConflict::Replace => "replace",
        })
    }
}

/// A row that [`OnConflict::Fail`] rejects, which stopped the import.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyConflict {
    /// The row's position in the input.
    pub position: u64,
    /// The row's key.
    pub id: String,
    /// The position of the import's first row with the same key, when the conflict is within
    /// the import; `None` when the partner already has a row with this key.
    pub earlier: Option<u64>,
}

/// The result of [`Import::commit`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImportOutcome {
    /// The rows were committed.
    Committed {
        /// The rows stored, new or replacing a stored one.
        stored: u64,
        /// The staged rows left out by [`OnConflict::Skip`], or overwritten by a later row with
        /// the same key under [`OnConflict::Replace`].
        skipped: u64,
    },
    /// [`OnConflict::Fail`] found a key conflict, and nothing was stored.
    Conflict(KeyConflict),
}

/// A bulk import in progress; see [`crate::Store::begin_import`].
#[async_trait]
pub trait Import: Send + fmt::Debug {
    /// Adds rows, each with its position in the input, to the import. They stay invisible
    /// until the commit.
    async fn stage(&mut self, rows: Vec<(u64, Entity)>) -> Result<(), StoreError>;

    /// Checks the staged rows' keys and stores the rows in one transaction, each at a new
    /// random version. A store that other connections write to keeps serving them meanwhile;
    /// the SQLite store takes the database's write lock only for the final copy. Returns only
    /// once the rows are durable.
    async fn commit(self: Box<Self>) -> Result<ImportOutcome, StoreError>;
}
