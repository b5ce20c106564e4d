use serde_json::Value;

use super::*;
use crate::csdl;
use crate::model::Property;
use crate::path::{self, Resource};

const LIMITS: HttpLimits = HttpLimits {
    default_page_size: 100,
    max_page_size: 1000,
    max_batch_requests: 20,
    max_body_bytes: 1024 * 1024,
};

/// The HTTP methods that OpenAPI 3.0 path items may have.
const METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

/// Returns every operation of the document as `(path, method, operation)`.
fn operations(document: &Value) -> Vec<(String, &'static str, &Value)> {
    let mut found = Vec::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in METHODS {
            if let Some(operation) = item.get(method) {
                found.push((path.clone(), method, operation));
            }
        }
    }
    found
}

/// Returns the entity type that CSDL JSON declares for `view`.
fn csdl_entity_type(view: View) -> Value {
    let (namespace, name) = view.type_name().rsplit_once('.').unwrap();
    csdl::json()[namespace][name].clone()
}

/// Returns the EDM type that an OpenAPI schema of a property stands for.
fn edm_type_of(schema: &Value) -> &'static str {
    match (schema["type"].as_str(), schema["format"].as_str()) {
        (Some("string"), None) => "Edm.String",
        (Some("string"), Some("date-time")) => "Edm.DateTimeOffset",
        (Some("integer"), Some("int64")) => "Edm.Int64",
        other => panic!("no EDM type has the OpenAPI form {other:?}"),
    }
}

/// Resolves a local reference such as `#/components/schemas/x`.
fn resolve<'a>(document: &'a Value, reference: &str) -> Option<&'a Value> {
    let pointer = reference.strip_prefix('#')?;
    document.pointer(pointer)
}

