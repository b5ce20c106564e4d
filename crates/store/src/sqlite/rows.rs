//! Conversion between entities and table rows.

use beacon_odata::datetime::DateTimeOffset;
use beacon_odata::entity::{Entity, Fields, Value};
use beacon_odata::model::{EdmType, Property};
use rusqlite::types::{ToSqlOutput, Type, Value as SqlValue, ValueRef};
use rusqlite::{Connection, Row, Statement, params_from_iter};

use crate::sql::{Statements, entity_columns};
use crate::{ApplyRows, Cell, Cursor, ListedEntity, Param, StoredEntity};

/// Returns the bound values of an insert: the partner, then the entity columns in order.
pub(super) fn insert_values(partner: &str, entity: &Entity, version: i64) -> Vec<SqlValue> {
    let mut values = vec![SqlValue::Text(partner.to_owned()), SqlValue::Text(entity.id.clone())];
    for (property, value) in Property::FIELDS.into_iter().zip(&entity.fields) {
        match (property.edm_type(), value) {
            (EdmType::DateTimeOffset, Some(Value::DateTimeOffset(instant))) => {
                values.push(SqlValue::Integer(instant.ticks()));
                values.push(SqlValue::Integer(i64::from(instant.digits())));
            }
            (EdmType::DateTimeOffset, _) => values.extend([SqlValue::Null, SqlValue::Null]),
            (_, None) => values.push(SqlValue::Null),
            (_, Some(Value::String(text))) => values.push(SqlValue::Text(text.clone())),
            (_, Some(Value::Int64(number))) => values.push(SqlValue::Integer(*number)),
            (_, Some(Value::DateTimeOffset(_))) => values.push(SqlValue::Null),
        }
    }
    values.push(SqlValue::Integer(version));
    values
}

/// Binds the values of [`insert_values`] to `statement` from parameter `first` on, without
/// cloning the strings, with `key` in place of the partner. Returns the next parameter index.
pub(super) fn bind_insert_values(
    statement: &mut Statement<'_>,
    first: usize,
    key: ValueRef<'_>,
    entity: &Entity,
    version: i64,
) -> Result<usize, rusqlite::Error> {
    let mut index = first;
    let mut bind = |value: ValueRef<'_>| {
        let bound = statement.raw_bind_parameter(index, ToSqlOutput::Borrowed(value));
        index += 1;
        bound
    };
    bind(key)?;
    bind(ValueRef::Text(entity.id.as_bytes()))?;
    for (property, value) in Property::FIELDS.into_iter().zip(&entity.fields) {
        match (property.edm_type(), value) {
            (EdmType::DateTimeOffset, Some(Value::DateTimeOffset(instant))) => {
                bind(ValueRef::Integer(instant.ticks()))?;
                bind(ValueRef::Integer(i64::from(instant.digits())))?;
            }
            (EdmType::DateTimeOffset, _) => {
                bind(ValueRef::Null)?;
                bind(ValueRef::Null)?;
            }
            (_, None) => bind(ValueRef::Null)?,
            (_, Some(Value::String(text))) => bind(ValueRef::Text(text.as_bytes()))?,
            (_, Some(Value::Int64(number))) => bind(ValueRef::Integer(*number))?,
            (_, Some(Value::DateTimeOffset(_))) => bind(ValueRef::Null)?,
        }
    }
    bind(ValueRef::Integer(version))?;
    Ok(index)
}

/// Reads a row selected with the entity columns in order.
pub(super) fn read_entity(row: &Row<'_>) -> Result<StoredEntity, rusqlite::Error> {
    let id: String = row.get(0)?;
    let mut fields: Fields = Default::default();
    let mut column = 1;
    for (slot, property) in fields.iter_mut().zip(Property::FIELDS) {
        *slot = match property.edm_type() {
            EdmType::String => row.get::<_, Option<String>>(column)?.map(Value::String),
            EdmType::Int64 => row.get::<_, Option<i64>>(column)?.map(Value::Int64),
            EdmType::DateTimeOffset => {
                let ticks: Option<i64> = row.get(column)?;
                let digits: Option<u8> = row.get(column + 1)?;
                column += 1;
                match (ticks, digits) {
                    (Some(ticks), Some(digits)) => {
                        let instant =
                            DateTimeOffset::from_ticks(ticks, digits).ok_or_else(|| {
                                rusqlite::Error::FromSqlConversionFailure(
                                    column,
                                    Type::Integer,
                                    "a stored DateTimeOffset is out of range".into(),
                                )
                            })?;
                        Some(Value::DateTimeOffset(instant))
                    }
                    _ => None,
                }
            }
        };
        column += 1;
    }
    let version = row.get(column)?;
    Ok(StoredEntity { entity: Entity { id, fields }, version })
}

