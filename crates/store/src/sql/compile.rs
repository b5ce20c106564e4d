//! The query compiler: from a bound expression to SQL text and its bound parameters.
//!
//! Every constant of the expression becomes a bound parameter, and every name becomes a
//! column name that this crate chose, so no text a client wrote ever reaches the SQL text.
//! What differs between databases (null-safe equality, function names, checked arithmetic,
//! where nulls sort) goes through [`Dialect`].
//!
//! # Null semantics
//!
//! SQL's `AND`, `OR` and `NOT` follow the same three-valued logic as OData, and SQL functions
//! and arithmetic give null for a null argument as OData's do. Comparisons differ: OData's
//! `eq` and `ne` treat null as a value, and its `gt`, `ge`, `lt` and `le` give false (or, for
//! `ge` and `le` with two nulls, true) where SQL gives null. The compiler renders each
//! comparison so that its SQL value equals the OData value exactly. Where only the truth of a
//! condition matters (a `WHERE` clause, and any operand of `AND` or `OR` inside it), null and
//! false select the same rows, so simpler, index-friendly SQL is used there; beneath a `NOT`
//! the exact form is used.

use beacon_odata::bind::{Comparison, Node, Typed};
use beacon_odata::model::Property;

use super::{Columns, Dialect, columns};

/// A value bound to a placeholder.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Param {
    /// SQL `NULL`.
    Null,
    /// A 64-bit integer.
    Integer(i64),
    /// UTF-8 text.
    Text(String),
}

/// An order key of a query: an expression and its direction.
#[derive(Clone, Debug, PartialEq)]
pub struct OrderKey {
    /// The value to sort by.
    pub expr: Typed,
    /// Whether larger values come first. Ascending puts nulls first, descending last.
    pub descending: bool,
}

/// SQL text under construction with the parameters its placeholders refer to.
#[derive(Debug)]
pub struct Compiler<'a> {
    dialect: &'a dyn Dialect,
    params: Vec<Param>,
}

impl<'a> Compiler<'a> {
    /// Starts a statement in `dialect` with no parameters bound yet.
    pub fn new(dialect: &'a dyn Dialect) -> Self {
        Compiler { dialect, params: Vec::new() }
    }

    /// Binds a value and returns its placeholder.
    pub fn bind(&mut self, param: Param) -> String {
        let placeholder = self.dialect.parameter(self.params.len() + 1, &param);
        self.params.push(param);
        placeholder
    }

