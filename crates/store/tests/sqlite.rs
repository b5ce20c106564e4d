//! What only the embedded store does, against real database files in temporary folders: its
//! file handling, schema checks, statistics and write-ahead log. The behavior both stores share
//! is tested in `conformance.rs`.

use beacon_odata::datetime::DateTimeOffset;
use beacon_odata::entity::{Entity, Fields, Value};
use beacon_odata::model::Property;
use beacon_store::sqlite::{OpenError, SqliteOptions, SqliteStore};
use beacon_store::{PartnerTenantId, Store};

fn partner(name: &str) -> PartnerTenantId {
    PartnerTenantId::new(name)
}

fn entity(id: &str) -> Entity {
    let mut fields: Fields = Default::default();
    let set = |fields: &mut Fields, property: Property, value: Value| {
        fields[property.field_index().unwrap()] = Some(value);
    };
    set(&mut fields, Property::TenantId, Value::String("tenant".into()));
    set(&mut fields, Property::NumberOfCompliantDevices, Value::Int64(9_007_199_254_740_993));
    set(
        &mut fields,
        Property::LastRefreshedDateTime,
        Value::DateTimeOffset(DateTimeOffset::parse("2024-03-01T07:30:00.100Z").unwrap()),
    );
    Entity { id: id.into(), fields }
}

fn open(dir: &tempfile::TempDir) -> SqliteStore {
    SqliteStore::open(&dir.path().join("beacon.sqlite3"), &SqliteOptions::default()).unwrap()
}

#[tokio::test]
async fn rows_survive_closing_and_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    store.create(&partner("p"), entity("a")).await.unwrap();
    store.close().await;
    drop(store);

    let reopened = open(&dir);
    assert_eq!(reopened.get(&partner("p"), "a").await.unwrap().unwrap().entity, entity("a"));
}

#[test]
fn newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("beacon.sqlite3");
    drop(SqliteStore::open(&path, &SqliteOptions::default()).unwrap());
    let connection = rusqlite::Connection::open(&path).unwrap();
    connection.execute("INSERT INTO schema_migrations VALUES (999, 'future', 'now')", []).unwrap();
    drop(connection);

    let error = SqliteStore::open(&path, &SqliteOptions::default()).unwrap_err();
    assert!(matches!(error, OpenError::SchemaTooNew { found: 999, .. }), "{error}");
}

#[test]
fn non_database_file_is_rejected_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("beacon.sqlite3");
    std::fs::write(&path, b"not a database, but the user's data all the same").unwrap();

    assert!(SqliteStore::open(&path, &SqliteOptions::default()).is_err());
    assert_eq!(std::fs::read(&path).unwrap(), b"not a database, but the user's data all the same");
}

#[test]
fn database_of_another_program_is_rejected_unchanged() {
    // The second layout is golang-migrate's, which also has a schema_migrations table.
    for schema in [
        "CREATE TABLE customers (name TEXT); INSERT INTO customers VALUES ('a');",
        "CREATE TABLE schema_migrations (version uint64, dirty bool);
         INSERT INTO schema_migrations VALUES (1, 0);
         CREATE TABLE users (id INTEGER PRIMARY KEY);",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("beacon.sqlite3");
        let connection = rusqlite::Connection::open(&path).unwrap();
        connection.execute_batch(schema).unwrap();
        drop(connection);
        let before = std::fs::read(&path).unwrap();

        let error = SqliteStore::open(&path, &SqliteOptions::default()).unwrap_err();

        assert!(matches!(error, OpenError::Foreign { .. }), "{error}");
        assert!(std::fs::read(&path).unwrap() == before, "the file changed");
    }
}

