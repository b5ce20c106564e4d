//! The PostgreSQL store, for several Beacon servers sharing one database.
//!
//! Statements come from the same compiler as SQLite's, rendered in the [`Postgres`] dialect
//! with bound parameters only, and run on a pool of connections. The migrations create the
//! functions the compiler calls (`odata_add`, `odata_tolower`, …) with the meaning the SQLite
//! store gives them in Rust. Their failures carry SQLSTATE [`QUERY_ERROR`] and become
//! [`StoreError::InvalidQuery`].
//!
//! A create is one `INSERT`. An update or a delete locks the row with `SELECT … FOR UPDATE`,
//! checks the precondition and changes the row in the same transaction, so of two writes that
//! expect the same version, the second waits for the first and then fails its precondition.
//! Each write returns once its commit returns, which with PostgreSQL's default
//! `synchronous_commit = on` means it is durable.
//!
//! PostgreSQL text cannot contain U+0000, so request bodies and query literals with it are
//! refused before they reach either store. A key with it is not found, and any other text with
//! it that still arrives fails as [`StoreError::InvalidQuery`].
//!
//! Connections use TLS as the URL's `sslmode` sets: never with `disable`, always with
//! `require`, and with the default `prefer` whenever the server offers it. A connection over
//! TLS verifies the server's certificate chain against the system's CAs and
//! [`PostgresOptions::ca_file`], and its host name against the URL's host, and fails when either
//! check fails, under `prefer` too.
//!
//! A read that fails because its connection was lost or because PostgreSQL cancelled it to
//! resolve a conflict is retried on another connection. A write is retried only where
//! PostgreSQL reports that it rolled the transaction back; a write whose connection was lost
//! may or may not have committed, so it fails as [`StoreError::Busy`] instead of being applied
//! twice.
//!
//! Other servers write to the same table, so the gauge of rows stored comes from a
//! `COUNT(*)`, run by [`Store::update_gauges`] when the last count is older than
//! [`ROW_COUNT_MAX_AGE`].

mod import;
mod migrate;
mod rows;
mod tls;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use beacon_odata::bind::Typed;
use beacon_odata::bind::apply::Plan;
use beacon_odata::entity::Entity;
use beacon_odata::etag::Precondition;
use deadpool_postgres::{
    Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime,
};
use tokio_postgres::NoTls;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;

use crate::sql::{self, Postgres, Statements, TABLE};
use crate::telemetry::{self, Operation, timed};
use crate::{
    ApplyQuery, ApplyRows, Change, Import, ListQuery, ListedEntity, OnConflict, Param,
    PartnerTenantId, Store, StoreError, StoredEntity, initial_version, next_version,
};

pub use migrate::MIGRATIONS;
use rows::{Bound, RowError};
/// A connection configuration, as parsed from a connection URL.
pub use tokio_postgres::Config;

/// The SQLSTATE of the errors the `odata_*` functions raise for a query the client can fix.
pub const QUERY_ERROR: &str = "BQ400";

/// The message for text that contains U+0000, which PostgreSQL cannot store or compare.
pub const NUL_MESSAGE: &str =
    "The text contains the character U+0000, which the PostgreSQL store cannot store or compare.";

/// How many times an operation runs at most when it fails in a way that is safe to retry.
const ATTEMPTS: usize = 3;

/// The number of prepared statements past which a connection's statement cache is emptied.
/// Query texts vary with each client's `$filter` and `$orderby`, so an unbounded cache would
/// grow with every new query shape for as long as the connection lives.
const MAX_CACHED_STATEMENTS: usize = 256;

/// The age past which [`Store::update_gauges`] counts the rows again. A count scans the whole
/// table or one of its indexes, so it runs at most this often, however often the metrics are
/// read. The gauge lags the table by at most this long plus the time of one count.
pub const ROW_COUNT_MAX_AGE: Duration = Duration::from_secs(30);

