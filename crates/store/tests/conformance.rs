//! One suite of store behavior, run against the embedded SQLite store and the PostgreSQL store.
//!
//! Each case is an async function of `Arc<dyn Store>` in [`cases`], and [`conformance!`] turns
//! it into one test per store. The PostgreSQL tests run in a fresh schema each, so they can run
//! in parallel. The `common` module names the server and when these tests are skipped.

mod common;

use std::sync::Arc;

use beacon_store::Store;
use beacon_store::sqlite::{SqliteOptions, SqliteStore};

/// A store under test and what it needs cleaned up afterwards.
struct Harness {
    store: Arc<dyn Store>,
    _folder: Option<tempfile::TempDir>,
    _schema: Option<common::Schema>,
}

impl Harness {
    async fn finish(self) {
        self.store.close().await;
    }
}

fn sqlite() -> Harness {
    let folder = tempfile::tempdir().unwrap();
    let path = folder.path().join("beacon.sqlite3");
    let store = SqliteStore::open(&path, &SqliteOptions::default()).unwrap();
    Harness { store: Arc::new(store), _folder: Some(folder), _schema: None }
}

/// Connects a PostgreSQL store in a fresh schema, or returns `None` where the test is skipped.
async fn postgres(test: &str) -> Option<Harness> {
    let schema = common::schema(&format!("conformance::postgres::{test}")).await?;
    let store = schema.store().await;
    Some(Harness { store: Arc::new(store), _folder: None, _schema: Some(schema) })
}

/// Defines, for each case of [`cases`], a test against each store.
macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let harness = super::sqlite();
                    super::cases::$case(harness.store.clone()).await;
                    harness.finish().await;
                }
            )*
        }

        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let Some(harness) = super::postgres(stringify!($case)).await else {
                        return;
                    };
                    super::cases::$case(harness.store.clone()).await;
                    harness.finish().await;
                }
            )*
        }
    };
}

conformance!(
    created_entity_reads_back_equal,
    merge_changes_the_given_fields_and_the_version,
    replace_sets_every_field,
    stale_version_fails_and_leaves_the_row,
    delete_removes_the_row_once,
    duplicate_key_conflicts_and_keeps_the_first_row,
    partners_do_not_see_each_other,
    pages_follow_code_point_order,
    concurrent_creates_each_get_their_own_answer,
    concurrent_updates_of_one_version_succeed_once,
    filter_and_count_select_the_same_rows,
    order_puts_nulls_first_ascending_and_last_descending,
    sorted_pages_resume_after_their_cursor,
    skip_passes_over_rows,
    string_functions_count_code_points,
    date_functions_read_ticks_in_utc,
    arithmetic_overflow_is_an_invalid_query,
    division_by_zero_is_an_invalid_query,
    groupby_sums_exactly,
    sum_overflow_is_an_invalid_query,
    apply_filters_and_counts,
    groups_sort_nulls_first,
    keys_with_nul_are_not_found,
    closed_store_rejects_writes,
    open_store_is_ready,
    closed_store_is_not_ready,
);

/// Readiness of a store whose schema has lost its migration record, which needs each store's
/// own access to the database.
mod readiness {
    use beacon_store::sqlite::{SqliteOptions, SqliteStore};
    use beacon_store::{Store, StoreError};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_without_migration_record_is_not_ready() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("beacon.sqlite3");
        let store = SqliteStore::open(&path, &SqliteOptions::default()).unwrap();
        store.check_ready().await.unwrap();

        let connection = rusqlite::Connection::open(&path).unwrap();
        connection.execute_batch("DELETE FROM schema_migrations").unwrap();
        drop(connection);

        let error = store.check_ready().await.unwrap_err();
        assert!(
            matches!(error, StoreError::SchemaMismatch { found: 0, expected: 2.. }),
            "{error:?}"
        );
        store.close().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_without_its_file_is_not_ready() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("beacon.sqlite3");
        let store = SqliteStore::open(&path, &SqliteOptions::default()).unwrap();

