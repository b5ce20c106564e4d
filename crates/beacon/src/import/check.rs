//! The check workers of `beacon import`: each takes a chunk of raw records, applies the
//! rules of a `POST` to every record, and returns the outcomes in the chunk's order.
//!
//! A record is checked as a body: the body size limit, [`body::decode`], then
//! [`EntityInput::into_create`], and a record without an `id` gets a new GUID. A CSV record is
//! first written as the JSON object a `POST` would carry, with every non-null value a JSON
//! string, and checked with Int64 strings allowed.

use std::borrow::Cow;
use std::ops::Range;
use std::sync::Arc;

use base64::prelude::{BASE64_STANDARD, Engine as _};

use beacon_odata::body::{self, BodyError, EntityInput, ReadOptions};
use beacon_odata::entity::Entity;
use beacon_odata::model::View;
use beacon_server::MAX_BODY_BYTES;

use crate::csv::{self, FieldSpan};

/// Consecutive records of one file, in input order.
#[derive(Debug)]
pub(super) struct Chunk {
    /// The file's label, for messages.
    pub(super) file: Arc<str>,
    /// The unit of a record's number: `line` (NDJSON, CSV) or `record` (Graph pages).
    pub(super) unit: &'static str,
    /// Each record's position and number, in order.
    pub(super) places: Vec<Place>,
    /// The records' text.
    pub(super) records: Records,
}

/// A record's place in the input.
#[derive(Clone, Copy, Debug)]
pub(super) struct Place {
    /// The row's position in the whole input, which orders the rows in the store.
    pub(super) position: u64,
    /// The line or record number within its file, for messages.
    pub(super) number: u64,
}

/// The text of a chunk's records.
#[derive(Debug)]
pub(super) enum Records {
    /// JSON objects (NDJSON lines, records of Graph pages), each a range of `text`.
    Json { text: Vec<u8>, spans: Vec<Range<usize>> },
    /// CSV records.
    Csv {
        /// The header's names, each written as a JSON string and a colon.
        names: Arc<[Vec<u8>]>,
        /// The records' text, line endings included, one after another.
        text: String,
        records: Vec<CsvRecord>,
        /// The places of the records' fields in `text`, one record after another.
        fields: Vec<FieldSpan>,
    },
}

/// A CSV record of a chunk.
#[derive(Debug)]
pub(super) struct CsvRecord {
    /// The record's range of the chunk's text.
    pub(super) text: Range<usize>,
    /// The record's range of the chunk's fields.
    pub(super) fields: Range<usize>,
}

/// The outcomes of a chunk's records, in the chunk's order.
#[derive(Debug)]
pub(super) struct CheckedChunk {
    /// The file's label, for messages.
    pub(super) file: Arc<str>,
    /// The unit of a record's number: `line` or `record`.
    pub(super) unit: &'static str,
    /// Each record's place and outcome.
    pub(super) rows: Vec<(Place, Result<Entity, Rejected>)>,
}

/// A record that failed the checks.
#[derive(Debug)]
pub(super) struct Rejected {
    /// The reason.
    pub(super) fault: Fault,
    /// The record as given, with each invalid UTF-8 sequence replaced by U+FFFD.
    pub(super) input: String,
    /// The record's bytes in standard Base64, when they are not valid UTF-8 and `input`
    /// therefore differs from them.
    pub(super) input_base64: Option<String>,
}

/// The reason a record was rejected.
#[derive(Debug)]
pub(super) struct Fault {
    /// The property at fault, when one is.
    pub(super) property: Option<String>,
    /// The full message, as a `POST` would send it.
    pub(super) reason: String,
}

impl Fault {
    fn internal(error: serde_json::Error) -> Fault {
        Fault { property: None, reason: format!("The record could not be converted: {error}.") }
    }
}

impl From<BodyError> for Fault {
    fn from(error: BodyError) -> Fault {
        let property = match &error {
            BodyError::UnknownProperty { name, .. } => Some(name.clone()),
            BodyError::InvalidValue { property, .. } => Some((*property).to_owned()),
            BodyError::RequiredProperties { missing, null } => {
                missing.first().or(null.first()).map(|name| (*name).to_owned())
            }
            BodyError::WrongEntityType { .. } => Some("@odata.type".to_owned()),
            BodyError::Json(_) | BodyError::NotAnObject(_) => None,
        };
        Fault { property, reason: error.to_string() }
    }
}

