//! Versioned schema migrations, applied in order when the store opens.
//!
//! Each migration runs in its own transaction together with the row that records it in
//! `schema_migrations`, so a file is always at exactly one known version.

use std::path::Path;

use rusqlite::{Connection, OpenFlags, OptionalExtension};

use super::OpenError;

/// Every migration, by version, with its SQL. Versions start at 1 and have no gaps.
pub const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "create aggregated_policy_compliance",
        include_str!("../../migrations/sqlite/0001_create_aggregated_policy_compliance.sql"),
    ),
    (
        2,
        "index common filters",
        include_str!("../../migrations/sqlite/0002_index_common_filters.sql"),
    ),
    (3, "partner key", include_str!("../../migrations/sqlite/0003_partner_key.sql")),
];

/// The `application_id` in the header of every database file Beacon creates ("BEAC" in ASCII),
/// which distinguishes Beacon's files from other programs' SQLite files.
pub(super) const APPLICATION_ID: i64 = 0x4245_4143;

/// Checks, without changing the file, that an existing database at `path` is one this build
/// can open: a SQLite file that is empty or carries Beacon's application id, with a schema
/// version no newer than the last of [`MIGRATIONS`]. Returns the file's schema version, 0 for
/// a file that does not exist or has no tables.
pub(super) fn inspect(path: &Path) -> Result<i64, OpenError> {
    let open_error = |source| OpenError::Open { path: path.to_owned(), source };
    if !path.exists() {
        return Ok(0);
    }
    let connection =
        Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(open_error)?;

    let application_id: i64 =
        connection.query_row("PRAGMA application_id", [], |row| row.get(0)).map_err(open_error)?;
    let tables: Vec<String> = connection
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
        .and_then(|mut statement| statement.query_map([], |row| row.get(0))?.collect())
        .map_err(open_error)?;
    if tables.is_empty() {
        return Ok(0);
    }
    if application_id != APPLICATION_ID {
        return Err(OpenError::Foreign { path: path.to_owned(), tables });
    }

    let found: i64 = connection
        .query_row("SELECT coalesce(max(version), 0) FROM schema_migrations", [], |row| row.get(0))
        .map_err(open_error)?;
    let known = MIGRATIONS.last().map_or(0, |(version, _, _)| *version);
    if found > known {
        return Err(OpenError::SchemaTooNew { path: path.to_owned(), found, known });
    }
    Ok(found)
}

/// Reads the highest version recorded in `schema_migrations`, 0 when none is.
pub(super) fn recorded_version(connection: &Connection) -> Result<i64, rusqlite::Error> {
    connection
        .query_row("SELECT coalesce(max(version), 0) FROM schema_migrations", [], |row| row.get(0))
}

/// Brings the schema of `connection` to the newest version.
pub(super) fn run(connection: &mut Connection, path: &Path) -> Result<(), OpenError> {
    let migrate_error = |source| OpenError::Migrate { path: path.to_owned(), source };

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
