//! The reader thread of `beacon import`: reads the input, splits it into raw records (NDJSON
//! lines, CSV records, the records of Graph list responses) and hands them on in chunks, in
//! input order.
//!
//! The reader numbers each record as messages name it (its line, or its record within the
//! file) and gives it its position in the whole input, but leaves the body checks to the
//! workers. A fault of the input itself ends the reading: an unreadable file, a malformed CSV
//! record, or a page that is not a Graph list response. The records before the fault are
//! handed on first, so that an invalid record earlier in the input is still reported first.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, bail};
use beacon_odata::body::BodyError;
use beacon_odata::json::{self, JsonValue};
use beacon_odata::model::View;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::check::{Chunk, CsvRecord, Place, Records};
use super::{ImportFormat, Origins, Source, label};
use crate::csv::{CsvError, CsvReader, FieldSpan, Record};

/// The maximum number of records in a chunk.
const CHUNK_RECORDS: usize = 512;

/// The text size at which a chunk is handed on, in bytes. A single record may exceed it.
const CHUNK_BYTES: usize = 256 * 1024;

/// An input file, or standard input, counting the bytes read.
type Input = BufReader<CountingReader>;

/// Reads the input and hands its records on in chunks through `send`, which fails once the
/// import has stopped.
pub(super) struct Reader<F> {
    view: View,
    /// Bytes of the input read so far, for the progress report.
    bytes: Arc<AtomicU64>,
    send: F,
}

impl<F: FnMut(Chunk) -> anyhow::Result<()>> Reader<F> {
    pub(super) fn new(view: View, bytes: Arc<AtomicU64>, send: F) -> Self {
        Reader { view, bytes, send }
    }

    /// Reads every file of `source` and returns how to name a row by its position.
    pub(super) fn read_source(mut self, source: Source) -> anyhow::Result<Origins> {
        let mut origins = Origins::default();
        match source {
            Source::Lines { format, path } => {
                origins.files.push((1, label(&path)));
                let input = self.open(&path)?;
                let file: Arc<str> = label(&path).into();
                match format {
                    ImportFormat::Csv => self.read_csv(input, file)?,
                    _ => self.read_ndjson(input, file)?,
                }
            }
            Source::Pages { paths } => {
                origins.records = true;
                let mut next = 1;
                for path in &paths {
                    origins.files.push((next, label(path)));
                    next += self.read_pages(path, next)?;
                }
            }
        }
        Ok(origins)
    }

    /// Opens a file, or standard input for `None`, counting the bytes read.
    fn open(&self, path: &Option<PathBuf>) -> anyhow::Result<Input> {
        let input: Box<dyn Read + Send> = match path {
            Some(path) => Box::new(
                File::open(path).with_context(|| format!("cannot open {}", path.display()))?,
            ),
            None => Box::new(io::stdin()),
        };
        let counting = CountingReader { input, bytes: Arc::clone(&self.bytes) };
        Ok(BufReader::with_capacity(256 * 1024, counting))
    }

    /// Hands `chunk` on, unless it is empty.
    fn send(&mut self, chunk: Chunk) -> anyhow::Result<()> {
        match chunk.places.is_empty() {
            true => Ok(()),
            false => (self.send)(chunk),
        }
    }

    /// Reads one JSON object a line; blank lines are skipped but counted.
    fn read_ndjson(&mut self, mut input: Input, file: Arc<str>) -> anyhow::Result<()> {
        let mut chunk = JsonChunk::new(file, "line");
        let outcome = self.fill_ndjson(&mut input, &mut chunk);
        // The records before the end, or before a fault of the input, go on first.
        let sent = self.send(chunk.take());
        outcome.and(sent)
    }

    /// Reads lines into `chunk`, handing it on whenever it is full or the input may wait.
    fn fill_ndjson(&mut self, input: &mut Input, chunk: &mut JsonChunk) -> anyhow::Result<()> {
        let mut number = 0;
        loop {
            if chunk.is_full() || (may_wait(input) && !chunk.is_empty()) {
                self.send(chunk.take())?;
            }
            let start = chunk.text.len();
            let read = input
                .read_until(b'\n', &mut chunk.text)
                .with_context(|| format!("cannot read {}", chunk.file))?;
            if read == 0 {
                return Ok(());
            }
            number += 1;
            let line = trim_line_end(&chunk.text[start..]);
            if line.iter().all(u8::is_ascii_whitespace) {
                chunk.text.truncate(start);
                continue;
            }
            let end = start + line.len();
            chunk.push(Place { position: number, number }, start..end);
        }
    }

