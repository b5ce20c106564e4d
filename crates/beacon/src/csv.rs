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

use std::io::{self, BufRead, Write};

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

/// Reads CSV records one at a time.
#[derive(Debug)]
pub struct CsvReader<R> {
    input: R,
    /// The number of lines read so far.
    line: u64,
    buffer: String,
}

impl<R: BufRead> CsvReader<R> {
    /// Reads from `input`.
    pub fn new(input: R) -> Self {
        Self { input, line: 0, buffer: String::new() }
    }

    /// Returns the next record, or `None` at the end of the input. Blank lines between
    /// records are skipped.
    pub fn next_record(&mut self) -> Result<Option<Record>, CsvError> {
        loop {
            self.buffer.clear();
            if self.input.read_line(&mut self.buffer)? == 0 {
                return Ok(None);
            }
            self.line += 1;
            // Spreadsheet programs often begin a UTF-8 file with a byte order mark.
            if self.line == 1 && self.buffer.starts_with('\u{feff}') {
                self.buffer.drain(..'\u{feff}'.len_utf8());
            }
            if !self.buffer.trim_end_matches(['\r', '\n']).is_empty() {
                break;
            }
        }
        let start = self.line;
        let mut raw = String::new();
        let mut fields = Vec::new();
        let mut field = Field { text: String::new(), quoted: false };
        // Inside quotes, and whether a quote just closed the field.
        let mut in_quotes = false;
        let mut closed = false;
        loop {
            let line = std::mem::take(&mut self.buffer);
            let mut characters = line.chars().peekable();
            while let Some(c) = characters.next() {
                if in_quotes {
                    match c {
                        '"' if characters.peek() == Some(&'"') => {
                            characters.next();
                            field.text.push('"');
                        }
                        '"' => {
                            in_quotes = false;
                            closed = true;
                        }
                        other => field.text.push(other),
                    }
                    continue;
                }
                match c {
                    ',' => {
                        fields.push(std::mem::replace(
                            &mut field,
                            Field { text: String::new(), quoted: false },
                        ));
                        closed = false;
                    }
                    '\r' if characters.peek() == Some(&'\n') => {}
                    '\n' => {}
                    '"' if field.text.is_empty() && !field.quoted => {
                        field.quoted = true;
                        in_quotes = true;
                    }
                    other if closed => {
                        return Err(CsvError::Malformed {
                            line: self.line,
                            reason: format!(
                                "the character {other:?} follows a closing quote; a quoted field \
                                 must end at a comma or the end of the line"
                            ),
                        });
                    }
                    '"' => {
                        return Err(CsvError::Malformed {
                            line: self.line,
                            reason: "a quote inside an unquoted field; quote the field and \
                                     double the quote"
                                .to_owned(),
                        });
                    }
                    other => field.text.push(other),
                }
            }
            raw.push_str(&line);
            // Give the line's allocation back, so that the next line reuses it.
            self.buffer = line;
            if !in_quotes {
                break;
            }

            // A quoted field goes on over the line break.
            self.buffer.clear();
            if self.input.read_line(&mut self.buffer)? == 0 {
                return Err(CsvError::Malformed {
                    line: start,
                    reason: "a quoted field is not closed before the end of the input".to_owned(),
                });
            }
            self.line += 1;
        }
        fields.push(field);
        let raw = raw.strip_suffix('\n').unwrap_or(&raw);
        let raw = raw.strip_suffix('\r').unwrap_or(raw).to_owned();
        Ok(Some(Record { line: start, fields, raw }))
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