#[test]
fn newer_schema_is_refused_without_changing_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("beacon.sqlite3");
    drop(SqliteStore::open(&path, &SqliteOptions::default()).unwrap());
    let connection = rusqlite::Connection::open(&path).unwrap();
    connection.pragma_update(None, "journal_mode", "DELETE").unwrap();
    connection.execute("INSERT INTO schema_migrations VALUES (99, 'future', 'now')", []).unwrap();
    drop(connection);
    let before = std::fs::read(&path).unwrap();

    let error = SqliteStore::open(&path, &SqliteOptions::default()).unwrap_err();

    assert!(matches!(error, OpenError::SchemaTooNew { found: 99, .. }), "{error}");
    assert!(std::fs::read(&path).unwrap() == before, "the file changed");
}

#[test]
fn opening_gathers_statistics_so_filters_use_their_index() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("beacon.sqlite3");
    drop(SqliteStore::open(&path, &SqliteOptions::default()).unwrap());

    // Rows written behind the store's back, as an import or a restore would.
    let connection = rusqlite::Connection::open(&path).unwrap();
    connection.execute_batch("BEGIN").unwrap();
    connection
        .execute("INSERT INTO beacon_partner (partner_key, partner_tenant_id) VALUES (1, 'p')", [])
        .unwrap();
    for i in 0..5000 {
        connection
            .execute(
                "INSERT INTO aggregated_policy_compliance (partner_key, id, tenant_id, version) \
                 VALUES (1, ?1, ?2, 1)",
                (format!("{i:05}"), format!("t{}", i % 50)),
            )
            .unwrap();
    }
    connection.execute_batch("COMMIT").unwrap();
    drop(connection);

    drop(SqliteStore::open(&path, &SqliteOptions::default()).unwrap());
    let connection = rusqlite::Connection::open(&path).unwrap();
    let plan: String = connection
        .query_row(
            "EXPLAIN QUERY PLAN SELECT * FROM aggregated_policy_compliance \
             WHERE partner_key = (SELECT partner_key FROM beacon_partner \
             WHERE partner_tenant_id = 'p') AND tenant_id = 't7' ORDER BY id LIMIT 101",
            [],
            |row| row.get(3),
        )
        .unwrap();
    assert!(plan.contains("aggregated_policy_compliance_by_tenant"), "plan: {plan}");
}

#[tokio::test]
async fn closing_empties_the_write_ahead_log() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    for i in 0..50 {
        store.create(&partner("p"), entity(&format!("{i}"))).await.unwrap();
    }
    let wal = dir.path().join("beacon.sqlite3-wal");
    assert!(std::fs::metadata(&wal).unwrap().len() > 0, "the writes went through the log");

    store.close().await;

    let length = std::fs::metadata(&wal).map_or(0, |metadata| metadata.len());
    assert_eq!(length, 0, "the log was checkpointed and emptied");
    let reopened = open(&dir);
    assert_eq!(reopened.count(&partner("p"), None).await.unwrap(), 50);
}

/// Creates a database at schema version 2, when the table stored each row's partner tenant id,
/// with the rows `(partner, id, version)`.
fn create_version_2_database(path: &std::path::Path, rows: &[(&str, &str, i64)]) {
    let connection = rusqlite::Connection::open(path).unwrap();
    connection.execute_batch("PRAGMA journal_mode = WAL").unwrap();
    connection
        .execute_batch(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, \
             applied_at TEXT NOT NULL) STRICT",
        )
        .unwrap();
    let migrations = [
        include_str!("../migrations/sqlite/0001_create_aggregated_policy_compliance.sql"),
        include_str!("../migrations/sqlite/0002_index_common_filters.sql"),
    ];
    for (version, sql) in (1..).zip(migrations) {
        connection.execute_batch(sql).unwrap();
        connection
            .execute(
                "INSERT INTO schema_migrations VALUES (?1, 'earlier', '2026-01-01T00:00:00Z')",
                [version],
            )
            .unwrap();
    }
    for (partner, id, version) in rows {
        connection
            .execute(
                "INSERT INTO aggregated_policy_compliance (partner_tenant_id, id, tenant_id, \
                 number_of_compliant_devices, last_refreshed_ticks, last_refreshed_digits, \
                 version) VALUES (?1, ?2, 'tenant', 9007199254740993, 17092782001000000, 3, ?3)",
                (partner, id, version),
            )
            .unwrap();
    }
}

