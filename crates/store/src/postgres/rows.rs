//! Conversion between entities, parameters and PostgreSQL rows.

use std::error::Error as StdError;

use beacon_odata::datetime::DateTimeOffset;
use beacon_odata::entity::{Entity, Fields, Value};
use beacon_odata::model::{EdmType, Property};
use tokio_postgres::Row;
use tokio_postgres::types::{IsNull, ToSql, Type, to_sql_checked};

use crate::sql::entity_columns;
use crate::{Cell, Cursor, ListedEntity, Param, StoredEntity};

/// A value bound to a parameter of a statement: the compiler's [`Param`], or a digit count,
/// which the schema stores as `SMALLINT`.
#[derive(Clone, Debug)]
pub(super) enum Bound {
    /// A compiler parameter, converted to the type the statement expects.
    Param(Param),
    /// A count of fractional digits.
    Digits(Option<i16>),
}

type BoxError = Box<dyn StdError + Sync + Send>;

impl ToSql for Bound {
    fn to_sql(&self, ty: &Type, out: &mut bytes::BytesMut) -> Result<IsNull, BoxError> {
        match self {
            Bound::Digits(digits) => digits.to_sql(ty, out),
            Bound::Param(Param::Null) => Ok(IsNull::Yes),
            Bound::Param(Param::Text(text)) => text.to_sql(ty, out),
            // The compiler types its integer parameters as bigint; a statement of this crate
            // may bind one where PostgreSQL inferred a narrower integer.
            Bound::Param(Param::Integer(value)) => match *ty {
                Type::INT2 => i16::try_from(*value)?.to_sql(ty, out),
                Type::INT4 => i32::try_from(*value)?.to_sql(ty, out),
                _ => value.to_sql(ty, out),
            },
        }
    }

    fn accepts(ty: &Type) -> bool {
        <String as ToSql>::accepts(ty) || matches!(*ty, Type::INT2 | Type::INT4 | Type::INT8)
    }

    to_sql_checked!();
}

/// Returns the bound values of an insert: the partner, then the entity columns in order.
pub(super) fn insert_values(partner: &str, stored: &StoredEntity) -> Vec<Bound> {
    let entity = &stored.entity;
    let mut values = vec![
        Bound::Param(Param::Text(partner.to_owned())),
        Bound::Param(Param::Text(entity.id.clone())),
    ];
    for (property, value) in Property::FIELDS.into_iter().zip(&entity.fields) {
        match (property.edm_type(), value) {
            (EdmType::DateTimeOffset, Some(Value::DateTimeOffset(instant))) => {
                values.push(Bound::Param(Param::Integer(instant.ticks())));
                values.push(Bound::Digits(Some(i16::from(instant.digits()))));
            }
            (EdmType::DateTimeOffset, _) => {
                values.extend([Bound::Param(Param::Null), Bound::Digits(None)])
            }
            (_, None) => values.push(Bound::Param(Param::Null)),
            (_, Some(Value::String(text))) => values.push(Bound::Param(Param::Text(text.clone()))),
            (_, Some(Value::Int64(number))) => values.push(Bound::Param(Param::Integer(*number))),
            (_, Some(Value::DateTimeOffset(_))) => values.push(Bound::Param(Param::Null)),
        }
    }
    values.push(Bound::Param(Param::Integer(stored.version)));
    values
}

/// A row that does not have the shape this crate wrote.
#[derive(Debug, thiserror::Error)]
pub(super) enum RowError {
    /// The driver could not read a column as the expected type.
    #[error("cannot read column {column}: {source}")]
    Column {
        /// The column's position, counted from 0.
        column: usize,
        /// The driver's error.
        source: tokio_postgres::Error,
    },
    /// A stored date-time lies outside the range of `Edm.DateTimeOffset`.
    #[error("the stored DateTimeOffset in column {column} is out of range")]
    DateTimeOutOfRange {
        /// The ticks column's position.
        column: usize,
    },
    /// A result column has a type the store does not read.
    #[error("column {column} has the unexpected type {ty}")]
    UnexpectedType {
        /// The column's position.
        column: usize,
        /// The column's PostgreSQL type.
        ty: Type,
    },
}

fn get<'a, T: tokio_postgres::types::FromSql<'a>>(
    row: &'a Row,
    column: usize,
) -> Result<T, RowError> {
    row.try_get(column).map_err(|source| RowError::Column { column, source })
}

/// Reads a row selected with the entity columns in order.
pub(super) fn read_entity(row: &Row) -> Result<StoredEntity, RowError> {
    let id: String = get(row, 0)?;
    let mut fields: Fields = Default::default();
    let mut column = 1;
    for (slot, property) in fields.iter_mut().zip(Property::FIELDS) {
        *slot = match property.edm_type() {
            EdmType::String => get::<Option<String>>(row, column)?.map(Value::String),
            EdmType::Int64 => get::<Option<i64>>(row, column)?.map(Value::Int64),
            EdmType::DateTimeOffset => {
                let ticks: Option<i64> = get(row, column)?;
                let digits: Option<i16> = get(row, column + 1)?;
                column += 1;
                match (ticks, digits.and_then(|digits| u8::try_from(digits).ok())) {
                    (Some(ticks), Some(digits)) => {
                        let instant = DateTimeOffset::from_ticks(ticks, digits)
                            .ok_or(RowError::DateTimeOutOfRange { column: column - 1 })?;
                        Some(Value::DateTimeOffset(instant))
                    }
                    _ => None,
                }
            }
        };
        column += 1;
    }
    let version = get(row, column)?;
    Ok(StoredEntity { entity: Entity { id, fields }, version })
}

/// Reads a row of a list query: the entity columns followed by `keys` order keys.
pub(super) fn read_listed(row: &Row, keys: usize) -> Result<ListedEntity, RowError> {
    let stored = read_entity(row)?;
    let start = entity_columns().len();
    let keys = (start..start + keys)
        .map(|column| {
            Ok(match cell(row, column)? {
                Cell::Null => Param::Null,
                Cell::Integer(value) => Param::Integer(value),
                Cell::Text(text) => Param::Text(text),
                Cell::Real(_) => {
                    let ty = row.columns()[column].type_().clone();
                    return Err(RowError::UnexpectedType { column, ty });
                }
            })
        })
        .collect::<Result<Vec<_>, RowError>>()?;
    let cursor = Cursor { keys, id: stored.entity.id.clone() };
    Ok(ListedEntity { stored, cursor })
}

/// Reads one column of a grouped result or an order key as a [`Cell`].
pub(super) fn cell(row: &Row, column: usize) -> Result<Cell, RowError> {
    let ty = row.columns()[column].type_().clone();
    let cell = match ty {
        Type::INT8 => get::<Option<i64>>(row, column)?.map(Cell::Integer),
        Type::INT4 => get::<Option<i32>>(row, column)?.map(|value| Cell::Integer(value.into())),
        Type::INT2 => get::<Option<i16>>(row, column)?.map(|value| Cell::Integer(value.into())),
        // SQLite has no Boolean type and gives 1 or 0.
        Type::BOOL => get::<Option<bool>>(row, column)?.map(|value| Cell::Integer(value.into())),
        Type::FLOAT8 => get::<Option<f64>>(row, column)?.map(Cell::Real),
        Type::FLOAT4 => get::<Option<f32>>(row, column)?.map(|value| Cell::Real(value.into())),
        Type::TEXT | Type::VARCHAR => get::<Option<String>>(row, column)?.map(Cell::Text),
        ty => return Err(RowError::UnexpectedType { column, ty }),
    };
    Ok(cell.unwrap_or(Cell::Null))
}