/// Settings of the PostgreSQL store.
#[derive(Clone, Debug)]
pub struct PostgresOptions {
    /// The maximum number of open connections.
    pub pool_size: usize,
    /// How long an operation waits for a free connection before failing as busy.
    pub wait_timeout: Duration,
    /// How long opening a connection may take before failing.
    pub connect_timeout: Duration,
    /// A PEM file of CA certificates to trust besides the system's, for servers whose
    /// certificates a private CA signed. It must contain at least one certificate.
    pub ca_file: Option<PathBuf>,
    /// Whether a schema at an older version is upgraded. When false, such a schema is
    /// rejected with [`OpenError::SchemaTooOld`], so that a tool run beside older servers
    /// leaves the schema they read alone. An empty schema is still set up.
    pub upgrade: bool,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        Self {
            pool_size: 16,
            wait_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
            ca_file: None,
            upgrade: true,
        }
    }
}

/// Failures to connect to the database or to prepare its schema.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The connection URL is invalid.
    #[error("invalid PostgreSQL connection URL: {0}")]
    Url(#[source] tokio_postgres::Error),
    /// The connection pool could not be built.
    #[error("cannot create the PostgreSQL connection pool: {0}")]
    Pool(String),
    /// The database could not be reached or rejected the connection.
    #[error("cannot connect to PostgreSQL: {0}")]
    Connect(#[source] tokio_postgres::Error),
    /// The CA file cannot be read.
    #[error("cannot read the CA file {}: {source}", path.display())]
    CaFileRead {
        /// The file as given.
        path: PathBuf,
        /// The error from reading it.
        source: std::io::Error,
    },
    /// The CA file contains no certificate, or one that cannot serve as a trusted CA.
    #[error("the CA file {} is not usable: {reason}", path.display())]
    CaFileInvalid {
        /// The file as given.
        path: PathBuf,
        /// The reason the content is rejected.
        reason: String,
    },
    /// The TLS handshake failed, most often because the server's certificate is not signed
    /// by a trusted CA or is not valid for the host name in the URL.
    #[error(
        "the TLS handshake with PostgreSQL failed: {0}; the server's certificate must be signed \
         by a CA that the system or the CA file contains, and be valid for the host name in the \
         connection URL (sslmode=disable in the URL connects without TLS)"
    )]
    Tls(#[source] rustls::Error),
    /// The schema was written by a newer version of Beacon.
    #[error(
        "the PostgreSQL schema has version {found}, newer than version {known} that this build \
         of Beacon knows; run a newer Beacon"
    )]
    SchemaTooNew {
        /// The version recorded in `schema_migrations`.
        found: i64,
        /// The newest version this build supports.
        known: i64,
    },
    /// The schema is older than this build's, and the caller asked not to upgrade it
    /// ([`PostgresOptions::upgrade`]).
    #[error(
        "the PostgreSQL schema has version {found}, older than version {known} of this build, \
         which upgrades it when `beacon serve` of this build first starts on it; stop the \
         servers of the older version and start this one, then run this command again"
    )]
    SchemaTooOld {
        /// The version recorded in `schema_migrations`.
        found: i64,
        /// The newest version this build supports.
        known: i64,
    },
    /// A migration failed, and its transaction was rolled back.
    #[error("cannot apply PostgreSQL migration {version}: {source}")]
    Migrate {
        /// The migration's version, or 0 for reading the recorded version.
        version: i64,
        /// The driver's error.
        source: tokio_postgres::Error,
    },
}

