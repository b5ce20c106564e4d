//! Binding of `$apply`: from parsed transformations to a typed plan the store can run.
//!
//! A plan is a sequence of stages over a relation that starts as the partner's entities. A
//! `filter`, `orderby`, `top`, `skip`, `topcount` or `bottomcount` keeps the relation's shape;
//! `groupby` and `aggregate` replace it with named columns (the grouping properties, then the
//! aggregates' aliases), and later stages and the options `$filter`, `$orderby` and `$select`
//! name those columns. Anything Data Aggregation defines that this resource cannot answer
//! exactly is rejected here, naming the position: `compute`, `concat`, `search`, `rollup`,
//! `from`, custom aggregates, `topsum` and the percent forms, and aggregating a value with
//! fractional digits.

use super::{BindError, Column, Type, Typed, error};
use crate::apply::{
    AggregateItem, AggregateKind, AggregationMethod, GroupingElement, LimitKind, Transformation,
};
use crate::filter::{Expr, Literal, Span};
use crate::model::{Property, View};

/// An aggregation function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AggregateFunction {
    /// `sum`: exact for integers, failing the request on overflow; null over no rows.
    Sum,
    /// `min`.
    Min,
    /// `max`.
    Max,
    /// `average`: a double; null over no rows.
    Average,
    /// `countdistinct`: the number of distinct non-null values.
    CountDistinct,
    /// `$count`: the number of rows.
    Count,
}

/// One aggregate of `aggregate(...)`.
#[derive(Clone, Debug, PartialEq)]
pub struct Aggregate {
    /// The function.
    pub function: AggregateFunction,
    /// The aggregated value; `None` for `$count`.
    pub operand: Option<Typed>,
}

/// One stage of a plan.
#[derive(Clone, Debug, PartialEq)]
pub enum Stage {
    /// Keeps the rows where the condition is true.
    Filter(Typed),
    /// Groups by the keys (none: one group of every row) and computes the aggregates; the
    /// result's columns are the keys, then the aggregates.
    Group {
        /// The grouping values.
        keys: Vec<Typed>,
        /// The aggregates of each group.
        aggregates: Vec<Aggregate>,
    },
    /// Sets the order that later `top`, `skip` and the response follow.
    Order(Vec<(Typed, bool)>),
    /// Keeps the first rows in the current order.
    Top(u64),
    /// Drops the first rows in the current order.
    Skip(u64),
    /// Keeps the `count` rows with the highest (`descending`) or lowest values.
    Rank {
        /// How many rows to keep.
        count: u64,
        /// The value to rank by.
        value: Typed,
        /// Whether the highest values are kept.
        descending: bool,
    },
}

/// What a column of a transformed result holds, which decides how a response writes it.
#[derive(Clone, Debug, PartialEq)]
pub struct ResultColumn {
    /// Its name and type.
    pub column: Column,
    /// The stored property it repeats, for a grouping property.
    pub property: Option<Property>,
    /// The function that computed it, for an aggregate.
    pub function: Option<AggregateFunction>,
}

/// A bound `$apply`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    /// The stages in order.
    pub stages: Vec<Stage>,
    /// The columns of the result; `None` when the result is still entities.
    pub columns: Option<Vec<ResultColumn>>,
}

impl Plan {
    /// Returns the plan as one condition on the entities when it only filters them (`None`
    /// for a plan of `identity` alone), so it can run as a plain, keyset-paged listing; or the
    /// plan itself otherwise.
    pub fn into_filter(self) -> Result<Option<Typed>, Plan> {
        if self.columns.is_some() || !self.stages.iter().all(|s| matches!(s, Stage::Filter(_))) {
            return Err(self);
        }
        let condition = self.stages.into_iter().fold(None, |all, stage| {
            let Stage::Filter(condition) = stage else { return all };
            Some(match all {
                None => condition,
                Some(all) => super::and(all, condition),
            })
        });
        Ok(condition)
    }

    /// Returns the names in scope after the plan, for binding later options.
    pub fn scope(&self) -> Option<Vec<Column>> {
        self.columns.as_ref().map(|columns| columns.iter().map(|c| c.column.clone()).collect())
    }
}

/// The maximum number of stages in a plan. The store nests a subquery for every stage but
/// `orderby`, and SQLite rejects SQL nested deeper than its parser's stack allows. With the
/// SQLite 3.54 that rusqlite bundles, that is about 415 subqueries, so a much longer plan would
/// fail in the database instead of here.
pub const MAX_STAGES: usize = 100;