    /// Returns the clause after an `ORDER BY` key that places nulls as OData requires.
    pub fn nulls_order(&self, descending: bool) -> &'static str {
        self.dialect.nulls_order(descending)
    }

    /// Returns the dialect's test that selects the rows of the partner that `placeholder`
    /// binds.
    pub fn partner_condition(&self, placeholder: &str) -> String {
        self.dialect.partner_condition(placeholder)
    }

    /// Returns the dialect's sum aggregate of `operand`.
    pub fn sum(&self, operand: &str) -> String {
        self.dialect.sum(operand)
    }

    /// Returns the dialect's average aggregate of `operand`.
    pub fn average(&self, operand: &str) -> String {
        self.dialect.average(operand)
    }

    /// Returns the parameters bound so far, in placeholder order.
    pub fn into_params(self) -> Vec<Param> {
        self.params
    }

    /// Renders a Boolean expression as a condition: a row qualifies where it is true.
    pub fn condition(&mut self, expr: &Typed) -> String {
        self.boolean(expr, true)
    }

    /// Renders any expression as a value with OData's exact semantics.
    pub fn value(&mut self, expr: &Typed) -> String {
        match &expr.node {
            Node::Property(property) => column(*property).to_owned(),
            Node::Column(index) => result_column(*index),
            Node::Null => "NULL".to_owned(),
            Node::Boolean(value) => self.dialect.boolean(*value).to_owned(),
            Node::String(text) => self.bind(Param::Text(text.clone())),
            Node::Integer(value) => self.bind(Param::Integer(*value)),
            // The shortest text that reads back as the same double, cast by the database.
            Node::Real(value) => {
                // 9e999 overflows to infinity when read, where Rust would write "inf".
                let text = match *value {
                    f64::INFINITY => "9e999".to_owned(),
                    f64::NEG_INFINITY => "-9e999".to_owned(),
                    finite => finite.to_string(),
                };
                let placeholder = self.bind(Param::Text(text));
                self.dialect.real(&placeholder)
            }
            Node::Compare { .. }
            | Node::In { .. }
            | Node::IsNotNull(_)
            | Node::And(..)
            | Node::Or(..)
            | Node::Not(_) => self.boolean(expr, false),
            Node::Arithmetic { op, left, right } => {
                let (left, right) = (self.value(left), self.value(right));
                self.dialect.arithmetic(*op, &left, &right)
            }
            Node::Negate(operand) => {
                let operand = self.value(operand);
                self.dialect.negate(&operand)
            }
            Node::Call { function, arguments } => {
                let arguments: Vec<String> = arguments.iter().map(|a| self.value(a)).collect();
                self.dialect.function(*function, &arguments)
            }
        }
    }

    /// Renders a Boolean expression. With `only_truth`, the SQL may give null where OData
    /// gives false; otherwise it gives OData's value exactly.
    fn boolean(&mut self, expr: &Typed, only_truth: bool) -> String {
        match &expr.node {
            Node::And(left, right) => {
                let (left, right) =
                    (self.boolean(left, only_truth), self.boolean(right, only_truth));
                format!("({left} AND {right})")
            }
            Node::Or(left, right) => {
                let (left, right) =
                    (self.boolean(left, only_truth), self.boolean(right, only_truth));
                format!("({left} OR {right})")
            }
            Node::Not(operand) => format!("(NOT {})", self.boolean(operand, false)),
            Node::IsNotNull(operand) => format!("({} IS NOT NULL)", self.value(operand)),
            Node::Compare { op, left, right } => self.compare(*op, left, right, only_truth),
            Node::In { operand, values, or_null } => {
                let value = self.value(operand);
                let mut parts = Vec::new();
                if !values.is_empty() {
                    let list: Vec<String> = values.iter().map(|v| self.value(v)).collect();
                    let test = format!("{value} IN ({})", list.join(", "));
                    parts.push(if only_truth || !operand.nullable() {
                        test
                    } else {
                        self.dialect.false_if_null(&test)
                    });
                }
                if *or_null {
                    parts.push(format!("{value} IS NULL"));
                }
                match parts.len() {
                    0 => self.dialect.boolean(false).to_owned(),
                    _ => format!("({})", parts.join(" OR ")),
                }
            }
            _ => self.value(expr),
        }
    }

    fn compare(&mut self, op: Comparison, left: &Typed, right: &Typed, only_truth: bool) -> String {
        // A null literal on one side leaves a test of the other side, or a constant. Only the
        // side that appears in the text is rendered, so every bound parameter is used.
        let (left_null, right_null) = (left.node == Node::Null, right.node == Node::Null);
        let either_nullable = left.nullable() || right.nullable();
        let both_nullable = left.nullable() && right.nullable();
        match (op, left_null, right_null) {
            (Comparison::Eq | Comparison::Ge | Comparison::Le, true, true) => {
                return self.dialect.boolean(true).to_owned();
            }
            (Comparison::Ne | Comparison::Gt | Comparison::Lt, true, true)
            | (Comparison::Gt | Comparison::Lt, true, false)
            | (Comparison::Gt | Comparison::Lt, false, true) => {
                return self.dialect.boolean(false).to_owned();
            }
            (Comparison::Eq | Comparison::Ge | Comparison::Le, true, false) => {
                return format!("({} IS NULL)", self.value(right));
            }
            (Comparison::Eq | Comparison::Ge | Comparison::Le, false, true) => {
                return format!("({} IS NULL)", self.value(left));
            }
            (Comparison::Ne, true, false) => return format!("({} IS NOT NULL)", self.value(right)),
            (Comparison::Ne, false, true) => return format!("({} IS NOT NULL)", self.value(left)),
            _ => {}
        }
        let (a, b) = (self.value(left), self.value(right));

        let symbol = match op {
            Comparison::Eq => "=",
            Comparison::Ne => "<>",
            Comparison::Gt => ">",
            Comparison::Ge => ">=",
            Comparison::Lt => "<",
            Comparison::Le => "<=",
        };
        let plain = format!("({a} {symbol} {b})");
        if !either_nullable {
            return plain;
        }
        match op {
            // Null equals only null.
            Comparison::Eq if only_truth && !both_nullable => plain,
            Comparison::Eq => self.dialect.null_safe_eq(&a, &b),
            Comparison::Ne => format!("(NOT {})", self.dialect.null_safe_eq(&a, &b)),
            // False, never null, when either side is null.
            Comparison::Gt | Comparison::Lt if only_truth => plain,
            Comparison::Gt | Comparison::Lt => self.dialect.false_if_null(&plain),
            // False when one side is null, true when both are.
            Comparison::Ge | Comparison::Le if only_truth && !both_nullable => plain,
            Comparison::Ge | Comparison::Le => format!(
                "(CASE WHEN {a} IS NULL OR {b} IS NULL THEN ({a} IS NULL AND {b} IS NULL) \
                 ELSE {a} {symbol} {b} END)"
            ),
        }
    }

    /// Renders the `ORDER BY` list: the keys, then `id` to make the order total.
    pub fn order_by(&mut self, keys: &[OrderKey], key_texts: &[String]) -> String {
        let mut parts: Vec<String> = keys
            .iter()
            .zip(key_texts)
            .map(|(key, text)| {
                let direction = if key.descending { " DESC" } else { "" };
                format!("{text}{direction}{}", self.dialect.nulls_order(key.descending))
            })
            .collect();
        parts.push("id".to_owned());
        parts.join(", ")
    }

    /// Renders the conditions that together select the rows that sort strictly after the row
    /// whose order-key values are `values` and whose key is `id`, in the order that `keys` and
    /// then `id` define. A row qualifies when it meets any one of them, and the conditions are
    /// returned in the order of the rows they select: every row of the first sorts before
    /// every row of the second.
    ///
    /// Each condition is a run of equalities followed by one range or null test, which a
    /// database can evaluate by seeking in an index on the keys, so a deep page costs what the
    /// first does. One condition with `OR`s between the alternatives would select the same
    /// rows, but forces a scan from the start of the order.
    pub fn after(
        &mut self,
        keys: &[OrderKey],
        key_texts: &[String],
        values: &[Param],
        id: &str,
    ) -> Vec<String> {
        // With every key ascending and no null in the cursor, one row-value comparison selects
        // the same rows, because rows with a null key sort first, so they are never after the cursor.
        let ascending = keys.iter().all(|key| !key.descending);
        if !keys.is_empty() && ascending && values.iter().all(|value| *value != Param::Null) {
            let placeholders: Vec<String> =
                values.iter().map(|value| self.bind(value.clone())).collect();
            let id = self.bind(Param::Text(id.to_owned()));
            return vec![format!(
                "(({}, id) > ({}, {id}))",
                key_texts.join(", "),
                placeholders.join(", ")
            )];
        }

        // Otherwise row r follows the cursor when, for some i, r ties the cursor on the first i
        // keys and follows it on key i; the key `id` comes last and never ties. Ascending keys
        // put nulls first and descending keys put them last.
        // A row that ties the cursor on more keys sorts before one that ties it on fewer, so
        // the alternatives of each depth go in front of those of the depths before it.
        let mut by_depth: Vec<Vec<String>> = Vec::new();
        let mut ties: Vec<String> = Vec::new();
        for ((key, text), value) in keys.iter().zip(key_texts).zip(values) {
            let alternatives = match (value, key.descending) {
                (Param::Null, false) => vec![conjunction(&ties, &format!("{text} IS NOT NULL"))],
                (Param::Null, true) => Vec::new(),
                (value, false) => {
                    let placeholder = self.bind(value.clone());
                    vec![conjunction(&ties, &format!("{text} > {placeholder}"))]
                }
                (value, true) => {
                    let placeholder = self.bind(value.clone());
                    vec![
                        conjunction(&ties, &format!("{text} < {placeholder}")),
                        conjunction(&ties, &format!("{text} IS NULL")),
                    ]
                }
            };
            by_depth.push(alternatives);
            let tie = match value {
                Param::Null => format!("{text} IS NULL"),
                value => {
                    let placeholder = self.bind(value.clone());
                    format!("{text} = {placeholder}")
                }
            };
            ties.push(tie);
        }
        let placeholder = self.bind(Param::Text(id.to_owned()));
        by_depth.push(vec![conjunction(&ties, &format!("id > {placeholder}"))]);
        by_depth.into_iter().rev().flatten().collect()
    }
}

