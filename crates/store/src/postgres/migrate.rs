//! Versioned schema migrations for PostgreSQL, applied in order when the store connects.
//!
//! The migrations run under a session-level advisory lock, so of several servers that start at
//! once against the same database, one migrates and the others wait and then find nothing to
//! do. Each migration runs in its own transaction together with the row that records it in
//! `schema_migrations`, so the schema is always at exactly one known version.

use tokio_postgres::Client;

use super::OpenError;

/// Every migration, by version, with its SQL. Versions start at 1 and have no gaps.
pub const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "create aggregated_policy_compliance",
        include_str!("../../migrations/postgres/0001_create_aggregated_policy_compliance.sql"),
    ),
    (
        2,
        "index common filters",
        include_str!("../../migrations/postgres/0002_index_common_filters.sql"),
    ),
    (
        3,
        "create odata functions",
        include_str!("../../migrations/postgres/0003_create_odata_functions.sql"),
    ),
];

/// The key of the advisory lock held while migrating ("BEAC" in ASCII).
const LOCK_KEY: i64 = 0x4245_4143;

/// Brings the schema that `client`'s search path selects to the newest version; with
/// `upgrade` false, only an empty schema.
pub(super) async fn run(client: &mut Client, upgrade: bool) -> Result<(), OpenError> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&LOCK_KEY])
        .await
        .map_err(OpenError::Connect)?;
    let result = migrate(client, upgrade).await;
    // Closing the session would release the lock too, but the connection returns to the pool.
    let unlocked = client.execute("SELECT pg_advisory_unlock($1)", &[&LOCK_KEY]).await;
    result?;
    unlocked.map_err(OpenError::Connect)?;
    Ok(())
}

async fn migrate(client: &mut Client, upgrade: bool) -> Result<(), OpenError> {
    let migrate_error = |version| move |source| OpenError::Migrate { version, source };
    // The table is created only when missing, so a server can start on a read-only standby
    // whose schema is current.
    let exists: bool = client
        .query_one("SELECT to_regclass('schema_migrations') IS NOT NULL", &[])
        .await
        .map_err(migrate_error(0))?
        .get(0);
    if !exists {
        client
            .batch_execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (
                     version BIGINT PRIMARY KEY,
                     name TEXT NOT NULL,
                     applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
                 )",
            )
            .await
            .map_err(migrate_error(0))?;
    }
    let current: i64 = client
        .query_one("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", &[])
        .await
        .map_err(migrate_error(0))?
        .get(0);

    let known = MIGRATIONS.last().map_or(0, |(version, _, _)| *version);
    if current > known {
        return Err(OpenError::SchemaTooNew { found: current, known });
    }
    if !upgrade && current > 0 && current < known {
        return Err(OpenError::SchemaTooOld { found: current, known });
    }

    for (version, name, sql) in MIGRATIONS.iter().filter(|(version, _, _)| *version > current) {
        let transaction = client.transaction().await.map_err(migrate_error(*version))?;
        transaction.batch_execute(sql).await.map_err(migrate_error(*version))?;
        transaction
            .execute(
                "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                &[version, name],
            )
            .await
            .map_err(migrate_error(*version))?;
        transaction.commit().await.map_err(migrate_error(*version))?;
        tracing::info!(version, name, "applied database migration");
    }
    Ok(())
}
