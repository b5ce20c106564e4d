//! Binding: from an unbound syntax tree to a typed expression over the entity's properties.
//!
//! [`filter`] and [`value`] resolve every name against a [`View`], so `tenantId` in the Graph
//! view and `organizationId` in the seed view become the same [`Property`]. They give every
//! node its type and reject what cannot be evaluated exactly, each error naming the character
//! position. The result, a [`Typed`] tree, is what the store compiles to SQL. It contains only
//! shapes that the compiler can render exactly, so every decision about literal kinds,
//! numeric scales and GUID comparison is made here, once, for every store.
//!
//! Numbers are carried as scaled integers: a node of type [`Type::Number`] with scale `s`
//! contains the value times `10^s`. Stored counters have scale 0, `fractionalseconds` has scale 7
//! (it counts 100-nanosecond ticks), and arithmetic with a decimal constant raises the scale,
//! so `numberOfErrorDevices mul 1.5 gt 10` compares `numberOfErrorDevices * 15` with `100`,
//! exactly. Comparisons with constants that are not integers fold at bind time (see
//! [`number`]).

pub mod apply;
mod number;

use std::fmt;

use crate::datetime::{DateTimeOffset, MAX_TICKS, MIN_TICKS, TICKS_PER_SECOND};
use crate::filter::{BinaryOp, Expr, Literal, Span, UnaryOp};
use crate::model::{EdmType, Property, View};
use number::{Constant, Decimal, Rounded};

/// The number of 100-nanosecond ticks in a day.
pub const TICKS_PER_DAY: i64 = 86_400 * TICKS_PER_SECOND;

/// The largest numeric scale an expression may reach; `10^18` still fits 64 bits.
const MAX_SCALE: u8 = 18;

/// The largest compiled size of a `matchesPattern` regular expression, in bytes, so a client
/// cannot make the server build a huge automaton.
pub const MAX_PATTERN_SIZE: usize = 1 << 20;

/// The type of a bound expression.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Type {
    /// `Edm.Boolean`.
    Boolean,
    /// `Edm.String`.
    String,
    /// An exact number: an integer meaning the value times `10^scale`. Scale 0 is
    /// `Edm.Int64`; a larger scale is an `Edm.Decimal`.
    Number {
        /// The number of implied fractional digits.
        scale: u8,
    },
    /// `Edm.Double`: only the result of `average` in `$apply` has it.
    Double,
    /// The exact quotient of a `divby`, as a call of [`Function::DivBy`] on a numerator and a
    /// denominator of equal scale. It can only be compared.
    Ratio,
    /// `Edm.DateTimeOffset`, as 100-nanosecond ticks since the Unix epoch.
    DateTimeOffset,
    /// `Edm.Date`, as days since 1970-01-01.
    Date,
    /// `Edm.TimeOfDay`, as ticks since midnight.
    TimeOfDay,
    /// The `null` literal, before a comparison gives it a type.
    Null,
}

impl Type {
    /// An `Edm.Int64`.
    pub const INT64: Type = Type::Number { scale: 0 };

    fn of(edm: EdmType) -> Type {
        match edm {
            EdmType::String => Type::String,
            EdmType::Int64 => Type::INT64,
            EdmType::DateTimeOffset => Type::DateTimeOffset,
        }
    }
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Type::Boolean => "Edm.Boolean",
            Type::String => "Edm.String",
            Type::Number { scale: 0 } => "Edm.Int64",
            Type::Number { .. } => "Edm.Decimal",
            Type::Double => "Edm.Double",
            Type::Ratio => "Edm.Decimal",
            Type::DateTimeOffset => "Edm.DateTimeOffset",
            Type::Date => "Edm.Date",
            Type::TimeOfDay => "Edm.TimeOfDay",
            Type::Null => "null",
        })
    }
}

/// A comparison operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Comparison {
    /// `eq`: null equals only null.
    Eq,
    /// `ne`: the negation of `eq`.
    Ne,
    /// `gt`: false when either side is null.
    Gt,
    /// `ge`: false when one side is null, true when both are.
    Ge,
    /// `lt`: false when either side is null.
    Lt,
    /// `le`: false when one side is null, true when both are.
    Le,
}

impl Comparison {
    /// Returns the operator that gives the same result with its operands swapped.
    pub fn flipped(self) -> Comparison {
        match self {
            Comparison::Gt => Comparison::Lt,
            Comparison::Ge => Comparison::Le,
            Comparison::Lt => Comparison::Gt,
            Comparison::Le => Comparison::Ge,
            other => other,
        }
    }
}

/// An arithmetic operator on numbers. Every one fails the request on overflow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arithmetic {
    /// `add`.
    Add,
    /// `sub`.
    Sub,
    /// `mul`.
    Mul,
    /// `div` on integers: truncates toward zero; dividing by zero fails the request.
    Div,
    /// `mod` on integers: the remainder has the sign of the dividend.
    Mod,
}

/// A function the store evaluates. Each gives null when an argument is null.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Function {
    /// `contains(s, t)`.
    Contains,
    /// `startswith(s, t)`.
    StartsWith,
    /// `endswith(s, t)`.
    EndsWith,
    /// `length(s)`, in code points.
    Length,
    /// `indexof(s, t)`, 0-based in code points, -1 when absent.
    IndexOf,
    /// `substring(s, start)` or `substring(s, start, length)`, 0-based in code points.
    Substring,
    /// `tolower(s)`, with Unicode's full case mapping.
    ToLower,
    /// `toupper(s)`, with Unicode's full case mapping.
    ToUpper,
    /// `trim(s)`: removes Unicode white space at both ends.
    Trim,
    /// `concat(s, t)`.
    Concat,
    /// `matchesPattern(s, pattern)`: an unanchored regular-expression search.
    MatchesPattern,
    /// Lowercases ASCII letters only; used to compare strings with GUID literals.
    AsciiLower,
    /// The year of a tick count.
    Year,
    /// The month (1 to 12) of a tick count.
    Month,
    /// The day of the month of a tick count.
    Day,
    /// The hour of a tick count.
    Hour,
    /// The minute of a tick count.
    Minute,
    /// The second of a tick count.
    Second,
    /// The ticks within the second of a tick count.
    Fraction,
    /// The days since 1970-01-01 of a tick count, rounded down.
    Date,
    /// The ticks since midnight of a tick count.
    Time,
    /// `divby`: the quotient of its two arguments, as a double when a value is needed.
    DivBy,
    /// Compares the fractions `a / b` and `c / d` exactly: -1, 0 or 1.
    RatioCompare,
}