/// Binds a parsed `$apply` against `view`.
pub fn plan(sequence: &[Transformation], view: View, now: i64) -> Result<Plan, BindError> {
    let mut plan = Plan::default();
    for transformation in sequence {
        bind_stage(&mut plan, transformation, view, now)?;
        if plan.stages.len() > MAX_STAGES {
            return Err(error(
                transformation.span(),
                format!("$apply may have at most {MAX_STAGES} transformations"),
            ));
        }
    }
    Ok(plan)
}

fn bind_stage(
    plan: &mut Plan,
    transformation: &Transformation,
    view: View,
    now: i64,
) -> Result<(), BindError> {
    let scope = plan.scope();
    let scope = scope.as_deref();
    match transformation {
        Transformation::Identity(_) => {}
        Transformation::Filter { condition, .. } => {
            plan.stages.push(Stage::Filter(super::filter_in(condition, view, now, scope)?));
        }
        Transformation::OrderBy { items, .. } => {
            let mut keys = Vec::new();
            for item in items {
                let typed = super::value_in(&item.expr, view, now, scope)?;
                keys.push((typed, item.descending));
            }
            plan.stages.push(Stage::Order(keys));
        }
        Transformation::Top { count, .. } => plan.stages.push(Stage::Top(*count)),
        Transformation::Skip { count, .. } => plan.stages.push(Stage::Skip(*count)),
        Transformation::Limit { kind, limit, value, span } => {
            let descending = match kind {
                LimitKind::TopCount => true,
                LimitKind::BottomCount => false,
                _ => {
                    return Err(error(
                        *span,
                        "only 'topcount' and 'bottomcount' of the top and bottom \
                         transformations are supported"
                            .to_owned(),
                    ));
                }
            };
            let count = match limit {
                Expr::Literal(Literal::Integer(n), _) if *n >= 0 => n.unsigned_abs(),
                other => {
                    return Err(error(
                        other.span(),
                        "the count must be a non-negative integer literal of at most \
                         9223372036854775807"
                            .to_owned(),
                    ));
                }
            };
            let value = super::value_in(value, view, now, scope)?;
            plan.stages.push(Stage::Rank { count, value, descending });
        }
        Transformation::Aggregate { items, .. } => {
            let (aggregates, columns) = aggregates(items, &[], view, now, scope)?;
            plan.stages.push(Stage::Group { keys: Vec::new(), aggregates });
            plan.columns = Some(columns);
        }
        Transformation::GroupBy { elements, then, span } => {
            // The grouping properties, each once.
            let mut keys = Vec::new();
            let mut columns: Vec<ResultColumn> = Vec::new();
            for element in elements {
                let GroupingElement::Property(path) = element else {
                    return Err(error(*span, "'rollup' is not supported".to_owned()));
                };
                let (typed, column) = grouping(&path.path, path.span, view, scope, plan)?;
                if columns.iter().any(|c| c.column.name == column.column.name) {
                    continue;
                }
                keys.push(typed);
                columns.push(column);
            }

            // Then at most one aggregate(...) over each group.
            let aggregates = match then.as_slice() {
                [] => Vec::new(),
                [Transformation::Aggregate { items, .. }] => {
                    let (aggregates, more) = aggregates(items, &columns, view, now, scope)?;
                    columns.extend(more);
                    aggregates
                }
                [other, ..] => {
                    return Err(error(
                        other.span(),
                        "within 'groupby', only a single 'aggregate' is supported".to_owned(),
                    ));
                }
            };
            plan.stages.push(Stage::Group { keys, aggregates });
            plan.columns = Some(columns);
        }
        other => {
            return Err(error(
                other.span(),
                "this transformation is not supported on aggregatedPolicyCompliances; the \
                 supported ones are filter, groupby, aggregate, orderby, top, skip, topcount, \
                 bottomcount and identity"
                    .to_owned(),
            ));
        }
    }
    Ok(())
}

/// Binds a grouping property: an entity property, or a column of an earlier grouping.
fn grouping(
    name: &str,
    span: Span,
    view: View,
    scope: Option<&[Column]>,
    plan: &Plan,
) -> Result<(Typed, ResultColumn), BindError> {
    let typed = super::value_in(&Expr::Name(name.to_owned(), span), view, 0, scope)?;
    let property = match (&typed.node, &plan.columns) {
        (super::Node::Property(property), _) => Some(*property),
        (super::Node::Column(i), Some(columns)) => columns[*i].property,
        _ => None,
    };
    let function = match (&typed.node, &plan.columns) {
        (super::Node::Column(i), Some(columns)) => columns[*i].function,
        _ => None,
    };
    let column = Column { name: name.to_owned(), ty: typed.ty };
    Ok((typed, ResultColumn { column, property, function }))
}

