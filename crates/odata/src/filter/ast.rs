//! The unbound syntax tree of an expression.

use crate::datetime::DateTimeOffset;

/// The start and end of a node in the expression text, as character offsets from 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    /// The offset of the first character.
    pub start: usize,
    /// The offset after the last character.
    pub end: usize,
}

/// A literal value as written.
#[derive(Clone, Debug, PartialEq)]
pub enum Literal {
    /// `null`.
    Null,
    /// `true` or `false`.
    Boolean(bool),
    /// A quoted string, with doubled quotes undone.
    String(String),
    /// An integer that fits 64 bits.
    Integer(i64),
    /// A decimal number, or an integer too large for 64 bits, kept as its exact text.
    Decimal(String),
    /// A number with an exponent, or `INF`, `-INF` or `NaN`.
    Double(f64),
    /// A date-time with an offset, such as `2024-03-01T07:30:00Z`.
    DateTimeOffset(DateTimeOffset),
    /// A date, such as `2024-03-01`, as (year, month, day).
    Date(i32, u8, u8),
    /// A time of day, such as `07:30:00.5`, in 100-nanosecond ticks since midnight.
    TimeOfDay(i64),
    /// A GUID, lowercased.
    Guid(String),
}

/// A prefix operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnaryOp {
    /// `not`.
    Not,
    /// `-`.
    Negate,
}

/// An infix operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryOp {
    /// `or`.
    Or,
    /// `and`.
    And,
    /// `eq`.
    Eq,
    /// `ne`.
    Ne,
    /// `gt`.
    Gt,
    /// `ge`.
    Ge,
    /// `lt`.
    Lt,
    /// `le`.
    Le,
    /// `has`.
    Has,
    /// `add`.
    Add,
    /// `sub`.
    Sub,
    /// `mul`.
    Mul,
    /// `div`.
    Div,
    /// `divby`.
    DivBy,
    /// `mod`.
    Mod,
}

impl BinaryOp {
    /// Finds the operator spelled `word`, ignoring case as OData 4.01 allows (`EQ`, `Eq`).
    pub fn from_word(word: &str) -> Option<BinaryOp> {
        Some(match word.to_ascii_lowercase().as_str() {
            "or" => BinaryOp::Or,
            "and" => BinaryOp::And,
            "eq" => BinaryOp::Eq,
            "ne" => BinaryOp::Ne,
            "gt" => BinaryOp::Gt,
            "ge" => BinaryOp::Ge,
            "lt" => BinaryOp::Lt,
            "le" => BinaryOp::Le,
            "has" => BinaryOp::Has,
            "add" => BinaryOp::Add,
            "sub" => BinaryOp::Sub,
            "mul" => BinaryOp::Mul,
            "div" => BinaryOp::Div,
            "divby" => BinaryOp::DivBy,
            "mod" => BinaryOp::Mod,
            _ => return None,
        })
    }

    /// Returns the left binding power: operators with a higher one bind tighter.
    pub fn binding_power(self) -> u8 {
        match self {
            BinaryOp::Or => 1,
            BinaryOp::And => 2,
            BinaryOp::Eq | BinaryOp::Ne => 3,
            BinaryOp::Gt | BinaryOp::Ge | BinaryOp::Lt | BinaryOp::Le => 4,
            BinaryOp::Add | BinaryOp::Sub => 5,
            BinaryOp::Mul | BinaryOp::Div | BinaryOp::DivBy | BinaryOp::Mod => 6,
            BinaryOp::Has => 8,
        }
    }
}

/// The binding power of `in`, which OData ranks with `has`.
pub(super) const IN_BINDING_POWER: u8 = 8;

/// The binding power of the prefix operators `-` and `not`.
pub(super) const PREFIX_BINDING_POWER: u8 = 7;

/// An expression whose names are not yet bound to the model.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    /// A literal value.
    Literal(Literal, Span),
    /// A name, such as a property; segments of a path are joined with `/`.
    Name(String, Span),
    /// A prefix operator applied to an operand.
    Unary {
        /// The operator.
        op: UnaryOp,
        /// The operand.
        operand: Box<Expr>,
        /// The whole expression.
        span: Span,
    },
    /// An infix operator applied to two operands.
    Binary {
        /// The operator.
        op: BinaryOp,
        /// The left operand.
        left: Box<Expr>,
        /// The right operand.
        right: Box<Expr>,
        /// The whole expression.
        span: Span,
    },
    /// `operand in (list)`.
    In {
        /// The value looked for.
        operand: Box<Expr>,
        /// The values it is compared with, possibly none.
        list: Vec<Expr>,
        /// The whole expression.
        span: Span,
    },
    /// A function call such as `contains(name, 'x')`, including `cast` and `isof`.
    Call {
        /// The function name as written.
        function: String,
        /// The arguments in order.
        arguments: Vec<Expr>,
        /// The whole expression.
        span: Span,
    },
}

impl Expr {
    /// Returns the part of the text this expression covers.
    pub fn span(&self) -> Span {
        match self {
            Expr::Literal(_, span) | Expr::Name(_, span) => *span,
            Expr::Unary { span, .. }
            | Expr::Binary { span, .. }
            | Expr::In { span, .. }
            | Expr::Call { span, .. } => *span,
        }
    }
}