/// The PostgreSQL store.
#[derive(Debug)]
pub struct PostgresStore {
    pool: Pool,
    statements: Arc<Statements>,
    /// `SELECT` of one row that locks it until the transaction ends.
    select_for_update: String,
    closed: AtomicBool,
    /// The last count of the rows and when it was taken. The lock makes a second reader of
    /// the metrics wait for a count in progress instead of starting another.
    row_count: tokio::sync::Mutex<Option<(Instant, i64)>>,
}

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://user@host:port/database?…`) and applies
    /// pending migrations.
    pub async fn open(url: &str, options: &PostgresOptions) -> Result<Self, OpenError> {
        let config: tokio_postgres::Config = url.parse().map_err(OpenError::Url)?;
        Self::connect(config, options).await
    }

    /// Connects with `config` and applies pending migrations to the schema its search path
    /// selects.
    pub async fn connect(
        mut config: tokio_postgres::Config,
        options: &PostgresOptions,
    ) -> Result<Self, OpenError> {
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(options.connect_timeout);
        }
        // The pool's own bound covers the TLS handshake and authentication too, so it follows a
        // longer connect_timeout given in the URL.
        let create_timeout = config
            .get_connect_timeout()
            .copied()
            .unwrap_or(options.connect_timeout)
            .max(options.connect_timeout)
            + Duration::from_secs(1);
        let manager_config = ManagerConfig { recycling_method: RecyclingMethod::Fast };
        let manager = match tls::connector(config.get_ssl_mode(), options.ca_file.as_deref())? {
            Some(tls) => Manager::from_config(config, tls, manager_config),
            None => Manager::from_config(config, NoTls, manager_config),
        };
        let pool = Pool::builder(manager)
            .max_size(options.pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(options.wait_timeout))
            .create_timeout(Some(create_timeout))
            .build()
            .map_err(|error| OpenError::Pool(error.to_string()))?;

        let mut client = pool.get().await.map_err(|error| match error {
            PoolError::Backend(error) => match tls::handshake_error(&error) {
                Some(tls_error) => OpenError::Tls(tls_error),
                None => OpenError::Connect(error),
            },
            other => OpenError::Pool(other.to_string()),
        })?;
        migrate::run(&mut client, options.upgrade).await?;
        drop(client);

        let statements = Statements::new(&Postgres);
        let select_for_update = format!("{} FOR UPDATE", statements.select_one);
        Ok(Self {
            pool,
            statements: Arc::new(statements),
            select_for_update,
            closed: AtomicBool::new(false),
            row_count: tokio::sync::Mutex::new(None),
        })
    }

    /// Returns the number of rows, counted at most [`ROW_COUNT_MAX_AGE`] ago, or `None` when
    /// no count has succeeded yet.
    async fn recent_row_count(&self) -> Option<i64> {
        let mut last = self.row_count.lock().await;
        if last.is_some_and(|(counted, _)| counted.elapsed() < ROW_COUNT_MAX_AGE) {
            return last.map(|(_, rows)| rows);
        }
        let text = format!("SELECT COUNT(*) FROM {TABLE}");
        let counted = self
            .read(|client| {
                let text = &text;
                async move { Ok(client.query_one(text.as_str(), &[]).await?.try_get::<_, i64>(0)?) }
            })
            .await;
        match counted {
            Ok(rows) => *last = Some((Instant::now(), rows)),
            Err(error) => {
                tracing::warn!(error.message = %error, error.cause_chain = ?error, "counting the rows failed");
            }
        }
        last.map(|(_, rows)| rows)
    }

    /// Takes a connection from the pool.
    async fn client(&self) -> Result<Object, Failure> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Failure::Store(StoreError::ShuttingDown));
        }
        let client = self.pool.get().await.map_err(Failure::Pool)?;
        if client.statement_cache.size() > MAX_CACHED_STATEMENTS {
            client.statement_cache.clear();
        }
        Ok(client)
    }

    /// Runs a read, retrying it on another connection where that is safe.
    async fn read<T, F, Fut>(&self, read: F) -> Result<T, StoreError>
    where
        F: FnMut(Object) -> Fut,
        Fut: Future<Output = Result<T, Failure>>,
    {
        self.with_retries(read, Failure::read_may_retry, "read").await
    }

    /// Runs a write, retrying it only where PostgreSQL rolled the whole transaction back.
    async fn write<T, F, Fut>(&self, write: F) -> Result<T, StoreError>
    where
        F: FnMut(Object) -> Fut,
        Fut: Future<Output = Result<T, Failure>>,
    {
        self.with_retries(write, Failure::rolled_back, "write").await
    }

    /// Runs `operation` on a pooled connection, up to [`ATTEMPTS`] times while its failure
    /// passes `may_retry`.
    async fn with_retries<T, F, Fut>(
        &self,
        mut operation: F,
        may_retry: fn(&Failure) -> bool,
        kind: &'static str,
    ) -> Result<T, StoreError>
    where
        F: FnMut(Object) -> Fut,
        Fut: Future<Output = Result<T, Failure>>,
    {
        let mut attempt = 1;
        loop {
            let result = match self.client().await {
                Ok(client) => operation(client).await,
                Err(failure) => Err(failure),
            };
            match result {
                Err(failure) if attempt < ATTEMPTS && may_retry(&failure) => {
                    tracing::warn!(error = %failure, attempt, kind, "retrying a failed operation");
                    attempt += 1;
                }
                result => return result.map_err(Failure::into_store_error),
            }
        }
    }

    /// Locks the row `id` of `partner` and checks `precondition` against it; runs inside the
    /// transaction that changes the row.
    async fn lock_current(
        &self,
        transaction: &deadpool_postgres::Transaction<'_>,
        partner: &str,
        id: &str,
        precondition: &Precondition,
    ) -> Result<StoredEntity, Failure> {
        let statement = transaction.prepare_cached(&self.select_for_update).await?;
        let row = transaction.query_opt(&statement, &[&partner, &id]).await?;
        let stored = rows::read_entity(&row.ok_or(Failure::Store(StoreError::NotFound))?)?;
        match precondition.allows(stored.version) {
            true => Ok(stored),
            false => Err(Failure::Store(StoreError::PreconditionFailed)),
        }
    }
}