fn conjunction(ties: &[String], last: &str) -> String {
    if ties.is_empty() {
        return last.to_owned();
    }
    format!("({} AND {last})", ties.join(" AND "))
}

/// Returns the name of the `index`th column of a transformed result.
pub fn result_column(index: usize) -> String {
    format!("c{index}")
}

/// Returns the column that stores a property's comparable value: a date-time's ticks.
fn column(property: Property) -> &'static str {
    match columns(property) {
        Columns::One(name) => name,
        Columns::DateTime { ticks, .. } => ticks,
    }
}

#[cfg(test)]
mod tests {
    use beacon_odata::bind;
    use beacon_odata::filter;
    use beacon_odata::model::View;

    use super::*;
    use crate::sql::Sqlite;

    fn compile(text: &str) -> (String, Vec<Param>) {
        let expr = filter::parse(text).unwrap();
        let bound = bind::filter(&expr, View::Graph, 0).unwrap();
        let mut compiler = Compiler::new(&Sqlite);
        let sql = compiler.condition(&bound);
        (sql, compiler.into_params())
    }

    #[test]
    fn client_text_only_ever_becomes_a_parameter() {
        let (sql, params) = compile("tenantDisplayName eq 'x'' OR 1=1 --'");
        assert_eq!(sql, "(tenant_display_name = ?1)");
        assert_eq!(params, vec![Param::Text("x' OR 1=1 --".into())]);
    }

