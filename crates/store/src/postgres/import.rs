//! Bulk import into the PostgreSQL store, on a connection of its own.
//!
//! The rows are copied (`COPY … FROM STDIN BINARY`) into a temporary table, which only the
//! import's session sees. The commit indexes and checks the staged rows, then copies them into
//! the table with one `INSERT … SELECT` in one transaction. Other servers keep reading and
//! writing meanwhile; only a write to a key that the import also stores waits for its commit.
//!
//! The connection is taken out of the pool for good, so that closing it when the import ends,
//! committed or dropped, also drops the temporary table.

use async_trait::async_trait;
use beacon_odata::entity::Entity;
use deadpool_postgres::{ClientWrapper, Object};
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{ToSql, Type};

use super::rows::{self, Bound};
use super::{Failure, PostgresStore};
use crate::sql::import::{ImportStatements, STAGING};
use crate::sql::{Postgres, entity_columns};
use crate::{
    Import, ImportOutcome, KeyConflict, OnConflict, Param, StoreError, StoredEntity,
    initial_version,
};

/// An import in progress into the PostgreSQL store.
#[derive(Debug)]
pub(super) struct PostgresImport {
    /// The import's own connection, closed when the import ends.
    client: ClientWrapper,
    /// The partner whose rows the import stores.
    partner: String,
    /// The rule for rows whose key exists.
    on_conflict: OnConflict,
    /// The statement texts of this import.
    statements: ImportStatements,
    /// The `COPY` statement that stages rows.
    copy: String,
    /// The column types of the `COPY`, in its column order.
    types: Vec<Type>,
}

impl PostgresImport {
    /// Takes a connection out of the store's pool and creates the staging table on it.
    pub(super) async fn begin(
        store: &PostgresStore,
        partner: &str,
        on_conflict: OnConflict,
    ) -> Result<Self, StoreError> {
        let client = store.client().await.map_err(Failure::into_store_error)?;
        let client = Object::take(client);
        let statements = ImportStatements::new(&Postgres, on_conflict);
        let list = entity_columns().join(", ");
        let setup = async {
            client.batch_execute(&statements.create_staging).await?;
            // The staging table's own columns tell the binary copy the type of each value.
            let probe = client.prepare(&format!("SELECT seq, {list} FROM {STAGING}")).await?;
            let types: Vec<Type> = probe.columns().iter().map(|c| c.type_().clone()).collect();
            Ok::<_, tokio_postgres::Error>(types)
        };
        let types = setup.await.map_err(super::classify)?;
        Ok(Self {
            client,
            partner: partner.to_owned(),
            on_conflict,
            statements,
            copy: format!("COPY {STAGING} (seq, {list}) FROM STDIN BINARY"),
            types,
        })
    }

    /// Returns the first staged row whose key an earlier staged row has.
    async fn first_repeated_key(&self) -> Result<Option<KeyConflict>, tokio_postgres::Error> {
        // The cheap scan of the index finds whether any key repeats; only then is it worth
        // finding the first row that repeats one.
        if self.client.query_opt(&self.statements.any_repeated_key, &[]).await?.is_none() {
            return Ok(None);
        }
        let row = self.client.query_opt(&self.statements.first_repeated_key, &[]).await?;
        row.map(|row| {
            Ok(KeyConflict {
                position: position(row.try_get(0)?),
                id: row.try_get(1)?,
                earlier: Some(position(row.try_get(2)?)),
            })
        })
        .transpose()
    }

    /// Returns the first staged row whose key the partner already has.
    async fn first_existing_key(&self) -> Result<Option<KeyConflict>, tokio_postgres::Error> {
        let text = &self.statements.first_existing_key;
        let row = self.client.query_opt(text, &[&self.partner]).await?;
        row.map(|row| {
            Ok(KeyConflict {
                position: position(row.try_get(0)?),
                id: row.try_get(1)?,
                earlier: None,
            })
        })
        .transpose()
    }

    async fn commit_now(&self) -> Result<ImportOutcome, tokio_postgres::Error> {
        let client = &self.client;
        client.batch_execute(&self.statements.index_staging).await?;
        client.batch_execute(&format!("ANALYZE {STAGING}")).await?;
        let staged: i64 = client.query_one(&self.statements.count_staged, &[]).await?.try_get(0)?;
        if self.on_conflict == OnConflict::Fail {
            if let Some(conflict) = self.first_repeated_key().await? {
                return Ok(ImportOutcome::Conflict(conflict));
            }
            if let Some(conflict) = self.first_existing_key().await? {
                return Ok(ImportOutcome::Conflict(conflict));
            }
        }

        // A row another server created since the check makes the merge fail on the key, and
        // the check, run again, names it.
        client.batch_execute("BEGIN").await?;
        let partner = Bound::Param(Param::Text(self.partner.clone()));
        let merged = client.execute(&self.statements.merge, &[&partner]).await;
        let stored = match merged {
            Ok(stored) => stored,
            Err(error) => {
                client.batch_execute("ROLLBACK").await?;
                if self.on_conflict == OnConflict::Fail
                    && error.code() == Some(&SqlState::UNIQUE_VIOLATION)
                    && let Some(conflict) = self.first_existing_key().await?
                {
                    return Ok(ImportOutcome::Conflict(conflict));
                }
                return Err(error);
            }
        };
        client.batch_execute("COMMIT").await?;
        tracing::info!(rows.staged = staged, rows.stored = stored, "import committed");
        let skipped = u64::try_from(staged).unwrap_or(0).saturating_sub(stored);
        Ok(ImportOutcome::Committed { stored, skipped })
    }
}

#[async_trait]
impl Import for PostgresImport {
    async fn stage(&mut self, batch: Vec<(u64, Entity)>) -> Result<(), StoreError> {
        let copy = async {
            let sink = self.client.copy_in(self.copy.as_str()).await?;
            let writer = BinaryCopyInWriter::new(sink, &self.types);
            let mut writer = std::pin::pin!(writer);
            for (position, entity) in batch {
                let stored = StoredEntity { entity, version: initial_version() };
                let mut values = rows::insert_values("", &stored);
                values[0] = Bound::Param(Param::Integer(i64::try_from(position).unwrap_or(0)));
                let refs: Vec<&(dyn ToSql + Sync)> =
                    values.iter().map(|value| value as &(dyn ToSql + Sync)).collect();
                writer.as_mut().write(&refs).await?;
            }
            writer.finish().await?;
            Ok::<_, tokio_postgres::Error>(())
        };
        copy.await.map_err(super::classify)
    }

    async fn commit(self: Box<Self>) -> Result<ImportOutcome, StoreError> {
        self.commit_now().await.map_err(super::classify)
    }
}

fn position(seq: i64) -> u64 {
    u64::try_from(seq).unwrap_or(0)
}