#[tokio::test]
async fn migration_to_partner_keys_keeps_every_row() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("beacon.sqlite3");
    let rows = [("p1", "a", 11), ("p1", "b", 12), ("p2", "a", 21), ("p2", "c", 23)];
    create_version_2_database(&path, &rows);

    let store = open(&dir);
    for (name, id, version) in rows {
        let stored = store.get(&partner(name), id).await.unwrap();
        let stored = stored.unwrap_or_else(|| panic!("{name}/{id} is missing"));
        assert_eq!(stored.version, version, "{name}/{id}");
        assert_eq!(stored.entity, entity(id), "{name}/{id}");
    }
    assert_eq!(store.count(&partner("p1"), None).await.unwrap(), 2);
    assert_eq!(store.count(&partner("p2"), None).await.unwrap(), 2);
    assert_eq!(store.count(&partner("p3"), None).await.unwrap(), 0);

    // A partner without rows before the migration gets its key on its first create.
    store.create(&partner("p3"), entity("a")).await.unwrap();
    assert_eq!(store.count(&partner("p3"), None).await.unwrap(), 1);
    assert_eq!(store.count(&partner("p1"), None).await.unwrap(), 2);
    store.close().await;
    drop(store);

    let connection = rusqlite::Connection::open(&path).unwrap();
    let integrity: String =
        connection.query_row("PRAGMA integrity_check", [], |row| row.get(0)).unwrap();
    assert_eq!(integrity, "ok");
    let partners: Vec<(i64, String)> = connection
        .prepare("SELECT partner_key, partner_tenant_id FROM beacon_partner ORDER BY 1")
        .unwrap()
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(partners, [(1, "p1".to_owned()), (2, "p2".to_owned()), (3, "p3".to_owned())]);
    let indexes: Vec<String> = connection
        .prepare(
            "SELECT sql FROM sqlite_schema WHERE type = 'index' \
             AND tbl_name = 'aggregated_policy_compliance' AND sql IS NOT NULL ORDER BY name",
        )
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(indexes.len(), 7, "{indexes:?}");
    for index in &indexes {
        assert!(index.contains("(partner_key, "), "{index}");
    }
}

#[tokio::test]
async fn partner_without_rows_reads_nothing_and_registers_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    store.create(&partner("p1"), entity("a")).await.unwrap();

    assert_eq!(store.get(&partner("p2"), "a").await.unwrap(), None);
    assert_eq!(store.count(&partner("p2"), None).await.unwrap(), 0);
    store.close().await;
    drop(store);

    let connection = rusqlite::Connection::open(dir.path().join("beacon.sqlite3")).unwrap();
    let partners: i64 =
        connection.query_row("SELECT COUNT(*) FROM beacon_partner", [], |row| row.get(0)).unwrap();
    assert_eq!(partners, 1, "only a create registers a partner");
}

#[test]
fn older_schema_is_left_alone_without_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("beacon.sqlite3");
    create_version_2_database(&path, &[("p1", "a", 11)]);
    let before = std::fs::read(&path).unwrap();

    let options = SqliteOptions { upgrade: false, ..SqliteOptions::default() };
    let error = SqliteStore::open(&path, &options).unwrap_err();

    assert!(matches!(error, OpenError::SchemaTooOld { found: 2, .. }), "{error}");
    assert!(error.to_string().contains("start this one"), "{error}");
    assert!(std::fs::read(&path).unwrap() == before, "the file changed");
}

#[test]
fn new_file_is_set_up_without_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("beacon.sqlite3");
    let options = SqliteOptions { upgrade: false, ..SqliteOptions::default() };

    drop(SqliteStore::open(&path, &options).unwrap());

    // Opening it again finds the newest version, which needs no upgrade.
    drop(SqliteStore::open(&path, &options).unwrap());
}
