//! Versioned schema migrations, applied in order when the store opens.
//!
//! Each migration runs in its own transaction together with the row that records it in
//! `schema_migrations`, so a file is always at exactly one known version.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension};

use super::OpenError;

/// Every migration, by version, with its SQL. Versions start at 1 and have no gaps.
pub const MIGRATIONS: &[(i64, &str, &str)] = &[(
    1,
    "create aggregated_policy_compliance",
    include_str!("../../migrations/sqlite/0001_create_aggregated_policy_compliance.sql"),
)];

/// Brings the schema of `connection` to the newest version.
pub(super) fn run(connection: &mut Connection, path: &Path) -> Result<(), OpenError> {
    let migrate_error = |source| OpenError::Migrate { path: path.to_owned(), source };

    // A database that has tables but no migration record belongs to another program.
    let tables: Vec<String> = connection
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
        .and_then(|mut statement| statement.query_map([], |row| row.get(0))?.collect())
        .map_err(migrate_error)?;
    if !tables.is_empty() && !tables.iter().any(|name| name == "schema_migrations") {
        return Err(OpenError::Foreign { path: path.to_owned(), tables });
    }

    connection
        .execute_batch(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                 version INTEGER PRIMARY KEY,
                 name TEXT NOT NULL,
                 applied_at TEXT NOT NULL
             ) STRICT",
        )
        .map_err(migrate_error)?;
    let current: i64 = connection
        .query_row("SELECT max(version) FROM schema_migrations", [], |row| row.get(0))
        .optional()
        .map_err(migrate_error)?
        .flatten()
        .unwrap_or(0);

    let known = MIGRATIONS.last().map_or(0, |(version, _, _)| *version);
    if current > known {
        return Err(OpenError::SchemaTooNew { path: path.to_owned(), found: current, known });
    }

    for (version, name, sql) in MIGRATIONS.iter().filter(|(version, _, _)| *version > current) {
        let transaction = connection.transaction().map_err(migrate_error)?;
        transaction.execute_batch(sql).map_err(migrate_error)?;
        transaction
            .execute(
                "INSERT INTO schema_migrations (version, name, applied_at) \
                 VALUES (?1, ?2, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))",
                (version, name),
            )
            .map_err(migrate_error)?;
        transaction.commit().map_err(migrate_error)?;
        tracing::info!(version, name, "applied database migration");
    }
    Ok(())
}
