//! Microbenchmarks of the OData work that every request of its kind repeats: parsing and
//! binding a `$filter`, writing a 100-row page as JSON, and validating a create body.
//!
//! Run with `cargo bench -p beacon-odata --bench hot_paths`. Without `--bench` (as
//! `cargo test --benches` runs it), criterion runs each routine once as a check, untimed.

use std::hint::black_box;

use beacon_odata::body::{self, ReadOptions};
use beacon_odata::entity::{CollectionDocument, Entity, StoredEntity, Value, WriteOptions};
use beacon_odata::model::{Property, View};
use beacon_odata::query::{self, Target};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// A create body in the Graph view's names with every property set, as a client sends it.
const CREATE_BODY: &str = r##"{
  "@odata.type": "#microsoft.graph.managedTenants.aggregatedPolicyCompliance",
  "tenantId": "4a3bc0d2-51e2-4c5f-9c61-0d6a4e1f0b7a",
  "tenantDisplayName": "Contoso Ltd",
  "compliancePolicyId": "0c4bd1d4-1d3f-4b86-8b93-3f0a5d0e5c21",
  "compliancePolicyName": "Windows 10 baseline",
  "compliancePolicyType": "deviceCompliancePolicy",
  "compliancePolicyPlatform": "windows10AndLater",
  "numberOfCompliantDevices": 120,
  "numberOfNonCompliantDevices": 7,
  "numberOfErrorDevices": 1,
  "policyModifiedDateTime": "2024-02-12T09:15:00Z",
  "lastRefreshedDateTime": "2024-03-01T07:30:00.1234567Z"
}"##;

/// The query strings whose `$filter` is parsed and bound: the tenant equality of the `list`
/// load profile, and a filter that combines a comparison on each type with a function call.
const FILTERS: [(&str, &str); 2] = [
    ("tenant_eq", "$filter=tenantId%20eq%20'4a3bc0d2-51e2-4c5f-9c61-0d6a4e1f0b7a'&$top=50"),
    (
        "mixed",
        "$filter=compliancePolicyPlatform%20eq%20'windows10AndLater'%20and%20\
         (numberOfNonCompliantDevices%20gt%205%20or%20numberOfErrorDevices%20ge%201)%20and%20\
         lastRefreshedDateTime%20ge%202024-06-01T00:00:00Z%20and%20\
         startswith(tenantDisplayName,'Contoso')&$orderby=lastRefreshedDateTime%20desc",
    ),
];

fn filter_parse_and_bind(c: &mut Criterion) {
    let mut group = c.benchmark_group("filter_parse_and_bind");
    for (name, raw) in FILTERS {
        // Fail here, not inside the timed loop, if a query is invalid.
        let options = query::parse(Some(raw), Target::Collection).expect("the query parses");
        options.bind(View::Graph, 0).expect("the query binds");
        group.bench_function(name, |b| {
            b.iter(|| {
                let options = query::parse(Some(black_box(raw)), Target::Collection).unwrap();
                options.bind(View::Graph, black_box(0)).unwrap()
            })
        });
    }
    group.finish();
}

fn serialize_page(c: &mut Criterion) {
    let entities = page_of(100);
    let root = "http://127.0.0.1:8080/beta";
    let context = format!("{root}/$metadata#{}", View::Graph.collection_path());
    let next_link =
        format!("{root}/{}?$skiptoken={}", View::Graph.collection_path(), "x".repeat(120));
    let document = CollectionDocument {
        context: &context,
        service_root: root,
        view: View::Graph,
        entities: &entities,
        count: None,
        next_link: Some(&next_link),
        options: WriteOptions::default(),
    };
    let size = serde_json::to_vec(&document).expect("the page serializes").len();

    let mut group = c.benchmark_group("serialize_page");
    group.throughput(Throughput::Bytes(size as u64));
    group.bench_function("100_rows", |b| {
        b.iter(|| serde_json::to_vec(black_box(&document)).unwrap())
    });
    group.finish();
}

fn validate_create_body(c: &mut Criterion) {
    let text = CREATE_BODY.as_bytes();
    body::decode(View::Graph, text, ReadOptions::default())
        .and_then(|input| input.into_create(View::Graph))
        .expect("the body is valid");
    c.bench_function("validate_create_body", |b| {
        b.iter(|| {
            let input = body::decode(View::Graph, black_box(text), ReadOptions::default()).unwrap();
            input.into_create(View::Graph).unwrap()
        })
    });
}

/// Returns `rows` stored entities with distinct ids and counters, built from the create body.
fn page_of(rows: usize) -> Vec<StoredEntity> {
    let input = body::decode(View::Graph, CREATE_BODY.as_bytes(), ReadOptions::default())
        .expect("the body is valid");
    let (_, fields) = input.into_create(View::Graph).expect("the body is complete");
    let counter = Property::NumberOfNonCompliantDevices.field_index().expect("a field");
    (0..rows)
        .map(|row| {
            let mut fields = fields.clone();
            fields[counter] = Some(Value::Int64(row as i64 * 3));
            let id = format!("7c1e4a2b-0d3f-4e5a-9b6c-{row:012x}");
            StoredEntity { entity: Entity { id, fields }, version: 1 + row as i64 }
        })
        .collect()
}

criterion_group!(hot_paths, filter_parse_and_bind, serialize_page, validate_create_body);
criterion_main!(hot_paths);