/// Collects every `$ref` value below `value`.
fn references(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::Object(members) => {
            for (name, member) in members {
                match (name.as_str(), member) {
                    ("$ref", Value::String(reference)) => found.push(reference.clone()),
                    _ => references(member, found),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| references(item, found)),
        _ => {}
    }
}

#[test]
fn entity_schemas_state_csdl_properties() {
    let document = document(&LIMITS);
    for view in View::ALL {
        let entity_type = csdl_entity_type(view);
        let schema = &document["components"]["schemas"][view.type_name()];

        // The members of CSDL JSON that are properties, in declaration order, with EDM types.
        let declared: Vec<(&str, &str, bool)> = entity_type
            .as_object()
            .unwrap()
            .iter()
            .filter(|(name, _)| !name.starts_with('$') && !name.starts_with('@'))
            .map(|(name, property)| {
                let edm_type = property["$Type"].as_str().unwrap_or("Edm.String");
                let nullable = property["$Nullable"].as_bool().unwrap_or(false);
                (name.as_str(), edm_type, nullable)
            })
            .collect();
        let described: Vec<(&str, &str, bool)> = schema["properties"]
            .as_object()
            .unwrap()
            .iter()
            .filter(|(name, _)| !name.contains('@'))
            .map(|(name, property)| {
                let nullable = property["nullable"].as_bool().unwrap_or(false);
                (name.as_str(), edm_type_of(property), nullable)
            })
            .collect();
        assert_eq!(described, declared, "{view} view");
        assert_eq!(schema["required"], json!([entity_type["$Key"][0]]), "{view} view");
    }
}

#[test]
fn create_schemas_require_csdl_required_properties() {
    let document = document(&LIMITS);
    let container = &csdl::json()[crate::csdl::GRAPH_NAMESPACE][crate::csdl::CONTAINER_NAME];
    let seed_set = &container[View::Seed.collection_path()];
    let restrictions = &seed_set["@Capabilities.InsertRestrictions"]["RequiredProperties"];

    let create = &document["components"]["schemas"]
        [schemas::request(View::Seed, schemas::RequestBody::Create)];
    assert_eq!(&create["required"], restrictions);
    for body in [schemas::RequestBody::Create, schemas::RequestBody::Update] {
        let graph = &document["components"]["schemas"][schemas::request(View::Graph, body)];
        assert!(graph.get("required").is_none(), "{graph}");
        let update = &document["components"]["schemas"][schemas::request(View::Seed, body)];
        let id = Property::Id.name(View::Seed);
        for (name, property) in update["properties"].as_object().unwrap() {
            let nullable = property["nullable"].as_bool().unwrap_or(false);
            assert_eq!(nullable, name == id, "{name} in the seed view's {body:?} body");
        }
    }
}

#[test]
fn every_reference_resolves() {
    let document = document(&LIMITS);
    let mut found = Vec::new();
    references(&document, &mut found);
    assert!(found.len() > 100, "only {} references", found.len());
    for reference in found {
        assert!(resolve(&document, &reference).is_some(), "{reference} names no component");
    }
}

#[test]
fn every_path_is_a_served_resource() {
    let document = document(&LIMITS);
    for path in document["paths"].as_object().unwrap().keys() {
        let url = format!("/{SERVICE_VERSION}{}", path.replace("{id}", "some-id"));
        let resource = path::parse(&url).unwrap_or_else(|error| panic!("{url}: {error}"));
        let expected_entity = path.ends_with("{id}");
        assert_eq!(matches!(resource, Resource::Entity(..)), expected_entity, "{url}");
    }
}

#[test]
fn operations_have_unique_ids_and_success_responses() {
    let document = document(&LIMITS);
    let mut ids = Vec::new();
    for (path, method, operation) in operations(&document) {
        let id = operation["operationId"].as_str().unwrap();
        assert!(!ids.contains(&id), "{method} {path}: duplicate id {id}");
        ids.push(id);

        let statuses: Vec<&String> = operation["responses"].as_object().unwrap().keys().collect();
        assert!(statuses.iter().any(|status| status.starts_with('2')), "{method} {path}");
        assert!(statuses.iter().any(|status| *status == "500"), "{method} {path}");
    }
    // Per view: list, create, read, update, replace, delete, count, and a HEAD for each of the
    // three reads. Then the service document, the two containers, `$metadata` and this
    // document, each with a HEAD, and `$batch`.
    assert_eq!(ids.len(), 2 * (7 + 3) + 5 * 2 + 1);
}

#[test]
fn head_responses_have_no_bodies() {
    let document = document(&LIMITS);
    for (path, method, operation) in operations(&document) {
        if method != "head" {
            continue;
        }
        for (status, response) in operation["responses"].as_object().unwrap() {
            assert!(response.get("$ref").is_none(), "HEAD {path} {status} refers to a body");
            assert!(response.get("content").is_none(), "HEAD {path} {status} has a body");
        }
        let get = &document["paths"][&path]["get"];
        let get_statuses: Vec<&String> = get["responses"].as_object().unwrap().keys().collect();
        let head_statuses: Vec<&String> =
            operation["responses"].as_object().unwrap().keys().collect();
        assert_eq!(head_statuses, get_statuses, "HEAD {path}");
    }
}

#[test]
fn public_documents_need_no_token() {
    let document = document(&LIMITS);
    for (path, method, operation) in operations(&document) {
        let public = path == "/$metadata" || path == format!("/{DOCUMENT_PATH}");
        let responses = operation["responses"].as_object().unwrap();
        assert_eq!(operation.get("security") == Some(&json!([])), public, "{method} {path}");
        assert_eq!(!responses.contains_key("401"), public, "{method} {path}");
    }
}

#[test]
fn error_responses_state_their_codes() {
    let document = document(&LIMITS);
    let components = document["components"]["responses"].as_object().unwrap();
    for (status, code) in error_codes() {
        let response = components
            .values()
            .find(|response| {
                response["content"]["application/json"]["schema"]["properties"]["error"]
                    ["properties"]["code"]["enum"]
                    == json!([code])
            })
            .unwrap_or_else(|| panic!("no response component states the code {code}"));
        let described = operations(&document)
            .iter()
            .any(|(_, _, operation)| operation["responses"].get(status.to_string()).is_some());
        assert!(described, "no operation returns {status}");
        assert!(response["headers"]["request-id"].is_object(), "{code}");
    }
}

/// Returns the schema of the query parameter component `name`.
fn parameter_schema<'a>(document: &'a Value, name: &str) -> &'a Value {
    &document["components"]["parameters"][name]["schema"]
}