pub(super) fn select_one(
    connection: &Connection,
    statements: &Statements,
    partner: &str,
    id: &str,
) -> Result<Option<StoredEntity>, rusqlite::Error> {
    let mut statement = connection.prepare_cached(&statements.select_one)?;
    let mut rows = statement.query((partner, id))?;
    rows.next()?.map(read_entity).transpose()
}

/// Runs a list query whose select list is the entity columns followed by `keys` order keys.
pub(super) fn select_listed(
    connection: &Connection,
    text: &str,
    params: Vec<Param>,
    keys: usize,
) -> Result<Vec<ListedEntity>, rusqlite::Error> {
    let key_start = entity_columns().len();
    let mut statement = connection.prepare_cached(text)?;
    let values = bound_values(&statement, params);
    let rows = statement.query_map(params_from_iter(values), |row| {
        let stored = read_entity(row)?;
        let keys = (key_start..key_start + keys)
            .map(|i| {
                Ok(match row.get_ref(i)? {
                    ValueRef::Null => Param::Null,
                    ValueRef::Integer(value) => Param::Integer(value),
                    ValueRef::Text(text) => Param::Text(String::from_utf8_lossy(text).into_owned()),
                    other => {
                        return Err(rusqlite::Error::FromSqlConversionFailure(
                            i,
                            other.data_type(),
                            "an order key is neither null, an integer nor text".into(),
                        ));
                    }
                })
            })
            .collect::<Result<Vec<_>, rusqlite::Error>>()?;
        let cursor = Cursor { keys, id: stored.entity.id.clone() };
        Ok(ListedEntity { stored, cursor })
    })?;
    rows.collect()
}

/// Runs the `SELECT` of a `$apply` result: entity rows, or `grouped` columns per row.
pub(super) fn select_applied(
    connection: &Connection,
    text: &str,
    params: Vec<Param>,
    grouped: Option<usize>,
) -> Result<ApplyRows, rusqlite::Error> {
    let mut statement = connection.prepare_cached(text)?;
    let params = params_from_iter(bound_values(&statement, params));
    let Some(width) = grouped else {
        let rows = statement.query_map(params, read_entity)?;
        return Ok(ApplyRows::Entities(rows.collect::<Result<_, _>>()?));
    };
    let rows = statement.query_map(params, |row| {
        (0..width)
            .map(|i| {
                Ok(match row.get_ref(i)? {
                    ValueRef::Null => Cell::Null,
                    ValueRef::Integer(value) => Cell::Integer(value),
                    ValueRef::Real(value) => Cell::Real(value),
                    ValueRef::Text(text) => Cell::Text(String::from_utf8_lossy(text).into_owned()),
                    ValueRef::Blob(_) => Cell::Null,
                })
            })
            .collect::<Result<Vec<_>, rusqlite::Error>>()
    })?;
    Ok(ApplyRows::Rows(rows.collect::<Result<_, _>>()?))
}

/// Runs a `SELECT COUNT(*)`.
pub(super) fn count(
    connection: &Connection,
    text: &str,
    params: Vec<Param>,
) -> Result<u64, rusqlite::Error> {
    let mut statement = connection.prepare_cached(text)?;
    let values = bound_values(&statement, params);
    let count: i64 = statement.query_row(params_from_iter(values), |row| row.get(0))?;
    Ok(u64::try_from(count).unwrap_or(0))
}

/// Converts the parameters of a compiled statement for binding. The compiler numbers its
/// placeholders (`?1`, `?2`, …), and SQLite counts a statement's parameters up to the highest
/// number its text uses, so parameters past that count are ones no clause ended up using; they
/// are dropped rather than failing the statement.
fn bound_values(statement: &rusqlite::Statement<'_>, params: Vec<Param>) -> Vec<SqlValue> {
    params.into_iter().take(statement.parameter_count()).map(sql_value).collect()
}

fn sql_value(param: Param) -> SqlValue {
    match param {
        Param::Null => SqlValue::Null,
        Param::Integer(value) => SqlValue::Integer(value),
        Param::Text(text) => SqlValue::Text(text),
    }
}