    #[test]
    fn ne_is_true_where_the_property_is_null() {
        let (sql, _) = compile("tenantDisplayName ne 'A'");
        assert_eq!(sql, "(NOT (tenant_display_name IS ?1))");
    }

    #[test]
    fn comparisons_under_not_are_exact() {
        let (sql, _) = compile("not (numberOfErrorDevices gt 5)");
        assert_eq!(sql, "(NOT COALESCE((number_of_error_devices > ?1), FALSE))");
    }

    #[test]
    fn comparisons_with_null_literals_become_null_tests() {
        assert_eq!(compile("tenantId eq null").0, "(tenant_id IS NULL)");
        assert_eq!(compile("null ne tenantId").0, "(tenant_id IS NOT NULL)");
        assert_eq!(compile("tenantId gt null").0, "FALSE");
        assert_eq!(compile("tenantId le null").0, "(tenant_id IS NULL)");
    }

    #[test]
    fn folded_comparison_binds_no_parameter() {
        assert_eq!(compile("numberOfErrorDevices add 1 gt null"), ("FALSE".to_owned(), vec![]));
        assert_eq!(
            compile("length(tenantId) eq null"),
            ("(odata_length(tenant_id) IS NULL)".to_owned(), vec![])
        );
    }

    #[test]
    fn ge_between_two_nullable_values_is_true_when_both_are_null() {
        let (sql, _) = compile("numberOfErrorDevices ge numberOfCompliantDevices");
        assert!(sql.starts_with("(CASE WHEN number_of_error_devices IS NULL"), "{sql}");
    }

    #[test]
    fn decimal_constants_fold_to_integer_bounds() {
        assert_eq!(compile("numberOfErrorDevices ge 2.5").1, vec![Param::Integer(2)]);
        assert_eq!(compile("numberOfErrorDevices eq 2.5").0, "FALSE");
        assert_eq!(
            compile("numberOfErrorDevices lt 1e30").0,
            "(number_of_error_devices IS NOT NULL)"
        );
    }

    #[test]
    fn in_lists_keep_null_semantics() {
        assert_eq!(compile("tenantId in ()").0, "FALSE");
        assert_eq!(
            compile("tenantId in ('a', null)").0,
            "(tenant_id IN (?1) OR tenant_id IS NULL)"
        );
        assert_eq!(
            compile("not (tenantId in ('a'))").0,
            "(NOT (COALESCE(tenant_id IN (?1), FALSE)))"
        );
    }

    #[test]
    fn keyset_condition_follows_nulls_first_ascending() {
        let key = OrderKey {
            expr: Typed {
                node: Node::Property(Property::TenantDisplayName),
                ty: bind::Type::String,
            },
            descending: false,
        };
        let mut compiler = Compiler::new(&Sqlite);
        let text = vec!["tenant_display_name".to_owned()];
        let sql = compiler.after(std::slice::from_ref(&key), &text, &[Param::Null], "k");
        assert_eq!(
            sql,
            ["(tenant_display_name IS NULL AND id > ?1)", "tenant_display_name IS NOT NULL"]
        );
        let descending = OrderKey { descending: true, ..key };
        let mut compiler = Compiler::new(&Sqlite);
        let sql = compiler.after(
            std::slice::from_ref(&descending),
            &text,
            &[Param::Text("m".into())],
            "k",
        );
        assert_eq!(
            sql,
            [
                "(tenant_display_name = ?2 AND id > ?3)",
                "tenant_display_name < ?1",
                "tenant_display_name IS NULL"
            ]
        );
        let ascending = OrderKey { descending: false, ..descending };
        let mut compiler = Compiler::new(&Sqlite);
        let sql = compiler.after(&[ascending], &text, &[Param::Text("m".into())], "k");
        assert_eq!(sql, ["((tenant_display_name, id) > (?1, ?2))"]);
    }
}
