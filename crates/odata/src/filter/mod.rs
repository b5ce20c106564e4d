//! The `$filter` expression language: lexing and parsing into an unbound syntax tree.
//!
//! [`parse`] turns the text of a `$filter` (or any OData common expression) into an [`Expr`]
//! whose names are still text. Binding the names to the entity model, checking types and
//! compiling to SQL are later steps, so this module depends on no property or store.
//! [`parse_prefix`] parses an expression that is followed by more text, for the options that
//! embed expressions, such as `$orderby` and `$apply`.
//!
//! Operator precedence follows OData 4.01's URL conventions. From tightest to loosest, the
//! levels are `has` and `in`, then unary `-` and `not`, then `mul`, `div`, `divby` and `mod`,
//! then `add` and `sub`, then `gt`, `ge`, `lt` and `le`, then `eq` and `ne`, then `and`, and
//! last `or`. Binary operators of equal precedence associate to the left.
//! Operator words ignore case, as OData 4.01 allows (`EQ`, `And`).
//!
//! Every error names the character position (counted from 1) and what was expected there.
//! An [`Expr`] prints as text that parses back to the same tree (see `print`).

mod ast;
pub(crate) mod cursor;
mod lexer;
mod parser;
mod print;

pub use ast::{BinaryOp, Expr, Literal, Span, UnaryOp};
pub use parser::{MAX_DEPTH, MAX_LENGTH, parse, parse_prefix};

/// A syntax error in an expression.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("Syntax error at position {position}: {message}.")]
pub struct SyntaxError {
    /// The character position of the error, counted from 1.
    pub position: usize,
    /// The expected and the found token, as a clause.
    pub message: String,
}
