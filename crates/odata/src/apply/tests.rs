//! Tests of the `$apply` parser: the tree of each transformation, spans and error positions.

use super::*;
use crate::filter::{BinaryOp, Expr, Span};

fn parse_ok(text: &str) -> Sequence {
    parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn path(path: &str, start: usize) -> PropertyPath {
    let end = start + path.chars().count();
    PropertyPath { path: path.to_owned(), span: Span { start, end } }
}

fn name(name: &str, start: usize) -> Identifier {
    let end = start + name.chars().count();
    Identifier { name: name.to_owned(), span: Span { start, end } }
}

/// Returns the names of the top-level transformations, to check a sequence's shape.
fn names(sequence: &Sequence) -> Vec<&'static str> {
    sequence
        .iter()
        .map(|t| match t {
            Transformation::Aggregate { .. } => "aggregate",
            Transformation::Compute { .. } => "compute",
            Transformation::Concat { .. } => "concat",
            Transformation::GroupBy { .. } => "groupby",
            Transformation::Filter { .. } => "filter",
            Transformation::Identity(_) => "identity",
            Transformation::OrderBy { .. } => "orderby",
            Transformation::Search { .. } => "search",
            Transformation::Top { .. } => "top",
            Transformation::Skip { .. } => "skip",
            Transformation::Limit { .. } => "limit",
            Transformation::Expand(_) => "expand",
            Transformation::Join { .. } => "join",
            Transformation::Nest { .. } => "nest",
            Transformation::Hierarchy { .. } => "hierarchy",
            Transformation::Traverse { .. } => "traverse",
            Transformation::Function { .. } => "function",
        })
        .collect()
}

#[test]
fn sequence_is_split_at_slashes() {
    let sequence = parse_ok("filter(a eq 1)/groupby((b),aggregate(c with sum as t))/top(5)");
    assert_eq!(names(&sequence), ["filter", "groupby", "top"]);
    assert_eq!(sequence[0].span(), Span { start: 0, end: 14 });
    assert_eq!(sequence[1].span(), Span { start: 15, end: 54 });
    let Transformation::Filter { condition, .. } = &sequence[0] else { panic!() };
    assert!(matches!(condition, Expr::Binary { op: BinaryOp::Eq, .. }));
    assert_eq!(condition.span(), Span { start: 7, end: 13 });
}

#[test]
fn aggregate_with_method_and_alias() {
    let sequence = parse_ok("aggregate(amount mul 2 with sum as total, n with Custom.median as m)");
    let Transformation::Aggregate { items, .. } = &sequence[0] else { panic!() };
    let AggregateKind::Method { expr, method } = &items[0].kind else { panic!() };
    assert!(matches!(expr, Expr::Binary { op: BinaryOp::Mul, .. }));
    assert_eq!(method, &AggregationMethod::Sum);
    assert_eq!(items[0].alias, Some(name("total", 35)));
    assert_eq!(items[0].span, Span { start: 10, end: 40 });
    let AggregateKind::Method { method, .. } = &items[1].kind else { panic!() };
    assert_eq!(method, &AggregationMethod::Custom("Custom.median".into()));
}

#[test]
fn aggregate_methods_are_all_recognized() {
    let methods = [
        ("sum", AggregationMethod::Sum),
        ("min", AggregationMethod::Min),
        ("max", AggregationMethod::Max),
        ("average", AggregationMethod::Average),
        ("countdistinct", AggregationMethod::CountDistinct),
    ];
    for (word, expected) in methods {
        let sequence = parse_ok(&format!("aggregate(x with {word} as y)"));
        let Transformation::Aggregate { items, .. } = &sequence[0] else { panic!() };
        let AggregateKind::Method { method, .. } = &items[0].kind else { panic!() };
        assert_eq!(method, &expected, "{word}");
    }
}

#[test]
fn aggregate_counts_and_custom_aggregates() {
    let sequence =
        parse_ok("aggregate($count as n, sales/$count as s, Forecast, sales/Budget as b)");
    let Transformation::Aggregate { items, .. } = &sequence[0] else { panic!() };
    assert_eq!(items[0].kind, AggregateKind::Count { path: None });
    assert_eq!(items[1].kind, AggregateKind::Count { path: Some(path("sales", 23)) });
    assert_eq!(items[2].kind, AggregateKind::Custom { path: path("Forecast", 42) });
    assert_eq!(items[2].alias, None);
    assert_eq!(items[3].kind, AggregateKind::Custom { path: path("sales/Budget", 52) });
    assert_eq!(items[3].alias, Some(name("b", 68)));
}

