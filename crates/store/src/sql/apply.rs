//! SQL for `$apply`: each stage of a plan wraps the relation before it in a subquery.
//!
//! The relation starts as the partner's rows. A filter adds a `WHERE`, a grouping becomes a
//! `GROUP BY` whose result columns are named `c0`, `c1`, … in the plan's column order, and
//! `top`, `skip`, `topcount` and `bottomcount` become an `ORDER BY` with `LIMIT` and `OFFSET`
//! in the order in effect. An order is made total before any limit: by `id` over entities, by
//! the grouping columns over groups. The options that follow `$apply` (`$filter`, `$orderby`,
//! `$top`, `$skip`, `$count`) then apply to the last relation. Every subquery is named (`AS r`),
//! as PostgreSQL before version 16 requires.

use beacon_odata::bind::Typed;
use beacon_odata::bind::apply::{AggregateFunction, Plan, Stage};

use super::compile::{Compiler, OrderKey, Param, result_column};
use super::{TABLE, entity_columns};

/// A relation in SQL with the order in effect after its last stage.
struct Relation {
    /// The `SELECT` that produces it.
    sql: String,
    /// The current order: keys and whether each is descending. Keys are rendered where they
    /// are used, so a key that no later clause uses binds no parameter.
    order: Vec<(Typed, bool)>,
    /// The keys that make any order total.
    tiebreak: Vec<String>,
}

/// Renders the plan's relation for `partner`.
fn relation(compiler: &mut Compiler<'_>, partner: &str, plan: &Plan) -> Relation {
    let partner = compiler.bind(Param::Text(partner.to_owned()));
    let mut relation = Relation {
        sql: format!("SELECT * FROM {TABLE} WHERE {}", compiler.partner_condition(&partner)),
        order: Vec::new(),
        tiebreak: vec!["id".to_owned()],
    };

    for stage in &plan.stages {
        let input = &relation.sql;
        match stage {
            Stage::Filter(condition) => {
                let condition = compiler.condition(condition);
                relation.sql = format!("SELECT * FROM ({input}) AS r WHERE {condition}");
            }
            Stage::Group { keys, aggregates } => {
                let key_texts: Vec<String> = keys.iter().map(|k| compiler.value(k)).collect();
                let mut select: Vec<String> = key_texts
                    .iter()
                    .enumerate()
                    .map(|(i, text)| format!("{text} AS {}", result_column(i)))
                    .collect();
                for (j, aggregate) in aggregates.iter().enumerate() {
                    let operand = aggregate.operand.as_ref().map(|o| compiler.value(o));
                    let operand = operand.unwrap_or_default();
                    let call = match aggregate.function {
                        AggregateFunction::Count => "COUNT(*)".to_owned(),
                        AggregateFunction::Sum => compiler.sum(&operand),
                        AggregateFunction::Min => format!("MIN({operand})"),
                        AggregateFunction::Max => format!("MAX({operand})"),
                        AggregateFunction::Average => compiler.average(&operand),
                        AggregateFunction::CountDistinct => format!("COUNT(DISTINCT {operand})"),
                    };
                    select.push(format!("{call} AS {}", result_column(keys.len() + j)));
                }
                let group_by = match key_texts.is_empty() {
                    true => String::new(),
                    false => format!(" GROUP BY {}", key_texts.join(", ")),
                };
                relation.sql =
                    format!("SELECT {} FROM ({input}) AS r{group_by}", select.join(", "));
                relation.order = Vec::new();
                // Grouping columns may be null, and nulls sort first, as in any ascending key.
                relation.tiebreak = (0..keys.len())
                    .map(|i| format!("{}{}", result_column(i), compiler.nulls_order(false)))
                    .collect();
            }
            Stage::Order(keys) => relation.order = keys.clone(),
            Stage::Top(count) => {
                let order = order_clause(compiler, &relation.order, &relation.tiebreak);
                let limit = compiler.bind(Param::Integer(clamp(*count)));
                relation.sql = format!("SELECT * FROM ({input}) AS r{order} LIMIT {limit}");
            }
            Stage::Skip(count) => {
                let order = order_clause(compiler, &relation.order, &relation.tiebreak);
                let all = compiler.bind(Param::Integer(i64::MAX));
                let offset = compiler.bind(Param::Integer(clamp(*count)));
                relation.sql =
                    format!("SELECT * FROM ({input}) AS r{order} LIMIT {all} OFFSET {offset}");
            }
            Stage::Rank { count, value, descending } => {
                relation.order = vec![(value.clone(), *descending)];
                let order = order_clause(compiler, &relation.order, &relation.tiebreak);
                let limit = compiler.bind(Param::Integer(clamp(*count)));
                relation.sql = format!("SELECT * FROM ({input}) AS r{order} LIMIT {limit}");
            }
        }
    }
    relation
}

