//! Running compiled statements on a small in-memory database, for the fuzz targets in the
//! repository's `fuzz/` crate and the tests that replay their corpus.
//!
//! The database has the store's schema, its OData functions and the length limit of its reader
//! connections, and two rows of the partner [`PARTNER`]: one with every property set and one
//! with every nullable property null. Each row makes the registered functions run on
//! the constants a fuzzed query binds. This module is not part of the store's API.

use rusqlite::Connection;
use rusqlite::types::Value as SqlValue;

use beacon_odata::datetime::DateTimeOffset;
use beacon_odata::entity::{Entity, Fields, Value};

use super::{MAX_VALUE_BYTES, classify, functions, migrate, rows};
use crate::StoreError;
use crate::sql::compile::Param;
use crate::sql::{Sqlite, Statements};

/// The partner whose rows the database contains.
pub const PARTNER: &str = "fuzz-partner";

thread_local! {
    /// One database per thread, built on first use.
    static DATABASE: Connection = open();
}

/// Runs `statement` with `params` to its last row and returns the store error it fails with,
/// classified as the store classifies the errors of a request.
pub fn run_statement(statement: &str, params: &[Param]) -> Result<(), StoreError> {
    DATABASE.with(|connection| {
        let run = || -> Result<(), rusqlite::Error> {
            let mut prepared = connection.prepare(statement)?;
            let values: Vec<SqlValue> = params
                .iter()
                .take(prepared.parameter_count())
                .map(|param| match param {
                    Param::Null => SqlValue::Null,
                    Param::Integer(value) => SqlValue::Integer(*value),
                    Param::Text(text) => SqlValue::Text(text.clone()),
                })
                .collect();
            let mut rows = prepared.query(rusqlite::params_from_iter(values))?;
            while rows.next()?.is_some() {}
            Ok(())
        };
        run().map_err(classify)
    })
}

/// Builds the database. A failure here is a bug in the schema or the functions, so it panics.
fn open() -> Connection {
    let connection = Connection::open_in_memory().expect("an in-memory database opens");
    functions::register(&connection).expect("the OData functions register");
    for (_, _, sql) in migrate::MIGRATIONS {
        connection.execute_batch(sql).expect("every migration applies to an empty database");
    }

    // The two rows, written as the store's writer writes them.
    let statements = Statements::new(&Sqlite);
    if let Some(register) = &statements.register_partner {
        connection.execute(register, [PARTNER]).expect("the partner registers");
    }
    let insert = statements.insert;
    for (id, fields) in [("full", full_fields()), ("empty", Fields::default())] {
        let entity = Entity { id: id.to_owned(), fields };
        let values = rows::insert_values(PARTNER, &entity, 1);
        connection
            .execute(&insert, rusqlite::params_from_iter(values))
            .expect("a valid entity inserts");
    }

    connection
        .set_limit(rusqlite::limits::Limit::SQLITE_LIMIT_LENGTH, MAX_VALUE_BYTES)
        .expect("the length limit applies");
    connection.pragma_update(None, "query_only", true).expect("query_only applies");
    connection
}

/// Returns a value for every field, with mixed case and spaces so string functions have work.
fn full_fields() -> Fields {
    let text = |s: &str| Some(Value::String(s.to_owned()));
    let instant = |ticks| DateTimeOffset::from_ticks(ticks, 7).map(Value::DateTimeOffset);
    [
        text("8d4c7a2e-5b1f-4e0a-9c3d-6f2b1a0e7d95"),
        text(" Contoso Ltd "),
        text("policy-1"),
        text("Require BitLocker"),
        text("windows10CompliancePolicy"),
        text("Windows10AndLater"),
        Some(Value::Int64(7)),
        Some(Value::Int64(0)),
        Some(Value::Int64(i64::MAX)),
        instant(17_093_358_001_234_567),
        instant(-621_355_968_000_000_000),
    ]
}