#[test]
fn aggregate_from_clauses_nest_in_order() {
    let text =
        "aggregate(amount with sum from time, region with average from country with max as a)";
    let sequence = parse_ok(text);
    let Transformation::Aggregate { items, .. } = &sequence[0] else { panic!() };
    assert_eq!(
        items[0].from,
        [
            AggregateFrom {
                properties: vec![path("time", 31), path("region", 37)],
                method: Some(AggregationMethod::Average),
            },
            AggregateFrom {
                properties: vec![path("country", 62)],
                method: Some(AggregationMethod::Max),
            },
        ]
    );
    let sequence = parse_ok("aggregate(Forecast from time as f)");
    let Transformation::Aggregate { items, .. } = &sequence[0] else { panic!() };
    assert_eq!(items[0].from[0].method, None);
}

#[test]
fn compute_concat_and_paging() {
    let sequence = parse_ok(
        "compute(a add 1 as b, tolower(c) as d)/concat(identity,top(2)/skip(1), filter(true))",
    );
    assert_eq!(names(&sequence), ["compute", "concat"]);
    let Transformation::Compute { items, .. } = &sequence[0] else { panic!() };
    assert_eq!(items.len(), 2);
    assert_eq!(items[1].alias, name("d", 36));
    let Transformation::Concat { sequences, .. } = &sequence[1] else { panic!() };
    assert_eq!(
        sequences.iter().map(names).collect::<Vec<_>>(),
        [vec!["identity"], vec!["top", "skip"], vec!["filter"]]
    );
    assert!(matches!(sequences[1][0], Transformation::Top { count: 2, .. }));
    assert!(matches!(sequences[1][1], Transformation::Skip { count: 1, .. }));
}

#[test]
fn limits_take_two_expressions() {
    let kinds = [
        ("topcount", LimitKind::TopCount),
        ("topsum", LimitKind::TopSum),
        ("toppercent", LimitKind::TopPercent),
        ("bottomcount", LimitKind::BottomCount),
        ("bottomsum", LimitKind::BottomSum),
        ("bottompercent", LimitKind::BottomPercent),
    ];
    for (word, expected) in kinds {
        let sequence = parse_ok(&format!("{word}(2 add 1, amount)"));
        let Transformation::Limit { kind, limit, value, .. } = &sequence[0] else { panic!() };
        assert_eq!(kind, &expected);
        assert!(matches!(limit, Expr::Binary { op: BinaryOp::Add, .. }));
        assert!(matches!(value, Expr::Name(..)));
    }
}

#[test]
fn orderby_items_keep_positions_in_the_whole_text() {
    let sequence = parse_ok("top(1)/orderby(a desc, b)");
    let Transformation::OrderBy { items, span } = &sequence[1] else { panic!() };
    assert_eq!(*span, Span { start: 7, end: 25 });
    assert!(items[0].descending);
    assert_eq!(items[0].span, Span { start: 15, end: 21 });
    assert_eq!(items[1].expr.span(), Span { start: 23, end: 24 });
}

#[test]
fn groupby_takes_paths_rollups_and_a_sequence() {
    let text = "groupby((a/b, rollup(c,d), rollup($all,e,f), rollup(H), Model.T/g), aggregate($count as n))";
    let sequence = parse_ok(text);
    let Transformation::GroupBy { elements, then, .. } = &sequence[0] else { panic!() };
    assert_eq!(elements[0], GroupingElement::Property(path("a/b", 9)));
    assert_eq!(
        elements[1],
        GroupingElement::Rollup {
            all: false,
            levels: vec![path("c", 21), path("d", 23)],
            span: Span { start: 14, end: 25 },
        }
    );
    assert!(
        matches!(&elements[2], GroupingElement::Rollup { all: true, levels, .. } if levels.len() == 2)
    );
    assert!(
        matches!(&elements[3], GroupingElement::Rollup { all: false, levels, .. } if levels.len() == 1)
    );
    assert_eq!(elements[4], GroupingElement::Property(path("Model.T/g", 56)));
    assert_eq!(names(then), ["aggregate"]);
    assert!(
        matches!(&parse_ok("groupby((a))")[0], Transformation::GroupBy { then, .. } if then.is_empty())
    );
}