/// Renders ` ORDER BY` with the keys, then the tie-breaking keys; empty without any key.
fn order_clause(
    compiler: &mut Compiler<'_>,
    keys: &[(Typed, bool)],
    tiebreak: &[String],
) -> String {
    let mut parts: Vec<String> = keys
        .iter()
        .map(|(key, descending)| {
            let text = compiler.value(key);
            let direction = if *descending { " DESC" } else { "" };
            format!("{text}{direction}{}", compiler.nulls_order(*descending))
        })
        .collect();
    parts.extend(tiebreak.iter().cloned());
    match parts.is_empty() {
        true => String::new(),
        false => format!(" ORDER BY {}", parts.join(", ")),
    }
}

fn clamp(count: u64) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX)
}

/// A page to read from the result of a plan.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ApplyQuery {
    /// The `$apply` plan.
    pub plan: Plan,
    /// `$filter` over the plan's result.
    pub filter: Option<Typed>,
    /// `$orderby` over the plan's result; without it, the order the plan left.
    pub order: Vec<OrderKey>,
    /// Rows of the result to pass over first.
    pub offset: u64,
    /// The maximum number of rows to return.
    pub limit: usize,
}

/// Renders the `SELECT` of a page of a plan's result. Entities come with the entity columns;
/// groups with their columns `c0`, `c1`, … in order.
pub fn select_query(
    dialect: &dyn super::Dialect,
    partner: &str,
    query: &ApplyQuery,
) -> (String, Vec<Param>) {
    let mut compiler = Compiler::new(dialect);
    let relation = relation(&mut compiler, partner, &query.plan);
    let columns = match &query.plan.columns {
        None => entity_columns().join(", "),
        Some(columns) => (0..columns.len()).map(result_column).collect::<Vec<_>>().join(", "),
    };
    let filter = query.filter.as_ref().map(|f| format!(" WHERE {}", compiler.condition(f)));

    // The client's $orderby replaces the order the plan left; either is made total.
    let order: Vec<(Typed, bool)> = match query.order.is_empty() {
        true => relation.order,
        false => query.order.iter().map(|k| (k.expr.clone(), k.descending)).collect(),
    };
    let order = order_clause(&mut compiler, &order, &relation.tiebreak);
    let limit = compiler.bind(Param::Integer(i64::try_from(query.limit).unwrap_or(i64::MAX)));
    let offset = compiler.bind(Param::Integer(clamp(query.offset)));
    let text = format!(
        "SELECT {columns} FROM ({}) AS r{}{order} LIMIT {limit} OFFSET {offset}",
        relation.sql,
        filter.unwrap_or_default()
    );
    (text, compiler.into_params())
}

/// Renders a count of the rows of a plan's result that pass `filter`.
pub fn count_query(
    dialect: &dyn super::Dialect,
    partner: &str,
    plan: &Plan,
    filter: Option<&Typed>,
) -> (String, Vec<Param>) {
    let mut compiler = Compiler::new(dialect);
    let relation = relation(&mut compiler, partner, plan);
    let filter = filter.map(|f| format!(" WHERE {}", compiler.condition(f)));
    let text =
        format!("SELECT COUNT(*) FROM ({}) AS r{}", relation.sql, filter.unwrap_or_default());
    (text, compiler.into_params())
}

#[cfg(test)]
mod tests {
    use beacon_odata::bind;
    use beacon_odata::model::View;

    use super::*;
    use crate::sql::Sqlite;

    fn plan(text: &str) -> Plan {
        let sequence = beacon_odata::apply::parse(text).unwrap();
        bind::apply::plan(&sequence, View::Graph, 0).unwrap()
    }

    #[test]
    fn groupby_with_sum_names_its_columns_in_order() {
        let query = ApplyQuery {
            plan: plan(
                "groupby((compliancePolicyPlatform),aggregate(numberOfErrorDevices with sum as total))",
            ),
            limit: 10,
            ..Default::default()
        };
        let (sql, params) = select_query(&Sqlite, "p", &query);
        assert_eq!(
            sql,
            "SELECT c0, c1 FROM (SELECT compliance_policy_platform AS c0, \
             SUM(number_of_error_devices) AS c1 FROM (SELECT * FROM \
             aggregated_policy_compliance WHERE partner_key = (SELECT partner_key FROM \
             beacon_partner WHERE partner_tenant_id = ?1)) AS r GROUP BY \
             compliance_policy_platform) AS r ORDER BY c0 LIMIT ?2 OFFSET ?3"
        );
        assert_eq!(params[0], Param::Text("p".into()));
    }

    #[test]
    fn unused_order_binds_no_parameter() {
        let plan = plan("orderby(numberOfErrorDevices mod 3)");
        let (sql, params) = count_query(&Sqlite, "p", &plan, None);
        assert_eq!(params.len(), 1, "{sql}");
    }

    #[test]
    fn top_after_orderby_limits_in_that_order() {
        let query = ApplyQuery {
            plan: plan("orderby(tenantId desc)/top(2)"),
            limit: 10,
            ..Default::default()
        };
        let (sql, _) = select_query(&Sqlite, "p", &query);
        assert!(sql.contains("ORDER BY tenant_id DESC, id LIMIT ?2)"), "{sql}");
        assert!(sql.ends_with("ORDER BY tenant_id DESC, id LIMIT ?3 OFFSET ?4"), "{sql}");
    }
}