        std::fs::remove_file(&path).unwrap();

        let error = store.check_ready().await.unwrap_err();
        assert!(matches!(error, StoreError::Internal(_)), "{error:?}");
        store.close().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_without_migration_table_is_not_ready() {
        let Some(schema) =
            super::common::schema("readiness::postgres_without_migration_table_is_not_ready").await
        else {
            return;
        };
        let store = schema.store().await;
        store.check_ready().await.unwrap();

        schema.client().await.batch_execute("DROP TABLE schema_migrations").await.unwrap();

        // A table that is gone means the database cannot serve for now, as when it was dropped.
        let error = store.check_ready().await.unwrap_err();
        assert!(matches!(error, StoreError::Busy), "{error:?}");
        store.close().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_with_newer_schema_is_not_ready() {
        let Some(schema) =
            super::common::schema("readiness::postgres_with_newer_schema_is_not_ready").await
        else {
            return;
        };
        let store = schema.store().await;

        let client = schema.client().await;
        client
            .batch_execute("INSERT INTO schema_migrations (version, name) VALUES (1000, 'future')")
            .await
            .unwrap();

        let error = store.check_ready().await.unwrap_err();
        assert!(
            matches!(error, StoreError::SchemaMismatch { found: 1000, expected: 3.. }),
            "{error:?}"
        );
        store.close().await;
    }
}

mod cases {
    use std::sync::Arc;

    use beacon_odata::bind::{self, Typed};
    use beacon_odata::datetime::DateTimeOffset;
    use beacon_odata::entity::{Entity, Fields, Value};
    use beacon_odata::etag::{Precondition, TagSet};
    use beacon_odata::filter;
    use beacon_odata::model::{Property, View};
    use beacon_store::{
        ApplyQuery, ApplyRows, Cell, Change, ListQuery, OrderKey, PartnerTenantId, Store,
        StoreError,
    };

    fn partner(name: &str) -> PartnerTenantId {
        PartnerTenantId::new(name)
    }

    fn set(fields: &mut Fields, property: Property, value: Value) {
        fields[property.field_index().unwrap()] = Some(value);
    }

    /// Returns an entity whose Int64 exceeds a double's exact range and whose instant has a
    /// fraction.
    fn entity(id: &str) -> Entity {
        let mut fields: Fields = Default::default();
        set(&mut fields, Property::TenantId, Value::String("tenant".into()));
        set(&mut fields, Property::NumberOfCompliantDevices, Value::Int64(9_007_199_254_740_993));
        set(
            &mut fields,
            Property::LastRefreshedDateTime,
            Value::DateTimeOffset(DateTimeOffset::parse("2024-03-01T07:30:00.1234567Z").unwrap()),
        );
        Entity { id: id.into(), fields }
    }

    /// Returns an entity with a display name and an error count, each possibly null.
    fn named(id: &str, name: Option<&str>, errors: Option<i64>) -> Entity {
        let mut fields: Fields = Default::default();
        if let Some(name) = name {
            set(&mut fields, Property::TenantDisplayName, Value::String(name.into()));
        }
        if let Some(errors) = errors {
            set(&mut fields, Property::NumberOfErrorDevices, Value::Int64(errors));
        }
        Entity { id: id.into(), fields }
    }

    /// Returns a precondition that holds only at `version`.
    fn at(version: i64) -> Precondition {
        Precondition {
            if_match: Some(TagSet::Tags(vec![version.to_string().into_bytes()])),
            if_none_match: None,
        }
    }

    fn condition(text: &str) -> Typed {
        bind::filter(&filter::parse(text).unwrap(), View::Graph, 0).unwrap()
    }

    fn key(text: &str, descending: bool) -> OrderKey {
        let expr = bind::value(&filter::parse(text).unwrap(), View::Graph, 0).unwrap();
        OrderKey { expr, descending }
    }

