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
use beacon_store::Cell;
use serde::Serialize;
use serde::ser::{SerializeMap, SerializeSeq, Serializer};

/// A page of a grouped result.
#[derive(Debug)]
pub(crate) struct GroupedDocument<'a> {
    /// The absolute `@odata.context` URL, unless `odata.metadata=none` leaves out all control
    /// information.
    pub context: Option<&'a str>,
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
    /// Whether Int64 values are written as strings.
    pub int64_as_string: bool,
}

impl Serialize for GroupedDocument<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        if let Some(context) = self.context {
            map.serialize_entry("@odata.context", context)?;
        }
        match self.count {
            Some(count) if self.int64_as_string => {
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
        // Without control information, the row has no `@odata.id` either.
        if self.document.context.is_some() {
            map.serialize_entry("@odata.id", &())?;
        }
        for &index in self.document.selected {
            let column = &self.document.columns[index].column;
            let cell = self.row.get(index).unwrap_or(&Cell::Null);
            map.serialize_entry(&column.name, &Value { cell, ty: column.ty, doc: self.document })?;
        }
        map.end()
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
            (Cell::Integer(value), _) if self.doc.int64_as_string => serializer.collect_str(value),
            (Cell::Integer(value), _) => serializer.serialize_i64(*value),
        }
    }
}
