use serde_json::{Value, json};

use super::*;

/// Returns the CSDL JSON declaration of the type with the qualified name `qualified`.
fn json_type(document: &Value, qualified: &str) -> Value {
    let (namespace, name) = qualified.rsplit_once('.').unwrap();
    document[namespace][name].clone()
}

/// Returns the XML of the entity type with the qualified name `qualified`: the text from its
/// start tag to its end tag, inside the schema of its namespace.
fn xml_type(document: &str, qualified: &str) -> String {
    let (namespace, name) = qualified.rsplit_once('.').unwrap();
    let schema_start = document
        .find(&format!("Namespace=\"{namespace}\">"))
        .unwrap_or_else(|| panic!("no schema {namespace}"));
    let schema = &document[schema_start..];
    let schema = &schema[..schema.find("</Schema>").unwrap()];
    let type_start = schema
        .find(&format!("<EntityType Name=\"{name}\">"))
        .unwrap_or_else(|| panic!("no entity type {name} in schema {namespace}"));
    let entity_type = &schema[type_start..];
    entity_type[..entity_type.find("</EntityType>").unwrap()].to_owned()
}

#[test]
fn json_declares_property_types() {
    let document = json();
    for view in View::ALL {
        let entity_type = json_type(&document, view.type_name());
        for property in Property::ALL {
            let name = property.name(view);
            let declared = &entity_type[name];
            assert!(declared.is_object(), "{view}: {name} is not declared");

            // CSDL JSON omits `$Type` for Edm.String.
            let edm_type = declared["$Type"].as_str().unwrap_or("Edm.String");
            assert_eq!(edm_type, property.edm_type().name(), "{view}: {name}");

            let nullable = declared["$Nullable"].as_bool().unwrap_or(false);
            assert_eq!(nullable, property != Property::Id, "{view}: {name}");
        }

        let declared_count = entity_type
            .as_object()
            .unwrap()
            .keys()
            .filter(|key| !key.starts_with('$') && !key.starts_with('@'))
            .count();
        assert_eq!(declared_count, Property::ALL.len(), "{view}: extra members");
    }
}

#[test]
fn xml_declares_property_types() {
    let document = xml();
    for view in View::ALL {
        let entity_type = xml_type(&document, view.type_name());
        for property in Property::ALL {
            let name = property.name(view);
            let mut expected =
                format!("<Property Name=\"{name}\" Type=\"{}\"", property.edm_type().name());
            if property == Property::Id {
                expected.push_str(" Nullable=\"false\"");
            }
            let position = entity_type
                .find(&expected)
                .unwrap_or_else(|| panic!("{view}: {expected} not found in\n{entity_type}"));
            let declaration = &entity_type[position..];
            let declaration = &declaration[..declaration.find("/>").unwrap()];
            assert_eq!(
                declaration.contains("Nullable"),
                property == Property::Id,
                "{view}: {declaration}"
            );
        }
        assert_eq!(entity_type.matches("<Property ").count(), Property::ALL.len(), "{view}");
    }
}

#[test]
fn date_times_have_precision_seven() {
    let document = json();
    let entity_type = json_type(&document, View::Graph.type_name());
    assert_eq!(entity_type["lastRefreshedDateTime"]["$Precision"], json!(7));
    assert_eq!(entity_type["policyModifiedDateTime"]["$Precision"], json!(7));
    assert!(entity_type["numberOfErrorDevices"].get("$Precision").is_none());

    let entity_type = xml_type(&xml(), View::Seed.type_name());
    assert!(entity_type.contains(
        "<Property Name=\"lastRefreshedDateTime\" Type=\"Edm.DateTimeOffset\" Precision=\"7\" />"
    ));
}

#[test]
fn key_is_id_in_both_views() {
    let json_document = json();
    let xml_document = xml();
    for view in View::ALL {
        let entity_type = json_type(&json_document, view.type_name());
        assert_eq!(entity_type["$Key"], json!(["id"]), "{view}");

        let entity_type = xml_type(&xml_document, view.type_name());
        assert!(
            entity_type.contains("<Key>\n") && entity_type.contains("<PropertyRef Name=\"id\" />"),
            "{view}: {entity_type}"
        );
        assert_eq!(entity_type.matches("<PropertyRef ").count(), 1, "{view}");
    }
}

#[test]
fn entity_types_match_view_type_names() {
    let document = json();
    for view in View::ALL {
        let entity_type = json_type(&document, view.type_name());
        assert_eq!(entity_type["$Kind"], "EntityType", "{view}: {}", view.type_name());
    }

    let xml_document = xml();
    for view in View::ALL {
        let (namespace, name) = view.type_name().rsplit_once('.').unwrap();
        let schema_start = xml_document.find(&format!("Namespace=\"{namespace}\">")).unwrap();
        let schema = &xml_document[schema_start..];
        let schema = &schema[..schema.find("</Schema>").unwrap()];
        assert!(schema.contains(&format!("<EntityType Name=\"{name}\">")), "{view}");
    }
}

#[test]
fn one_container_holds_both_collections() {
    let document = json();
    assert_eq!(document["$EntityContainer"], "microsoft.graph.GraphService");
    assert_eq!(xml().matches("<EntityContainer ").count(), 1);

    let container = &document[GRAPH_NAMESPACE][CONTAINER_NAME];
    assert_eq!(container["$Kind"], "EntityContainer");

    let seed_set = &container[View::Seed.collection_path()];
    assert_eq!(seed_set["$Collection"], json!(true));
    assert_eq!(seed_set["$Type"], View::Seed.type_name());

    // Walk the Graph view's path: singleton, then containment navigation properties.
    let mut segments = View::Graph.collection_path().split('/');
    let singleton = segments.next().unwrap();
    let mut entity_type = container[singleton]["$Type"].as_str().unwrap().to_owned();
    let mut last = Value::Null;
    for segment in segments {
        last = json_type(&document, &entity_type)[segment].clone();
        assert_eq!(last["$Kind"], "NavigationProperty", "{segment}");
        assert_eq!(last["$ContainsTarget"], json!(true), "{segment}");
        entity_type = last["$Type"].as_str().unwrap().to_owned();
    }
    assert_eq!(entity_type, View::Graph.type_name());
    assert_eq!(last["$Collection"], json!(true));
}

