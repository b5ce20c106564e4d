//! The CSV form of `import` and `export`: RFC 4180 records, with the one addition that an
//! empty field tells null from the empty string.
//!
//! - The first record is the header: the view's property names, `id` included.
//! - A field is quoted (`"…"`, with `""` for a quote inside) when it contains a comma, a quote,
//!   a carriage return or a line feed, and when it is the empty string.
//! - An empty field without quotes is null, and `""` is the empty string.
//! - An Int64 is written in decimal digits, and a DateTimeOffset in its OData form with the
//!   fractional digits it was given, such as `2024-03-01T07:30:00.1234567Z`.
//! - Records end with CRLF when written; LF and CRLF are both read.
//!
//! Off-the-shelf CSV readers drop the difference between an empty field and `""`, so the
//! reader here is a small state machine of its own.

use std::borrow::Cow;
use std::io::{self, BufRead, Write};
use std::ops::Range;

/// One field of a record as read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field {
    /// The text, with quoting removed.
    pub text: String,
    /// Whether the field was quoted, which makes an empty field the empty string, not null.
    pub quoted: bool,
}

/// A record as read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// The line the record starts on, counted from 1.
    pub line: u64,
    /// The fields in order.
    pub fields: Vec<Field>,
    /// The record's text as given, without its line ending.
    pub raw: String,
}

/// A malformed record.
#[derive(Debug, thiserror::Error)]
pub enum CsvError {
    /// The input could not be read.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// The record is not valid CSV.
    #[error("line {line}: {reason}")]
    Malformed {
        /// The line the record starts on.
        line: u64,
        /// The fault, as a clause.
        reason: String,
    },
}

/// The place of one field in a record's text, as [`CsvReader::read_record`] finds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldSpan {
    /// The field's bytes in the text: inside the quotes for a quoted field, whose doubled
    /// quotes are still doubled.
    pub range: Range<usize>,
    /// Whether the field was quoted, which makes an empty field the empty string, not null.
    pub quoted: bool,
}

impl FieldSpan {
    /// Returns the field's text from the `text` it was read into, with quoting removed.
    pub fn text<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let field = &text[self.range.clone()];
        match self.quoted && field.contains("\"\"") {
            true => Cow::Owned(field.replace("\"\"", "\"")),
            false => Cow::Borrowed(field),
        }
    }
}

/// Returns a record's text as given: without its final line ending, and without a carriage
/// return at the very end of the input either.
pub fn raw_text(record: &str) -> &str {
    let record = record.strip_suffix('\n').unwrap_or(record);
    record.strip_suffix('\r').unwrap_or(record)
}

/// Reads CSV records one at a time.
#[derive(Debug)]
pub struct CsvReader<R> {
    input: R,
    /// The number of lines read so far.
    line: u64,
    /// The bytes of the line being read, before they are checked as UTF-8.
    bytes: Vec<u8>,
}

/// The state of a record being read, between its characters.
#[derive(Debug)]
struct Scan {
    /// The byte offset where the current field starts.
    field_start: usize,
    /// The byte offset where the current quoted field's text starts.
    quoted_start: usize,
    /// The byte offset of the quote that closed the current field.
    quoted_end: usize,
    /// Whether the current field began with a quote.
    quoted: bool,
    /// Whether the current unquoted field has any text.
    has_text: bool,
    /// Whether the scan is inside a quoted field's quotes.
    in_quotes: bool,
    /// Whether a quote closed the current field, so that only a comma or the line's end may
    /// follow.
    closed: bool,
}

impl<R: BufRead> CsvReader<R> {
    /// Reads from `input`.
    pub fn new(input: R) -> Self {
        Self { input, line: 0, bytes: Vec::new() }
    }

    /// Returns the input it reads from.
    pub fn get_ref(&self) -> &R {
        &self.input
    }

    /// Returns the next record, or `None` at the end of the input. Blank lines between
    /// records are skipped.
    pub fn next_record(&mut self) -> Result<Option<Record>, CsvError> {
        let mut text = String::new();
        let mut spans = Vec::new();
        let Some(line) = self.read_record(&mut text, &mut spans)? else {
            return Ok(None);
        };
        let fields = spans
            .iter()
            .map(|span| Field { text: span.text(&text).into_owned(), quoted: span.quoted })
            .collect();
        Ok(Some(Record { line, fields, raw: raw_text(&text).to_owned() }))
    }

