//! The benchmark's PostgreSQL schema: created fresh for each run, migrated by the store,
//! loaded with `COPY`, and dropped at the end.
//!
//! The schema is selected with the connection option `-csearch_path=SCHEMA`, which the store,
//! the server's `--database` URL and the loader all carry, so the benchmark never touches the
//! database's other schemas.

use std::error::Error as StdError;
use std::pin::pin;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, ensure};
use beacon_store::postgres::{PostgresOptions, PostgresStore};
use beacon_store::sql::TABLE;
use beacon_store::{Param, Store};
use bytes::BytesMut;
use rusqlite::types::Value;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{IsNull, ToSql, Type, to_sql_checked};
use tokio_postgres::{Client, NoTls};

use crate::dataset::{self, LoadReport, Shape};

/// The connections of the store that the benchmark opens itself. Every request is
/// sequential, so one would do, and a few more cost nothing.
pub const POOL_SIZE: usize = 4;

/// A schema of the benchmark's own in the database at a base URL.
#[derive(Debug)]
pub struct BenchSchema {
    base_url: String,
    name: String,
}

impl BenchSchema {
    /// Creates a schema named after this process and the time, so that concurrent runs on
    /// one database do not meet.
    pub async fn create(base_url: &str) -> anyhow::Result<BenchSchema> {
        let seconds = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let name = format!("beacon_bench_{}_{seconds}", std::process::id());
        let client = connect(base_url).await?;
        client
            .batch_execute(&format!("CREATE SCHEMA {name}"))
            .await
            .with_context(|| format!("cannot create the schema {name} at {base_url}"))?;
        Ok(BenchSchema { base_url: base_url.to_owned(), name })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Returns the base URL with the option that selects this schema, for the store and
    /// for `beacon serve --database`.
    pub fn url(&self) -> String {
        let separator = if self.base_url.contains('?') { '&' } else { '?' };
        format!("{}{separator}options=-csearch_path%3D{}", self.base_url, self.name)
    }

    /// Opens the store in this schema, which applies its migrations.
    pub async fn open_store(&self) -> anyhow::Result<PostgresStore> {
        let options = PostgresOptions { pool_size: POOL_SIZE, ..PostgresOptions::default() };
        PostgresStore::open(&self.url(), &options).await.with_context(|| {
            format!("cannot open the PostgreSQL store in the schema {}", self.name)
        })
    }

    /// Opens one plain connection in this schema.
    pub async fn client(&self) -> anyhow::Result<Client> {
        connect(&self.url()).await
    }

    /// Drops the schema and everything in it.
    pub async fn drop_schema(self) -> anyhow::Result<()> {
        let client = connect(&self.base_url).await?;
        client
            .batch_execute(&format!("DROP SCHEMA {} CASCADE", self.name))
            .await
            .with_context(|| format!("cannot drop the schema {}", self.name))
    }
}

/// Opens a connection of the benchmark's own, for the schema, the `COPY` and `EXPLAIN`.
// NOTE: these connections never use TLS, so a URL with `sslmode=require` fails here, although
// the store and the server would connect with it.
async fn connect(url: &str) -> anyhow::Result<Client> {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .with_context(|| format!("cannot connect to PostgreSQL at {url}"))?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            eprintln!("a PostgreSQL connection of the benchmark failed: {error}");
        }
    });
    Ok(client)
}

/// Creates the store's table in `schema` by opening the store once, then copies the rows of
/// `shape` into it with one binary `COPY` and runs `VACUUM (ANALYZE)`.
///
/// The vacuum sets the visibility map, which lets index-only scans skip the table, and the
/// analyze gives the planner statistics, as autovacuum does some time after a large load. The
/// SQLite store likewise runs `ANALYZE` when it opens a database that has grown tenfold.
pub async fn load(schema: &BenchSchema, partner: &str, shape: Shape) -> anyhow::Result<LoadReport> {
    schema.open_store().await?.close().await;

    let started = Instant::now();
    let rows = dataset::Rows::new(partner, shape)?;
    let client = schema.client().await?;
    let columns = ["partner_tenant_id"].iter().chain(rows.columns()).copied().collect::<Vec<_>>();
    let column_list = columns.join(", ");

    // The column types come from the table itself, so the copy follows the migrations.
    let probe = client.prepare(&format!("SELECT {column_list} FROM {TABLE} LIMIT 0")).await?;
    let types: Vec<Type> = probe.columns().iter().map(|column| column.type_().clone()).collect();

    let sink = client
        .copy_in(&format!("COPY {TABLE} ({column_list}) FROM STDIN (FORMAT binary)"))
        .await
        .context("cannot start the COPY")?;
    let mut writer = pin!(BinaryCopyInWriter::new(sink, &types));
    for values in rows {
        let values: Vec<Bind> = values?.into_iter().map(Bind).collect();
        let references: Vec<&(dyn ToSql + Sync)> =
            values.iter().map(|value| value as &(dyn ToSql + Sync)).collect();
        writer.as_mut().write(&references).await.context("the COPY failed")?;
    }
    let copied = writer.finish().await.context("the COPY failed to finish")?;
    ensure!(copied == shape.rows as u64, "COPY stored {copied} rows, not {}", shape.rows);

    client
        .batch_execute(&format!("VACUUM (ANALYZE) {TABLE}"))
        .await
        .context("VACUUM (ANALYZE) after the load failed")?;
    Ok(LoadReport { rows: shape.rows, elapsed: started.elapsed() })
}

/// Returns the output of `EXPLAIN (ANALYZE, BUFFERS)` for the statement `text` with `params`,
/// with one line of the plan per line.
pub async fn explain_analyze(
    client: &Client,
    text: &str,
    params: &[Param],
) -> anyhow::Result<String> {
    let values: Vec<Bind> = params.iter().map(Bind::from_param).collect();
    let references: Vec<&(dyn ToSql + Sync)> =
        values.iter().map(|value| value as &(dyn ToSql + Sync)).collect();
    let rows = client
        .query(&format!("EXPLAIN (ANALYZE, BUFFERS) {text}"), &references)
        .await
        .with_context(|| format!("EXPLAIN of {text} failed"))?;
    let lines: Vec<String> = rows.iter().map(|row| row.get::<_, String>(0)).collect();
    Ok(lines.join("\n"))
}

/// A generated or compiled value, in the binary form of the column or parameter type it is
/// bound to.
#[derive(Debug)]
struct Bind(Value);

impl Bind {
    fn from_param(param: &Param) -> Bind {
        Bind(match param {
            Param::Null => Value::Null,
            Param::Integer(value) => Value::Integer(*value),
            Param::Text(text) => Value::Text(text.clone()),
        })
    }
}

impl ToSql for Bind {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn StdError + Sync + Send>> {
        match &self.0 {
            Value::Null => Ok(IsNull::Yes),
            Value::Text(text) => text.to_sql(ty, out),
            Value::Integer(value) => match *ty {
                Type::INT2 => i16::try_from(*value)?.to_sql(ty, out),
                Type::INT4 => i32::try_from(*value)?.to_sql(ty, out),
                _ => value.to_sql(ty, out),
            },
            other => Err(format!("the benchmark binds no value like {other:?}").into()),
        }
    }

    fn accepts(ty: &Type) -> bool {
        <String as ToSql>::accepts(ty) || matches!(*ty, Type::INT2 | Type::INT4 | Type::INT8)
    }

    to_sql_checked!();
}