    /// Reads a header of property names, then one row a record.
    fn read_csv(&mut self, input: Input, file: Arc<str>) -> anyhow::Result<()> {
        let mut records = CsvReader::new(input);
        let header =
            match records.next_record().map_err(|error| describe_csv_error(error, &file))? {
                Some(header) => header,
                None => return Ok(()),
            };
        let names = check_header(self.view, &header, &file)?;
        // Each name as a JSON string and a colon, written once rather than once a record.
        let names: Vec<Vec<u8>> = names
            .iter()
            .map(|name| {
                let mut member = serde_json::to_vec(name)?;
                member.push(b':');
                Ok(member)
            })
            .collect::<Result<_, serde_json::Error>>()?;
        let mut chunk = CsvChunk::new(file, names.into());
        let outcome = self.fill_csv(&mut records, &mut chunk);
        // The records before the end, or before a malformed record, go on first.
        let sent = self.send(chunk.take());
        outcome.and(sent)
    }

    /// Reads records into `chunk`, handing it on whenever it is full or the input may wait.
    fn fill_csv(
        &mut self,
        records: &mut CsvReader<Input>,
        chunk: &mut CsvChunk,
    ) -> anyhow::Result<()> {
        loop {
            if chunk.is_full() || (may_wait(records.get_ref()) && !chunk.is_empty()) {
                self.send(chunk.take())?;
            }
            let start = chunk.text.len();
            let first_field = chunk.fields.len();
            let line = records
                .read_record(&mut chunk.text, &mut chunk.fields)
                .map_err(|error| describe_csv_error(error, &chunk.file))?;
            let Some(line) = line else { return Ok(()) };
            let record = CsvRecord {
                text: start..chunk.text.len(),
                fields: first_field..chunk.fields.len(),
            };
            chunk.places.push(Place { position: line, number: line });
            chunk.records.push(record);
        }
    }

    /// Reads the Graph list responses of one file, or of standard input, numbering their
    /// records from `first`. Returns the number of records read.
    fn read_pages(&mut self, path: &Option<PathBuf>, first: u64) -> anyhow::Result<u64> {
        let file: Arc<str> = label(path).into();
        let mut text = Vec::new();
        self.open(path)?.read_to_end(&mut text).with_context(|| format!("cannot read {file}"))?;
        let mut chunk = JsonChunk::new(file, "record");
        let mut next = first;
        // A byte order mark may start a file that a Windows tool saved.
        let pages = text.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&text);
        let outcome = self.fill_pages(pages, &mut chunk, &mut next);
        // The records before the end, or before a page that is not valid, go on first.
        let sent = self.send(chunk.take());
        outcome.and(sent)?;
        Ok(next - first)
    }

    /// Splits the pages of `text` into records, numbering them from `next` on.
    fn fill_pages(
        &mut self,
        text: &[u8],
        chunk: &mut JsonChunk,
        next: &mut u64,
    ) -> anyhow::Result<()> {
        #[derive(Deserialize)]
        struct Page<'a> {
            #[serde(borrow)]
            value: Vec<&'a RawValue>,
        }

        let first = *next;
        let pages = serde_json::Deserializer::from_slice(text).into_iter::<&RawValue>();
        for (index, page) in pages.enumerate() {
            let context = || {
                format!(
                    "{}: page {} is not a Graph list response such as {{\"value\":[…]}}",
                    chunk.file,
                    index + 1
                )
            };
            // serde reads a struct from an array too, and its message would then speak of a
            // sequence, so anything but an object is named here.
            let page = page.with_context(context)?;
            if !page.get().trim_start().starts_with('{') {
                let parsed = json::parse(page.get().as_bytes());
                let kind = parsed.as_ref().map_or("not an object", JsonValue::kind);
                return Err(anyhow::anyhow!("it is {kind}").context(context()));
            }
            let page: Page<'_> = serde_json::from_str(page.get()).with_context(context)?;
            for record in page.value {
                if chunk.is_full() {
                    self.send(chunk.take())?;
                }
                let place = Place { position: *next, number: *next - first + 1 };
                chunk.push_copy(place, record.get().as_bytes());
                *next += 1;
            }
        }
        Ok(())
    }
}

/// Names the file and line of a malformed CSV record, as the messages about its values do.
fn describe_csv_error(error: CsvError, file: &str) -> anyhow::Error {
    match error {
        CsvError::Malformed { line, reason } => anyhow::anyhow!("{file} line {line}: {reason}"),
        CsvError::Io(error) => anyhow::Error::new(error).context(format!("cannot read {file}")),
    }
}