/// Checks the records of one worker's chunks for `view`.
#[derive(Debug)]
pub(super) struct Checker {
    view: View,
    /// JSON text of a CSV record, reused from record to record.
    scratch: Vec<u8>,
}

impl Checker {
    pub(super) fn new(view: View) -> Checker {
        Checker { view, scratch: Vec::new() }
    }

    /// Checks every record of `chunk`.
    pub(super) fn check_chunk(&mut self, chunk: Chunk) -> CheckedChunk {
        let Chunk { file, unit, places, records } = chunk;
        let outcomes: Vec<Result<Entity, Rejected>> = match records {
            Records::Json { text, spans } => {
                // Graph writes Int64 values as strings in responses to a client that asked
                // for IEEE754Compatible=true, as Beacon's dashboard does, and such pages are
                // still Graph list responses.
                let options = ReadOptions { int64_as_string: unit == "record" };
                spans.into_iter().map(|span| self.check_json(&text[span], options)).collect()
            }
            Records::Csv { names, text, records, fields } => records
                .iter()
                .map(|record| self.check_csv(&names, &text, &fields[record.fields.clone()], record))
                .collect(),
        };
        CheckedChunk { file, unit, rows: places.into_iter().zip(outcomes).collect() }
    }

    fn check_json(&self, record: &[u8], options: ReadOptions) -> Result<Entity, Rejected> {
        check(self.view, record, options).map_err(|fault| {
            let input = String::from_utf8_lossy(record);
            let input_base64 = match input {
                Cow::Borrowed(_) => None,
                Cow::Owned(_) => Some(BASE64_STANDARD.encode(record)),
            };
            Rejected { fault, input: input.into_owned(), input_base64 }
        })
    }

    fn check_csv(
        &mut self,
        names: &[Vec<u8>],
        text: &str,
        fields: &[FieldSpan],
        record: &CsvRecord,
    ) -> Result<Entity, Rejected> {
        self.check_csv_record(names, text, fields).map_err(|fault| Rejected {
            fault,
            input: csv::raw_text(&text[record.text.clone()]).to_owned(),
            input_base64: None,
        })
    }

    /// Writes a CSV record, whose `fields` are places in `text`, as the JSON object a `POST`
    /// would carry, with every non-null value as a JSON string, and checks it as such, Int64
    /// strings included.
    fn check_csv_record(
        &mut self,
        names: &[Vec<u8>],
        text: &str,
        fields: &[FieldSpan],
    ) -> Result<Entity, Fault> {
        if fields.len() != names.len() {
            return Err(Fault {
                property: None,
                reason: format!(
                    "The row has {} field(s), but the header has {}.",
                    fields.len(),
                    names.len()
                ),
            });
        }
        let json = &mut self.scratch;
        json.clear();
        json.push(b'{');
        for (i, (name, field)) in names.iter().zip(fields).enumerate() {
            if i > 0 {
                json.push(b',');
            }
            json.extend_from_slice(name);
            if field.range.is_empty() && !field.quoted {
                json.extend_from_slice(b"null");
            } else {
                let value = field.text(text);
                serde_json::to_writer(&mut *json, value.as_ref()).map_err(Fault::internal)?;
            }
        }
        json.push(b'}');
        check(self.view, json, ReadOptions { int64_as_string: true })
    }
}

/// Applies the rules of a `POST` to `view` to one record: the body size limit, the body's
/// JSON form and values, the view's required properties, and a new GUID for a missing key.
fn check(view: View, record: &[u8], options: ReadOptions) -> Result<Entity, Fault> {
    if record.len() > MAX_BODY_BYTES {
        return Err(Fault {
            property: None,
            reason: format!(
                "The record is {} bytes long, and a request body may be at most {MAX_BODY_BYTES}.",
                record.len()
            ),
        });
    }
    let input: EntityInput = body::decode(view, record, options)?;
    let (id, fields) = input.into_create(view)?;
    let id = id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    Ok(Entity { id, fields })
}