/// Returns `values` as the parameter list the driver takes, trimmed to what `statement` uses.
fn parameters<'a>(
    statement: &tokio_postgres::Statement,
    values: &'a [Bound],
) -> Vec<&'a (dyn ToSql + Sync)> {
    values.iter().take(statement.params().len()).map(|value| value as &(dyn ToSql + Sync)).collect()
}

fn bound(params: &[Param]) -> Vec<Bound> {
    params.iter().cloned().map(Bound::Param).collect()
}

/// Renumbers the placeholders of `text` to those it uses, and returns the parameters they
/// refer to in their new order.
///
/// The statements of one list query share their parameters, and each uses only some of them.
/// SQLite binds an unused parameter as null, but PostgreSQL rejects a statement with a
/// parameter whose type it cannot infer, as it cannot for one that appears nowhere. The
/// compiler writes `$` only in placeholders, since every constant is bound.
fn used_parameters(text: &str, params: &[Param]) -> (String, Vec<Param>) {
    let mut renumbered = String::with_capacity(text.len());
    let mut used: Vec<usize> = Vec::new();
    let mut rest = text;
    while let Some(dollar) = rest.find('$') {
        renumbered.push_str(&rest[..=dollar]);
        rest = &rest[dollar + 1..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let Ok(number) = rest[..digits].parse::<usize>() else { continue };
        let position = match used.iter().position(|&n| n == number) {
            Some(position) => position,
            None => {
                used.push(number);
                used.len() - 1
            }
        };
        renumbered.push_str(&(position + 1).to_string());
        rest = &rest[digits..];
    }
    renumbered.push_str(rest);
    let params = used.iter().map(|&n| params.get(n - 1).cloned().unwrap_or(Param::Null)).collect();
    (renumbered, params)
}

async fn count_rows(client: &Object, text: &str, params: &[Param]) -> Result<u64, Failure> {
    let statement = client.prepare_cached(text).await?;
    let values = bound(params);
    let row = client.query_one(&statement, &parameters(&statement, &values)).await?;
    let count: i64 = row.try_get(0)?;
    Ok(u64::try_from(count).unwrap_or(0))
}

#[async_trait]
impl Store for PostgresStore {
    async fn create(
        &self,
        partner: &PartnerTenantId,
        entity: Entity,
    ) -> Result<StoredEntity, StoreError> {
        let stored = StoredEntity { entity, version: initial_version() };
        let values = rows::insert_values(partner.as_str(), &stored);
        let write = self.write(|client| {
            let values = &values;
            async move {
                let statement = client.prepare_cached(&self.statements.insert).await?;
                client.execute(&statement, &parameters(&statement, values)).await?;
                Ok(())
            }
        });
        timed(Operation::Create, write).await?;
        Ok(stored)
    }

    async fn update(
        &self,
        partner: &PartnerTenantId,
        id: &str,
        change: Change,
        precondition: Precondition,
    ) -> Result<StoredEntity, StoreError> {
        if id.contains('\0') {
            return Err(StoreError::NotFound);
        }
        let partner = partner.as_str();
        let write = self.write(|mut client| {
            let (change, precondition) = (&change, &precondition);
            async move {
                let transaction = client.transaction().await?;
                let mut stored = self.lock_current(&transaction, partner, id, precondition).await?;
                change.apply_to(&mut stored.entity.fields);
                stored.version = next_version(stored.version);
                let values = rows::insert_values(partner, &stored);
                let statement = transaction.prepare_cached(&self.statements.update).await?;
                transaction.execute(&statement, &parameters(&statement, &values)).await?;
                transaction.commit().await?;
                Ok(stored)
            }
        });
        timed(Operation::Update, write).await
    }

    async fn delete(
        &self,
        partner: &PartnerTenantId,
        id: &str,
        precondition: Precondition,
    ) -> Result<StoredEntity, StoreError> {
        if id.contains('\0') {
            return Err(StoreError::NotFound);
        }
        let partner = partner.as_str();
        let write = self.write(|mut client| {
            let precondition = &precondition;
            async move {
                let transaction = client.transaction().await?;
                let stored = self.lock_current(&transaction, partner, id, precondition).await?;
                let statement = transaction.prepare_cached(&self.statements.delete).await?;
                transaction.execute(&statement, &[&partner, &id]).await?;
                transaction.commit().await?;
                Ok(stored)
            }
        });
        timed(Operation::Delete, write).await
    }

    async fn get(
        &self,
        partner: &PartnerTenantId,
        id: &str,
    ) -> Result<Option<StoredEntity>, StoreError> {
        if id.contains('\0') {
            return Ok(None);
        }
        let partner = partner.as_str();
        let read = self.read(|client| async move {
            let statement = client.prepare_cached(&self.statements.select_one).await?;
            let row = client.query_opt(&statement, &[&partner, &id]).await?;
            Ok(row.as_ref().map(rows::read_entity).transpose()?)
        });
        timed(Operation::Get, read).await
    }

    async fn list(
        &self,
        partner: &PartnerTenantId,
        query: ListQuery,
    ) -> Result<Vec<ListedEntity>, StoreError> {
        let (texts, params) = sql::select_statements(&Postgres, partner.as_str(), &query);
        let (keys, limit) = (query.order.len(), query.limit);
        let statements: Vec<(String, Vec<Bound>)> = texts
            .iter()
            .map(|text| {
                let (text, params) = used_parameters(text, &params);
                (text, bound(&params))
            })
            .collect();
        let read = self.read(|mut client| {
            let statements = &statements;
            async move {
                // A first page is one statement, which reads one snapshot by itself, so it
                // runs alone and saves the round trips of starting and committing a
                // transaction.
                if let [(text, values)] = statements.as_slice() {
                    let statement = client.prepare_cached(text).await?;
                    let rows = client.query(&statement, &parameters(&statement, values)).await?;
                    let rows = rows.iter().take(limit).map(|row| rows::read_listed(row, keys));
                    return Ok(rows.collect::<Result<Vec<_>, _>>()?);
                }

                // The statements select consecutive runs of the order; stop once the page is
                // full. One repeatable-read transaction gives them all the same snapshot.
                let transaction = client
                    .build_transaction()
                    .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
                    .read_only(true)
                    .start()
                    .await?;
                let mut listed = Vec::new();
                for (text, values) in statements {
                    let statement = transaction.prepare_cached(text).await?;
                    let rows =
                        transaction.query(&statement, &parameters(&statement, values)).await?;
                    for row in &rows {
                        listed.push(rows::read_listed(row, keys)?);
                    }
                    if listed.len() >= limit {
                        listed.truncate(limit);
                        break;
                    }
                }
                transaction.commit().await?;
                Ok(listed)
            }
        });
        timed(Operation::List, read).await
    }

    async fn count(
        &self,
        partner: &PartnerTenantId,
        filter: Option<Typed>,
    ) -> Result<u64, StoreError> {
        let (text, params) = sql::count_query(&Postgres, partner.as_str(), filter.as_ref());
        let read = self.read(|client| {
            let (text, params) = (&text, &params);
            async move { count_rows(&client, text, params).await }
        });
        timed(Operation::Count, read).await
    }

    async fn apply(
        &self,
        partner: &PartnerTenantId,
        query: ApplyQuery,
    ) -> Result<ApplyRows, StoreError> {
        let (text, params) = sql::apply::select_query(&Postgres, partner.as_str(), &query);
        let grouped = query.plan.columns.as_ref().map(Vec::len);
        let values = bound(&params);
        let read = self.read(|client| {
            let (text, values) = (&text, &values);
            async move {
                let statement = client.prepare_cached(text).await?;
                let rows = client.query(&statement, &parameters(&statement, values)).await?;
                let Some(width) = grouped else {
                    let entities = rows.iter().map(rows::read_entity).collect::<Result<_, _>>()?;
                    return Ok(ApplyRows::Entities(entities));
                };
                let cells = rows
                    .iter()
                    .map(|row| (0..width).map(|column| rows::cell(row, column)).collect())
                    .collect::<Result<_, RowError>>()?;
                Ok(ApplyRows::Rows(cells))
            }
        });
        timed(Operation::Apply, read).await
    }

    async fn apply_count(
        &self,
        partner: &PartnerTenantId,
        plan: Plan,
        filter: Option<Typed>,
    ) -> Result<u64, StoreError> {
        let (text, params) =
            sql::apply::count_query(&Postgres, partner.as_str(), &plan, filter.as_ref());
        let read = self.read(|client| {
            let (text, params) = (&text, &params);
            async move { count_rows(&client, text, params).await }
        });
        timed(Operation::ApplyCount, read).await
    }

    async fn check_ready(&self) -> Result<(), StoreError> {
        // One attempt, since a probe that fails is simply asked again.
        let check = async {
            let client = self.client().await.map_err(Failure::into_store_error)?;
            let row = client
                .query_one("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", &[])
                .await
                .map_err(classify)?;
            let found: i64 = row.try_get(0).map_err(classify)?;
            crate::check_schema_version(found, MIGRATIONS)
        };
        timed(Operation::CheckReady, check).await
    }

    async fn begin_import(
        &self,
        partner: &PartnerTenantId,
        on_conflict: OnConflict,
    ) -> Result<Box<dyn Import>, StoreError> {
        let import = import::PostgresImport::begin(self, partner.as_str(), on_conflict).await?;
        Ok(Box::new(import))
    }

    async fn update_gauges(&self) {
        let status = self.pool.status();
        let in_use = status.size.saturating_sub(status.available);
        telemetry::set_pool(in_use, status.available, Some(status.waiting));
        if let Some(rows) = self.recent_row_count().await {
            telemetry::set_rows(rows);
        }
    }

    async fn close(&self) {
        // New operations are rejected from here on. Writes in flight keep their connections
        // and finish, but this does not wait for them.
        self.closed.store(true, Ordering::Release);
        self.pool.close();
    }
}

/// A failed operation before it is mapped to a [`StoreError`].
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error(transparent)]
    Database(#[from] tokio_postgres::Error),
    #[error(transparent)]
    Pool(PoolError),
    #[error(transparent)]
    Row(#[from] RowError),
    #[error(transparent)]
    Store(StoreError),
}

impl Failure {
    /// Returns whether PostgreSQL rolled the transaction back to resolve a conflict, so running
    /// it again cannot apply anything twice.
    fn rolled_back(&self) -> bool {
        let Failure::Database(error) = self else { return false };
        matches!(
            error.code(),
            Some(code) if *code == SqlState::T_R_SERIALIZATION_FAILURE
                || *code == SqlState::T_R_DEADLOCK_DETECTED
        )
    }

    /// Returns whether a read may run again: after a conflict, or after losing its connection.
    fn read_may_retry(&self) -> bool {
        match self {
            Failure::Database(error) => self.rolled_back() || connection_lost(error),
            _ => false,
        }
    }

    fn into_store_error(self) -> StoreError {
        match self {
            Failure::Store(error) => error,
            Failure::Row(error) => StoreError::Internal(Arc::new(error)),
            Failure::Pool(PoolError::Timeout(_)) => StoreError::Busy,
            Failure::Pool(PoolError::Closed) => StoreError::ShuttingDown,
            Failure::Pool(PoolError::Backend(error)) => classify(error),
            Failure::Pool(other) => StoreError::Internal(Arc::new(other)),
            Failure::Database(error) => classify(error),
        }
    }
}

/// Returns whether `error` is a lost or refused connection rather than an error of a statement.
fn connection_lost(error: &tokio_postgres::Error) -> bool {
    if error.is_closed() {
        return true;
    }
    if let Some(database) = error.as_db_error() {
        let code = database.code();
        return *code == SqlState::ADMIN_SHUTDOWN
            || *code == SqlState::CRASH_SHUTDOWN
            || *code == SqlState::CANNOT_CONNECT_NOW;
    }
    std::error::Error::source(error).is_some_and(|source| source.is::<std::io::Error>())
}

/// Maps a driver error to the store's error kinds.
fn classify(error: tokio_postgres::Error) -> StoreError {
    if connection_lost(&error) {
        // The database is out of reach for now, or its server is restarting.
        return StoreError::Busy;
    }
    let Some(database) = error.as_db_error() else {
        return StoreError::Internal(Arc::new(error));
    };
    let code = database.code();
    if code.code() == QUERY_ERROR {
        return StoreError::InvalidQuery(database.message().to_owned());
    }
    if *code == SqlState::INVALID_REGULAR_EXPRESSION {
        return StoreError::InvalidQuery(format!(
            "The pattern of matchesPattern is not a valid regular expression: {}.",
            database.message()
        ));
    }
    if *code == SqlState::CHARACTER_NOT_IN_REPERTOIRE {
        // PostgreSQL text cannot contain U+0000, which SQLite stores and compares.
        return StoreError::InvalidQuery(NUL_MESSAGE.to_owned());
    }
    if *code == SqlState::UNIQUE_VIOLATION {
        return StoreError::Conflict;
    }
    if *code == SqlState::DISK_FULL {
        return StoreError::Full;
    }
    if *code == SqlState::T_R_SERIALIZATION_FAILURE
        || *code == SqlState::T_R_DEADLOCK_DETECTED
        || *code == SqlState::LOCK_NOT_AVAILABLE
        || *code == SqlState::QUERY_CANCELED
        || *code == SqlState::TOO_MANY_CONNECTIONS
    {
        return StoreError::Busy;
    }
    if database_unavailable(code.code()) {
        return StoreError::Busy;
    }
    StoreError::Internal(Arc::new(error))
}

/// Returns whether a SQLSTATE shows that the database cannot serve for now, rather than that
/// the statement is wrong: a lost connection (class 08), too few resources (class 53), an
/// operator's intervention (class 57), a system error (class 58), a database that takes no
/// connections (55000), a read-only database after a failover (25006), or a database, schema
/// or table that is gone (3D000, 3F000, 42P01). A write that fails this way was not applied.
fn database_unavailable(sqlstate: &str) -> bool {
    matches!(sqlstate.get(..2), Some("08" | "53" | "57" | "58"))
        || matches!(sqlstate, "55000" | "25006" | "3D000" | "3F000" | "42P01")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unavailable_database_states_are_recognized() {
        for sqlstate in ["08006", "53300", "57P01", "58030", "55000", "25006", "3D000", "42P01"] {
            assert!(database_unavailable(sqlstate), "{sqlstate}");
        }
        for sqlstate in ["22003", "23505", "42601", "BQ400", "2"] {
            assert!(!database_unavailable(sqlstate), "{sqlstate}");
        }
    }

    #[test]
    fn used_parameters_renumber_in_order_of_use() {
        let params: Vec<Param> = (1..=12).map(Param::Integer).collect();
        let (text, used) = used_parameters("a = $2 AND b > $12::bigint AND c = $2", &params);
        assert_eq!(text, "a = $1 AND b > $2::bigint AND c = $1");
        assert_eq!(used, [Param::Integer(2), Param::Integer(12)]);
    }
}