/// A named column of a transformed result, such as a grouping property or an aggregate's
/// alias after `$apply=groupby(...)`.
#[derive(Clone, Debug, PartialEq)]
pub struct Column {
    /// The name clients use for it.
    pub name: String,
    /// Its type.
    pub ty: Type,
}

/// A node of a bound expression.
#[derive(Clone, Debug, PartialEq)]
pub enum Node {
    /// A stored property.
    Property(Property),
    /// A column of a transformed result, by position.
    Column(usize),
    /// The null value.
    Null,
    /// A Boolean constant.
    Boolean(bool),
    /// A string constant.
    String(String),
    /// A double constant, compared with doubles such as averages.
    Real(f64),
    /// An integer constant: a scaled number, ticks, days or ticks since midnight, as the
    /// node's type defines.
    Integer(i64),
    /// A comparison with OData's null rules; never null itself.
    Compare {
        /// The operator.
        op: Comparison,
        /// The left operand.
        left: Box<Typed>,
        /// The right operand, of the same type as the left one or null.
        right: Box<Typed>,
    },
    /// True when the operand equals one of the constants (or is null and `or_null` is set).
    In {
        /// The value looked for.
        operand: Box<Typed>,
        /// Non-null constants of the operand's type.
        values: Vec<Typed>,
        /// Whether the list contained `null`.
        or_null: bool,
    },
    /// True when the operand is not null.
    IsNotNull(Box<Typed>),
    /// Three-valued `and`.
    And(Box<Typed>, Box<Typed>),
    /// Three-valued `or`.
    Or(Box<Typed>, Box<Typed>),
    /// Three-valued `not`.
    Not(Box<Typed>),
    /// Arithmetic on numbers of equal scale (except `mul`, whose scales add).
    Arithmetic {
        /// The operator.
        op: Arithmetic,
        /// The left operand.
        left: Box<Typed>,
        /// The right operand.
        right: Box<Typed>,
    },
    /// Unary minus.
    Negate(Box<Typed>),
    /// A function call.
    Call {
        /// The function.
        function: Function,
        /// Its arguments.
        arguments: Vec<Typed>,
    },
}

/// A bound expression with its type.
#[derive(Clone, Debug, PartialEq)]
pub struct Typed {
    /// The operation or value at the root of the expression.
    pub node: Node,
    /// The type of its value.
    pub ty: Type,
}

impl Typed {
    fn new(node: Node, ty: Type) -> Typed {
        Typed { node, ty }
    }

    fn boolean(value: bool) -> Typed {
        Typed::new(Node::Boolean(value), Type::Boolean)
    }

    fn integer(value: i64, ty: Type) -> Typed {
        Typed::new(Node::Integer(value), ty)
    }

    /// Returns whether the expression can evaluate to null for some row.
    pub fn nullable(&self) -> bool {
        match &self.node {
            Node::Property(property) => *property != Property::Id,
            Node::Column(_) | Node::Null => true,
            Node::Boolean(_) | Node::String(_) | Node::Integer(_) | Node::Real(_) => false,
            Node::Compare { .. } | Node::In { .. } | Node::IsNotNull(_) => false,
            Node::And(left, right) | Node::Or(left, right) => left.nullable() || right.nullable(),
            Node::Not(operand) | Node::Negate(operand) => operand.nullable(),
            Node::Arithmetic { left, right, .. } => left.nullable() || right.nullable(),
            Node::Call { arguments, .. } => arguments.iter().any(Typed::nullable),
        }
    }

    /// Returns whether the expression reads a property or column, so that its value can
    /// differ from row to row.
    pub fn depends_on_row(&self) -> bool {
        match &self.node {
            Node::Property(_) | Node::Column(_) => true,
            Node::Null | Node::Boolean(_) | Node::String(_) | Node::Integer(_) | Node::Real(_) => {
                false
            }
            Node::Compare { left, right, .. }
            | Node::And(left, right)
            | Node::Or(left, right)
            | Node::Arithmetic { left, right, .. } => {
                left.depends_on_row() || right.depends_on_row()
            }
            Node::In { operand, .. } => operand.depends_on_row(),
            Node::IsNotNull(operand) | Node::Not(operand) | Node::Negate(operand) => {
                operand.depends_on_row()
            }
            Node::Call { arguments, .. } => arguments.iter().any(Typed::depends_on_row),
        }
    }

    /// Returns whether the expression is a constant, which needs no row to evaluate.
    pub fn is_constant(&self) -> bool {
        matches!(
            self.node,
            Node::Null | Node::Boolean(_) | Node::String(_) | Node::Integer(_) | Node::Real(_)
        )
    }
}

/// A name or type error, at a character position of the option's text.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("Error at position {position}: {message}.")]
pub struct BindError {
    /// The character position, counted from 1.
    pub position: usize,
    /// The problem, as a clause.
    pub message: String,
}

/// Binds a `$filter` expression, which must be Boolean. `now` is the request's time in ticks.
pub fn filter(expr: &Expr, view: View, now: i64) -> Result<Typed, BindError> {
    filter_in(expr, view, now, None)
}

/// Binds a Boolean expression whose names are `columns` when given, else the view's
/// properties.
pub fn filter_in(
    expr: &Expr,
    view: View,
    now: i64,
    columns: Option<&[Column]>,
) -> Result<Typed, BindError> {
    let bound = Binder { view, now, columns }.typed(expr)?;
    match bound.ty {
        Type::Boolean => Ok(bound),
        Type::Null => Ok(Typed::new(Node::Null, Type::Boolean)),
        other => Err(error(
            expr.span(),
            format!("a filter must be a Boolean expression, but this one is of type {other}"),
        )),
    }
}

