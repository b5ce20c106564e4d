//! Microbenchmark of turning a request's `$filter` and `$orderby` into SQL: parsing and
//! binding the query options, then compiling the page's `SELECT` for SQLite, as a listing
//! request does before it reads a row.
//!
//! Run with `cargo bench -p beacon-store --bench compile`. Without `--bench` (as
//! `cargo test --benches` runs it), criterion runs each routine once as a check, untimed.

use std::hint::black_box;

use beacon_odata::model::View;
use beacon_odata::query::{self, Target};
use beacon_store::sql::{Sqlite, select_statements};
use beacon_store::{ListQuery, OrderKey};
use criterion::{Criterion, criterion_group, criterion_main};

/// The partner every statement is scoped to.
const PARTNER: &str = "8d4c7a2e-5b1f-4e0a-9c3d-6f2b1a0e7d95";

/// The query strings compiled: the tenant equality of the `list` load profile, and a filter
/// that combines a comparison on each type with a function call, sorted by a date.
const QUERIES: [(&str, &str); 2] = [
    ("tenant_eq", "$filter=tenantId%20eq%20'4a3bc0d2-51e2-4c5f-9c61-0d6a4e1f0b7a'&$top=50"),
    (
        "mixed",
        "$filter=compliancePolicyPlatform%20eq%20'windows10AndLater'%20and%20\
         (numberOfNonCompliantDevices%20gt%205%20or%20numberOfErrorDevices%20ge%201)%20and%20\
         lastRefreshedDateTime%20ge%202024-06-01T00:00:00Z%20and%20\
         startswith(tenantDisplayName,'Contoso')&$orderby=lastRefreshedDateTime%20desc",
    ),
];

/// Parses, binds and compiles `raw` into the statements of a 100-row page and their
/// parameters.
fn compile(raw: &str) -> (Vec<String>, usize) {
    let options = query::parse(Some(raw), Target::Collection).expect("the query parses");
    let bound = options.bind(View::Graph, 0).expect("the query binds");
    let order =
        bound.order.into_iter().map(|(expr, descending)| OrderKey { expr, descending }).collect();
    let list = ListQuery { filter: bound.filter, order, limit: 101, ..ListQuery::default() };
    let (statements, params) = select_statements(&Sqlite, PARTNER, &list);
    (statements, params.len())
}

fn filter_to_sql(c: &mut Criterion) {
    let mut group = c.benchmark_group("filter_to_sql");
    for (name, raw) in QUERIES {
        let (statements, _) = compile(raw);
        assert!(statements[0].starts_with("SELECT "), "{statements:?}");
        group.bench_function(name, |b| b.iter(|| compile(black_box(raw))));
    }
    group.finish();
}

criterion_group!(compile_benches, filter_to_sql);
criterion_main!(compile_benches);
