//! Writing a syntax tree back as expression text that [`parse`](super::parse) reads as the same
//! tree.
//!
//! Every binary operation and `in` is written in parentheses, so the text never depends on
//! precedence or associativity. A prefix operator (`-` or `not`) is written without them,
//! because the parser counts each pair of parentheses as a level of nesting as well as the
//! operator itself, so parentheses around each of a chain of 60 negations would print text
//! nested deeper than [`MAX_DEPTH`](super::MAX_DEPTH) allows. A prefix operator binds its
//! operand more loosely than `has` and `in` do, so it is parenthesized only as their left
//! operand. Literals are written in the form the lexer reads back to the same value, such as
//! strings with doubled quotes and doubles with an exponent. A negation is written with a
//! space after the `-`, because `-5` is the literal minus five.

use std::fmt;

use super::ast::{BinaryOp, Expr, Literal, UnaryOp};
use crate::datetime::format_time_of_day;

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Literal(literal, _) => literal.fmt(f),
            Expr::Name(name, _) => f.write_str(name),
            Expr::Unary { op: UnaryOp::Not, operand, .. } => write!(f, "not {operand}"),
            Expr::Unary { op: UnaryOp::Negate, operand, .. } => write!(f, "- {operand}"),
            Expr::Binary { op, left, right, .. } => {
                f.write_str("(")?;
                write_left_operand(f, left, *op == BinaryOp::Has)?;
                write!(f, " {} {right})", op.word())
            }
            Expr::In { operand, list, .. } => {
                f.write_str("(")?;
                write_left_operand(f, operand, true)?;
                f.write_str(" in (")?;
                write_list(f, list)?;
                f.write_str("))")
            }
            Expr::Call { function, arguments, .. } => {
                write!(f, "{function}(")?;
                write_list(f, arguments)?;
                f.write_str(")")
            }
        }
    }
}

/// Writes the left operand of an operator, in parentheses where it is a prefix operation
/// and the operator binds more tightly than the prefix operator does.
fn write_left_operand(f: &mut fmt::Formatter<'_>, operand: &Expr, tighter: bool) -> fmt::Result {
    match operand {
        Expr::Unary { .. } if tighter => write!(f, "({operand})"),
        _ => write!(f, "{operand}"),
    }
}

fn write_list(f: &mut fmt::Formatter<'_>, items: &[Expr]) -> fmt::Result {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(",")?;
        }
        write!(f, "{item}")?;
    }
    Ok(())
}

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Literal::Null => f.write_str("null"),
            Literal::Boolean(value) => write!(f, "{value}"),
            Literal::String(text) => write!(f, "'{}'", text.replace('\'', "''")),
            Literal::Integer(value) => write!(f, "{value}"),
            Literal::Decimal(text) => f.write_str(text),
            Literal::Double(value) if value.is_nan() => f.write_str("NaN"),
            Literal::Double(value) if value.is_infinite() => {
                f.write_str(if *value > 0.0 { "INF" } else { "-INF" })
            }
            // Rust writes the shortest exponent form that reads back as the same double.
            Literal::Double(value) => write!(f, "{value:e}"),
            Literal::DateTimeOffset(instant) => write!(f, "{instant}"),
            Literal::Date(year, month, day) => write!(f, "{year:04}-{month:02}-{day:02}"),
            Literal::TimeOfDay(ticks) => f.write_str(&format_time_of_day(*ticks)),
            Literal::Guid(text) => f.write_str(text),
        }
    }
}

impl BinaryOp {
    /// Returns the operator's word in lowercase, such as `eq`.
    pub fn word(self) -> &'static str {
        match self {
            BinaryOp::Or => "or",
            BinaryOp::And => "and",
            BinaryOp::Eq => "eq",
            BinaryOp::Ne => "ne",
            BinaryOp::Gt => "gt",
            BinaryOp::Ge => "ge",
            BinaryOp::Lt => "lt",
            BinaryOp::Le => "le",
            BinaryOp::Has => "has",
            BinaryOp::Add => "add",
            BinaryOp::Sub => "sub",
            BinaryOp::Mul => "mul",
            BinaryOp::Div => "div",
            BinaryOp::DivBy => "divby",
            BinaryOp::Mod => "mod",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::parse;

    /// Parses, prints and parses again, and returns the printed text after checking that both
    /// trees print the same.
    fn round_trip(text: &str) -> String {
        let first = parse(text).unwrap();
        let printed = first.to_string();
        let second = parse(&printed).unwrap_or_else(|error| panic!("{printed}: {error}"));
        assert_eq!(second.to_string(), printed, "{text}");
        printed
    }

    #[test]
    fn operators_are_printed_in_parentheses() {
        assert_eq!(
            round_trip("a eq 1 or b ne 2 and c gt 3"),
            "((a eq 1) or ((b ne 2) and (c gt 3)))"
        );
        assert_eq!(round_trip("a sub b sub c"), "((a sub b) sub c)");
    }

    #[test]
    fn negation_of_a_number_keeps_its_space() {
        assert_eq!(round_trip("- 5 eq -5"), "(- 5 eq -5)");
        assert_eq!(round_trip("not (a eq 1)"), "not (a eq 1)");
    }

    #[test]
    fn prefix_operators_are_parenthesized_only_before_has_and_in() {
        assert_eq!(round_trip("(- a) has b"), "((- a) has b)");
        assert_eq!(round_trip("- a has b"), "- (a has b)");
        assert_eq!(round_trip("(not a) in (true)"), "((not a) in (true))");
        assert_eq!(round_trip("not a in (true)"), "not (a in (true))");
        assert_eq!(round_trip("a has - b"), "(a has - b)");
        assert_eq!(round_trip("- a add - b"), "(- a add - b)");
        assert_eq!(round_trip("f(- a, not b)"), "f(- a,not b)");
    }

    #[test]
    fn deepest_chain_of_prefix_operators_prints_within_the_depth_limit() {
        // The chain that the fuzz target `filter` found: 90 negations printed with parentheses
        // around each were nested 180 levels deep, past the limit of 100.
        let text = format!("{}c", "-".repeat(90));
        assert_eq!(round_trip(&text), format!("{}c", "- ".repeat(90)));
        let text = format!("{}c", "not ".repeat(99));
        assert_eq!(round_trip(&text), text);
    }

    #[test]
    fn literals_read_back_as_written() {
        assert_eq!(round_trip("name eq 'it''s'"), "(name eq 'it''s')");
        assert_eq!(round_trip("x eq 1.50"), "(x eq 1.50)");
        assert_eq!(round_trip("x eq 2.5E3"), "(x eq 2.5e3)");
        assert_eq!(round_trip("x eq -INF"), "(x eq -INF)");
        assert_eq!(
            round_trip("t eq 2024-03-01T07:30:00.1234567+01:00"),
            "(t eq 2024-03-01T06:30:00.1234567Z)"
        );
        assert_eq!(round_trip("d eq 2024-03-01"), "(d eq 2024-03-01)");
        assert_eq!(round_trip("t eq 07:30:00.5"), "(t eq 07:30:00.5)");
    }

    #[test]
    fn lists_and_calls_keep_their_arguments() {
        assert_eq!(round_trip("a in ('x', 'y')"), "(a in ('x','y'))");
        assert_eq!(round_trip("a in ()"), "(a in ())");
        assert_eq!(round_trip("contains(tolower(n), 'x')"), "contains(tolower(n),'x')");
        assert_eq!(round_trip("a/b eq now()"), "(a/b eq now())");
    }
}
