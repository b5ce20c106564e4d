//! What only the PostgreSQL store does: its migrations, and its `odata_*` SQL functions, which
//! must give what the SQLite store's functions give for the same arguments. Each test runs in
//! a fresh schema and is skipped as `common` describes when the server cannot be reached.

mod common;

use beacon_odata::bind;
use beacon_odata::entity::{Entity, Fields, Value};
use beacon_odata::filter;
use beacon_odata::model::{Property, View};
use beacon_store::postgres::{
    MIGRATIONS, NUL_MESSAGE, OpenError, PostgresOptions, PostgresStore, QUERY_ERROR,
};
use beacon_store::sqlite::functions;
use beacon_store::{ListQuery, ListedEntity, OrderKey, PartnerTenantId, Store};
use rusqlite::types::ValueRef;

#[tokio::test]
async fn newer_schema_is_rejected_with_its_version() {
    let Some(schema) = common::schema("postgres::newer_schema_is_rejected_with_its_version").await
    else {
        return;
    };
    schema.store().await.close().await;
    let known = MIGRATIONS.last().unwrap().0;
    let client = schema.client().await;
    client
        .execute(
            "INSERT INTO schema_migrations (version, name) VALUES ($1, 'from the future')",
            &[&(known + 1)],
        )
        .await
        .unwrap();

    let error =
        PostgresStore::connect(schema.config(), &PostgresOptions::default()).await.unwrap_err();

    assert!(matches!(error, OpenError::SchemaTooNew { found, .. } if found == known + 1));
    let message = error.to_string();
    assert!(message.contains(&format!("schema has version {}", known + 1)), "{message}");
    assert!(message.contains("run a newer Beacon"), "{message}");
}

#[tokio::test]
async fn older_schema_is_left_alone_without_upgrade() {
    let Some(schema) = common::schema("postgres::older_schema_is_left_alone_without_upgrade").await
    else {
        return;
    };
    schema.store().await.close().await;
    let client = schema.client().await;
    client.execute("DELETE FROM schema_migrations WHERE version > 1", &[]).await.unwrap();

    let options = PostgresOptions { upgrade: false, ..PostgresOptions::default() };
    let error = PostgresStore::connect(schema.config(), &options).await.unwrap_err();

    assert!(matches!(error, OpenError::SchemaTooOld { found: 1, .. }), "{error}");
    assert!(error.to_string().contains("start this one"), "{error}");
    let recorded: i64 =
        client.query_one("SELECT COUNT(*) FROM schema_migrations", &[]).await.unwrap().get(0);
    assert_eq!(recorded, 1, "a migration ran");
}

#[tokio::test]
async fn empty_schema_is_set_up_without_upgrade() {
    let Some(schema) = common::schema("postgres::empty_schema_is_set_up_without_upgrade").await
    else {
        return;
    };
    let options = PostgresOptions { upgrade: false, ..PostgresOptions::default() };

    let store = PostgresStore::connect(schema.config(), &options).await.unwrap();

    store.close().await;
}

#[tokio::test]
async fn concurrent_starts_migrate_once() {
    let Some(schema) = common::schema("postgres::concurrent_starts_migrate_once").await else {
        return;
    };

    let starts: Vec<_> = (0..4)
        .map(|_| {
            let config = schema.config();
            tokio::spawn(async move {
                PostgresStore::connect(config, &PostgresOptions::default()).await
            })
        })
        .collect();
    let mut stores = Vec::new();
    for start in starts {
        stores.push(start.await.unwrap().unwrap());
    }

    let client = schema.client().await;
    let recorded: i64 =
        client.query_one("SELECT COUNT(*) FROM schema_migrations", &[]).await.unwrap().get(0);
    assert_eq!(recorded, MIGRATIONS.len() as i64);
    let partner = PartnerTenantId::new("p");
    assert_eq!(stores[3].count(&partner, None).await.unwrap(), 0);
}

