//! The unbound syntax tree of a `$apply` value.

use crate::filter::{Expr, Span};
use crate::orderby::OrderItem;

/// A sequence of transformations separated by `/`, applied from left to right.
pub type Sequence = Vec<Transformation>;

/// A path of properties or type casts as written, such as `customer/country` or
/// `Model.VipCustomer/name`. The binder resolves it against the model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PropertyPath {
    /// The text of the path.
    pub path: String,
    /// The location of the path in the text.
    pub span: Span,
}

/// A simple identifier, such as the alias after `as` that names a computed or aggregated value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identifier {
    /// The identifier.
    pub name: String,
    /// The location of the identifier in the text.
    pub span: Span,
}

/// One transformation of `$apply`.
#[derive(Clone, Debug, PartialEq)]
pub enum Transformation {
    /// `aggregate(item, ...)`.
    Aggregate {
        /// The aggregated values, at least one.
        items: Vec<AggregateItem>,
        /// The whole transformation.
        span: Span,
    },
    /// `compute(expr as Alias, ...)`.
    Compute {
        /// The computed values, at least one.
        items: Vec<ComputeItem>,
        /// The whole transformation.
        span: Span,
    },
    /// `concat(sequence, sequence, ...)`: the union of the results of each sequence.
    Concat {
        /// The sequences, at least two.
        sequences: Vec<Sequence>,
        /// The whole transformation.
        span: Span,
    },
    /// `groupby((element, ...), sequence)`.
    GroupBy {
        /// The grouping elements, at least one.
        elements: Vec<GroupingElement>,
        /// The sequence applied to each group, or empty when none is given.
        then: Sequence,
        /// The whole transformation.
        span: Span,
    },
    /// `filter(expr)`.
    Filter {
        /// The condition.
        condition: Expr,
        /// The whole transformation.
        span: Span,
    },
    /// `identity`.
    Identity(Span),
    /// `orderby(item, ...)`.
    OrderBy {
        /// The sort keys, at least one.
        items: Vec<OrderItem>,
        /// The whole transformation.
        span: Span,
    },
    /// `search(...)`.
    Search {
        /// The search expression as written between the parentheses, without surrounding
        /// whitespace.
        text: String,
        /// The whole transformation.
        span: Span,
    },
    /// `top(n)`.
    Top {
        /// The number of instances kept.
        count: u64,
        /// The whole transformation.
        span: Span,
    },
    /// `skip(n)`.
    Skip {
        /// The number of instances skipped.
        count: u64,
        /// The whole transformation.
        span: Span,
    },
    /// `topcount`, `topsum`, `toppercent` and their `bottom` forms: `name(limit, value)`.
    Limit {
        /// The transformation: top or bottom, by count, sum or percent.
        kind: LimitKind,
        /// The count, sum or percentage that bounds the result.
        limit: Expr,
        /// The value instances are ranked by.
        value: Expr,
        /// The whole transformation.
        span: Span,
    },
    /// `expand(path, filter(expr), expand(...), ...)`, from Data Aggregation 4.0 CS01.
    Expand(ExpandSpec),
    /// `join(path as Alias, sequence)` or, with `outer`, `outerjoin(...)`.
    Join {
        /// Whether this is `outerjoin`, which keeps instances with no related instance.
        outer: bool,
        /// The collection-valued property joined with.
        path: PropertyPath,
        /// The name of the property that contains the related instance.
        alias: Identifier,
        /// The sequence applied to the related instances, or empty when none is given.
        then: Sequence,
        /// The whole transformation.
        span: Span,
    },
    /// `nest(sequence as Alias, ...)` or, with a path, `addnested(path, sequence as Alias, ...)`.
    Nest {
        /// The property the nested sequences start from (`addnested`), or `None` for `nest`.
        path: Option<PropertyPath>,
        /// The nested sequences, each with the name of its result, at least one.
        items: Vec<NestItem>,
        /// The whole transformation.
        span: Span,
    },
    /// `ancestors(...)` or `descendants(...)` of the nodes a sequence selects in a hierarchy.
    Hierarchy {
        /// The direction: ancestors or descendants.
        kind: HierarchyKind,
        /// The hierarchy and the property that contains node identifiers.
        hierarchy: HierarchyReference,
        /// The sequence that selects the start nodes.
        start: Sequence,
        /// The maximum distance from the start nodes, if given.
        max_distance: Option<u64>,
        /// Whether `keep start` was given, keeping the start nodes in the result.
        keep_start: bool,
        /// The whole transformation.
        span: Span,
    },
    /// `traverse(..., preorder | postorder, sequence, orderby-items)`.
    Traverse {
        /// The hierarchy and the property that contains node identifiers.
        hierarchy: HierarchyReference,
        /// Whether parents come before (`preorder`) or after (`postorder`) their children.
        postorder: bool,
        /// A sequence applied first, if given.
        then: Option<Sequence>,
        /// The sort keys of siblings, or empty when not given.
        order_by: Vec<OrderItem>,
        /// The whole transformation.
        span: Span,
    },
    /// A call of a model function, such as `Model.TopCountAndBalance(Count=1)`.
    Function {
        /// The qualified name as written.
        name: String,
        /// The parameters in order, as name and value.
        parameters: Vec<(String, Expr)>,
        /// The whole transformation.
        span: Span,
    },
}

