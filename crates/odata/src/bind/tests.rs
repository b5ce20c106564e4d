use super::*;
use crate::filter;

fn bind(text: &str) -> Result<Typed, BindError> {
    filter(&filter::parse(text).unwrap(), View::Graph, 0)
}

fn bound(text: &str) -> Typed {
    bind(text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn rejected(text: &str) -> BindError {
    bind(text).expect_err(text)
}

fn property(property: Property) -> Typed {
    Typed::new(Node::Property(property), Type::of(property.edm_type()))
}

fn compare(op: Comparison, left: Typed, right: Typed) -> Typed {
    Typed::new(Node::Compare { op, left: Box::new(left), right: Box::new(right) }, Type::Boolean)
}

#[test]
fn both_views_bind_their_own_tenant_names_to_one_property() {
    let seed = filter(&filter::parse("organizationId eq 'a'").unwrap(), View::Seed, 0).unwrap();
    assert_eq!(seed, bound("tenantId eq 'a'"));
    assert!(filter(&filter::parse("tenantId eq 'a'").unwrap(), View::Seed, 0).is_err());
    assert!(bind("organizationId eq 'a'").is_err());
}

#[test]
fn unknown_names_are_rejected_at_their_position() {
    let error = rejected("tenantId eq 'a' or Tenantid eq 'b'");
    assert_eq!(error.position, 20);
    assert!(error.message.contains("'Tenantid' is not a property"), "{}", error.message);
    assert!(rejected("tenant/id eq 'a'").message.contains("navigation"));
}

#[test]
fn filter_must_be_boolean() {
    assert!(rejected("numberOfErrorDevices").message.contains("Boolean"));
    assert!(rejected("numberOfErrorDevices add 1").message.contains("Boolean"));
    assert_eq!(bound("null").node, Node::Null);
    assert_eq!(bound("true").node, Node::Boolean(true));
}

#[test]
fn unrelated_types_cannot_be_compared() {
    assert!(rejected("tenantId eq 1").message.contains("cannot be compared"));
    assert!(rejected("lastRefreshedDateTime gt 'x'").message.contains("cannot be compared"));
    assert!(rejected("lastRefreshedDateTime gt 2024-01-01").message.contains("cannot be compared"));
    assert!(
        rejected("numberOfErrorDevices eq 7a3b0c1d-0000-4000-8000-000000000001")
            .message
            .contains("GUID")
    );
}

#[test]
fn non_integer_constants_fold_to_exact_integer_tests() {
    let errors = || property(Property::NumberOfErrorDevices);
    let int = |v| Typed::integer(v, Type::INT64);
    assert_eq!(bound("numberOfErrorDevices gt 2.5"), compare(Comparison::Gt, errors(), int(2)));
    assert_eq!(bound("numberOfErrorDevices ge 2.5"), compare(Comparison::Gt, errors(), int(2)));
    assert_eq!(bound("numberOfErrorDevices lt 2.5"), compare(Comparison::Le, errors(), int(2)));
    assert_eq!(bound("2.5 lt numberOfErrorDevices"), compare(Comparison::Gt, errors(), int(2)));
    assert_eq!(bound("numberOfErrorDevices eq 2.5").node, Node::Boolean(false));
    assert_eq!(bound("numberOfErrorDevices ne 2.5").node, Node::Boolean(true));
    assert_eq!(bound("numberOfErrorDevices eq 2.0"), compare(Comparison::Eq, errors(), int(2)));
    assert_eq!(bound("numberOfErrorDevices ge 1e3"), compare(Comparison::Ge, errors(), int(1000)));
    assert_eq!(bound("numberOfErrorDevices lt NaN").node, Node::Boolean(false));
    assert_eq!(bound("numberOfErrorDevices lt INF").node, Node::IsNotNull(Box::new(errors())));
    assert_eq!(bound("numberOfErrorDevices gt 99999999999999999999").node, Node::Boolean(false));
}

#[test]
fn int64_literals_past_two_to_the_53_stay_exact() {
    let expected = compare(
        Comparison::Eq,
        property(Property::NumberOfCompliantDevices),
        Typed::integer(9_007_199_254_740_993, Type::INT64),
    );
    assert_eq!(bound("numberOfCompliantDevices eq 9007199254740993"), expected);
}

#[test]
fn decimal_arithmetic_raises_the_scale_instead_of_rounding() {
    // x mul 1.5 gt 10  is  x * 15 > 100 at scale 1.
    let Node::Compare { left, right, .. } = bound("numberOfErrorDevices mul 1.5 gt 10").node else {
        panic!("not a comparison");
    };
    assert_eq!(left.ty, Type::Number { scale: 1 });
    assert_eq!(right.node, Node::Integer(100));
    assert!(rejected("numberOfErrorDevices div 1.5 gt 1").message.contains("integers"));
    assert!(rejected("numberOfErrorDevices divby 2 add 1 gt 1").message.contains("divby"));
}

#[test]
fn fractional_seconds_compare_in_ticks() {
    let Node::Compare { right, .. } = bound("fractionalseconds(lastRefreshedDateTime) eq 0.5").node
    else {
        panic!("not a comparison");
    };
    assert_eq!(right.node, Node::Integer(5_000_000));
}

#[test]
fn guid_literals_compare_with_strings_ignoring_ascii_case() {
    let Node::Compare { left, right, .. } =
        bound("tenantId eq 7A3B0C1D-0000-4000-8000-00000000000A").node
    else {
        panic!("not a comparison");
    };
    assert!(matches!(left.node, Node::Call { function: Function::AsciiLower, .. }));
    assert_eq!(right.node, Node::String("7a3b0c1d-0000-4000-8000-00000000000a".into()));
}

#[test]
fn in_lists_of_constants_become_one_set_test() {
    let Node::In { values, or_null, .. } = bound("tenantId in ('a', null, 'b')").node else {
        panic!("not a set test");
    };
    assert_eq!(values.len(), 2);
    assert!(or_null);
    assert_eq!(bound("tenantId in ()").node, Node::Boolean(false));
    // A decimal that no integer equals drops out of the list.
    assert!(matches!(bound("numberOfErrorDevices in (1, 2.5)").node, Node::Or(..)));
}

#[test]
fn functions_check_their_arguments() {
    assert!(rejected("contains(tenantId)").message.contains("takes 2"));
    assert!(rejected("length(numberOfErrorDevices) eq 1").message.contains("Edm.String"));
    assert!(rejected("year(tenantId) eq 1").message.contains("does not apply"));
    assert!(rejected("frobnicate(tenantId)").message.contains("not a function"));
    let pattern = rejected("matchesPattern(tenantId, '[')").message;
    assert!(pattern.contains("regular expression: unclosed character class"), "{pattern}");
    assert!(!pattern.contains('\n'), "{pattern}");
    assert!(rejected("tenantId has 'a'").message.contains("enumeration"));
    assert_eq!(bound("contains(null, 'a')").ty, Type::Boolean);
}

#[test]
fn isof_and_cast_keep_values_exact() {
    assert_eq!(
        bound("isof(microsoft.graph.managedTenants.aggregatedPolicyCompliance)").node,
        Node::Boolean(true)
    );
    assert!(matches!(bound("isof(tenantId, Edm.String)").node, Node::IsNotNull(_)));
    assert_eq!(bound("isof(tenantId, Edm.Int64)").node, Node::Boolean(false));
    assert!(bind("cast(numberOfErrorDevices, Edm.Decimal) gt 1").is_ok());
    assert!(rejected("cast(tenantId, Edm.Int64) gt 1").message.contains("cannot be cast"));
}

#[test]
fn now_is_the_request_time() {
    let expr = filter::parse("lastRefreshedDateTime lt now()").unwrap();
    let Node::Compare { right, .. } = super::filter(&expr, View::Graph, 1234).unwrap().node else {
        panic!("not a comparison");
    };
    assert_eq!(right.node, Node::Integer(1234));
}

#[test]
fn nullability_follows_the_operands() {
    assert!(!property(Property::Id).nullable());
    assert!(property(Property::TenantId).nullable());
    assert!(!bound("tenantId eq 'a'").nullable());
    assert!(bound("contains(tenantId, 'a')").nullable());
    assert!(!bound("contains(id, 'a')").nullable());
}

#[test]
fn divby_compares_fractions_exactly() {
    let Node::Compare { op: Comparison::Gt, left, right } =
        bound("numberOfErrorDevices divby 4 gt 2.5").node
    else {
        panic!("not a comparison");
    };
    let Node::Call { function: Function::RatioCompare, arguments } = left.node else {
        panic!("not a fraction comparison");
    };
    let constants: Vec<&Node> = arguments[1..].iter().map(|a| &a.node).collect();
    assert_eq!(constants, [&Node::Integer(4), &Node::Integer(25), &Node::Integer(10)]);
    assert_eq!(right.node, Node::Integer(0));
    assert!(matches!(bound("numberOfErrorDevices divby numberOfCompliantDevices eq numberOfCompliantDevices divby 2").node, Node::Or(..)));
    assert!(rejected("numberOfErrorDevices divby 2 eq INF").message.contains("INF"));
}

#[test]
fn constant_arithmetic_is_computed_and_checked_at_its_position() {
    let Node::Compare { right, .. } = bound("numberOfErrorDevices eq 2 add 3 mul 4").node else {
        panic!("not a comparison");
    };
    assert_eq!(right.node, Node::Integer(14));
    let error = rejected("tenantId eq 'a' or 1 div 0 eq 1");
    assert_eq!((error.position, error.message.as_str()), (20, "division by zero"));
    assert!(rejected("9223372036854775807 add 1 eq 1").message.contains("outside the range"));
    assert!(rejected("INF add 1 eq 1").message.contains("not used in arithmetic"));
}

#[test]
fn constant_order_keys_do_not_depend_on_the_row() {
    assert!(!bound("now() gt 2024-01-01T00:00:00Z").depends_on_row());
    assert!(bound("length(tenantId) gt 1").depends_on_row());
}