/// Returns whether `value` matches the `pattern` of `schema`, or `true` when it has none.
fn matches_pattern(schema: &Value, value: &str) -> bool {
    schema["pattern"].as_str().is_none_or(|pattern| {
        regex::Regex::new(pattern)
            .unwrap_or_else(|error| panic!("{pattern}: {error}"))
            .is_match(value)
    })
}

/// Returns whether Beacon accepts `query` on a single entity of `view`, where `$select` may
/// name only the view's properties.
fn entity_query_binds(view: View, query: &str) -> bool {
    crate::query::parse(Some(query), crate::query::Target::Entity)
        .and_then(|options| options.bind(view, 0))
        .is_ok()
}

#[test]
fn select_pattern_matches_what_binds() {
    let document = document(&LIMITS);
    let cases = [
        "id",
        "*",
        "id,*",
        "compliancePolicyName,numberOfErrorDevices",
        "%20id",
        "id%20",
        "%09id%09,%20*",
        "id,,id",
        "id,",
        ",id",
        "ID",
        "id%20id",
        "id/x",
        "microsoft.graph.managedTenants.*",
        "tenantId",
        "organizationId",
    ];
    for view in View::ALL {
        let schema = parameter_schema(&document, &format!("select-{view}"));
        for case in cases {
            let decoded = percent_encoding::percent_decode_str(case).decode_utf8().unwrap();
            let binds = entity_query_binds(view, &format!("$select={case}"));
            assert_eq!(matches_pattern(schema, &decoded), binds, "{view} view: $select={case}");
        }
    }
}

#[test]
fn orderby_schema_admits_expressions() {
    let document = document(&LIMITS);
    let expressions = [
        "numberOfErrorDevices desc",
        "tolower(compliancePolicyName) desc,id",
        "numberOfCompliantDevices add numberOfErrorDevices",
        "null",
        "1",
    ];
    for view in View::ALL {
        let schema = parameter_schema(&document, &format!("orderby-{view}"));
        for expression in expressions {
            let query = format!("$orderby={}", expression.replace(' ', "%20"));
            let options = crate::query::parse(Some(&query), crate::query::Target::Collection);
            assert!(options.and_then(|options| options.bind(view, 0)).is_ok(), "{query}");
            assert!(matches_pattern(schema, expression), "{view} view: {expression}");
        }
    }
}

#[test]
fn expression_options_state_length_limit() {
    let document = document(&LIMITS);
    let mut names = vec!["filter".to_owned(), "apply".to_owned()];
    for view in View::ALL {
        names.push(format!("select-{view}"));
        names.push(format!("orderby-{view}"));
    }
    for name in names {
        let schema = parameter_schema(&document, &name);
        assert_eq!(schema["maxLength"], json!(crate::filter::MAX_LENGTH), "{name}");
    }
}

#[test]
fn request_strings_exclude_nul() {
    let document = document(&LIMITS);
    for view in View::ALL {
        for body in [schemas::RequestBody::Create, schemas::RequestBody::Update] {
            let schema = &document["components"]["schemas"][schemas::request(view, body)];
            for property in Property::ALL {
                if property.edm_type() != crate::model::EdmType::String {
                    continue;
                }
                let name = property.name(view);
                let property_schema = &schema["properties"][name];
                assert!(matches_pattern(property_schema, "a b é"), "{view} {body:?} {name}");
                assert!(!matches_pattern(property_schema, "a\0b"), "{view} {body:?} {name}");

                let text = json!({ name: "a\0b" }).to_string();
                let decoded = crate::body::decode(view, text.as_bytes(), Default::default());
                assert!(decoded.is_err(), "{view} view accepts U+0000 in {name}");
            }
        }
    }
}
