//! Properties of the `$filter` parser over generated syntax trees.
//!
//! Printing a tree and parsing the text gives the same tree back. The trees use every literal
//! type, every operator, `in` lists and calls, nested a few levels deep, so a printer or parser
//! change that loses a value, a sign or a grouping fails here with the shrunk tree.

use beacon_odata::datetime::DateTimeOffset;
use beacon_odata::filter::{BinaryOp, Expr, Literal, Span, UnaryOp, parse};
use proptest::prelude::*;

/// The span every generated node gets; spans are not compared.
const NO_SPAN: Span = Span { start: 0, end: 0 };

const NAMES: [&str; 6] = [
    "tenantId",
    "numberOfErrorDevices",
    "lastRefreshedDateTime",
    "compliancePolicyPlatform",
    "a/b",
    "Edm.String",
];

const FUNCTIONS: [&str; 7] = ["contains", "tolower", "now", "year", "substring", "cast", "round"];

const OPERATORS: [BinaryOp; 15] = [
    BinaryOp::Or,
    BinaryOp::And,
    BinaryOp::Eq,
    BinaryOp::Ne,
    BinaryOp::Gt,
    BinaryOp::Ge,
    BinaryOp::Lt,
    BinaryOp::Le,
    BinaryOp::Has,
    BinaryOp::Add,
    BinaryOp::Sub,
    BinaryOp::Mul,
    BinaryOp::Div,
    BinaryOp::DivBy,
    BinaryOp::Mod,
];

fn date_time() -> impl Strategy<Value = Literal> {
    (
        1..=9999_i32,
        1..=12_u8,
        1..=28_u8,
        0..24_u8,
        0..60_u8,
        0..60_u8,
        0..=7_usize,
        0..10_000_000_u32,
    )
        .prop_map(|(year, month, day, hour, minute, second, digits, fraction)| {
            let mut text =
                format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}");
            if digits > 0 {
                text.push('.');
                text.push_str(&format!("{fraction:07}")[..digits]);
            }
            text.push('Z');
            Literal::DateTimeOffset(DateTimeOffset::parse(&text).unwrap())
        })
}

fn literal() -> impl Strategy<Value = Literal> {
    prop_oneof![
        Just(Literal::Null),
        any::<bool>().prop_map(Literal::Boolean),
        "[^\u{0}]{0,8}".prop_map(Literal::String),
        any::<i64>().prop_map(Literal::Integer),
        (any::<i64>(), 0..10_000_u32, 1..=4_usize).prop_map(|(whole, fraction, digits)| {
            Literal::Decimal(format!("{whole}.{}", &format!("{fraction:04}")[..digits]))
        }),
        (any::<u64>()).prop_map(|extra| {
            Literal::Decimal((u128::from(u64::MAX) + 1 + u128::from(extra)).to_string())
        }),
        prop_oneof![
            proptest::num::f64::NORMAL,
            proptest::num::f64::SUBNORMAL,
            proptest::num::f64::ZERO,
            proptest::num::f64::INFINITE,
        ]
        .prop_map(Literal::Double),
        date_time(),
        (1..=9999_i32, 1..=12_u8, 1..=28_u8).prop_map(|(y, m, d)| Literal::Date(y, m, d)),
        (0..864_000_000_000_i64).prop_map(Literal::TimeOfDay),
        any::<u128>().prop_map(|bits| {
            let hex = format!("{bits:032x}");
            Literal::Guid(format!(
                "{}-{}-{}-{}-{}",
                &hex[..8],
                &hex[8..12],
                &hex[12..16],
                &hex[16..20],
                &hex[20..]
            ))
        }),
    ]
}

fn expression() -> impl Strategy<Value = Expr> {
    let leaf = prop_oneof![
        literal().prop_map(|literal| Expr::Literal(literal, NO_SPAN)),
        proptest::sample::select(&NAMES[..]).prop_map(|name| Expr::Name(name.to_owned(), NO_SPAN)),
    ];
    leaf.prop_recursive(5, 48, 4, |inner| {
        prop_oneof![
            (prop_oneof![Just(UnaryOp::Not), Just(UnaryOp::Negate)], inner.clone()).prop_map(
                |(op, operand)| Expr::Unary { op, operand: Box::new(operand), span: NO_SPAN }
            ),
            (proptest::sample::select(&OPERATORS[..]), inner.clone(), inner.clone()).prop_map(
                |(op, left, right)| Expr::Binary {
                    op,
                    left: Box::new(left),
                    right: Box::new(right),
                    span: NO_SPAN,
                }
            ),
            (inner.clone(), proptest::collection::vec(inner.clone(), 0..4)).prop_map(
                |(operand, list)| Expr::In { operand: Box::new(operand), list, span: NO_SPAN }
            ),
            (proptest::sample::select(&FUNCTIONS[..]), proptest::collection::vec(inner, 0..4))
                .prop_map(|(function, arguments)| Expr::Call {
                    function: function.to_owned(),
                    arguments,
                    span: NO_SPAN,
                }),
        ]
    })
}

/// Returns `expr` with every span set to [`NO_SPAN`], so trees compare by content.
fn without_spans(expr: &Expr) -> Expr {
    match expr {
        Expr::Literal(literal, _) => Expr::Literal(literal.clone(), NO_SPAN),
        Expr::Name(name, _) => Expr::Name(name.clone(), NO_SPAN),
        Expr::Unary { op, operand, .. } => {
            Expr::Unary { op: *op, operand: Box::new(without_spans(operand)), span: NO_SPAN }
        }
        Expr::Binary { op, left, right, .. } => Expr::Binary {
            op: *op,
            left: Box::new(without_spans(left)),
            right: Box::new(without_spans(right)),
            span: NO_SPAN,
        },
        Expr::In { operand, list, .. } => Expr::In {
            operand: Box::new(without_spans(operand)),
            list: list.iter().map(without_spans).collect(),
            span: NO_SPAN,
        },
        Expr::Call { function, arguments, .. } => Expr::Call {
            function: function.clone(),
            arguments: arguments.iter().map(without_spans).collect(),
            span: NO_SPAN,
        },
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn printed_tree_parses_to_the_same_tree(tree in expression()) {
        let text = tree.to_string();
        let parsed = parse(&text).map_err(|error| TestCaseError::fail(format!("{text}: {error}")))?;
        prop_assert_eq!(without_spans(&parsed), tree, "text {}", text);
    }
}

#[test]
fn nan_prints_and_parses_as_nan() {
    let text = Expr::Literal(Literal::Double(f64::NAN), NO_SPAN).to_string();
    assert_eq!(text, "NaN");
    assert!(matches!(parse(&text), Ok(Expr::Literal(Literal::Double(value), _)) if value.is_nan()));
}