/// Binds the items of `aggregate(...)`, whose aliases must differ from the names of `existing`
/// and from each other.
fn aggregates(
    items: &[AggregateItem],
    existing: &[ResultColumn],
    view: View,
    now: i64,
    scope: Option<&[Column]>,
) -> Result<(Vec<Aggregate>, Vec<ResultColumn>), BindError> {
    let mut aggregates = Vec::new();
    let mut columns: Vec<ResultColumn> = Vec::new();
    for item in items {
        if !item.from.is_empty() {
            return Err(error(item.span, "'from' in an aggregate is not supported".to_owned()));
        }
        let Some(alias) = &item.alias else {
            return Err(error(item.span, "custom aggregates are not supported".to_owned()));
        };
        let clash = existing.iter().chain(&columns).any(|c| c.column.name == alias.name);
        if clash {
            return Err(error(
                alias.span,
                format!("the name '{}' is used twice in the result", alias.name),
            ));
        }

        let (aggregate, ty) = match &item.kind {
            AggregateKind::Count { path: None } => {
                (Aggregate { function: AggregateFunction::Count, operand: None }, Type::INT64)
            }
            AggregateKind::Method { expr, method } => {
                let operand = super::value_in(expr, view, now, scope)?;
                method_of(method, operand, expr.span())?
            }
            _ => {
                return Err(error(
                    item.span,
                    "only '$count' and 'value with method' aggregates are supported".to_owned(),
                ));
            }
        };
        let function = aggregate.function;
        aggregates.push(aggregate);
        columns.push(ResultColumn {
            column: Column { name: alias.name.clone(), ty },
            property: None,
            function: Some(function),
        });
    }
    Ok((aggregates, columns))
}

/// Checks that `method` applies to `operand` and returns the aggregate with its result type.
fn method_of(
    method: &AggregationMethod,
    operand: Typed,
    span: Span,
) -> Result<(Aggregate, Type), BindError> {
    let function = match method {
        AggregationMethod::Sum => AggregateFunction::Sum,
        AggregationMethod::Min => AggregateFunction::Min,
        AggregationMethod::Max => AggregateFunction::Max,
        AggregationMethod::Average => AggregateFunction::Average,
        AggregationMethod::CountDistinct => AggregateFunction::CountDistinct,
        AggregationMethod::Custom(name) => {
            return Err(error(span, format!("the aggregation method '{name}' is not supported")));
        }
    };
    let ty = match (function, operand.ty) {
        (AggregateFunction::CountDistinct, _) => Type::INT64,
        (AggregateFunction::Sum | AggregateFunction::Average, Type::Number { scale: 0 }) => {
            if function == AggregateFunction::Sum {
                Type::INT64
            } else {
                Type::Double
            }
        }
        (AggregateFunction::Min | AggregateFunction::Max, Type::Number { scale: 0 }) => Type::INT64,
        (
            AggregateFunction::Min | AggregateFunction::Max,
            ty @ (Type::String | Type::DateTimeOffset | Type::Date | Type::TimeOfDay),
        ) => ty,
        (_, ty) => {
            return Err(error(
                span,
                format!("this aggregation method does not apply to a value of type {ty}"),
            ));
        }
    };
    Ok((Aggregate { function, operand: Some(operand) }, ty))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bind_text(text: &str) -> Result<Plan, BindError> {
        plan(&crate::apply::parse(text).unwrap(), View::Graph, 0)
    }

    #[test]
    fn stage_count_is_bounded() {
        let at_limit = vec!["top(1)"; MAX_STAGES].join("/");
        assert_eq!(bind_text(&at_limit).unwrap().stages.len(), MAX_STAGES);

        let error = bind_text(&format!("{at_limit}/skip(1)")).unwrap_err();
        assert_eq!(error.position, at_limit.len() + 2, "{error:?}");
        assert!(error.message.contains(&format!("at most {MAX_STAGES}")), "{error:?}");

        // identity adds no stage, so it does not count.
        let with_identity = format!("identity/{at_limit}/identity");
        assert_eq!(bind_text(&with_identity).unwrap().stages.len(), MAX_STAGES);
    }
}
