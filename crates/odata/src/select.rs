//! The `$select` option: the properties a response includes, parsed but not yet bound.
//!
//! The value is a comma-separated list of items, with optional spaces or tabs around the
//! commas. An item is `*` or a property path: identifiers separated by `/`, where a segment may
//! be a qualified name such as `Model.Type` (a type cast) and the last one may be `Model.*`.
//! The text of a path is kept as written, because the binder, not the parser, checks it
//! against the entity model. Nested options such as `address($select=street)`, operation signatures and
//! annotations are rejected.
//!
//! Spans and error positions count characters over the whole `$select` value.

use crate::filter::cursor::Cursor;
use crate::filter::{Span, SyntaxError};

/// The maximum length of one identifier, from the OData ABNF (`odataIdentifier`).
const MAX_IDENTIFIER_LENGTH: usize = 128;

/// One item of `$select`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SelectItem {
    /// `*`: all structural properties.
    Star(Span),
    /// A property path as written, such as `tenantId` or `address/street`.
    Property(String, Span),
}

impl SelectItem {
    /// Returns the part of the text this item covers.
    pub fn span(&self) -> Span {
        match self {
            SelectItem::Star(span) | SelectItem::Property(_, span) => *span,
        }
    }
}

/// Parses a `$select` value such as `id,tenantId, compliancePolicyName`.
pub fn parse(text: &str) -> Result<Vec<SelectItem>, SyntaxError> {
    let chars: Vec<char> = text.chars().collect();
    if chars.len() > crate::filter::MAX_LENGTH {
        return Err(SyntaxError {
            position: crate::filter::MAX_LENGTH + 1,
            message: format!("$select is longer than {} characters", crate::filter::MAX_LENGTH),
        });
    }
    let mut cursor = Cursor::new(&chars);
    let mut items = Vec::new();
    loop {
        cursor.skip_whitespace();
        items.push(parse_item(&mut cursor)?);

        // Expect a comma before the next item, or the end of the text.
        cursor.skip_whitespace();
        if cursor.at_end() {
            return Ok(items);
        }
        if !cursor.eat(',') {
            let found = cursor.describe();
            let message = match cursor.peek() {
                Some('(') => format!(
                    "expected ',' or the end of $select, but found {found}: nested query options \
                     and operation parameters in $select are not supported"
                ),
                _ => format!("expected ',' or the end of $select, but found {found}"),
            };
            return Err(cursor.error(message));
        }
    }
}

/// Parses `*` or a property path at the cursor.
fn parse_item(cursor: &mut Cursor<'_>) -> Result<SelectItem, SyntaxError> {
    let start = cursor.at;
    if cursor.eat('*') {
        return Ok(SelectItem::Star(Span { start, end: cursor.at }));
    }
    loop {
        // A segment is one identifier or several joined by dots, possibly ending in `.*`.
        let mut star = false;
        loop {
            identifier(cursor)?;
            if cursor.peek() != Some('.') {
                break;
            }
            cursor.at += 1;
            if cursor.eat('*') {
                star = true;
                break;
            }
        }
        if star || !cursor.eat('/') {
            break;
        }
    }
    let end = cursor.at;
    let text = cursor.chars[start..end].iter().collect();
    Ok(SelectItem::Property(text, Span { start, end }))
}

/// Consumes an OData identifier: a letter or `_`, then letters, digits or `_`.
fn identifier(cursor: &mut Cursor<'_>) -> Result<(), SyntaxError> {
    let start = cursor.at;
    match cursor.peek() {
        Some(c) if c.is_alphabetic() || c == '_' => cursor.at += 1,
        Some('@') => {
            return Err(cursor.error(
                "annotations cannot be selected: expected a property name or '*'".to_owned(),
            ));
        }
        _ => return Err(cursor.expected("a property name or '*'")),
    }
    while cursor.peek().is_some_and(|c| c.is_alphanumeric() || c == '_') {
        cursor.at += 1;
    }
    if cursor.at - start > MAX_IDENTIFIER_LENGTH {
        cursor.at = start;
        return Err(
            cursor.error(format!("the name is longer than {MAX_IDENTIFIER_LENGTH} characters"))
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn property(text: &str, start: usize) -> SelectItem {
        let end = start + text.chars().count();
        SelectItem::Property(text.to_owned(), Span { start, end })
    }

    #[test]
    fn items_are_names_paths_or_star() {
        assert_eq!(
            parse("id,tenantId,*").unwrap(),
            [
                property("id", 0),
                property("tenantId", 3),
                SelectItem::Star(Span { start: 12, end: 13 })
            ]
        );
        assert_eq!(
            parse("address/street,Model.Vip/name").unwrap(),
            [property("address/street", 0), property("Model.Vip/name", 15)]
        );
        assert_eq!(parse("Model.*").unwrap(), [property("Model.*", 0)]);
    }

    #[test]
    fn whitespace_around_commas_is_accepted() {
        assert_eq!(
            parse(" a , b\t,c ").unwrap(),
            [property("a", 1), property("b", 5), property("c", 8)]
        );
    }

    #[test]
    fn names_keep_non_ascii_letters() {
        assert_eq!(parse("größe,_x1").unwrap(), [property("größe", 0), property("_x1", 6)]);
    }

    #[test]
    fn errors_name_the_position_in_the_whole_text() {
        let cases = [
            ("", 1, "expected a property name or '*', but found the end of the text"),
            ("a,", 3, "expected a property name or '*', but found the end of the text"),
            ("a,,b", 3, "expected a property name or '*', but found ','"),
            ("a b", 3, "expected ',' or the end of $select, but found 'b'"),
            ("a/", 3, "expected a property name or '*'"),
            ("a/*", 3, "expected a property name or '*', but found '*'"),
            ("1a", 1, "expected a property name or '*', but found '1a'"),
            ("a.", 3, "expected a property name or '*'"),
            ("a($select=b)", 2, "nested query options"),
            ("@Core.Messages", 1, "annotations cannot be selected"),
            ("a,Model.*/b", 10, "expected ',' or the end of $select, but found '/'"),
        ];
        for (text, position, message) in cases {
            let error = parse(text).unwrap_err();
            assert_eq!(error.position, position, "{text}: {error}");
            assert!(error.message.contains(message), "{text}: {error}");
        }
    }

    #[test]
    fn identifiers_are_bounded() {
        let long = "a".repeat(MAX_IDENTIFIER_LENGTH + 1);
        assert_eq!(parse(&format!("x,{long}")).unwrap_err().position, 3);
        let longest = "a".repeat(MAX_IDENTIFIER_LENGTH);
        assert!(parse(&longest).is_ok());
    }
}
