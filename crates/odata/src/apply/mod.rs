//! The `$apply` option of OData Data Aggregation 4.0: a `/`-separated sequence of
//! transformations, parsed into an unbound syntax tree.
//!
//! [`parse`] reads every transformation of the Data Aggregation ABNF. These are `aggregate`,
//! `groupby` (with `rollup` and `rolluprecursive`), `filter`, `compute`, `orderby`, `top`,
//! `skip`, the `top`/`bottom` `count`/`sum`/`percent` family, `concat`, `identity`, `search`,
//! `join`, `outerjoin`, `nest`, `addnested`, `ancestors`, `descendants`, `traverse` and
//! qualified model functions. It also reads `expand` from the first committee specification
//! (CS01). The `$filter` parser reads the expressions inside them. The tree keeps names and
//! paths as text, so the binder decides what this resource can do. Transformation names and
//! aggregation methods are case-sensitive, as the ABNF writes them, but the keywords `with`,
//! `from` and `as` are accepted in any case.
//!
//! Whitespace is accepted wherever the ABNF allows optional whitespace, and also around `/`
//! and at both ends. Spans and error positions count characters over the whole `$apply`
//! value.

mod ast;
mod parser;

pub use ast::{
    AggregateFrom, AggregateItem, AggregateKind, AggregationMethod, ComputeItem, ExpandSpec,
    GroupingElement, HierarchyKind, HierarchyReference, Identifier, LimitKind, NestItem,
    PropertyPath, Sequence, Transformation,
};
pub use parser::parse;

#[cfg(test)]
mod tests;