/// Returns whether reading the next line may wait for more input, because no complete line
/// is buffered. The records read so far are handed on first, so that a slow input, such as
/// a pipe, does not hold back their checks and messages.
fn may_wait(input: &Input) -> bool {
    !input.buffer().contains(&b'\n')
}

/// Checks that each header field names a property of the view, once.
fn check_header(view: View, header: &Record, file: &str) -> anyhow::Result<Vec<String>> {
    let mut names: Vec<String> = Vec::new();
    for field in &header.fields {
        let name = field.text.clone();
        if view.property(&name).is_none() {
            let error = BodyError::UnknownProperty { name, view };
            bail!("{file} line {}: the CSV header is invalid: {error}", header.line);
        }
        if names.contains(&name) {
            bail!("{file} line {}: the CSV header names '{name}' twice", header.line);
        }
        names.push(name);
    }
    Ok(names)
}

/// A chunk of JSON records being filled: their text one after another, and each one's range.
struct JsonChunk {
    file: Arc<str>,
    unit: &'static str,
    places: Vec<Place>,
    text: Vec<u8>,
    spans: Vec<Range<usize>>,
}

impl JsonChunk {
    fn new(file: Arc<str>, unit: &'static str) -> JsonChunk {
        JsonChunk { file, unit, places: Vec::new(), text: Vec::new(), spans: Vec::new() }
    }

    fn is_empty(&self) -> bool {
        self.places.is_empty()
    }

    fn is_full(&self) -> bool {
        self.places.len() >= CHUNK_RECORDS || self.text.len() >= CHUNK_BYTES
    }

    /// Adds the record at `span` of the chunk's text.
    fn push(&mut self, place: Place, span: Range<usize>) {
        self.places.push(place);
        self.spans.push(span);
    }

    /// Adds a copy of `record`.
    fn push_copy(&mut self, place: Place, record: &[u8]) {
        let start = self.text.len();
        self.text.extend_from_slice(record);
        self.push(place, start..self.text.len());
    }

    /// Returns the records added so far and starts an empty chunk.
    fn take(&mut self) -> Chunk {
        let places = std::mem::replace(&mut self.places, Vec::with_capacity(CHUNK_RECORDS));
        let spans = std::mem::replace(&mut self.spans, Vec::with_capacity(CHUNK_RECORDS));
        let text = std::mem::replace(&mut self.text, Vec::with_capacity(CHUNK_BYTES));
        let records = Records::Json { text, spans };
        Chunk { file: Arc::clone(&self.file), unit: self.unit, places, records }
    }
}

/// A chunk of CSV records being filled: their text one after another, each one's range,
/// and the places of their fields.
struct CsvChunk {
    file: Arc<str>,
    /// The header's names, each written as a JSON string and a colon.
    names: Arc<[Vec<u8>]>,
    places: Vec<Place>,
    text: String,
    records: Vec<CsvRecord>,
    fields: Vec<FieldSpan>,
}

impl CsvChunk {
    fn new(file: Arc<str>, names: Arc<[Vec<u8>]>) -> CsvChunk {
        CsvChunk {
            file,
            names,
            places: Vec::new(),
            text: String::new(),
            records: Vec::new(),
            fields: Vec::new(),
        }
    }

    fn is_empty(&self) -> bool {
        self.places.is_empty()
    }

    fn is_full(&self) -> bool {
        self.places.len() >= CHUNK_RECORDS || self.text.len() >= CHUNK_BYTES
    }

    /// Returns the records added so far and starts an empty chunk.
    fn take(&mut self) -> Chunk {
        let places = std::mem::replace(&mut self.places, Vec::with_capacity(CHUNK_RECORDS));
        let text = std::mem::replace(&mut self.text, String::with_capacity(CHUNK_BYTES));
        let records = std::mem::replace(&mut self.records, Vec::with_capacity(CHUNK_RECORDS));
        let fields_per_record = self.names.len();
        let fields = std::mem::replace(
            &mut self.fields,
            Vec::with_capacity(CHUNK_RECORDS * fields_per_record),
        );
        let records = Records::Csv { names: Arc::clone(&self.names), text, records, fields };
        Chunk { file: Arc::clone(&self.file), unit: "line", places, records }
    }
}