    /// Reads the next line onto the end of `text`, its line ending included, and returns its
    /// length in bytes, 0 at the end of the input. A line that is not valid UTF-8 is an error
    /// that names it, where [`BufRead::read_line`] would name no line.
    fn read_line(&mut self, text: &mut String) -> Result<usize, CsvError> {
        self.bytes.clear();
        let read = self.input.read_until(b'\n', &mut self.bytes)?;
        match std::str::from_utf8(&self.bytes) {
            Ok(line) => {
                text.push_str(line);
                Ok(read)
            }
            Err(error) => Err(CsvError::Malformed {
                line: self.line + 1,
                reason: format!(
                    "the line is not valid UTF-8 (byte {} of the line is the first invalid one)",
                    error.valid_up_to() + 1
                ),
            }),
        }
    }

    /// Reads the next record onto the end of `text`, line endings included, checks its form
    /// and adds the place of each of its fields to `fields`. Returns the line the record
    /// starts on, or `None` at the end of the input. Blank lines between records are skipped.
    ///
    /// On an error, `text` may keep part of the record.
    pub fn read_record(
        &mut self,
        text: &mut String,
        fields: &mut Vec<FieldSpan>,
    ) -> Result<Option<u64>, CsvError> {
        let start = text.len();
        loop {
            if self.read_line(text)? == 0 {
                return Ok(None);
            }
            self.line += 1;
            // Spreadsheet programs often begin a UTF-8 file with a byte order mark.
            if self.line == 1 && text[start..].starts_with('\u{feff}') {
                text.replace_range(start..start + '\u{feff}'.len_utf8(), "");
            }
            if !text[start..].trim_end_matches(['\r', '\n']).is_empty() {
                break;
            }
            text.truncate(start);
        }
        let first_line = self.line;
        let mut scan = Scan {
            field_start: start,
            quoted_start: start,
            quoted_end: start,
            quoted: false,
            has_text: false,
            in_quotes: false,
            closed: false,
        };
        let mut line_start = start;
        loop {
            self.scan_line(&mut scan, text, line_start, fields)?;
            if !scan.in_quotes {
                break;
            }

            // A quoted field goes on over the line break.
            line_start = text.len();
            if self.read_line(text)? == 0 {
                return Err(CsvError::Malformed {
                    line: first_line,
                    reason: "a quoted field is not closed before the end of the input".to_owned(),
                });
            }
            self.line += 1;
        }

        // The line's end is not part of an unquoted last field, unless it is a carriage
        // return at the very end of the input.
        let line = text.as_str();
        let end = match line.strip_suffix('\n') {
            Some(line) => line.strip_suffix('\r').unwrap_or(line).len(),
            None => line.len(),
        };
        fields.push(scan.finish_field(end));
        Ok(Some(first_line))
    }

    /// Goes through the line at `text[line_start..]`, adding the place of each field that
    /// ends on it, except the record's last field.
    fn scan_line(
        &self,
        scan: &mut Scan,
        text: &str,
        line_start: usize,
        fields: &mut Vec<FieldSpan>,
    ) -> Result<(), CsvError> {
        let bytes = text.as_bytes();
        let mut at = line_start;
        // The special characters are ASCII, and no byte of a multi-byte UTF-8 character is,
        // so going through bytes finds the same ones as going through characters.
        while let Some(&byte) = bytes.get(at) {
            let next = bytes.get(at + 1).copied();
            if scan.in_quotes {
                match byte {
                    b'"' if next == Some(b'"') => at += 1,
                    b'"' => {
                        scan.in_quotes = false;
                        scan.closed = true;
                        scan.quoted_end = at;
                    }
                    _ => {}
                }
                at += 1;
                continue;
            }
            match byte {
                b',' => {
                    fields.push(scan.finish_field(at));
                    scan.field_start = at + 1;
                }
                b'\r' if next == Some(b'\n') => {}
                b'\n' => {}
                b'"' if !scan.has_text && !scan.quoted => {
                    scan.quoted = true;
                    scan.in_quotes = true;
                    scan.quoted_start = at + 1;
                }
                _ if scan.closed => {
                    let other = text[at..].chars().next().unwrap_or_default();
                    return Err(CsvError::Malformed {
                        line: self.line,
                        reason: format!(
                            "the character {other:?} follows a closing quote; a quoted field \
                             must end at a comma or the end of the line"
                        ),
                    });
                }
                b'"' => {
                    return Err(CsvError::Malformed {
                        line: self.line,
                        reason: "a quote inside an unquoted field; quote the field and double \
                                 the quote"
                            .to_owned(),
                    });
                }
                _ => scan.has_text = true,
            }
            at += 1;
        }
        Ok(())
    }
}