/// Binds an expression that yields a value, such as an `$orderby` item.
pub fn value(expr: &Expr, view: View, now: i64) -> Result<Typed, BindError> {
    value_in(expr, view, now, None)
}

/// Binds a value expression whose names are `columns` when given, else the view's
/// properties.
pub fn value_in(
    expr: &Expr,
    view: View,
    now: i64,
    columns: Option<&[Column]>,
) -> Result<Typed, BindError> {
    Binder { view, now, columns }.typed(expr)
}

/// Binds a property name of `view`, as `$select` and `groupby` use them.
pub fn property(name: &str, span: Span, view: View) -> Result<Property, BindError> {
    Binder { view, now: 0, columns: None }.property(name, span)
}

fn error(span: Span, message: String) -> BindError {
    BindError { position: span.start + 1, message }
}

/// An operand before its final type is known: literals that only a comparison can place.
enum Operand {
    /// An expression with a type.
    Typed(Typed),
    /// A number that is not a 64-bit integer: a decimal, a double, `INF` or `NaN`.
    Number(Constant),
    /// A GUID literal, lowercased.
    Guid(String),
}

struct Binder<'a> {
    view: View,
    now: i64,
    /// The names in scope after a transformation; `None` means the entity's properties.
    columns: Option<&'a [Column]>,
}

