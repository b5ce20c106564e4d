//! Writes a [`Document`] as CSDL XML.

use super::{
    Annotation, Container, Document, EntityType, Expression, NavigationProperty, Schema, precision,
};

const EDMX_NAMESPACE: &str = "http://docs.oasis-open.org/odata/ns/edmx";
const EDM_NAMESPACE: &str = "http://docs.oasis-open.org/odata/ns/edm";

pub(super) fn write(document: &Document) -> String {
    let mut out = Writer::default();
    out.text.push_str("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n");
    out.open("edmx:Edmx", &[("Version", document.version), ("xmlns:edmx", EDMX_NAMESPACE)]);

    for reference in &document.references {
        let uri = reference.uri("xml");
        out.open("edmx:Reference", &[("Uri", &uri)]);
        out.empty(
            "edmx:Include",
            &[("Namespace", reference.namespace), ("Alias", reference.alias)],
        );
        out.close("edmx:Reference");
    }

    out.open("edmx:DataServices", &[]);
    for schema in &document.schemas {
        write_schema(&mut out, schema);
    }
    out.close("edmx:DataServices");

    out.close("edmx:Edmx");
    out.text
}

fn write_schema(out: &mut Writer, schema: &Schema) {
    out.open("Schema", &[("xmlns", EDM_NAMESPACE), ("Namespace", schema.namespace)]);
    for entity_type in &schema.entity_types {
        write_entity_type(out, entity_type);
    }
    if let Some(container) = &schema.container {
        write_container(out, container);
    }
    out.close("Schema");
}

fn write_entity_type(out: &mut Writer, entity_type: &EntityType) {
    out.open("EntityType", &[("Name", entity_type.name)]);

    out.open("Key", &[]);
    out.empty("PropertyRef", &[("Name", entity_type.key)]);
    out.close("Key");

    for property in &entity_type.properties {
        let mut attributes = vec![("Name", property.name), ("Type", property.edm_type.name())];
        if !property.nullable {
            attributes.push(("Nullable", "false"));
        }
        let precision = precision(property.edm_type).map(|digits| digits.to_string());
        if let Some(digits) = &precision {
            attributes.push(("Precision", digits));
        }
        out.empty("Property", &attributes);
    }

    for navigation in &entity_type.navigation_properties {
        write_navigation_property(out, navigation);
    }

    write_annotations(out, &entity_type.annotations);
    out.close("EntityType");
}

fn write_navigation_property(out: &mut Writer, navigation: &NavigationProperty) {
    let target = if navigation.collection {
        format!("Collection({})", navigation.target)
    } else {
        navigation.target.to_owned()
    };
    let mut attributes = vec![("Name", navigation.name), ("Type", target.as_str())];
    if !navigation.collection && !navigation.nullable {
        attributes.push(("Nullable", "false"));
    }
    attributes.push(("ContainsTarget", "true"));
    out.element("NavigationProperty", &attributes, &navigation.annotations);
}

fn write_container(out: &mut Writer, container: &Container) {
    out.open("EntityContainer", &[("Name", container.name)]);
    write_annotations(out, &container.annotations);
    for set in &container.entity_sets {
        out.element(
            "EntitySet",
            &[("Name", set.name), ("EntityType", set.entity_type)],
            &set.annotations,
        );
    }
    for singleton in &container.singletons {
        out.empty("Singleton", &[("Name", singleton.name), ("Type", singleton.entity_type)]);
    }
    out.close("EntityContainer");
}

fn write_annotations(out: &mut Writer, annotations: &[Annotation]) {
    for annotation in annotations {
        write_valued(out, "Annotation", ("Term", annotation.term), &annotation.value);
    }
}

/// Writes an `Annotation` or a `PropertyValue`, whose value is an attribute when it is a
/// constant and a child element when it is a record or a collection.
fn write_valued(out: &mut Writer, element: &str, name: (&str, &str), value: &Expression) {
    match constant(value) {
        Some((kind, text)) => out.empty(element, &[name, (kind, &text)]),
        None => {
            out.open(element, &[name]);
            write_expression(out, value);
            out.close(element);
        }
    }
}

/// Writes a value in element form, as a collection item or the child of an annotation.
fn write_expression(out: &mut Writer, value: &Expression) {
    match value {
        Expression::Collection(items) if items.is_empty() => out.empty("Collection", &[]),
        Expression::Collection(items) => {
            out.open("Collection", &[]);
            for item in items {
                write_expression(out, item);
            }
            out.close("Collection");
        }
        Expression::Record(properties) => {
            out.open("Record", &[]);
            for (property, value) in properties {
                write_valued(out, "PropertyValue", ("Property", property), value);
            }
            out.close("Record");
        }
        constant_value => {
            let (kind, text) =
                constant(constant_value).expect("every other expression is a constant");
            out.text_element(kind, &text);
        }
    }
}

/// Returns the name that CSDL gives a constant expression, as attribute or element, with its
/// text; `None` for records and collections.
fn constant(value: &Expression) -> Option<(&'static str, String)> {
    match value {
        Expression::Bool(value) => Some(("Bool", value.to_string())),
        Expression::String(text) => Some(("String", (*text).to_owned())),
        Expression::PropertyPath(path) => Some(("PropertyPath", (*path).to_owned())),
        Expression::Enum { enum_type, members } => {
            let qualified: Vec<String> =
                members.iter().map(|member| format!("{enum_type}/{member}")).collect();
            Some(("EnumMember", qualified.join(" ")))
        }
        Expression::Collection(_) | Expression::Record(_) => None,
    }
}

/// Indented XML output.
#[derive(Default)]
struct Writer {
    text: String,
    depth: usize,
}

impl Writer {
    fn open(&mut self, name: &str, attributes: &[(&str, &str)]) {
        self.start_tag(name, attributes);
        self.text.push_str(">\n");
        self.depth += 1;
    }

    fn close(&mut self, name: &str) {
        self.depth -= 1;
        self.indent();
        self.text.push_str("</");
        self.text.push_str(name);
        self.text.push_str(">\n");
    }

    fn empty(&mut self, name: &str, attributes: &[(&str, &str)]) {
        self.start_tag(name, attributes);
        self.text.push_str(" />\n");
    }

    /// Writes an element that holds only `annotations`, as an empty element when there are none.
    fn element(&mut self, name: &str, attributes: &[(&str, &str)], annotations: &[Annotation]) {
        if annotations.is_empty() {
            self.empty(name, attributes);
        } else {
            self.open(name, attributes);
            write_annotations(self, annotations);
            self.close(name);
        }
    }

    fn text_element(&mut self, name: &str, text: &str) {
        self.start_tag(name, &[]);
        self.text.push('>');
        self.text.push_str(&escape(text));
        self.text.push_str("</");
        self.text.push_str(name);
        self.text.push_str(">\n");
    }

    fn start_tag(&mut self, name: &str, attributes: &[(&str, &str)]) {
        self.indent();
        self.text.push('<');
        self.text.push_str(name);
        for (attribute, value) in attributes {
            self.text.push(' ');
            self.text.push_str(attribute);
            self.text.push_str("=\"");
            self.text.push_str(&escape(value));
            self.text.push('"');
        }
    }

    fn indent(&mut self) {
        for _ in 0..self.depth {
            self.text.push_str("  ");
        }
    }
}

/// Escapes text for an XML attribute value in double quotes or for element content.
pub(super) fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&apos;"),
            other => escaped.push(other),
        }
    }
    escaped
}