impl Scan {
    /// Returns the place of the current field, which ends at `end` unless it is quoted, and
    /// starts the next field.
    fn finish_field(&mut self, end: usize) -> FieldSpan {
        let span = match self.quoted {
            true => FieldSpan { range: self.quoted_start..self.quoted_end, quoted: true },
            false => FieldSpan { range: self.field_start..end, quoted: false },
        };
        self.quoted = false;
        self.has_text = false;
        self.closed = false;
        span
    }
}

/// Writes one field: `None` as an empty field, text quoted where needed.
pub fn write_field(out: &mut impl Write, value: Option<&str>) -> io::Result<()> {
    let Some(text) = value else { return Ok(()) };
    let needs_quotes = text.is_empty() || text.contains([',', '"', '\r', '\n']);
    if !needs_quotes {
        return out.write_all(text.as_bytes());
    }
    out.write_all(b"\"")?;
    let mut rest = text;
    while let Some(at) = rest.find('"') {
        out.write_all(&rest.as_bytes()[..=at])?;
        out.write_all(b"\"")?;
        rest = &rest[at + 1..];
    }
    out.write_all(rest.as_bytes())?;
    out.write_all(b"\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(text: &str) -> Vec<Record> {
        let mut reader = CsvReader::new(text.as_bytes());
        let mut records = Vec::new();
        while let Some(record) = reader.next_record().unwrap() {
            records.push(record);
        }
        records
    }

    fn texts(record: &Record) -> Vec<(&str, bool)> {
        record.fields.iter().map(|f| (f.text.as_str(), f.quoted)).collect()
    }

    #[test]
    fn byte_order_mark_before_header_is_dropped() {
        let records = read_all("\u{feff}id,name\r\n1,x\r\n");
        assert_eq!(texts(&records[0]), [("id", false), ("name", false)]);
        assert_eq!(texts(&records[1]), [("1", false), ("x", false)]);
    }

    #[test]
    fn empty_field_differs_from_quoted_empty_string() {
        let records = read_all("a,,\"\",b\r\n");
        assert_eq!(texts(&records[0]), [("a", false), ("", false), ("", true), ("b", false)]);
    }

    #[test]
    fn quoted_fields_keep_commas_quotes_and_line_breaks() {
        let records = read_all("id,name\n1,\"x, \"\"y\"\"\r\nz\"\n2,w\n");
        assert_eq!(records.len(), 3);
        assert_eq!(texts(&records[1]), [("1", false), ("x, \"y\"\r\nz", true)]);
        assert_eq!(records[1].line, 2);
        assert_eq!(records[1].raw, "1,\"x, \"\"y\"\"\r\nz\"");
        assert_eq!(records[2].line, 4);
    }

    #[test]
    fn written_fields_read_back_unchanged() {
        let values = [None, Some(""), Some("plain"), Some("a,b"), Some("q\"q"), Some("l\r\nm\n")];
        let mut line = Vec::new();
        for (i, value) in values.iter().enumerate() {
            if i > 0 {
                line.push(b',');
            }
            write_field(&mut line, *value).unwrap();
        }
        line.extend_from_slice(b"\r\n");
        let records = read_all(std::str::from_utf8(&line).unwrap());
        let read: Vec<Option<&str>> = records[0]
            .fields
            .iter()
            .map(|f| (f.quoted || !f.text.is_empty()).then_some(f.text.as_str()))
            .collect();
        assert_eq!(read, values);
    }

    #[test]
    fn stray_quotes_are_malformed() {
        for text in ["a\"b,c\n", "\"a\"b,c\n", "\"open\n"] {
            let mut reader = CsvReader::new(text.as_bytes());
            assert!(reader.next_record().is_err(), "{text:?}");
        }
    }
}