impl Transformation {
    /// Returns the part of the text this transformation covers.
    pub fn span(&self) -> Span {
        match self {
            Transformation::Identity(span) => *span,
            Transformation::Expand(spec) => spec.span,
            Transformation::Aggregate { span, .. }
            | Transformation::Compute { span, .. }
            | Transformation::Concat { span, .. }
            | Transformation::GroupBy { span, .. }
            | Transformation::Filter { span, .. }
            | Transformation::OrderBy { span, .. }
            | Transformation::Search { span, .. }
            | Transformation::Top { span, .. }
            | Transformation::Skip { span, .. }
            | Transformation::Limit { span, .. }
            | Transformation::Join { span, .. }
            | Transformation::Nest { span, .. }
            | Transformation::Hierarchy { span, .. }
            | Transformation::Traverse { span, .. }
            | Transformation::Function { span, .. } => *span,
        }
    }
}

/// The transformations that keep the instances ranked first or last by a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LimitKind {
    /// `topcount`: the first n instances.
    TopCount,
    /// `topsum`: the first instances whose values add up to at least the limit.
    TopSum,
    /// `toppercent`: the first instances whose values add up to at least the limit percent of
    /// the total.
    TopPercent,
    /// `bottomcount`.
    BottomCount,
    /// `bottomsum`.
    BottomSum,
    /// `bottompercent`.
    BottomPercent,
}

impl LimitKind {
    /// Finds the transformation spelled `name`.
    pub fn from_name(name: &str) -> Option<LimitKind> {
        Some(match name {
            "topcount" => LimitKind::TopCount,
            "topsum" => LimitKind::TopSum,
            "toppercent" => LimitKind::TopPercent,
            "bottomcount" => LimitKind::BottomCount,
            "bottomsum" => LimitKind::BottomSum,
            "bottompercent" => LimitKind::BottomPercent,
            _ => return None,
        })
    }
}

/// One value of `aggregate(...)`.
#[derive(Clone, Debug, PartialEq)]
pub struct AggregateItem {
    /// The aggregated value and the aggregation method.
    pub kind: AggregateKind,
    /// The `from` clauses, which aggregate in steps: first within the groups of each clause's
    /// properties, in the order written.
    pub from: Vec<AggregateFrom>,
    /// The name of the result. Only a custom aggregate may lack one.
    pub alias: Option<Identifier>,
    /// The whole item.
    pub span: Span,
}

/// The aggregated value of an aggregate item.
#[derive(Clone, Debug, PartialEq)]
pub enum AggregateKind {
    /// `expr with method`.
    Method {
        /// The aggregated value.
        expr: Expr,
        /// The aggregation method.
        method: AggregationMethod,
    },
    /// `$count`, or `path/$count` to count related instances.
    Count {
        /// The path before `/$count`, if any.
        path: Option<PropertyPath>,
    },
    /// A custom aggregate that the model defines, such as `Forecast` or `sales/Forecast`.
    Custom {
        /// The path to the custom aggregate, ending in its name.
        path: PropertyPath,
    },
}

/// An aggregation method.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AggregationMethod {
    /// `sum`.
    Sum,
    /// `min`.
    Min,
    /// `max`.
    Max,
    /// `average`.
    Average,
    /// `countdistinct`.
    CountDistinct,
    /// A qualified custom method such as `Custom.concat`, as written.
    Custom(String),
}

/// `from properties [with method]`: aggregates within the groups of `properties` first.
#[derive(Clone, Debug, PartialEq)]
pub struct AggregateFrom {
    /// The grouping properties, at least one.
    pub properties: Vec<PropertyPath>,
    /// The method that aggregates the results of this step, if given.
    pub method: Option<AggregationMethod>,
}

/// `expr as Alias` in `compute(...)`.
#[derive(Clone, Debug, PartialEq)]
pub struct ComputeItem {
    /// The computed value.
    pub expr: Expr,
    /// The name of the result.
    pub alias: Identifier,
}

/// One element of the grouping list of `groupby`.
#[derive(Clone, Debug, PartialEq)]
pub enum GroupingElement {
    /// A grouping property.
    Property(PropertyPath),
    /// `rollup(...)`: grouping by each level of a leveled hierarchy in turn.
    Rollup {
        /// Whether the Data Aggregation 4.0 CS01 form `rollup($all, ...)` was used, which adds
        /// a total over all instances.
        all: bool,
        /// The properties from the top level down. A single one may also name a hierarchy
        /// that the model annotates.
        levels: Vec<PropertyPath>,
        /// The whole element.
        span: Span,
    },
    /// `rolluprecursive(...)`: grouping by each node of a recursive hierarchy.
    RollupRecursive {
        /// The hierarchy and the property that contains node identifiers.
        hierarchy: HierarchyReference,
        /// The sequence that selects the nodes, if given.
        then: Option<Sequence>,
        /// The whole element.
        span: Span,
    },
}

/// `expand(path, filter(expr), expand(...), ...)`.
#[derive(Clone, Debug, PartialEq)]
pub struct ExpandSpec {
    /// The navigation property expanded.
    pub path: PropertyPath,
    /// The condition on the related instances, if given.
    pub filter: Option<Expr>,
    /// The nested expansions.
    pub expand: Vec<ExpandSpec>,
    /// The whole transformation.
    pub span: Span,
}

/// `sequence as Alias` in `nest(...)` and `addnested(...)`.
#[derive(Clone, Debug, PartialEq)]
pub struct NestItem {
    /// The nested sequence.
    pub sequence: Sequence,
    /// The name of the property that contains its result.
    pub alias: Identifier,
}

/// The transformations over a recursive hierarchy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HierarchyKind {
    /// `ancestors`.
    Ancestors,
    /// `descendants`.
    Descendants,
}

/// `$root/path, Qualifier, node-property`: a recursive hierarchy and how instances refer to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HierarchyReference {
    /// The collection of hierarchy nodes, starting with `$root/`.
    pub nodes: PropertyPath,
    /// The qualifier of the hierarchy's annotation.
    pub qualifier: Identifier,
    /// The property of the input instances that contains the node identifier.
    pub node_property: PropertyPath,
}
