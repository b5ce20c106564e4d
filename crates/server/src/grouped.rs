//! The JSON of a grouped `$apply` result: rows of named columns instead of entities.
//!
//! OData writes each row of an aggregated result as an instance without identity
//! (`"@odata.id": null`), with the grouping properties under their own names and each
//! aggregate under its alias, in the result's column order. Integers (counts, sums, minima and
//! maxima of counters) are exact JSON integers, or strings with `IEEE754Compatible=true`;
//! averages are JSON numbers; date-times are written in UTC as the entities' are.

use beacon_odata::bind::Type;
use beacon_odata::bind::apply::ResultColumn;
use beacon_odata::datetime::{DateTimeOffset, format_date, format_time_of_day};
use beacon_odata::media::{JsonFormat, Metadata};
use beacon_store::Cell;
use serde::Serialize;
use serde::ser::{SerializeMap, SerializeSeq, Serializer};

/// A page of a grouped result.
#[derive(Debug)]
pub(crate) struct GroupedDocument<'a> {
    /// The absolute `@odata.context` URL.
    pub context: &'a str,
    /// `@odata.count`, when `$count=true` asked for it.
    pub count: Option<u64>,
    /// The result's columns.
    pub columns: &'a [ResultColumn],
    /// The positions of the columns to write, in order.
    pub selected: &'a [usize],
    /// The rows of this page.
    pub rows: &'a [Vec<Cell>],
    /// The absolute URL of the next page.
    pub next_link: Option<&'a str>,
    /// The JSON form the client asked for.
    pub format: JsonFormat,
}

impl Serialize for GroupedDocument<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        if self.format.metadata != Metadata::None {
            map.serialize_entry("@odata.context", self.context)?;
        }
        match self.count {
            Some(count) if self.format.int64_as_string => {
                map.serialize_entry("@odata.count", &count.to_string())?;
            }
            Some(count) => map.serialize_entry("@odata.count", &count)?,
            None => {}
        }
        map.serialize_entry("value", &Rows(self))?;
        if let Some(link) = self.next_link {
            map.serialize_entry("@odata.nextLink", link)?;
        }
        map.end()
    }
}

struct Rows<'a, 'b>(&'a GroupedDocument<'b>);

impl Serialize for Rows<'_, '_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let document = self.0;
        let mut seq = serializer.serialize_seq(Some(document.rows.len()))?;
        for row in document.rows {
            seq.serialize_element(&Row { document, row })?;
        }
        seq.end()
    }
}

struct Row<'a, 'b> {
    document: &'a GroupedDocument<'b>,
    row: &'a [Cell],
}

impl Serialize for Row<'_, '_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        let metadata = self.document.format.metadata;
        if metadata != Metadata::None {
            map.serialize_entry("@odata.id", &())?;
        }
        for &index in self.document.selected {
            let result = &self.document.columns[index];
            let column = &result.column;
            let cell = self.row.get(index).unwrap_or(&Cell::Null);
            if let Some(name) = type_annotation(result, metadata) {
                map.serialize_entry(&format!("{}@odata.type", column.name), name)?;
            }
            map.serialize_entry(&column.name, &Value { cell, ty: column.ty, doc: self.document })?;
        }
        map.end()
    }
}

/// Returns the `@odata.type` to write before a column's value, if any.
///
/// A JSON value shows by itself only whether it is a string, a Boolean or a Double. An
/// aggregate is a dynamic property, so its type goes with it unless metadata is `none`; a
/// grouping property is declared in `$metadata`, so its type goes with it only in `full`.
fn type_annotation(result: &ResultColumn, metadata: Metadata) -> Option<&'static str> {
    let needed = match metadata {
        Metadata::None => false,
        Metadata::Minimal => result.property.is_none(),
        Metadata::Full => true,
    };
    if !needed {
        return None;
    }
    match result.column.ty {
        Type::Number { scale: 0 } => Some("#Int64"),
        Type::Number { .. } => Some("#Decimal"),
        Type::DateTimeOffset => Some("#DateTimeOffset"),
        Type::Date => Some("#Date"),
        Type::TimeOfDay => Some("#TimeOfDay"),
        Type::Boolean | Type::String | Type::Double | Type::Ratio | Type::Null => None,
    }
}

struct Value<'a, 'b> {
    cell: &'a Cell,
    ty: Type,
    doc: &'a GroupedDocument<'b>,
}

impl Serialize for Value<'_, '_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match (self.cell, self.ty) {
            (Cell::Null, _) => serializer.serialize_unit(),
            (Cell::Text(text), _) => serializer.serialize_str(text),
            (Cell::Real(value), _) => serializer.serialize_f64(*value),
            (Cell::Integer(value), Type::Double) => serializer.serialize_f64(*value as f64),
            (Cell::Integer(ticks), Type::DateTimeOffset) => {
                match DateTimeOffset::from_ticks_shortest(*ticks) {
                    Some(instant) => serializer.collect_str(&instant),
                    None => serializer.serialize_unit(),
                }
            }
            (Cell::Integer(days), Type::Date) => serializer.serialize_str(&format_date(*days)),
            (Cell::Integer(ticks), Type::TimeOfDay) => {
                serializer.serialize_str(&format_time_of_day(*ticks))
            }
            (Cell::Integer(value), Type::Boolean) => serializer.serialize_bool(*value != 0),
            (Cell::Integer(value), _) if self.doc.format.int64_as_string => {
                serializer.collect_str(value)
            }
            (Cell::Integer(value), _) => serializer.serialize_i64(*value),
        }
    }
}
