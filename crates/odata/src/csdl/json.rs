//! Writes a [`Document`] as CSDL JSON.
//!
//! CSDL JSON has other defaults than CSDL XML: a property without `$Type` is an `Edm.String`,
//! and a property or navigation property without `$Nullable` is not nullable. The writer omits
//! every member whose value is the default, as the OASIS XML-to-JSON converter does.

use serde_json::{Map, Value, json};

use super::{
    Annotation, Container, Document, EntityType, Expression, NavigationProperty, Schema,
    StructuralProperty, precision,
};
use crate::model::EdmType;

pub(super) fn write(document: &Document) -> Value {
    let mut root = Map::new();
    root.insert("$Version".to_owned(), json!(document.version));

    let container = document.schemas.iter().find_map(|schema| {
        schema.container.as_ref().map(|container| (schema.namespace, container))
    });
    if let Some((namespace, container)) = container {
        root.insert(
            "$EntityContainer".to_owned(),
            json!(format!("{namespace}.{}", container.name)),
        );
    }

    let mut references = Map::new();
    for reference in &document.references {
        references.insert(
            reference.uri("json"),
            json!({ "$Include": [{ "$Namespace": reference.namespace, "$Alias": reference.alias }] }),
        );
    }
    root.insert("$Reference".to_owned(), Value::Object(references));

    for schema in &document.schemas {
        root.insert(schema.namespace.to_owned(), schema_value(schema));
    }
    Value::Object(root)
}

fn schema_value(schema: &Schema) -> Value {
    let mut members = Map::new();
    for entity_type in &schema.entity_types {
        members.insert(entity_type.name.to_owned(), entity_type_value(entity_type));
    }
    if let Some(container) = &schema.container {
        members.insert(container.name.to_owned(), container_value(container));
    }
    Value::Object(members)
}

fn entity_type_value(entity_type: &EntityType) -> Value {
    let mut members = Map::new();
    members.insert("$Kind".to_owned(), json!("EntityType"));
    members.insert("$Key".to_owned(), json!([entity_type.key]));
    for property in &entity_type.properties {
        members.insert(property.name.to_owned(), property_value(property));
    }
    for navigation in &entity_type.navigation_properties {
        members.insert(navigation.name.to_owned(), navigation_value(navigation));
    }
    annotate(&mut members, &entity_type.annotations);
    Value::Object(members)
}

fn property_value(property: &StructuralProperty) -> Value {
    let mut members = Map::new();
    if property.edm_type != EdmType::String {
        members.insert("$Type".to_owned(), json!(property.edm_type.name()));
    }
    if property.nullable {
        members.insert("$Nullable".to_owned(), json!(true));
    }
    if let Some(digits) = precision(property.edm_type) {
        members.insert("$Precision".to_owned(), json!(digits));
    }
    Value::Object(members)
}

fn navigation_value(navigation: &NavigationProperty) -> Value {
    let mut members = Map::new();
    members.insert("$Kind".to_owned(), json!("NavigationProperty"));
    members.insert("$Type".to_owned(), json!(navigation.target));
    if navigation.collection {
        members.insert("$Collection".to_owned(), json!(true));
    } else if navigation.nullable {
        members.insert("$Nullable".to_owned(), json!(true));
    }
    members.insert("$ContainsTarget".to_owned(), json!(true));
    annotate(&mut members, &navigation.annotations);
    Value::Object(members)
}

fn container_value(container: &Container) -> Value {
    let mut members = Map::new();
    members.insert("$Kind".to_owned(), json!("EntityContainer"));
    for set in &container.entity_sets {
        let mut set_members = Map::new();
        set_members.insert("$Collection".to_owned(), json!(true));
        set_members.insert("$Type".to_owned(), json!(set.entity_type));
        annotate(&mut set_members, &set.annotations);
        members.insert(set.name.to_owned(), Value::Object(set_members));
    }
    for singleton in &container.singletons {
        members.insert(singleton.name.to_owned(), json!({ "$Type": singleton.entity_type }));
    }
    annotate(&mut members, &container.annotations);
    Value::Object(members)
}

/// Adds each annotation as a member named `@` and the term.
fn annotate(members: &mut Map<String, Value>, annotations: &[Annotation]) {
    for annotation in annotations {
        members.insert(format!("@{}", annotation.term), expression_value(&annotation.value));
    }
}

fn expression_value(value: &Expression) -> Value {
    match value {
        Expression::Bool(value) => json!(value),
        Expression::String(text) => json!(text),
        // A plain string, because the term's type declares the value a path.
        Expression::PropertyPath(path) => json!(path),
        // Enumeration members are written by name alone, flags joined by commas.
        Expression::Enum { members, .. } => json!(members.join(",")),
        Expression::Collection(items) => Value::Array(items.iter().map(expression_value).collect()),
        Expression::Record(properties) => {
            let mut members = Map::new();
            for (property, value) in properties {
                members.insert((*property).to_owned(), expression_value(value));
            }
            Value::Object(members)
        }
    }
}
