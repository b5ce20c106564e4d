//! The `$orderby` option: the sort keys of a collection, parsed into unbound expressions.
//!
//! The value is a comma-separated list of items. Each item is an expression optionally
//! followed by whitespace and `asc` or `desc` in any case. Commas inside parentheses or string
//! literals belong to the expression. Spaces and tabs around the commas and at both ends are
//! accepted, although the OData 4.01 ABNF allows none there.
//!
//! Spans and error positions count characters over the whole `$orderby` value. A list has at
//! most [`MAX_ITEMS`] items, which also bounds the `orderby` transformation of `$apply`.

use crate::filter::cursor::Cursor;
use crate::filter::{Expr, Span, SyntaxError};

/// The maximum number of sort keys in one list. Every key becomes a sort key in SQL, and the
/// keyset condition of the next page grows with the square of their number; SQLite also
/// rejects a statement with more than 2,000 result columns or sort terms.
pub const MAX_ITEMS: usize = 32;

/// One sort key.
#[derive(Clone, Debug, PartialEq)]
pub struct OrderItem {
    /// The expression to sort by.
    pub expr: Expr,
    /// Whether `desc` was given. Both `asc` and no direction sort ascending.
    pub descending: bool,
    /// The expression and its direction word.
    pub span: Span,
}

/// Parses a `$orderby` value such as `numberOfErrorDevices desc,tenantDisplayName`.
pub fn parse(text: &str) -> Result<Vec<OrderItem>, SyntaxError> {
    let chars: Vec<char> = text.chars().collect();
    let mut cursor = Cursor::new(&chars);
    parse_items(&mut cursor, None)
}

/// Parses the comma-separated items at the cursor, up to the end of the text or, if `close`
/// is given, up to that character, which is left unconsumed.
pub(crate) fn parse_items(
    cursor: &mut Cursor<'_>,
    close: Option<char>,
) -> Result<Vec<OrderItem>, SyntaxError> {
    let after_item = match close {
        None => "',' or the end of $orderby",
        Some(')') => "',' or ')'",
        Some(_) => "','",
    };
    let mut items = Vec::new();
    loop {
        if items.len() == MAX_ITEMS {
            return Err(cursor.error(format!("the list has more than {MAX_ITEMS} sort keys")));
        }
        items.push(parse_item(cursor, after_item)?);

        // Expect a comma before the next item, or the end of the list.
        cursor.skip_whitespace();
        if cursor.eat(',') {
            continue;
        }
        let at_close = match close {
            None => cursor.at_end(),
            Some(c) => cursor.peek() == Some(c),
        };
        if at_close {
            return Ok(items);
        }
        return Err(cursor.expected(after_item));
    }
}

/// Parses one item: an expression and an optional direction.
fn parse_item(cursor: &mut Cursor<'_>, after_item: &str) -> Result<OrderItem, SyntaxError> {
    cursor.skip_whitespace();
    if cursor.at_end() || matches!(cursor.peek(), Some(',' | ')')) {
        return Err(cursor.expected("an expression to sort by"));
    }
    let start = cursor.at;
    let expr = cursor.expression()?;
    let mut end = cursor.at;

    // The direction needs whitespace before it, because without it the lexer reads one word.
    let before_direction = cursor.at;
    let mut descending = false;
    if cursor.skip_whitespace() {
        if cursor.eat_keyword("desc") {
            descending = true;
            end = cursor.at;
        } else if cursor.eat_keyword("asc") {
            end = cursor.at;
        } else if cursor.peek_word().is_some() {
            return Err(cursor.expected(&format!("'asc', 'desc', {after_item}")));
        } else {
            cursor.at = before_direction;
        }
    }
    Ok(OrderItem { expr, descending, span: Span { start, end } })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes the items as `expression-text direction`, using the spans to cut the text.
    fn show(text: &str) -> Vec<String> {
        let chars: Vec<char> = text.chars().collect();
        let items = parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        items
            .iter()
            .map(|item| {
                let span = item.expr.span();
                let expr: String = chars[span.start..span.end].iter().collect();
                let whole: String = chars[item.span.start..item.span.end].iter().collect();
                let direction = if item.descending { "desc" } else { "asc" };
                format!("{expr} {direction} [{whole}]")
            })
            .collect()
    }

    #[test]
    fn items_take_an_optional_direction() {
        assert_eq!(
            show("name asc,rating,date DESC"),
            ["name asc [name asc]", "rating asc [rating]", "date desc [date DESC]"]
        );
        assert_eq!(show("name\tdesc"), ["name desc [name\tdesc]"]);
    }

    #[test]
    fn nested_commas_stay_in_expression() {
        assert_eq!(
            show("concat(a, ',') desc, b"),
            ["concat(a, ',') desc [concat(a, ',') desc]", "b asc [b]"]
        );
    }

    #[test]
    fn expressions_may_use_operators() {
        let items = parse("cost ge revenue asc, (a add 1) desc").unwrap();
        assert!(matches!(items[0].expr, Expr::Binary { .. }));
        assert!(!items[0].descending);
        assert!(items[1].descending);
        // The item span covers the parentheses, which the expression's span does not.
        assert_eq!(items[1].span, Span { start: 21, end: 35 });
        assert_eq!(items[1].expr.span(), Span { start: 22, end: 29 });
    }

    #[test]
    fn whitespace_around_commas_is_accepted() {
        assert_eq!(show(" a , b desc "), ["a asc [a]", "b desc [b desc]"]);
    }

    #[test]
    fn sort_keys_are_bounded() {
        let at_limit = vec!["a"; MAX_ITEMS].join(",");
        assert_eq!(parse(&at_limit).unwrap().len(), MAX_ITEMS);
        let too_many = format!("{at_limit},b");
        let error = parse(&too_many).unwrap_err();
        assert_eq!(error.position, at_limit.len() + 2, "{error}");
        assert!(error.message.contains(&format!("more than {MAX_ITEMS} sort keys")), "{error}");
    }

    #[test]
    fn errors_name_the_position_in_the_whole_text() {
        let cases = [
            ("", 1, "expected an expression to sort by, but found the end of the text"),
            ("a,", 3, "expected an expression to sort by, but found the end of the text"),
            ("a,,b", 3, "expected an expression to sort by, but found ','"),
            (",a", 1, "expected an expression to sort by, but found ','"),
            ("a, b ascending", 6, "expected 'asc', 'desc', ',' or the end of $orderby"),
            ("a desc desc", 8, "expected ',' or the end of $orderby, but found 'desc'"),
            ("a, b eq", 8, "expected an expression, but found the end of the expression"),
            ("a, (b", 6, "expected ')'"),
            ("a, b)", 5, "expected ',' or the end of $orderby, but found ')'"),
            ("a, b #", 6, "expected ',' or the end of $orderby, but found '#'"),
        ];
        for (text, position, message) in cases {
            let error = parse(text).unwrap_err();
            assert_eq!(error.position, position, "{text}: {error}");
            assert!(error.message.contains(message), "{text}: {error}");
        }
    }
}