fn trim_line_end(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Counts the bytes read through it, for the progress report.
struct CountingReader {
    input: Box<dyn Read + Send>,
    bytes: Arc<AtomicU64>,
}

impl Read for CountingReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let read = self.input.read(buf)?;
        self.bytes.fetch_add(read as u64, Ordering::Relaxed);
        Ok(read)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Returns `text` as an input that reads it in pieces of `buffer` bytes.
    fn input(text: &str, buffer: usize) -> Input {
        let counting = CountingReader {
            input: Box::new(io::Cursor::new(text.as_bytes().to_vec())),
            bytes: Arc::new(AtomicU64::new(0)),
        };
        BufReader::with_capacity(buffer, counting)
    }

    /// Returns each record's number and text, chunk by chunk.
    fn records(chunks: &[Chunk]) -> Vec<Vec<(u64, String)>> {
        chunks
            .iter()
            .map(|chunk| {
                let texts: Vec<String> = match &chunk.records {
                    Records::Json { text, spans } => spans
                        .iter()
                        .map(|span| String::from_utf8_lossy(&text[span.clone()]).into_owned())
                        .collect(),
                    Records::Csv { text, records, .. } => {
                        records.iter().map(|record| text[record.text.clone()].to_owned()).collect()
                    }
                };
                chunk.places.iter().map(|place| place.number).zip(texts).collect()
            })
            .collect()
    }

    #[test]
    fn ndjson_lines_are_numbered_and_blank_ones_skipped() {
        let mut chunks = Vec::new();
        let mut reader = Reader::new(View::Graph, Arc::default(), |chunk| {
            chunks.push(chunk);
            Ok(())
        });

        let text = "{\"id\":\"a\"}\r\n\n  \r\n{\"id\":\"b\"}\n{\"id\":\"c\"}";
        reader.read_ndjson(input(text, 1024), "rows".into()).unwrap();

        let expected = vec![(1, "{\"id\":\"a\"}".to_owned()), (4, "{\"id\":\"b\"}".to_owned())];
        let last = vec![(5, "{\"id\":\"c\"}".to_owned())];
        assert_eq!(records(&chunks).concat(), [expected, last].concat());
        assert!(chunks.iter().all(|chunk| chunk.places.iter().all(|p| p.position == p.number)));
    }

    #[test]
    fn chunk_ends_when_full_or_input_waits() {
        let text: String = (1..=1200).map(|i| format!("{{\"id\":\"{i}\"}}\n")).collect();

        let mut sizes = Vec::new();
        let mut reader = Reader::new(View::Graph, Arc::default(), |chunk| {
            sizes.push(chunk.places.len());
            Ok(())
        });
        reader.read_ndjson(input(&text, 1 << 20), "rows".into()).unwrap();
        assert_eq!(sizes, [CHUNK_RECORDS, CHUNK_RECORDS, 1200 - 2 * CHUNK_RECORDS]);

        // With a small read buffer, each chunk ends before a line that is not buffered whole.
        let mut sizes = Vec::new();
        let mut reader = Reader::new(View::Graph, Arc::default(), |chunk| {
            sizes.push(chunk.places.len());
            Ok(())
        });
        reader.read_ndjson(input(&text, 64), "rows".into()).unwrap();
        assert!(sizes.iter().all(|&size| size < 10), "{sizes:?}");
        assert_eq!(sizes.iter().sum::<usize>(), 1200);
    }

    #[test]
    fn csv_records_before_fault_are_sent() {
        let mut chunks = Vec::new();
        let mut reader = Reader::new(View::Graph, Arc::default(), |chunk| {
            chunks.push(chunk);
            Ok(())
        });

        let text = "id,tenantDisplayName\r\na,\"x\r\ny\"\r\n\r\nb,c\r\nd\"e,f\r\n";
        let error = reader.read_csv(input(text, 1024), "rows.csv".into()).unwrap_err();

        assert!(format!("{error:#}").contains("line 6: a quote inside"), "{error:#}");
        let read = records(&chunks).concat();
        assert_eq!(read, [(2, "a,\"x\r\ny\"\r\n".to_owned()), (5, "b,c\r\n".to_owned())]);
    }

    #[test]
    fn csv_header_must_name_properties_once() {
        let mut reader = Reader::new(View::Graph, Arc::default(), |_| Ok(()));
        let error = reader.read_csv(input("id,id\r\n", 1024), "rows.csv".into()).unwrap_err();
        assert!(error.to_string().contains("names 'id' twice"), "{error}");
    }

    #[test]
    fn stopped_import_stops_the_reader() {
        let text: String = (1..=2000).map(|i| format!("{{\"id\":\"{i}\"}}\n")).collect();
        let mut sent = 0;
        let mut reader = Reader::new(View::Graph, Arc::default(), |_| {
            sent += 1;
            anyhow::bail!("stopped")
        });

        let error = reader.read_ndjson(input(&text, 1 << 20), "rows".into()).unwrap_err();

        assert_eq!(error.to_string(), "stopped");
        assert_eq!(sent, 1);
    }
}