#[test]
fn search_keeps_its_text() {
    let cases = [
        ("search(coffee)", "coffee"),
        ("search( blue OR (green AND red) )", "blue OR (green AND red)"),
        ("search(')/top(1')/top(1)", "')/top(1'"),
        ("search(\"a)b\" c)", "\"a)b\" c"),
    ];
    for (text, expected) in cases {
        let sequence = parse_ok(text);
        let Transformation::Search { text: found, .. } = &sequence[0] else { panic!("{text}") };
        assert_eq!(found, expected);
    }
    assert_eq!(names(&parse_ok("search(')/top(1')/top(1)")), ["search", "top"]);
}

#[test]
fn expand_join_and_nest() {
    let sequence = parse_ok("expand(sales, filter(amount gt 1), expand(product, filter(true)))");
    let Transformation::Expand(spec) = &sequence[0] else { panic!() };
    assert_eq!(spec.path, path("sales", 7));
    assert!(spec.filter.is_some());
    assert_eq!(spec.expand[0].path, path("product", 42));

    let sequence = parse_ok("outerjoin(sales as s, filter(a))/join(items as i)");
    assert!(
        matches!(&sequence[0], Transformation::Join { outer: true, then, .. } if then.len() == 1)
    );
    assert!(
        matches!(&sequence[1], Transformation::Join { outer: false, then, .. } if then.is_empty())
    );

    let sequence = parse_ok("addnested(sales, filter(a) as f, identity as g)/nest(identity as h)");
    let Transformation::Nest { path: nest_path, items, .. } = &sequence[0] else { panic!() };
    assert_eq!(nest_path, &Some(path("sales", 10)));
    assert_eq!(items[1].alias, name("g", 45));
    assert!(matches!(&sequence[1], Transformation::Nest { path: None, .. }));
}

#[test]
fn hierarchy_transformations() {
    let text = "descendants($root/Orgs,H,ID,filter(ID eq 'US'),2,keep start)";
    let Transformation::Hierarchy { kind, hierarchy, start, max_distance, keep_start, .. } =
        &parse_ok(text)[0]
    else {
        panic!()
    };
    assert_eq!(kind, &HierarchyKind::Descendants);
    assert_eq!(hierarchy.nodes, path("$root/Orgs", 12));
    assert_eq!(hierarchy.qualifier, name("H", 23));
    assert_eq!(hierarchy.node_property, path("ID", 25));
    assert_eq!(names(start), ["filter"]);
    assert_eq!((*max_distance, *keep_start), (Some(2), true));

    let text = "ancestors($root/Orgs,H,ID,search(x), keep start)";
    assert!(matches!(
        &parse_ok(text)[0],
        Transformation::Hierarchy {
            kind: HierarchyKind::Ancestors,
            max_distance: None,
            keep_start: true,
            ..
        }
    ));

    let text = "traverse($root/Orgs,H,ID,postorder,filter(a),name desc,id)";
    let Transformation::Traverse { postorder, then, order_by, .. } = &parse_ok(text)[0] else {
        panic!()
    };
    assert!(postorder);
    assert_eq!(then.as_ref().map(names), Some(vec!["filter"]));
    assert_eq!(order_by.len(), 2);
    let text = "traverse($root/Orgs,H,ID,preorder,name desc)";
    assert!(
        matches!(&parse_ok(text)[0], Transformation::Traverse { then: None, order_by, .. } if order_by.len() == 1)
    );

    let text =
        "groupby((rolluprecursive($root/Orgs,H,org/ID,ancestors($root/Orgs,H,ID,filter(a)))))";
    let Transformation::GroupBy { elements, .. } = &parse_ok(text)[0] else { panic!() };
    assert!(
        matches!(&elements[0], GroupingElement::RollupRecursive { then: Some(then), .. } if then.len() == 1)
    );
}

#[test]
fn model_functions_take_named_parameters() {
    let sequence = parse_ok("Model.Top(Count=1, Property='Total')/Model.condense()");
    let Transformation::Function { name, parameters, .. } = &sequence[0] else { panic!() };
    assert_eq!(name, "Model.Top");
    assert_eq!(
        parameters.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
        ["Count", "Property"]
    );
    assert!(
        matches!(&sequence[1], Transformation::Function { parameters, .. } if parameters.is_empty())
    );
}

#[test]
fn whitespace_is_accepted_around_delimiters() {
    let sequence = parse_ok(" groupby( ( a , b ) , aggregate( x with sum as y ) ) / top( 3 ) ");
    assert_eq!(names(&sequence), ["groupby", "top"]);
}

