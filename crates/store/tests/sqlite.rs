//! The embedded store against real database files in temporary folders.

use beacon_odata::datetime::DateTimeOffset;
use beacon_odata::entity::{Entity, Fields, Value};
use beacon_odata::etag::{Precondition, TagSet};
use beacon_odata::model::Property;
use beacon_store::sqlite::{OpenError, SqliteOptions, SqliteStore};
use beacon_store::{Change, ListQuery, PartnerTenantId, Store, StoreError};

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
async fn created_entity_reads_back_equal() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);

    let created = store.create(&partner("p"), entity("a")).await.unwrap();
    let read = store.get(&partner("p"), "a").await.unwrap();

    assert!(created.version >= 1);
    assert_eq!(read, Some(created));
}

/// A precondition that holds only at `version`.
fn at(version: i64) -> Precondition {
    Precondition {
        if_match: Some(TagSet::Tags(vec![version.to_string().into_bytes()])),
        if_none_match: None,
    }
}

#[tokio::test]
async fn merge_changes_the_given_fields_and_the_version() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let created = store.create(&partner("p"), entity("a")).await.unwrap();

    let mut patch: beacon_odata::body::Patch = Default::default();
    patch[Property::TenantId.field_index().unwrap()] = Some(None);
    patch[Property::NumberOfErrorDevices.field_index().unwrap()] = Some(Some(Value::Int64(4)));
    let updated =
        store.update(&partner("p"), "a", Change::Merge(patch), at(created.version)).await.unwrap();

    assert_eq!(updated.version, created.version + 1);
    assert_eq!(updated.entity.get(Property::TenantId), None);
    assert_eq!(updated.entity.get(Property::NumberOfErrorDevices), Some(&Value::Int64(4)));
    assert_eq!(
        updated.entity.get(Property::NumberOfCompliantDevices),
        created.entity.get(Property::NumberOfCompliantDevices)
    );
    assert_eq!(store.get(&partner("p"), "a").await.unwrap(), Some(updated));
}

#[tokio::test]
async fn a_stale_version_fails_and_leaves_the_row_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let created = store.create(&partner("p"), entity("a")).await.unwrap();
    let replacement = Change::Replace(Default::default());

    let stale = at(created.version - 1);
    let result = store.update(&partner("p"), "a", replacement.clone(), stale.clone()).await;
    assert!(matches!(result, Err(StoreError::PreconditionFailed)));
    let result = store.delete(&partner("p"), "a", stale).await;
    assert!(matches!(result, Err(StoreError::PreconditionFailed)));
    assert_eq!(store.get(&partner("p"), "a").await.unwrap(), Some(created.clone()));

    // Another partner's key does not exist for this partner, whatever the precondition.
    let result = store.update(&partner("q"), "a", replacement, Precondition::default()).await;
    assert!(matches!(result, Err(StoreError::NotFound)));
    assert_eq!(store.get(&partner("p"), "a").await.unwrap(), Some(created));
}

#[tokio::test]
async fn delete_removes_the_row_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let created = store.create(&partner("p"), entity("a")).await.unwrap();

    let deleted = store.delete(&partner("p"), "a", Precondition::default()).await.unwrap();
    assert_eq!(deleted, created);
    assert_eq!(store.get(&partner("p"), "a").await.unwrap(), None);
    let again = store.delete(&partner("p"), "a", Precondition::default()).await;
    assert!(matches!(again, Err(StoreError::NotFound)));
}

#[tokio::test]
async fn duplicate_key_conflicts_and_keeps_the_first_row() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    store.create(&partner("p"), entity("a")).await.unwrap();

    let mut other = entity("a");
    other.fields = Default::default();
    let error = store.create(&partner("p"), other).await.unwrap_err();

    assert!(matches!(error, StoreError::Conflict), "{error:?}");
    assert_eq!(store.get(&partner("p"), "a").await.unwrap().unwrap().entity, entity("a"));
}

#[tokio::test]
async fn partners_do_not_see_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    store.create(&partner("p1"), entity("a")).await.unwrap();

    assert_eq!(store.get(&partner("p2"), "a").await.unwrap(), None);
    let page =
        store.list(&partner("p2"), ListQuery { limit: 10, ..Default::default() }).await.unwrap();
    assert!(page.is_empty());
    store.create(&partner("p2"), entity("a")).await.unwrap();
}

#[tokio::test]
async fn pages_follow_code_point_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    for id in ["b", "a", "Z", "é", "😀", "ab", "\u{ffff}"] {
        store.create(&partner("p"), entity(id)).await.unwrap();
    }

    let mut ids = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .list(&partner("p"), ListQuery { after: after.clone(), limit: 2, ..Default::default() })
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        after = Some(page.last().unwrap().cursor.clone());
        ids.extend(page.into_iter().map(|row| row.stored.entity.id));
    }

    let mut expected: Vec<String> =
        ["b", "a", "Z", "é", "😀", "ab", "\u{ffff}"].map(String::from).to_vec();
    expected.sort_by(|x, y| x.chars().cmp(y.chars()));
    assert_eq!(ids, expected);
}

#[tokio::test]
async fn concurrent_creates_each_get_their_own_answer() {
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(open(&dir));

    // Half of the ids repeat, so each group mixes successes and conflicts.
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store.create(&partner("p"), entity(&format!("{:03}", i % 100))).await
            })
        })
        .collect();
    let mut created = 0;
    let mut conflicts = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => created += 1,
            Err(StoreError::Conflict) => conflicts += 1,
            Err(other) => panic!("unexpected error {other:?}"),
        }
    }

    assert_eq!((created, conflicts), (100, 100));
    let page =
        store.list(&partner("p"), ListQuery { limit: 1000, ..Default::default() }).await.unwrap();
    assert_eq!(page.len(), 100);
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

#[tokio::test]
async fn closed_store_rejects_writes() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    store.close().await;

    let error = store.create(&partner("p"), entity("a")).await.unwrap_err();
    assert!(matches!(error, StoreError::ShuttingDown), "{error:?}");
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
    for i in 0..5000 {
        connection
            .execute(
                "INSERT INTO aggregated_policy_compliance (partner_tenant_id, id, tenant_id, version) \
                 VALUES ('p', ?1, ?2, 1)",
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
             WHERE partner_tenant_id = 'p' AND tenant_id = 't7' ORDER BY id LIMIT 101",
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
