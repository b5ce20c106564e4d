//! A character cursor for the query options that embed expressions in a syntax of their own,
//! such as `$orderby`, `$select` and `$apply`.
//!
//! Offsets count characters from 0 over the whole option value, like [`Span`], and errors carry
//! 1-based positions, like every [`SyntaxError`].

use super::{Expr, Span, SyntaxError, parse_prefix};

/// A position in the characters of one query option value.
#[derive(Debug)]
pub(crate) struct Cursor<'a> {
    pub chars: &'a [char],
    pub at: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(chars: &'a [char]) -> Self {
        Cursor { chars, at: 0 }
    }

    pub fn peek(&self) -> Option<char> {
        self.chars.get(self.at).copied()
    }

    pub fn at_end(&self) -> bool {
        self.at >= self.chars.len()
    }

    /// Skips spaces and tabs, the whitespace of OData URLs once `%20` and `%09` are decoded,
    /// and returns whether there were any.
    pub fn skip_whitespace(&mut self) -> bool {
        let start = self.at;
        while matches!(self.peek(), Some(' ' | '\t')) {
            self.at += 1;
        }
        self.at > start
    }

    /// Consumes `c` if it is next.
    pub fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    /// Returns the word at the cursor without consuming it: letters, digits, `_`, and `$` or
    /// `@` at its start.
    pub fn peek_word(&self) -> Option<(String, Span)> {
        let start = self.at;
        let mut end = start;
        while let Some(&c) = self.chars.get(end) {
            let first = end == start && (c == '$' || c == '@');
            if !(c.is_alphanumeric() || c == '_' || first) {
                break;
            }
            end += 1;
        }
        (end > start).then(|| (self.chars[start..end].iter().collect(), Span { start, end }))
    }

    /// Consumes `keyword`, ignoring ASCII case, if it is the whole word at the cursor.
    pub fn eat_keyword(&mut self, keyword: &str) -> bool {
        match self.peek_word() {
            Some((word, span)) if word.eq_ignore_ascii_case(keyword) => {
                self.at = span.end;
                true
            }
            _ => false,
        }
    }

    /// Parses the expression at the cursor and moves past it, leaving the cursor right after
    /// its last character.
    pub fn expression(&mut self) -> Result<Expr, SyntaxError> {
        let (expr, stop) = parse_prefix(self.chars, self.at)?;
        self.at = self.end_before_whitespace(stop);
        Ok(expr)
    }

    /// Returns `offset` moved back over whitespace, but not before the cursor.
    fn end_before_whitespace(&self, offset: usize) -> usize {
        let mut end = offset;
        while end > self.at && matches!(self.chars[end - 1], ' ' | '\t') {
            end -= 1;
        }
        end
    }

    /// Describes what is at the cursor for an error message.
    pub fn describe(&self) -> String {
        match self.peek() {
            None => "the end of the text".to_owned(),
            Some(_) => match self.peek_word() {
                Some((word, _)) => format!("'{word}'"),
                None => format!("'{}'", self.chars[self.at]),
            },
        }
    }

    /// Builds an error at the cursor.
    pub fn error(&self, message: String) -> SyntaxError {
        SyntaxError { position: self.at + 1, message }
    }

    /// Builds an error at the cursor saying what was expected and what was found.
    pub fn expected(&self, expected: &str) -> SyntaxError {
        self.error(format!("expected {expected}, but found {}", self.describe()))
    }
}