#[test]
fn errors_name_the_position_in_the_whole_text() {
    let cases = [
        ("", 1, "expected a transformation such as 'filter'"),
        (
            "frobnicate(x)",
            1,
            "unknown transformation 'frobnicate': expected one of filter, groupby",
        ),
        ("top(1)/Filter(a)", 8, "names are case-sensitive, write 'filter'"),
        ("top(1)/", 8, "expected a transformation"),
        ("top(1) x", 8, "expected '/' or the end of $apply, but found 'x'"),
        ("top (1)", 4, "expected '(' after 'top'"),
        ("aggregate()", 11, "expected an expression, but found ')'"),
        ("aggregate(a with sum)", 21, "expected 'as' and an alias, but found ')'"),
        ("aggregate(a with total as t)", 18, "expected an aggregation method"),
        (
            "aggregate(a add 1 as t)",
            19,
            "expected 'with' and an aggregation method, but found 'as'",
        ),
        ("aggregate($count with sum as n)", 18, "'$count' takes no aggregation method"),
        (
            "aggregate(a with sum from b as c)",
            29,
            "expected ',' or 'with' and an aggregation method",
        ),
        ("aggregate(F from b)", 19, "expected 'as' and an alias, but found ')'"),
        ("aggregate($it/a)", 11, "expected a property name, but found '$it'"),
        ("aggregate(a with sum as t,)", 27, "expected an expression, but found ')'"),
        ("compute(a add 1)", 16, "expected 'as' and an alias, but found ')'"),
        ("compute(a as 1x)", 14, "expected an alias, but found '1x'"),
        ("concat(identity)", 16, "expected ',' and a second sequence"),
        ("groupby(a)", 9, "expected '(' and the grouping properties"),
        ("groupby(())", 10, "expected a grouping property, but found ')'"),
        ("groupby((a),)", 13, "expected a transformation"),
        ("groupby((a/@x))", 12, "expected a grouping property, but found '@x'"),
        ("top(-1)", 5, "expected a non-negative integer, but found '-'"),
        ("skip(1.5)", 7, "expected ')', but found '.'"),
        ("top(99999999999999999999)", 5, "the number 99999999999999999999 is too large"),
        ("filter(a eq)", 12, "expected an expression, but found ')'"),
        ("filter(a eq 1 b)", 15, "expected an operator such as 'eq' or 'and', or ')'"),
        ("orderby()", 9, "expected an expression to sort by, but found ')'"),
        ("orderby(a sideways)", 11, "expected 'asc', 'desc', ',' or ')'"),
        ("search()", 8, "expected a search expression"),
        ("search(\"a)", 8, "the phrase has no closing double quote"),
        ("search('a)", 8, "the string has no closing quote"),
        ("topcount(1)", 11, "expected an operator such as 'add', or ','"),
        ("expand(a)", 9, "expected ',' and 'filter(...)' or 'expand(...)'"),
        (
            "expand(a, expand(b, filter(c)), filter(d))",
            33,
            "expected 'expand(...)', but found 'filter'",
        ),
        ("join(a)", 7, "expected 'as' and an alias, but found ')'"),
        ("ancestors(Orgs,H,ID,identity)", 11, "expected a path starting with '$root/'"),
        (
            "ancestors($root/Orgs,H,ID,identity,identity)",
            36,
            "expected a maximum distance or 'keep start'",
        ),
        ("traverse($root/Orgs,H,ID,inorder)", 26, "expected 'preorder' or 'postorder'"),
        ("Model.F(1)", 9, "expected a parameter name, but found '1'"),
        ("Model.F(a 1)", 11, "expected '=' and the parameter value"),
    ];
    for (text, position, message) in cases {
        let error = parse(text).unwrap_err();
        assert_eq!(error.position, position, "{text}: {error}");
        assert!(error.message.contains(message), "{text}: {error}");
    }
}

#[test]
fn nesting_is_bounded() {
    let depth = crate::filter::MAX_DEPTH;
    let deep = format!("{}identity{}", "concat(".repeat(depth), ",identity)".repeat(depth));
    assert!(parse(&deep).unwrap_err().message.contains("nested deeper"));
    let shallow =
        format!("{}identity{}", "concat(".repeat(depth - 1), ",identity)".repeat(depth - 1));
    assert!(parse(&shallow).is_ok());
}