/// An argument of a function call in the differential test.
#[derive(Clone, Debug)]
enum Argument {
    Text(&'static str),
    Integer(i64),
}

/// What a function call gave: a value, or the message of the error it raised.
#[derive(Clone, Debug, PartialEq)]
enum Outcome {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
    Failed(String),
}

fn sqlite_call(connection: &rusqlite::Connection, name: &str, arguments: &[Argument]) -> Outcome {
    let placeholders: Vec<String> = (1..=arguments.len()).map(|n| format!("?{n}")).collect();
    let text = format!("SELECT {name}({})", placeholders.join(", "));
    let values: Vec<rusqlite::types::Value> = arguments
        .iter()
        .map(|argument| match argument {
            Argument::Text(text) => rusqlite::types::Value::Text((*text).to_owned()),
            Argument::Integer(value) => rusqlite::types::Value::Integer(*value),
        })
        .collect();
    let result = connection.query_row(&text, rusqlite::params_from_iter(values), |row| {
        Ok(match row.get_ref(0)? {
            ValueRef::Null => Outcome::Null,
            ValueRef::Integer(value) => Outcome::Integer(value),
            ValueRef::Real(value) => Outcome::Real(value),
            ValueRef::Text(text) => Outcome::Text(String::from_utf8_lossy(text).into_owned()),
            ValueRef::Blob(_) => panic!("{text} gave a blob"),
        })
    });
    match result {
        Ok(outcome) => outcome,
        Err(error) => match functions::evaluation_error(&error) {
            Some(message) => Outcome::Failed(message),
            None => panic!("{text} failed in SQLite: {error}"),
        },
    }
}

async fn postgres_call(
    client: &tokio_postgres::Client,
    name: &str,
    arguments: &[Argument],
) -> Outcome {
    let placeholders: Vec<String> = arguments
        .iter()
        .enumerate()
        .map(|(i, argument)| match argument {
            Argument::Text(_) => format!("${}::text", i + 1),
            Argument::Integer(_) => format!("${}::bigint", i + 1),
        })
        .collect();
    let text = format!("SELECT {name}({})", placeholders.join(", "));
    let values: Vec<Box<dyn tokio_postgres::types::ToSql + Sync>> = arguments
        .iter()
        .map(|argument| -> Box<dyn tokio_postgres::types::ToSql + Sync> {
            match argument {
                Argument::Text(text) => Box::new(*text),
                Argument::Integer(value) => Box::new(*value),
            }
        })
        .collect();
    let references: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
        values.iter().map(|value| value.as_ref()).collect();
    let row = match client.query_one(&text, &references).await {
        Ok(row) => row,
        Err(error) => match error.as_db_error() {
            Some(database) if database.code().code() == QUERY_ERROR => {
                return Outcome::Failed(database.message().to_owned());
            }
            _ => panic!("{text} failed in PostgreSQL: {error:?}"),
        },
    };
    let column = &row.columns()[0];
    match *column.type_() {
        tokio_postgres::types::Type::INT8 => row.get::<_, Option<i64>>(0).map(Outcome::Integer),
        tokio_postgres::types::Type::FLOAT8 => row.get::<_, Option<f64>>(0).map(Outcome::Real),
        tokio_postgres::types::Type::TEXT => row.get::<_, Option<String>>(0).map(Outcome::Text),
        // SQLite has no Boolean type and gives 1 or 0.
        tokio_postgres::types::Type::BOOL => {
            row.get::<_, Option<bool>>(0).map(|value| Outcome::Integer(value.into()))
        }
        ref other => panic!("{text} gave the unexpected type {other}"),
    }
    .unwrap_or(Outcome::Null)
}

/// Every function with a set of arguments that covers its edge cases.
fn calls() -> Vec<(&'static str, Vec<Argument>)> {
    use Argument::{Integer, Text};

    const TICKS_PER_DAY: i64 = 864_000_000_000;
    let texts = [
        "",
        "abc",
        "ÄRGER straße",
        "ǅemal",
        "ΣΑΣ ΟΔΟΣ",
        "İstanbul",
        " \u{3000}\tpadded\u{2028}\u{85} ",
        "😀a𝄞b",
        "50%_off",
    ];
    let integers = [0, 1, -1, 7, -7, 3, i64::MAX, i64::MIN];
    let ticks = [
        0,
        -1,
        17_092_782_001_234_567,
        -719_162 * TICKS_PER_DAY,
        -719_162 * TICKS_PER_DAY - 1,
        2_932_897 * TICKS_PER_DAY - 1,
        2_932_897 * TICKS_PER_DAY,
        i64::MIN,
        i64::MAX,
    ];

    let mut calls = Vec::new();
    for text in texts {
        for name in
            ["odata_tolower", "odata_toupper", "odata_ascii_lower", "odata_trim", "odata_length"]
        {
            calls.push((name, vec![Text(text)]));
        }
        for needle in ["", "a", "ß", "𝄞", "%_", "S ", "abc"] {
            for name in ["odata_indexof", "odata_contains", "odata_startswith", "odata_endswith"] {
                calls.push((name, vec![Text(text), Text(needle)]));
            }
        }
        for start in [-1, 0, 2, 5, 100, i64::MAX] {
            calls.push(("odata_substring", vec![Text(text), Integer(start)]));
            for length in [-1, 0, 1, 3, i64::MAX] {
                calls.push(("odata_substring", vec![Text(text), Integer(start), Integer(length)]));
            }
        }
    }
    for a in integers {
        calls.push(("odata_neg", vec![Integer(a)]));
        for b in integers {
            for name in ["odata_add", "odata_sub", "odata_mul", "odata_div", "odata_mod"] {
                calls.push((name, vec![Integer(a), Integer(b)]));
            }
            calls.push(("odata_divby", vec![Integer(a), Integer(b)]));
            calls.push(("odata_ratio_cmp", vec![Integer(a), Integer(b), Integer(3), Integer(-7)]));
            calls.push(("odata_ratio_cmp", vec![Integer(7), Integer(a), Integer(b), Integer(-1)]));
        }
    }
    for tick in ticks {
        for name in [
            "odata_year",
            "odata_month",
            "odata_day",
            "odata_hour",
            "odata_minute",
            "odata_second",
            "odata_fraction",
            "odata_date",
            "odata_time",
        ] {
            calls.push((name, vec![Integer(tick)]));
        }
    }
    // Patterns whose meaning is the same in Rust's regex crate and PostgreSQL's ARE.
    for text in ["abc", "ABC-123", "straße", ""] {
        for pattern in ["^a", "c$", "[0-9]+", "^[A-Z]{3}-\\d{3}$", "s.r", "(?i)abc", ""] {
            calls.push(("odata_matches", vec![Text(text), Text(pattern)]));
        }
    }
    calls
}

#[tokio::test]
async fn functions_agree_with_sqlite() {
    let Some(schema) = common::schema("postgres::functions_agree_with_sqlite").await else {
        return;
    };
    schema.store().await.close().await;
    let client = schema.client().await;
    let sqlite = rusqlite::Connection::open_in_memory().unwrap();
    functions::register(&sqlite).unwrap();

    let mut differences = Vec::new();
    let calls = calls();
    for (name, arguments) in &calls {
        let expected = sqlite_call(&sqlite, name, arguments);
        let found = postgres_call(&client, name, arguments).await;
        if found != expected {
            differences
                .push(format!("{name}{arguments:?}: SQLite {expected:?}, PostgreSQL {found:?}"));
        }
    }

    assert!(
        differences.is_empty(),
        "{} of {} calls differ:\n{}",
        differences.len(),
        calls.len(),
        differences.join("\n")
    );
}

#[tokio::test]
async fn reads_retry_after_lost_connections() {
    let Some(schema) = common::schema("postgres::reads_retry_after_lost_connections").await else {
        return;
    };
    let application = format!("beacon_lost_{}", uuid::Uuid::new_v4().simple());
    let mut config = schema.config();
    config.application_name(&application);
    let options = PostgresOptions { pool_size: 2, ..Default::default() };
    let store = PostgresStore::connect(config, &options).await.unwrap();
    let partner = PartnerTenantId::new("p");
    let entity = beacon_odata::entity::Entity { id: "a".into(), fields: Default::default() };
    let created = store.create(&partner, entity).await.unwrap();

    // The server ends every connection of the pool, as a restart or a failover would.
    let client = schema.client().await;
    let ended: i64 = client
        .query_one(
            "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE application_name = $1",
            &[&application],
        )
        .await
        .unwrap()
        .get(0);
    assert!(ended >= 1, "no connection of the pool was found");

    assert_eq!(store.get(&partner, "a").await.unwrap(), Some(created.clone()));
    assert_eq!(store.count(&partner, None).await.unwrap(), 1);
    // A write is not retried once sent, so it may fail as busy, but never otherwise.
    let other = beacon_odata::entity::Entity { id: "b".into(), fields: Default::default() };
    match store.create(&partner, other).await {
        Ok(_) | Err(beacon_store::StoreError::Busy) => {}
        Err(other) => panic!("unexpected error {other:?}"),
    }
}

#[tokio::test]
async fn text_with_nul_is_an_invalid_query() {
    let Some(schema) = common::schema("postgres::text_with_nul_is_an_invalid_query").await else {
        return;
    };
    let store = schema.store().await;
    let partner = PartnerTenantId::new("p");

    let entity = beacon_odata::entity::Entity { id: "a\0".into(), fields: Default::default() };
    match store.create(&partner, entity).await {
        Err(beacon_store::StoreError::InvalidQuery(message)) => assert_eq!(message, NUL_MESSAGE),
        other => panic!("unexpected result {other:?}"),
    }

    // Query literals never reach the store with U+0000: the parser refuses them for both.
    assert!(beacon_odata::filter::parse("tenantId eq 'x\0'").is_err());
}

#[tokio::test]
async fn first_page_runs_without_a_transaction() {
    let Some(schema) = common::schema("postgres::first_page_runs_without_a_transaction").await
    else {
        return;
    };
    // One connection with a name of its own, whose last statement pg_stat_activity shows.
    let application = format!("beacon_page_{}", uuid::Uuid::new_v4().simple());
    let mut config = schema.config();
    config.application_name(&application);
    let options = PostgresOptions { pool_size: 1, ..Default::default() };
    let store = PostgresStore::connect(config, &options).await.unwrap();
    let partner = PartnerTenantId::new("p");
    let errors = Property::NumberOfErrorDevices.field_index().unwrap();
    for (id, count) in [("a", Some(2)), ("b", Some(1)), ("c", None)] {
        let mut fields: Fields = Default::default();
        fields[errors] = count.map(Value::Int64);
        store.create(&partner, Entity { id: id.into(), fields }).await.unwrap();
    }
    let expr =
        bind::value(&filter::parse("numberOfErrorDevices").unwrap(), View::Graph, 0).unwrap();
    let first = ListQuery {
        order: vec![OrderKey { expr, descending: true }],
        limit: 2,
        ..Default::default()
    };
    let client = schema.client().await;

    let page = store.list(&partner, first.clone()).await.unwrap();
    assert_eq!(ids(&page), ["a", "b"]);
    let last = last_statement(&client, &application).await;
    assert!(last.starts_with("SELECT "), "the first page's last statement is {last}");

    // A resumed descending page reads the rest of its value, then lower values, then nulls,
    // each with its own statement, in one transaction.
    let resumed = ListQuery { after: Some(page[1].cursor.clone()), ..first };
    let page = store.list(&partner, resumed).await.unwrap();
    assert_eq!(ids(&page), ["c"]);
    assert_eq!(last_statement(&client, &application).await, "COMMIT");
}

fn ids(page: &[ListedEntity]) -> Vec<&str> {
    page.iter().map(|row| row.stored.entity.id.as_str()).collect()
}

/// Returns the text of the last statement of the connection named `application`.
async fn last_statement(client: &tokio_postgres::Client, application: &str) -> String {
    client
        .query_one(
            "SELECT query FROM pg_stat_activity WHERE application_name = $1",
            &[&application],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn writes_to_a_read_only_database_are_busy() {
    // After a failover a server may reach a standby, which rejects writes with SQLSTATE 25006.
    // That is a passing state of the database, so the client gets 503, not 500.
    let Some(schema) = common::schema("postgres::writes_to_a_read_only_database_are_busy").await
    else {
        return;
    };
    drop(schema.store().await);
    let mut config = schema.config();
    let search_path = config.get_options().unwrap_or_default().to_owned();
    config.options(format!("{search_path} -cdefault_transaction_read_only=on"));
    let options = PostgresOptions { pool_size: 2, ..Default::default() };
    let store = PostgresStore::connect(config, &options).await.unwrap();
    let partner = PartnerTenantId::new("p");

    let entity = Entity { id: "a".into(), fields: Fields::default() };
    match store.create(&partner, entity).await {
        Err(beacon_store::StoreError::Busy) => {}
        other => panic!("unexpected result {other:?}"),
    }
    assert_eq!(store.count(&partner, None).await.unwrap(), 0);
}