impl Binder<'_> {
    /// Binds an expression that must end up with a type of its own.
    fn typed(&self, expr: &Expr) -> Result<Typed, BindError> {
        match self.operand(expr)? {
            Operand::Typed(typed) => Ok(typed),
            Operand::Guid(guid) => Ok(Typed::new(Node::String(guid), Type::String)),
            Operand::Number(constant) => number_constant(&constant, expr.span()),
        }
    }

    fn operand(&self, expr: &Expr) -> Result<Operand, BindError> {
        let typed = match expr {
            Expr::Literal(literal, span) => return self.literal(literal, *span),
            Expr::Name(name, span) if self.columns.is_some() => {
                let columns = self.columns.unwrap_or_default();
                let Some(index) = columns.iter().position(|c| c.name == *name) else {
                    let known: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
                    return Err(error(
                        *span,
                        format!(
                            "'{name}' is not a property of the transformed result; its \
                             properties are {}",
                            known.join(", ")
                        ),
                    ));
                };
                Typed::new(Node::Column(index), columns[index].ty)
            }
            Expr::Name(name, span) => {
                let property = self.property(name, *span)?;
                Typed::new(Node::Property(property), Type::of(property.edm_type()))
            }
            Expr::Unary { op: UnaryOp::Not, operand, .. } => {
                let operand = self.boolean(operand)?;
                Typed::new(Node::Not(Box::new(operand)), Type::Boolean)
            }
            Expr::Unary { op: UnaryOp::Negate, operand, span } => {
                return self.negate(operand, *span);
            }
            Expr::Binary { op, left, right, span } => return self.binary(*op, left, right, *span),
            Expr::In { operand, list, .. } => self.in_list(operand, list)?,
            Expr::Call { function, arguments, span } => self.call(function, arguments, *span)?,
        };
        Ok(Operand::Typed(typed))
    }

    fn property(&self, name: &str, span: Span) -> Result<Property, BindError> {
        if let Some(property) = self.view.property(name) {
            return Ok(property);
        }
        if name.contains('/') {
            return Err(error(
                span,
                format!(
                    "'{name}' is a path, but aggregatedPolicyCompliance has no navigation or \
                     complex properties"
                ),
            ));
        }
        let known: Vec<&str> = Property::ALL.iter().map(|p| p.name(self.view)).collect();
        Err(error(
            span,
            format!(
                "'{name}' is not a property of aggregatedPolicyCompliance; its properties are {}",
                known.join(", ")
            ),
        ))
    }

    fn literal(&self, literal: &Literal, span: Span) -> Result<Operand, BindError> {
        let typed = match literal {
            Literal::Null => Typed::new(Node::Null, Type::Null),
            Literal::Boolean(value) => Typed::boolean(*value),
            Literal::String(text) => Typed::new(Node::String(text.clone()), Type::String),
            Literal::Integer(value) => Typed::integer(*value, Type::INT64),
            Literal::Decimal(text) => {
                let decimal = Decimal::parse(text)
                    .ok_or_else(|| error(span, format!("'{text}' is not a decimal number")))?;
                match decimal.scaled(0) {
                    Rounded::Exact(value) => Typed::integer(value, Type::INT64),
                    _ => return Ok(Operand::Number(Constant::Finite(decimal))),
                }
            }
            Literal::Double(value) => return Ok(Operand::Number(Decimal::from_f64(*value))),
            Literal::DateTimeOffset(instant) => {
                Typed::integer(instant.ticks(), Type::DateTimeOffset)
            }
            Literal::Date(year, month, day) => Typed::integer(
                crate::datetime::days_from_civil(
                    i64::from(*year),
                    u32::from(*month),
                    u32::from(*day),
                ),
                Type::Date,
            ),
            Literal::TimeOfDay(ticks) => Typed::integer(*ticks, Type::TimeOfDay),
            Literal::Guid(guid) => return Ok(Operand::Guid(guid.clone())),
        };
        Ok(Operand::Typed(typed))
    }

    fn boolean(&self, expr: &Expr) -> Result<Typed, BindError> {
        let typed = self.typed(expr)?;
        match typed.ty {
            Type::Boolean => Ok(typed),
            Type::Null => Ok(Typed::new(Node::Null, Type::Boolean)),
            other => Err(error(
                expr.span(),
                format!("expected a Boolean expression, but this one is of type {other}"),
            )),
        }
    }

    fn binary(
        &self,
        op: BinaryOp,
        left: &Expr,
        right: &Expr,
        span: Span,
    ) -> Result<Operand, BindError> {
        let comparison = match op {
            BinaryOp::And | BinaryOp::Or => {
                let (l, r) = (Box::new(self.boolean(left)?), Box::new(self.boolean(right)?));
                let node = if op == BinaryOp::And { Node::And(l, r) } else { Node::Or(l, r) };
                return Ok(Operand::Typed(Typed::new(node, Type::Boolean)));
            }
            BinaryOp::Has => {
                return Err(error(
                    span,
                    "'has' tests flags of enumeration values, and aggregatedPolicyCompliance has \
                     no enumeration properties"
                        .to_owned(),
                ));
            }
            BinaryOp::Eq => Comparison::Eq,
            BinaryOp::Ne => Comparison::Ne,
            BinaryOp::Gt => Comparison::Gt,
            BinaryOp::Ge => Comparison::Ge,
            BinaryOp::Lt => Comparison::Lt,
            BinaryOp::Le => Comparison::Le,
            BinaryOp::Add => return self.arithmetic(Arithmetic::Add, left, right, span),
            BinaryOp::Sub => return self.arithmetic(Arithmetic::Sub, left, right, span),
            BinaryOp::Mul => return self.arithmetic(Arithmetic::Mul, left, right, span),
            BinaryOp::Div => return self.arithmetic(Arithmetic::Div, left, right, span),
            BinaryOp::Mod => return self.arithmetic(Arithmetic::Mod, left, right, span),
            BinaryOp::DivBy => return self.divby(left, right, span),
        };
        let (l, r) = (self.operand(left)?, self.operand(right)?);
        Ok(Operand::Typed(compare(comparison, l, r, span)?))
    }

    fn arithmetic(
        &self,
        op: Arithmetic,
        left: &Expr,
        right: &Expr,
        span: Span,
    ) -> Result<Operand, BindError> {
        let left = self.numeric(left)?;
        let right = self.numeric(right)?;
        let (ls, rs) = (scale_of(&left), scale_of(&right));
        let (left, right, scale) = match op {
            Arithmetic::Mul => {
                let scale = ls + rs;
                if scale > MAX_SCALE {
                    return Err(error(span, "the product has too many fractional digits".into()));
                }
                (left, right, scale)
            }
            Arithmetic::Div | Arithmetic::Mod if ls > 0 || rs > 0 => {
                return Err(error(
                    span,
                    "'div' and 'mod' take integers, and an operand here has fractional digits"
                        .to_owned(),
                ));
            }
            _ => {
                let scale = ls.max(rs);
                (rescale(left, scale), rescale(right, scale), scale)
            }
        };
        let ty = Type::Number { scale };
        if left.node == Node::Null || right.node == Node::Null {
            return Ok(Operand::Typed(Typed::new(Node::Null, ty)));
        }

        // Constants are computed now, so their overflow or division by zero is reported at
        // their position, whatever the data.
        if matches!(op, Arithmetic::Div | Arithmetic::Mod) && right.node == Node::Integer(0) {
            return Err(error(span, "division by zero".to_owned()));
        }
        if let (Node::Integer(a), Node::Integer(b)) = (&left.node, &right.node) {
            let (a, b) = (*a, *b);
            let (name, result) = match op {
                Arithmetic::Add => ("add", a.checked_add(b)),
                Arithmetic::Sub => ("sub", a.checked_sub(b)),
                Arithmetic::Mul => ("mul", a.checked_mul(b)),
                Arithmetic::Div | Arithmetic::Mod if b == 0 => {
                    return Err(error(span, "division by zero".to_owned()));
                }
                Arithmetic::Div => ("div", a.checked_div(b)),
                Arithmetic::Mod => ("mod", Some(a.wrapping_rem(b))),
            };
            return match result {
                Some(value) => Ok(Operand::Typed(Typed::integer(value, ty))),
                None => Err(error(
                    span,
                    format!("the result of '{name}' is outside the range of Edm.Int64"),
                )),
            };
        }
        let node = Node::Arithmetic { op, left: Box::new(left), right: Box::new(right) };
        Ok(Operand::Typed(Typed::new(node, ty)))
    }

    /// Binds `left divby right` as an exact fraction, which comparisons evaluate without
    /// rounding.
    fn divby(&self, left: &Expr, right: &Expr, span: Span) -> Result<Operand, BindError> {
        let left = self.numeric(left)?;
        let right = self.numeric(right)?;
        let scale = scale_of(&left).max(scale_of(&right));
        let (left, right) = (rescale(left, scale), rescale(right, scale));
        if right.node == Node::Integer(0) {
            return Err(error(span, "division by zero".to_owned()));
        }
        if left.node == Node::Null || right.node == Node::Null {
            return Ok(Operand::Typed(Typed::new(Node::Null, Type::Ratio)));
        }
        let node = Node::Call { function: Function::DivBy, arguments: vec![left, right] };
        Ok(Operand::Typed(Typed::new(node, Type::Ratio)))
    }

    /// Binds an operand of arithmetic: a number, or null.
    fn numeric(&self, expr: &Expr) -> Result<Typed, BindError> {
        let typed = self.typed(expr)?;
        match typed.ty {
            Type::Number { .. } => Ok(typed),
            Type::Null => Ok(Typed::new(Node::Null, Type::INT64)),
            Type::Ratio => Err(error(
                expr.span(),
                "the result of 'divby' can be compared, but not used in further arithmetic"
                    .to_owned(),
            )),
            Type::Double => Err(error(
                expr.span(),
                "an Edm.Double value, such as an average, can be compared, but not used in \
                 arithmetic"
                    .to_owned(),
            )),
            other => Err(error(
                expr.span(),
                format!("arithmetic needs numbers, but this operand is of type {other}"),
            )),
        }
    }

    fn negate(&self, operand: &Expr, span: Span) -> Result<Operand, BindError> {
        match self.operand(operand)? {
            Operand::Number(Constant::Finite(decimal)) => {
                Ok(Operand::Number(Constant::Finite(decimal.negated())))
            }
            Operand::Number(Constant::Infinite(positive)) => {
                Ok(Operand::Number(Constant::Infinite(!positive)))
            }
            Operand::Number(Constant::NotANumber) => Ok(Operand::Number(Constant::NotANumber)),
            Operand::Typed(Typed { node: Node::Integer(value), ty: ty @ Type::Number { .. } }) => {
                Ok(Operand::Typed(Typed::integer(
                    value.checked_neg().ok_or_else(|| {
                        error(span, "the negated number is outside the range of Edm.Int64".into())
                    })?,
                    ty,
                )))
            }
            Operand::Typed(typed) => match typed.ty {
                Type::Number { .. } => {
                    let ty = typed.ty;
                    Ok(Operand::Typed(Typed::new(Node::Negate(Box::new(typed)), ty)))
                }
                Type::Null => Ok(Operand::Typed(Typed::new(Node::Null, Type::INT64))),
                other => {
                    Err(error(span, format!("'-' needs a number, not a value of type {other}")))
                }
            },
            Operand::Guid(_) => Err(error(span, "'-' needs a number, not a GUID".to_owned())),
        }
    }

    fn in_list(&self, operand: &Expr, list: &[Expr]) -> Result<Typed, BindError> {
        let left = self.operand(operand)?;
        let Operand::Typed(left) = left else {
            return Err(error(
                operand.span(),
                "the left side of 'in' must be a property or an expression, not a literal"
                    .to_owned(),
            ));
        };

        // A list of plain constants of the operand's own type becomes one set test. Anything
        // else (decimals to fold, GUIDs, expressions) becomes a chain of 'eq'.
        let mut values = Vec::new();
        let mut or_null = false;
        let mut chain = Vec::new();
        for item in list {
            let right = self.operand(item)?;
            if let Operand::Typed(right) = &right
                && right.is_constant()
                && (right.ty == left.ty || right.ty == Type::Null)
                && left.ty != Type::Null
            {
                if right.node == Node::Null {
                    or_null = true;
                } else {
                    values.push(right.clone());
                }
                continue;
            }
            chain.push(compare(Comparison::Eq, Operand::Typed(left.clone()), right, item.span())?);
        }

        if !values.is_empty() || or_null {
            let set = Node::In { operand: Box::new(left), values, or_null };
            chain.push(Typed::new(set, Type::Boolean));
        }
        Ok(any_of(chain))
    }

    fn call(&self, name: &str, arguments: &[Expr], span: Span) -> Result<Typed, BindError> {
        let lower = name.to_ascii_lowercase();
        let arity = |expected: &[usize]| -> Result<(), BindError> {
            if expected.contains(&arguments.len()) {
                return Ok(());
            }
            let counts: Vec<String> = expected.iter().map(usize::to_string).collect();
            Err(error(
                span,
                format!(
                    "the function '{name}' takes {} argument(s), not {}",
                    counts.join(" or "),
                    arguments.len()
                ),
            ))
        };
        let string = |i: usize| self.expect_type(&arguments[i], Type::String);
        let instant = |i: usize| self.expect_type(&arguments[i], Type::DateTimeOffset);
        let call = |function, arguments: Vec<Typed>, ty| {
            Typed::new(Node::Call { function, arguments }, ty)
        };

        Ok(match lower.as_str() {
            "contains" | "startswith" | "endswith" => {
                arity(&[2])?;
                let function = match lower.as_str() {
                    "contains" => Function::Contains,
                    "startswith" => Function::StartsWith,
                    _ => Function::EndsWith,
                };
                call(function, vec![string(0)?, string(1)?], Type::Boolean)
            }
            "length" => {
                arity(&[1])?;
                call(Function::Length, vec![string(0)?], Type::INT64)
            }
            "indexof" => {
                arity(&[2])?;
                call(Function::IndexOf, vec![string(0)?, string(1)?], Type::INT64)
            }
            "substring" => {
                arity(&[2, 3])?;
                let mut bound = vec![string(0)?];
                for argument in &arguments[1..] {
                    bound.push(self.expect_type(argument, Type::INT64)?);
                }
                call(Function::Substring, bound, Type::String)
            }
            "tolower" | "toupper" | "trim" => {
                arity(&[1])?;
                let function = match lower.as_str() {
                    "tolower" => Function::ToLower,
                    "toupper" => Function::ToUpper,
                    _ => Function::Trim,
                };
                call(function, vec![string(0)?], Type::String)
            }
            "concat" => {
                arity(&[2])?;
                call(Function::Concat, vec![string(0)?, string(1)?], Type::String)
            }
            "matchespattern" => {
                arity(&[2])?;
                let pattern = string(1)?;
                if let Node::String(text) = &pattern.node {
                    check_pattern(text, arguments[1].span())?;
                }
                call(Function::MatchesPattern, vec![string(0)?, pattern], Type::Boolean)
            }
            "year" | "month" | "day" | "hour" | "minute" | "second" => {
                arity(&[1])?;
                let argument = self.typed(&arguments[0])?;
                let ticks = match (argument.ty, lower.as_str()) {
                    (Type::DateTimeOffset, _) => argument,
                    (Type::Null, _) => Typed::new(Node::Null, Type::DateTimeOffset),
                    (Type::Date, "year" | "month" | "day") => days_to_ticks(argument),
                    (Type::TimeOfDay, "hour" | "minute" | "second") => argument,
                    (other, _) => {
                        return Err(error(
                            arguments[0].span(),
                            format!("'{name}' does not apply to a value of type {other}"),
                        ));
                    }
                };
                let function = match lower.as_str() {
                    "year" => Function::Year,
                    "month" => Function::Month,
                    "day" => Function::Day,
                    "hour" => Function::Hour,
                    "minute" => Function::Minute,
                    _ => Function::Second,
                };
                call(function, vec![ticks], Type::INT64)
            }
            "fractionalseconds" => {
                arity(&[1])?;
                call(Function::Fraction, vec![instant(0)?], Type::Number { scale: 7 })
            }
            "date" => {
                arity(&[1])?;
                call(Function::Date, vec![instant(0)?], Type::Date)
            }
            "time" => {
                arity(&[1])?;
                call(Function::Time, vec![instant(0)?], Type::TimeOfDay)
            }
            "totaloffsetminutes" => {
                // Values are stored in UTC, so the offset is 0 wherever the value is not null.
                arity(&[1])?;
                let ticks = Typed { ty: Type::INT64, ..instant(0)? };
                let node = Node::Arithmetic {
                    op: Arithmetic::Mul,
                    left: Box::new(ticks),
                    right: Box::new(Typed::integer(0, Type::INT64)),
                };
                Typed::new(node, Type::INT64)
            }
            "now" => {
                arity(&[0])?;
                Typed::integer(self.now, Type::DateTimeOffset)
            }
            "maxdatetime" => {
                arity(&[0])?;
                Typed::integer(MAX_TICKS, Type::DateTimeOffset)
            }
            "mindatetime" => {
                arity(&[0])?;
                Typed::integer(MIN_TICKS, Type::DateTimeOffset)
            }
            "isof" => self.isof(arguments, span)?,
            "cast" => self.cast(arguments, span)?,
            _ => {
                return Err(error(
                    span,
                    format!("'{name}' is not a function that this service supports in expressions"),
                ));
            }
        })
    }

    /// Binds an argument that must have type `expected`, or be null.
    fn expect_type(&self, expr: &Expr, expected: Type) -> Result<Typed, BindError> {
        let typed = self.typed(expr)?;
        if typed.ty == expected {
            return Ok(typed);
        }
        if typed.ty == Type::Null {
            return Ok(Typed::new(Node::Null, expected));
        }
        Err(error(expr.span(), format!("expected a value of type {expected}, not {}", typed.ty)))
    }

    /// `isof(type)` tests the entity's type; `isof(expr, type)` tests a value's type.
    fn isof(&self, arguments: &[Expr], span: Span) -> Result<Typed, BindError> {
        match arguments {
            [Expr::Name(name, _)] => Ok(Typed::boolean(name == self.view.type_name())),
            [value, Expr::Name(name, type_span)] => {
                let typed = self.typed(value)?;
                let wanted = edm_type(name, *type_span)?;
                if typed.ty == wanted && typed.ty != Type::Null {
                    Ok(Typed::new(Node::IsNotNull(Box::new(typed)), Type::Boolean))
                } else {
                    Ok(Typed::boolean(false))
                }
            }
            _ => Err(error(
                span,
                "'isof' takes a type name, or an expression and a type name".to_owned(),
            )),
        }
    }

    /// `cast(expr, type)`: only casts that keep the value exactly as it is are supported.
    fn cast(&self, arguments: &[Expr], span: Span) -> Result<Typed, BindError> {
        let [value, Expr::Name(name, type_span)] = arguments else {
            return Err(error(span, "'cast' takes an expression and a type name".to_owned()));
        };
        let typed = self.typed(value)?;
        let wanted = edm_type(name, *type_span)?;
        match (typed.ty, wanted) {
            (Type::Null, wanted) => Ok(Typed::new(Node::Null, wanted)),
            (from, to) if from == to => Ok(typed),
            (Type::Number { .. }, Type::Number { scale: 0 }) if name == "Edm.Decimal" => Ok(typed),
            (from, _) => {
                Err(error(span, format!("a value of type {from} cannot be cast to {name} exactly")))
            }
        }
    }
}