    fn plan(text: &str) -> beacon_odata::bind::apply::Plan {
        let sequence = beacon_odata::apply::parse(text).unwrap();
        bind::apply::plan(&sequence, View::Graph, 0).unwrap()
    }

    async fn ids(store: &Arc<dyn Store>, query: ListQuery) -> Vec<String> {
        let page = store.list(&partner("p"), query).await.unwrap();
        page.into_iter().map(|row| row.stored.entity.id).collect()
    }

    async fn filtered(store: &Arc<dyn Store>, text: &str) -> Result<Vec<String>, StoreError> {
        let query = ListQuery { filter: Some(condition(text)), limit: 100, ..Default::default() };
        let page = store.list(&partner("p"), query).await?;
        Ok(page.into_iter().map(|row| row.stored.entity.id).collect())
    }

    pub async fn created_entity_reads_back_equal(store: Arc<dyn Store>) {
        let created = store.create(&partner("p"), entity("a")).await.unwrap();
        let read = store.get(&partner("p"), "a").await.unwrap();

        assert!(created.version >= 1);
        assert_eq!(read, Some(created));
        assert_eq!(store.get(&partner("p"), "b").await.unwrap(), None);
    }

    pub async fn merge_changes_the_given_fields_and_the_version(store: Arc<dyn Store>) {
        let created = store.create(&partner("p"), entity("a")).await.unwrap();

        let mut patch: beacon_odata::body::Patch = Default::default();
        patch[Property::TenantId.field_index().unwrap()] = Some(None);
        patch[Property::NumberOfErrorDevices.field_index().unwrap()] = Some(Some(Value::Int64(4)));
        let change = Change::Merge(patch);
        let updated = store.update(&partner("p"), "a", change, at(created.version)).await.unwrap();

        assert_eq!(updated.version, created.version + 1);
        assert_eq!(updated.entity.get(Property::TenantId), None);
        assert_eq!(updated.entity.get(Property::NumberOfErrorDevices), Some(&Value::Int64(4)));
        assert_eq!(
            updated.entity.get(Property::NumberOfCompliantDevices),
            created.entity.get(Property::NumberOfCompliantDevices)
        );
        assert_eq!(store.get(&partner("p"), "a").await.unwrap(), Some(updated));
    }

    pub async fn replace_sets_every_field(store: Arc<dyn Store>) {
        store.create(&partner("p"), entity("a")).await.unwrap();

        let replacement = named("a", Some("Contoso"), Some(2)).fields;
        let change = Change::Replace(replacement.clone());
        let updated =
            store.update(&partner("p"), "a", change, Precondition::default()).await.unwrap();

        assert_eq!(updated.entity.fields, replacement);
        assert_eq!(store.get(&partner("p"), "a").await.unwrap(), Some(updated));
    }

    pub async fn stale_version_fails_and_leaves_the_row(store: Arc<dyn Store>) {
        let created = store.create(&partner("p"), entity("a")).await.unwrap();
        let replacement = Change::Replace(Default::default());

        let stale = at(created.version - 1);
        let result = store.update(&partner("p"), "a", replacement.clone(), stale.clone()).await;
        assert!(matches!(result, Err(StoreError::PreconditionFailed)), "{result:?}");
        let result = store.delete(&partner("p"), "a", stale).await;
        assert!(matches!(result, Err(StoreError::PreconditionFailed)), "{result:?}");
        assert_eq!(store.get(&partner("p"), "a").await.unwrap(), Some(created.clone()));

        // Another partner's key does not exist for this partner, whatever the precondition.
        let result = store.update(&partner("q"), "a", replacement, Precondition::default()).await;
        assert!(matches!(result, Err(StoreError::NotFound)), "{result:?}");
        assert_eq!(store.get(&partner("p"), "a").await.unwrap(), Some(created));
    }

    pub async fn delete_removes_the_row_once(store: Arc<dyn Store>) {
        let created = store.create(&partner("p"), entity("a")).await.unwrap();

        let deleted = store.delete(&partner("p"), "a", at(created.version)).await.unwrap();
        assert_eq!(deleted, created);
        assert_eq!(store.get(&partner("p"), "a").await.unwrap(), None);
        let again = store.delete(&partner("p"), "a", Precondition::default()).await;
        assert!(matches!(again, Err(StoreError::NotFound)), "{again:?}");
    }