#[test]
fn graph_path_types_have_id_key() {
    let document = json();
    for qualified in [TENANT_RELATIONSHIP_TYPE, MANAGED_TENANT_TYPE] {
        let entity_type = json_type(&document, qualified);
        assert_eq!(entity_type["$Key"], json!(["id"]), "{qualified}");
        assert_eq!(entity_type["id"], json!({}), "{qualified}: a non-nullable Edm.String");
    }
}

#[test]
fn collections_share_capability_terms() {
    let document = json();
    let seed = &document[GRAPH_NAMESPACE][CONTAINER_NAME][View::Seed.collection_path()];
    let [_, _, compliances] = graph_path_segments();
    let graph = &json_type(&document, MANAGED_TENANT_TYPE)[compliances];

    let annotations = |declaration: &Value| -> Vec<String> {
        let mut terms: Vec<String> = declaration
            .as_object()
            .unwrap()
            .keys()
            .filter(|key| key.starts_with('@'))
            .cloned()
            .collect();
        terms.sort();
        terms
    };
    assert_eq!(annotations(seed), annotations(graph));
    assert_eq!(annotations(seed).len(), 13);

    for term in annotations(seed) {
        if term != "@Capabilities.InsertRestrictions" {
            assert_eq!(seed[&term], graph[&term], "{term}");
        }
    }
}

#[test]
fn seed_insert_requires_all_fields() {
    let document = json();
    let seed = &document[GRAPH_NAMESPACE][CONTAINER_NAME][View::Seed.collection_path()];
    let insert = &seed["@Capabilities.InsertRestrictions"];
    assert_eq!(insert["Insertable"], json!(true));
    let expected: Vec<&str> = Property::FIELDS.iter().map(|p| p.name(View::Seed)).collect();
    assert_eq!(insert["RequiredProperties"], json!(expected));

    let [_, _, compliances] = graph_path_segments();
    let graph = &json_type(&document, MANAGED_TENANT_TYPE)[compliances];
    assert_eq!(graph["@Capabilities.InsertRestrictions"], json!({ "Insertable": true }));
}

#[test]
fn update_accepts_patch_and_put() {
    let document = json();
    let seed = &document[GRAPH_NAMESPACE][CONTAINER_NAME][View::Seed.collection_path()];
    assert_eq!(
        seed["@Capabilities.UpdateRestrictions"],
        json!({ "Updatable": true, "UpdateMethod": "PATCH,PUT" })
    );
    assert!(
        xml().contains("EnumMember=\"Capabilities.HttpMethod/PATCH Capabilities.HttpMethod/PUT\"")
    );
}

#[test]
fn apply_lists_bound_transformations() {
    let document = json();
    let seed = &document[GRAPH_NAMESPACE][CONTAINER_NAME][View::Seed.collection_path()];
    let apply = &seed["@Aggregation.ApplySupported"];
    assert_eq!(apply["Transformations"], json!(APPLY_TRANSFORMATIONS));
    assert_eq!(apply["Rollup"], "None");
}

#[test]
fn xml_references_used_vocabularies() {
    let document = xml();
    for (namespace, alias) in [
        ("Org.OData.Core.V1", "Core"),
        ("Org.OData.Capabilities.V1", "Capabilities"),
        ("Org.OData.Aggregation.V1", "Aggregation"),
    ] {
        let reference = format!(
            "<edmx:Reference Uri=\"https://oasis-tcs.github.io/odata-vocabularies/vocabularies/\
             {namespace}.xml\">\n    <edmx:Include Namespace=\"{namespace}\" Alias=\"{alias}\" />"
        );
        assert!(document.contains(&reference), "{reference}");
        assert!(document.contains(&format!("Term=\"{alias}.")), "{alias} is never used");
    }
    assert!(document.starts_with(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<edmx:Edmx Version=\"4.0\" \
         xmlns:edmx=\"http://docs.oasis-open.org/odata/ns/edmx\">\n"
    ));
}

#[test]
fn escape_replaces_markup_characters() {
    assert_eq!(xml::escape("a<b>&\"c'"), "a&lt;b&gt;&amp;&quot;c&apos;");
    assert_eq!(xml::escape("plain text"), "plain text");
}

#[test]
fn writer_escapes_annotation_text() {
    let document = Document {
        version: "4.0",
        references: Vec::new(),
        schemas: vec![Schema {
            namespace: "test",
            entity_types: vec![EntityType {
                name: "thing",
                key: "id",
                properties: Vec::new(),
                navigation_properties: Vec::new(),
                annotations: vec![
                    annotation("Core.Description", Expression::String("a < b & \"c\"")),
                    annotation(
                        "Core.Example",
                        Expression::Collection(vec![Expression::String("<x/>")]),
                    ),
                ],
            }],
            container: None,
        }],
    };
    let text = xml::write(&document);
    assert!(text.contains("String=\"a &lt; b &amp; &quot;c&quot;\""), "{text}");
    assert!(text.contains("<String>&lt;x/&gt;</String>"), "{text}");
    assert_eq!(json::write(&document)["test"]["thing"]["@Core.Description"], "a < b & \"c\"");
}