/// Combines two conditions with `and`.
pub fn and(left: Typed, right: Typed) -> Typed {
    Typed::new(Node::And(Box::new(left), Box::new(right)), Type::Boolean)
}

/// Combines tests with `or` in a balanced tree, so a list of thousands of items stays a few
/// levels deep. No tests at all is false.
fn any_of(mut tests: Vec<Typed>) -> Typed {
    if tests.len() <= 1 {
        return tests.pop().unwrap_or_else(|| Typed::boolean(false));
    }
    let right = tests.split_off(tests.len() / 2);
    let node = Node::Or(Box::new(any_of(tests)), Box::new(any_of(right)));
    Typed::new(node, Type::Boolean)
}

/// Reads a type name of `isof` and `cast`.
fn edm_type(name: &str, span: Span) -> Result<Type, BindError> {
    Ok(match name {
        "Edm.Boolean" => Type::Boolean,
        "Edm.String" => Type::String,
        "Edm.Int64" | "Edm.Decimal" => Type::INT64,
        "Edm.Double" => Type::Double,
        "Edm.DateTimeOffset" => Type::DateTimeOffset,
        "Edm.Date" => Type::Date,
        "Edm.TimeOfDay" => Type::TimeOfDay,
        _ => {
            return Err(error(
                span,
                format!("'{name}' is not a type this service can test or cast to"),
            ));
        }
    })
}