    pub async fn duplicate_key_conflicts_and_keeps_the_first_row(store: Arc<dyn Store>) {
        store.create(&partner("p"), entity("a")).await.unwrap();

        let mut other = entity("a");
        other.fields = Default::default();
        let error = store.create(&partner("p"), other).await.unwrap_err();

        assert!(matches!(error, StoreError::Conflict), "{error:?}");
        assert_eq!(store.get(&partner("p"), "a").await.unwrap().unwrap().entity, entity("a"));
    }

    pub async fn partners_do_not_see_each_other(store: Arc<dyn Store>) {
        store.create(&partner("p1"), entity("a")).await.unwrap();

        assert_eq!(store.get(&partner("p2"), "a").await.unwrap(), None);
        let query = ListQuery { limit: 10, ..Default::default() };
        assert!(store.list(&partner("p2"), query).await.unwrap().is_empty());
        assert_eq!(store.count(&partner("p2"), None).await.unwrap(), 0);
        store.create(&partner("p2"), entity("a")).await.unwrap();
        assert_eq!(store.count(&partner("p2"), None).await.unwrap(), 1);
    }

    pub async fn pages_follow_code_point_order(store: Arc<dyn Store>) {
        let all = ["b", "a", "Z", "é", "😀", "ab", "\u{ffff}", "É", "z"];
        for id in all {
            store.create(&partner("p"), entity(id)).await.unwrap();
        }

        let mut listed = Vec::new();
        let mut after = None;
        loop {
            let query = ListQuery { after: after.clone(), limit: 2, ..Default::default() };
            let page = store.list(&partner("p"), query).await.unwrap();
            if page.is_empty() {
                break;
            }
            after = Some(page.last().unwrap().cursor.clone());
            listed.extend(page.into_iter().map(|row| row.stored.entity.id));
        }

        let mut expected: Vec<String> = all.map(String::from).to_vec();
        expected.sort_by(|x, y| x.chars().cmp(y.chars()));
        assert_eq!(listed, expected);
    }