/// Checks a constant `matchesPattern` pattern, so that a bad one fails even on an empty
/// collection.
fn check_pattern(pattern: &str, span: Span) -> Result<(), BindError> {
    compile_pattern(pattern).map(|_| ()).map_err(|reason| {
        error(span, format!("the pattern '{pattern}' is not a valid regular expression: {reason}"))
    })
}

/// Compiles a `matchesPattern` pattern within [`MAX_PATTERN_SIZE`], or returns why it is
/// invalid as a clause on one line. The binder and every store use it, so a pattern is
/// accepted or rejected alike everywhere.
pub fn compile_pattern(pattern: &str) -> Result<regex::Regex, String> {
    regex::RegexBuilder::new(pattern).size_limit(MAX_PATTERN_SIZE).build().map_err(|error| {
        match error {
            regex::Error::CompiledTooBig(limit) => {
                format!("its compiled form would exceed the limit of {limit} bytes")
            }

            // The text of a syntax error (regex 1.x) repeats the pattern with a caret under
            // the fault over several lines and ends with a line `error: <description>`. Keep
            // only the description, or the whole text on one line if that format changes.
            regex::Error::Syntax(text) => match text.rsplit_once("\nerror: ") {
                Some((_, description)) => description.trim().trim_end_matches('.').to_owned(),
                None => text.split_whitespace().collect::<Vec<_>>().join(" "),
            },

            other => other.to_string().split_whitespace().collect::<Vec<_>>().join(" "),
        }
    })
}

/// Converts a day count to the ticks of its midnight.
fn days_to_ticks(days: Typed) -> Typed {
    let node = Node::Arithmetic {
        op: Arithmetic::Mul,
        left: Box::new(Typed { ty: Type::INT64, ..days }),
        right: Box::new(Typed::integer(TICKS_PER_DAY, Type::INT64)),
    };
    Typed::new(node, Type::DateTimeOffset)
}

/// Multiplies a number up to `scale` fractional digits.
fn rescale(typed: Typed, scale: u8) -> Typed {
    let Type::Number { scale: current } = typed.ty else { return typed };
    if current >= scale {
        return typed;
    }
    let ty = Type::Number { scale };
    let factor = 10_i64.pow(u32::from(scale - current));
    match typed.node {
        Node::Null => Typed::new(Node::Null, ty),
        Node::Integer(value) if value.checked_mul(factor).is_some() => {
            Typed::integer(value * factor, ty)
        }
        node => {
            let left = Box::new(Typed::new(node, typed.ty));
            let right = Box::new(Typed::integer(factor, Type::INT64));
            Typed::new(Node::Arithmetic { op: Arithmetic::Mul, left, right }, ty)
        }
    }
}

/// Turns a numeric constant that is not an integer into a scaled number for arithmetic.
fn number_constant(constant: &Constant, span: Span) -> Result<Typed, BindError> {
    match constant {
        Constant::Finite(decimal) => match (u8::try_from(decimal.scale()), decimal.mantissa()) {
            (Ok(scale), Some(mantissa)) if scale <= MAX_SCALE => {
                Ok(Typed::integer(mantissa, Type::Number { scale }))
            }
            _ => Err(error(
                span,
                "this number has more digits than exact arithmetic supports (at most 18)"
                    .to_owned(),
            )),
        },
        _ => Err(error(span, "INF and NaN can be compared, but not used in arithmetic".to_owned())),
    }
}

/// Returns the scale of a number, or 0 for any other type.
fn scale_of(typed: &Typed) -> u8 {
    match typed.ty {
        Type::Number { scale } => scale,
        _ => 0,
    }
}

/// Binds a comparison, folding constants that need no row.
fn compare(op: Comparison, left: Operand, right: Operand, span: Span) -> Result<Typed, BindError> {
    match (left, right) {
        (Operand::Typed(left), Operand::Typed(right)) => compare_typed(op, left, right, span),
        (Operand::Typed(left), Operand::Number(constant)) => fold(op, left, &constant, span),
        (Operand::Number(constant), Operand::Typed(right)) => {
            fold(op.flipped(), right, &constant, span)
        }
        (Operand::Number(left), Operand::Number(right)) => {
            let result = match compare_constants(&left, &right) {
                Some(ordering) => satisfies(op, ordering),
                None => op == Comparison::Ne,
            };
            Ok(Typed::boolean(result))
        }
        (Operand::Typed(left), Operand::Guid(guid)) => compare_guid(op, left, guid, span),
        (Operand::Guid(guid), Operand::Typed(right)) => {
            compare_guid(op.flipped(), right, guid, span)
        }
        (Operand::Guid(left), Operand::Guid(right)) => {
            Ok(Typed::boolean(satisfies(op, left.cmp(&right))))
        }
        (Operand::Guid(_), Operand::Number(_)) | (Operand::Number(_), Operand::Guid(_)) => {
            Err(error(span, "a GUID cannot be compared with a number".to_owned()))
        }
    }
}

fn satisfies(op: Comparison, ordering: std::cmp::Ordering) -> bool {
    use std::cmp::Ordering::*;
    match op {
        Comparison::Eq => ordering == Equal,
        Comparison::Ne => ordering != Equal,
        Comparison::Gt => ordering == Greater,
        Comparison::Ge => ordering != Less,
        Comparison::Lt => ordering == Less,
        Comparison::Le => ordering != Greater,
    }
}

/// Orders two numeric constants; `None` when one is `NaN`.
fn compare_constants(left: &Constant, right: &Constant) -> Option<std::cmp::Ordering> {
    use std::cmp::Ordering;
    let rank = |c: &Constant| match c {
        Constant::Infinite(false) => Some(-1),
        Constant::Finite(_) => Some(0),
        Constant::Infinite(true) => Some(1),
        Constant::NotANumber => None,
    };
    let (l, r) = (rank(left)?, rank(right)?);
    match (left, right) {
        (Constant::Finite(a), Constant::Finite(b)) => Some(a.compare(b)),
        _ if l == r => Some(Ordering::Equal),
        _ => Some(l.cmp(&r)),
    }
}

fn compare_guid(op: Comparison, left: Typed, guid: String, span: Span) -> Result<Typed, BindError> {
    let left = match left.ty {
        Type::String => Typed::new(
            Node::Call { function: Function::AsciiLower, arguments: vec![left] },
            Type::String,
        ),
        Type::Null => left,
        other => {
            return Err(error(
                span,
                format!("a GUID cannot be compared with a value of type {other}"),
            ));
        }
    };
    compare_typed(op, left, Typed::new(Node::String(guid), Type::String), span)
}

fn compare_typed(
    op: Comparison,
    left: Typed,
    right: Typed,
    span: Span,
) -> Result<Typed, BindError> {
    if left.ty == Type::Ratio || right.ty == Type::Ratio {
        return compare_ratio(op, left, right, span);
    }
    let (left, right) = match (left.ty, right.ty) {
        (Type::Null, Type::Null) => (left, right),
        (Type::Null, ty) => (Typed::new(Node::Null, ty), right),
        (ty, Type::Null) => (left, Typed::new(Node::Null, ty)),
        (Type::Number { scale: a }, Type::Number { scale: b }) => {
            let scale = a.max(b);
            (rescale(left, scale), rescale(right, scale))
        }
        // A double, such as an average, compares numerically with an integer.
        (Type::Double, Type::Number { scale: 0 }) | (Type::Number { scale: 0 }, Type::Double) => {
            (left, right)
        }
        (a, b) if a == b => (left, right),
        (a, b) => {
            return Err(error(
                span,
                format!("a value of type {a} cannot be compared with one of type {b}"),
            ));
        }
    };
    let ty = Type::Boolean;
    Ok(Typed::new(Node::Compare { op, left: Box::new(left), right: Box::new(right) }, ty))
}