    pub async fn concurrent_creates_each_get_their_own_answer(store: Arc<dyn Store>) {
        // Half of the ids repeat, so successes and conflicts interleave.
        let tasks: Vec<_> = (0..200)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move {
                    store.create(&partner("p"), entity(&format!("{:03}", i % 100))).await
                })
            })
            .collect();
        let (mut created, mut conflicts) = (0, 0);
        for task in tasks {
            match task.await.unwrap() {
                Ok(_) => created += 1,
                Err(StoreError::Conflict) => conflicts += 1,
                Err(other) => panic!("unexpected error {other:?}"),
            }
        }

        assert_eq!((created, conflicts), (100, 100));
        assert_eq!(store.count(&partner("p"), None).await.unwrap(), 100);
    }

    pub async fn concurrent_updates_of_one_version_succeed_once(store: Arc<dyn Store>) {
        let created = store.create(&partner("p"), entity("a")).await.unwrap();

        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let store = store.clone();
                let change = Change::Replace(named("a", Some(&format!("writer {i}")), None).fields);
                tokio::spawn(async move {
                    store.update(&partner("p"), "a", change, at(created.version)).await
                })
            })
            .collect();
        let mut winners = Vec::new();
        for task in tasks {
            match task.await.unwrap() {
                Ok(updated) => winners.push(updated),
                Err(StoreError::PreconditionFailed) => {}
                Err(other) => panic!("unexpected error {other:?}"),
            }
        }

        assert_eq!(winners.len(), 1);
        assert_eq!(store.get(&partner("p"), "a").await.unwrap(), winners.pop());
    }

    async fn create_named(store: &Arc<dyn Store>) {
        let rows = [
            ("1", Some("alpha"), Some(3)),
            ("2", Some("Beta"), Some(0)),
            ("3", None, Some(7)),
            ("4", Some("gamma"), None),
            ("5", Some("Ärger"), Some(3)),
        ];
        for (id, name, errors) in rows {
            store.create(&partner("p"), named(id, name, errors)).await.unwrap();
        }
    }

    pub async fn filter_and_count_select_the_same_rows(store: Arc<dyn Store>) {
        create_named(&store).await;

        let cases: [(&str, &[&str]); 8] = [
            ("numberOfErrorDevices eq 3", &["1", "5"]),
            ("numberOfErrorDevices ne 3", &["2", "3", "4"]),
            ("numberOfErrorDevices gt 2", &["1", "3", "5"]),
            ("not (numberOfErrorDevices gt 2)", &["2", "4"]),
            ("tenantDisplayName eq null", &["3"]),
            ("tenantDisplayName lt 'a'", &["2"]),
            ("tenantDisplayName in ('alpha', 'gamma')", &["1", "4"]),
            ("'b' gt 'B'", &["1", "2", "3", "4", "5"]),
        ];
        for (text, expected) in cases {
            assert_eq!(filtered(&store, text).await.unwrap(), expected, "{text}");
            let count = store.count(&partner("p"), Some(condition(text))).await.unwrap();
            assert_eq!(count, expected.len() as u64, "{text}");
        }
    }

    pub async fn order_puts_nulls_first_ascending_and_last_descending(store: Arc<dyn Store>) {
        create_named(&store).await;

        let ascending = ListQuery {
            order: vec![key("tenantDisplayName", false)],
            limit: 10,
            ..Default::default()
        };
        // Code point order puts upper case before lower case and "Ä" after both.
        assert_eq!(ids(&store, ascending).await, ["3", "2", "1", "4", "5"]);
        let descending = ListQuery {
            order: vec![key("numberOfErrorDevices", true)],
            limit: 10,
            ..Default::default()
        };
        assert_eq!(ids(&store, descending).await, ["3", "1", "5", "2", "4"]);
    }

    pub async fn sorted_pages_resume_after_their_cursor(store: Arc<dyn Store>) {
        create_named(&store).await;

        for (order, expected) in [
            (vec![key("numberOfErrorDevices", true)], ["3", "1", "5", "2", "4"]),
            (vec![key("numberOfErrorDevices", false)], ["4", "2", "1", "5", "3"]),
            (vec![key("tolower(tenantDisplayName)", false)], ["3", "1", "2", "4", "5"]),
        ] {
            let mut listed = Vec::new();
            let mut after = None;
            loop {
                let query = ListQuery {
                    order: order.clone(),
                    after: after.clone(),
                    limit: 2,
                    ..Default::default()
                };
                let page = store.list(&partner("p"), query).await.unwrap();
                if page.is_empty() {
                    break;
                }
                after = Some(page.last().unwrap().cursor.clone());
                listed.extend(page.into_iter().map(|row| row.stored.entity.id));
            }
            assert_eq!(listed, expected, "{order:?}");
        }
    }

    pub async fn skip_passes_over_rows(store: Arc<dyn Store>) {
        create_named(&store).await;

        let query = ListQuery { offset: 3, limit: 10, ..Default::default() };
        assert_eq!(ids(&store, query).await, ["4", "5"]);
        let query = ListQuery { offset: 1, limit: 2, ..Default::default() };
        assert_eq!(ids(&store, query).await, ["2", "3"]);
    }

    pub async fn string_functions_count_code_points(store: Arc<dyn Store>) {
        for (id, name) in [("1", "Ärger 😀 GmbH"), ("2", "  straße  "), ("3", "50% off_")] {
            store.create(&partner("p"), named(id, Some(name), None)).await.unwrap();
        }

        let cases: [(&str, &[&str]); 12] = [
            ("length(tenantDisplayName) eq 12", &["1"]),
            ("indexof(tenantDisplayName, 'GmbH') eq 8", &["1"]),
            ("substring(tenantDisplayName, 6, 1) eq '😀'", &["1"]),
            ("substring(tenantDisplayName, 2) eq 'straße  '", &["2"]),
            ("tolower(tenantDisplayName) eq 'ärger 😀 gmbh'", &["1"]),
            ("toupper(trim(tenantDisplayName)) eq 'STRASSE'", &["2"]),
            ("trim(tenantDisplayName) eq 'straße'", &["2"]),
            ("contains(tenantDisplayName, '%')", &["3"]),
            ("contains(tenantDisplayName, 'o_')", &[]),
            ("startswith(tenantDisplayName, 'Är')", &["1"]),
            ("endswith(tenantDisplayName, 'off_')", &["3"]),
            ("concat(tenantDisplayName, '!') eq '50% off_!'", &["3"]),
        ];
        for (text, expected) in cases {
            assert_eq!(filtered(&store, text).await.unwrap(), expected, "{text}");
        }
    }

    pub async fn date_functions_read_ticks_in_utc(store: Arc<dyn Store>) {
        store.create(&partner("p"), entity("a")).await.unwrap();

        let cases = [
            "year(lastRefreshedDateTime) eq 2024",
            "month(lastRefreshedDateTime) eq 3",
            "day(lastRefreshedDateTime) eq 1",
            "hour(lastRefreshedDateTime) eq 7",
            "minute(lastRefreshedDateTime) eq 30",
            "second(lastRefreshedDateTime) eq 0",
            "fractionalseconds(lastRefreshedDateTime) eq 0.1234567",
            "date(lastRefreshedDateTime) eq 2024-03-01",
            "lastRefreshedDateTime gt 2024-03-01T07:30:00.1234566Z",
            "lastRefreshedDateTime lt 2024-03-01T07:30:00.1234568Z",
        ];
        for text in cases {
            assert_eq!(filtered(&store, text).await.unwrap(), ["a"], "{text}");
        }
        let stored = store.get(&partner("p"), "a").await.unwrap().unwrap();
        let instant = stored.entity.get(Property::LastRefreshedDateTime).unwrap();
        assert_eq!(
            *instant,
            Value::DateTimeOffset(DateTimeOffset::parse("2024-03-01T07:30:00.1234567Z").unwrap())
        );
    }

    pub async fn arithmetic_overflow_is_an_invalid_query(store: Arc<dyn Store>) {
        store.create(&partner("p"), entity("a")).await.unwrap();

        let error = filtered(&store, "numberOfCompliantDevices mul 9007199254740993 gt 0")
            .await
            .unwrap_err();
        match error {
            StoreError::InvalidQuery(message) => {
                assert_eq!(message, "The result of 'mul' is outside the range of Edm.Int64.")
            }
            other => panic!("unexpected error {other:?}"),
        }
    }

    pub async fn division_by_zero_is_an_invalid_query(store: Arc<dyn Store>) {
        store.create(&partner("p"), named("a", None, Some(0))).await.unwrap();

        let error = filtered(&store, "3 div numberOfErrorDevices eq 1").await.unwrap_err();
        match error {
            StoreError::InvalidQuery(message) => assert_eq!(message, "Division by zero in 'div'."),
            other => panic!("unexpected error {other:?}"),
        }
    }

    pub async fn groupby_sums_exactly(store: Arc<dyn Store>) {
        for (id, name, errors) in [("1", "x", 9_007_199_254_740_993), ("2", "x", 1), ("3", "y", 5)]
        {
            store.create(&partner("p"), named(id, Some(name), Some(errors))).await.unwrap();
        }

        let query = ApplyQuery {
            plan: plan(
                "groupby((tenantDisplayName),aggregate(numberOfErrorDevices with sum as total,\
                 numberOfErrorDevices with average as mean,$count as rows))",
            ),
            limit: 10,
            ..Default::default()
        };
        let rows = store.apply(&partner("p"), query).await.unwrap();
        let expected = vec![
            vec![
                Cell::Text("x".into()),
                Cell::Integer(9_007_199_254_740_994),
                Cell::Real(4_503_599_627_370_497.0),
                Cell::Integer(2),
            ],
            vec![Cell::Text("y".into()), Cell::Integer(5), Cell::Real(5.0), Cell::Integer(1)],
        ];
        assert_eq!(rows, ApplyRows::Rows(expected));
    }

    pub async fn sum_overflow_is_an_invalid_query(store: Arc<dyn Store>) {
        for id in ["1", "2"] {
            store.create(&partner("p"), named(id, None, Some(i64::MAX))).await.unwrap();
        }

        let query = ApplyQuery {
            plan: plan("aggregate(numberOfErrorDevices with sum as total)"),
            limit: 10,
            ..Default::default()
        };
        match store.apply(&partner("p"), query).await {
            Err(StoreError::InvalidQuery(message)) => {
                assert_eq!(message, "An aggregated sum is outside the range of Edm.Int64.")
            }
            other => panic!("unexpected result {other:?}"),
        }
    }

    pub async fn apply_filters_and_counts(store: Arc<dyn Store>) {
        create_named(&store).await;

        let query = ApplyQuery {
            plan: plan(
                "filter(numberOfErrorDevices ge 3)/orderby(numberOfErrorDevices desc)/top(2)",
            ),
            limit: 10,
            ..Default::default()
        };
        match store.apply(&partner("p"), query).await.unwrap() {
            ApplyRows::Entities(rows) => {
                let ids: Vec<&str> = rows.iter().map(|row| row.entity.id.as_str()).collect();
                assert_eq!(ids, ["3", "1"]);
            }
            other => panic!("unexpected rows {other:?}"),
        }
        let grouped = plan("groupby((numberOfErrorDevices))");
        let count = store.apply_count(&partner("p"), grouped, None).await.unwrap();
        assert_eq!(count, 4);
    }

    pub async fn groups_sort_nulls_first(store: Arc<dyn Store>) {
        create_named(&store).await;

        let query = ApplyQuery {
            plan: plan("groupby((tenantDisplayName))"),
            limit: 10,
            ..Default::default()
        };
        let rows = store.apply(&partner("p"), query).await.unwrap();
        let text = |name: &str| vec![Cell::Text(name.to_owned())];
        let expected =
            vec![vec![Cell::Null], text("Beta"), text("alpha"), text("gamma"), text("Ärger")];
        assert_eq!(rows, ApplyRows::Rows(expected));
    }

    pub async fn keys_with_nul_are_not_found(store: Arc<dyn Store>) {
        store.create(&partner("p"), entity("a")).await.unwrap();

        assert_eq!(store.get(&partner("p"), "a\0").await.unwrap(), None);
        let result = store.delete(&partner("p"), "a\0", Precondition::default()).await;
        assert!(matches!(result, Err(StoreError::NotFound)), "{result:?}");
        let change = Change::Replace(Default::default());
        let result = store.update(&partner("p"), "\0", change, Precondition::default()).await;
        assert!(matches!(result, Err(StoreError::NotFound)), "{result:?}");
    }

    pub async fn closed_store_rejects_writes(store: Arc<dyn Store>) {
        store.close().await;

        let error = store.create(&partner("p"), entity("a")).await.unwrap_err();
        assert!(matches!(error, StoreError::ShuttingDown), "{error:?}");
    }

    pub async fn open_store_is_ready(store: Arc<dyn Store>) {
        store.check_ready().await.unwrap();

        // Writes and reads in between change nothing.
        store.create(&partner("p"), entity("a")).await.unwrap();
        store.get(&partner("p"), "a").await.unwrap();
        store.check_ready().await.unwrap();
    }

    pub async fn closed_store_is_not_ready(store: Arc<dyn Store>) {
        store.close().await;

        let error = store.check_ready().await.unwrap_err();
        assert!(matches!(error, StoreError::ShuttingDown), "{error:?}");
    }
}