/// Splits a number or a `divby` quotient into a numerator and a denominator.
fn fraction(typed: Typed, span: Span) -> Result<(Typed, Typed), BindError> {
    match (typed.ty, typed.node) {
        (Type::Ratio, Node::Call { function: Function::DivBy, arguments }) => {
            let mut arguments = arguments.into_iter();
            match (arguments.next(), arguments.next()) {
                (Some(numerator), Some(denominator)) => Ok((numerator, denominator)),
                _ => Err(error(span, "'divby' takes two operands".to_owned())),
            }
        }
        (Type::Number { scale }, node) => {
            let denominator = Typed::integer(10_i64.pow(u32::from(scale)), Type::INT64);
            Ok((Typed::new(node, Type::Number { scale }), denominator))
        }
        (ty, _) => Err(error(
            span,
            format!("a 'divby' quotient cannot be compared with a value of type {ty}"),
        )),
    }
}

/// Compares two values of which at least one is a `divby` quotient: exactly, by comparing
/// the fractions, with OData's null rules applied to the sign that comparison gives.
fn compare_ratio(
    op: Comparison,
    left: Typed,
    right: Typed,
    span: Span,
) -> Result<Typed, BindError> {
    let null_side = |other: &Typed| other.ty == Type::Null || other.node == Node::Null;
    if null_side(&left) || null_side(&right) {
        // Against null only nullness matters, and the quotient as a double is null exactly
        // where the fraction is.
        let as_value = |typed: Typed| Typed { ty: Type::Double, ..typed };
        let node =
            Node::Compare { op, left: Box::new(as_value(left)), right: Box::new(as_value(right)) };
        return Ok(Typed::new(node, Type::Boolean));
    }
    // Two nullable sides are both null where OData's eq, ge and le are true and ne is false,
    // but the sign of a comparison of two nulls is null.
    let both_nullable = left.nullable() && right.nullable();
    let is_null = |typed: &Typed| {
        let value = Typed { ty: Type::Double, ..typed.clone() };
        Typed::new(
            Node::Not(Box::new(Typed::new(Node::IsNotNull(Box::new(value)), Type::Boolean))),
            Type::Boolean,
        )
    };
    let both_null =
        Typed::new(Node::And(Box::new(is_null(&left)), Box::new(is_null(&right))), Type::Boolean);

    let (left_n, left_d) = fraction(left, span)?;
    let (right_n, right_d) = fraction(right, span)?;
    let sign = Typed::new(
        Node::Call {
            function: Function::RatioCompare,
            arguments: vec![left_n, left_d, right_n, right_d],
        },
        Type::INT64,
    );
    let zero = Typed::integer(0, Type::INT64);
    let test = Typed::new(
        Node::Compare { op, left: Box::new(sign), right: Box::new(zero) },
        Type::Boolean,
    );
    if !both_nullable {
        return Ok(test);
    }
    let node = match op {
        Comparison::Eq | Comparison::Ge | Comparison::Le => {
            Node::Or(Box::new(both_null), Box::new(test))
        }
        Comparison::Ne => Node::And(
            Box::new(Typed::new(Node::Not(Box::new(both_null)), Type::Boolean)),
            Box::new(test),
        ),
        Comparison::Gt | Comparison::Lt => return Ok(test),
    };
    Ok(Typed::new(node, Type::Boolean))
}

/// Compares a number expression with a constant that is not a 64-bit integer at its scale.
fn fold(op: Comparison, left: Typed, constant: &Constant, span: Span) -> Result<Typed, BindError> {
    if left.ty == Type::Ratio {
        let right = match constant {
            Constant::Finite(_) => number_constant(constant, span)?,
            _ => {
                return Err(error(
                    span,
                    "a 'divby' quotient cannot be compared with INF or NaN".into(),
                ));
            }
        };
        return compare_ratio(op, left, right, span);
    }
    if left.ty == Type::Double {
        let value = match constant {
            Constant::Finite(decimal) => decimal.to_f64(),
            Constant::Infinite(positive) => {
                if *positive {
                    f64::INFINITY
                } else {
                    f64::NEG_INFINITY
                }
            }
            Constant::NotANumber => return Ok(Typed::boolean(op == Comparison::Ne)),
        };
        let right = Box::new(Typed::new(Node::Real(value), Type::Double));
        let node = Node::Compare { op, left: Box::new(left), right };
        return Ok(Typed::new(node, Type::Boolean));
    }
    let scale = match left.ty {
        Type::Number { scale } => scale,
        // Null compared with any number: only 'ne' holds.
        Type::Null => return Ok(Typed::boolean(op == Comparison::Ne)),
        other => {
            return Err(error(
                span,
                format!("a value of type {other} cannot be compared with a number"),
            ));
        }
    };
    let rounded = match constant {
        Constant::Finite(decimal) => decimal.scaled(usize::from(scale)),
        Constant::Infinite(true) => Rounded::AboveRange,
        Constant::Infinite(false) => Rounded::BelowRange,
        Constant::NotANumber => return Ok(Typed::boolean(op == Comparison::Ne)),
    };
    let ty = left.ty;
    let against = |op, value| {
        let right = Box::new(Typed::integer(value, ty));
        Typed::new(Node::Compare { op, left: Box::new(left.clone()), right }, Type::Boolean)
    };
    let not_null = || Typed::new(Node::IsNotNull(Box::new(left.clone())), Type::Boolean);
    Ok(match (rounded, op) {
        (Rounded::Exact(value), op) => against(op, value),
        (_, Comparison::Eq) => Typed::boolean(false),
        (_, Comparison::Ne) => Typed::boolean(true),
        (Rounded::Between { floor }, Comparison::Gt | Comparison::Le) => against(op, floor),
        (Rounded::Between { floor }, Comparison::Ge) => against(Comparison::Gt, floor),
        (Rounded::Between { floor }, Comparison::Lt) => against(Comparison::Le, floor),
        (Rounded::BelowRange, Comparison::Gt | Comparison::Ge) => not_null(),
        (Rounded::AboveRange, Comparison::Lt | Comparison::Le) => not_null(),
        (Rounded::BelowRange | Rounded::AboveRange, _) => Typed::boolean(false),
    })
}

/// Returns the instant of `now()` for a request: the current time in ticks.
pub fn now_ticks() -> i64 {
    DateTimeOffset::now().ticks()
}

#[cfg(test)]
mod tests;
