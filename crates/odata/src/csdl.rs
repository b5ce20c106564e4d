//! The service's metadata document (`$metadata`), in CSDL XML and in CSDL JSON.
//!
//! Both representations are written from one description of the service, a `Document` built
//! by `document()` from [`crate::model`], so the XML and the JSON cannot differ.
//! The document declares:
//!
//! - the seed view's entity type `microsoft.management.services.api.aggregatedPolicyCompliance`
//!   and its entity set `aggregatedPolicyCompliances`;
//! - the Graph view's entity type `microsoft.graph.managedTenants.aggregatedPolicyCompliance`,
//!   reached the way Graph reaches it: the singleton `tenantRelationships`, then the containment
//!   navigation properties `managedTenants` and `aggregatedPolicyCompliances`;
//! - one entity container, `microsoft.graph.GraphService`, holding both;
//! - capability annotations (the OASIS Core, Capabilities and Aggregation vocabularies) that
//!   state what both collections support.
//!
//! The document is OData 4.0, and the term and property names follow the vocabularies published
//! by the OASIS OData TC at `https://oasis-tcs.github.io/odata-vocabularies/`.

mod json;
mod xml;

use crate::model::{EdmType, Property, View};

/// The namespace of Graph's own schema, which contains the entity container.
pub const GRAPH_NAMESPACE: &str = "microsoft.graph";

/// The entity container's simple name.
pub const CONTAINER_NAME: &str = "GraphService";

/// The entity type of the singleton that starts the Graph view's path.
pub const TENANT_RELATIONSHIP_TYPE: &str = "microsoft.graph.tenantRelationship";

/// The entity type that contains the Graph view's collection.
pub const MANAGED_TENANT_TYPE: &str = "microsoft.graph.managedTenants.managedTenant";

/// The transformations of `$apply` that the binder accepts (see `bind::apply`), in the order
/// the Data Aggregation specification lists them.
const APPLY_TRANSFORMATIONS: [&str; 9] = [
    "aggregate",
    "groupby",
    "filter",
    "orderby",
    "top",
    "skip",
    "topcount",
    "bottomcount",
    "identity",
];

/// Returns the metadata document in CSDL XML, with an XML declaration and UTF-8 encoding.
pub fn xml() -> String {
    xml::write(&document())
}

/// Returns the metadata document in CSDL JSON.
pub fn json() -> serde_json::Value {
    json::write(&document())
}

/// A whole metadata document.
#[derive(Debug)]
struct Document {
    /// The OData version, written as `Version` in XML and `$Version` in JSON.
    version: &'static str,
    /// The vocabularies whose terms the annotations use.
    references: Vec<Reference>,
    schemas: Vec<Schema>,
}

/// A referenced vocabulary, included under an alias.
#[derive(Debug)]
struct Reference {
    namespace: &'static str,
    alias: &'static str,
}

impl Reference {
    /// Returns the vocabulary's published URL for a representation, `xml` or `json`: each
    /// document references the rendition in its own format.
    fn uri(&self, extension: &str) -> String {
        format!(
            "https://oasis-tcs.github.io/odata-vocabularies/vocabularies/{}.{extension}",
            self.namespace
        )
    }
}

/// A schema: the types and the container declared under one namespace.
#[derive(Debug)]
struct Schema {
    namespace: &'static str,
    entity_types: Vec<EntityType>,
    container: Option<Container>,
}

#[derive(Debug)]
struct EntityType {
    /// The simple name, unique within its schema.
    name: &'static str,
    /// The single key property, which is also the first entry of `properties`.
    key: &'static str,
    properties: Vec<StructuralProperty>,
    navigation_properties: Vec<NavigationProperty>,
    annotations: Vec<Annotation>,
}

#[derive(Debug)]
struct StructuralProperty {
    name: &'static str,
    edm_type: EdmType,
    nullable: bool,
}

/// A navigation property; every one in this document is a containment navigation property.
#[derive(Debug)]
struct NavigationProperty {
    name: &'static str,
    /// The qualified name of the target entity type.
    target: &'static str,
    /// Whether it leads to a collection of entities rather than to one.
    collection: bool,
    /// Whether a single-valued navigation property may lead to no entity. A collection is
    /// never null, so CSDL gives collection-valued navigation properties no nullability.
    nullable: bool,
    annotations: Vec<Annotation>,
}

#[derive(Debug)]
struct Container {
    name: &'static str,
    entity_sets: Vec<EntitySet>,
    singletons: Vec<Singleton>,
    annotations: Vec<Annotation>,
}

#[derive(Debug)]
struct EntitySet {
    name: &'static str,
    /// The qualified name of the entity type.
    entity_type: &'static str,
    annotations: Vec<Annotation>,
}

#[derive(Debug)]
struct Singleton {
    name: &'static str,
    /// The qualified name of the entity type.
    entity_type: &'static str,
}

/// An annotation: a term, named by its vocabulary's alias, applied with a value.
#[derive(Debug)]
struct Annotation {
    term: &'static str,
    value: Expression,
}

/// The constant expressions that this document's annotation values use.
#[derive(Debug)]
enum Expression {
    Bool(bool),
    String(&'static str),
    /// A path to a structural property of the annotated collection's entity type.
    PropertyPath(&'static str),
    /// One or more members of an enumeration type, named by its alias-qualified name; more
    /// than one member is only valid for a flags enumeration.
    Enum {
        enum_type: &'static str,
        members: Vec<&'static str>,
    },
    Collection(Vec<Expression>),
    /// A record of the annotation term's complex type: property names with values.
    Record(Vec<(&'static str, Expression)>),
}

/// Returns the `Precision` facet of a property of type `edm_type`, or `None` where the type has
/// no such facet. A DateTimeOffset keeps up to 7 fractional second digits, and CSDL takes an
/// absent `Precision` to mean 0 digits.
fn precision(edm_type: EdmType) -> Option<u8> {
    match edm_type {
        EdmType::DateTimeOffset => Some(7),
        EdmType::String | EdmType::Int64 => None,
    }
}

/// Splits a qualified name into its namespace and its simple name.
fn split_qualified(name: &'static str) -> (&'static str, &'static str) {
    name.rsplit_once('.').expect("a qualified name contains a dot")
}

/// Describes the whole service.
fn document() -> Document {
    let (seed_namespace, seed_type) = split_qualified(View::Seed.type_name());
    let (graph_namespace, graph_type) = split_qualified(View::Graph.type_name());
    let (tenant_namespace, tenant_type) = split_qualified(TENANT_RELATIONSHIP_TYPE);
    let (managed_namespace, managed_type) = split_qualified(MANAGED_TENANT_TYPE);
    debug_assert_eq!(tenant_namespace, GRAPH_NAMESPACE);
    debug_assert_eq!(managed_namespace, graph_namespace);

    // The Graph view's path is singleton/navigation/navigation. Its segments come from
    // `View::collection_path`, so the document names the path that the service serves.
    let [singleton, managed_tenants, compliances] = graph_path_segments();

    let graph_schema = Schema {
        namespace: GRAPH_NAMESPACE,
        entity_types: vec![keyed_container_type(
            tenant_type,
            NavigationProperty {
                name: managed_tenants,
                target: MANAGED_TENANT_TYPE,
                collection: false,
                // Nullable, as Graph declares it.
                nullable: true,
                annotations: Vec::new(),
            },
        )],
        container: Some(Container {
            name: CONTAINER_NAME,
            entity_sets: vec![EntitySet {
                name: View::Seed.collection_path(),
                entity_type: View::Seed.type_name(),
                annotations: collection_annotations(View::Seed),
            }],
            singletons: vec![Singleton { name: singleton, entity_type: TENANT_RELATIONSHIP_TYPE }],
            annotations: container_annotations(),
        }),
    };

    // The capabilities of the Graph view's collection are annotated on the navigation property
    // that contains it, in its declaring type `managedTenant`. OData 4.0 annotates a navigation
    // property through its declaring type. A target path through the container
    // (`microsoft.graph.GraphService/tenantRelationships/managedTenants/aggregatedPolicyCompliances`)
    // is defined only from CSDL 4.01 on, and this document is 4.0. Both name the same collection
    // here because `managedTenant` is reachable only through the singleton. This form also gives
    // both collections the same list of terms, whereas `Capabilities.NavigationRestrictions` on
    // the singleton has no place for `$count`, `$expand` or `$apply`.
    // NOTE: some releases of the Capabilities vocabulary list only `EntitySet` in the `AppliesTo`
    // of terms such as `FilterRestrictions`, so a checker that enforces `AppliesTo` may flag the
    // annotations on this navigation property.
    let managed_tenants_schema = Schema {
        namespace: graph_namespace,
        entity_types: vec![
            keyed_container_type(
                managed_type,
                NavigationProperty {
                    name: compliances,
                    target: View::Graph.type_name(),
                    collection: true,
                    nullable: false,
                    annotations: collection_annotations(View::Graph),
                },
            ),
            compliance_type(View::Graph, graph_type),
        ],
        container: None,
    };

    let seed_schema = Schema {
        namespace: seed_namespace,
        entity_types: vec![compliance_type(View::Seed, seed_type)],
        container: None,
    };

    Document {
        version: "4.0",
        references: vec![
            Reference { namespace: "Org.OData.Core.V1", alias: "Core" },
            Reference { namespace: "Org.OData.Capabilities.V1", alias: "Capabilities" },
            Reference { namespace: "Org.OData.Aggregation.V1", alias: "Aggregation" },
        ],
        schemas: vec![graph_schema, managed_tenants_schema, seed_schema],
    }
}

/// Returns the three segments of the Graph view's collection path: the singleton and the two
/// containment navigation properties.
pub(crate) fn graph_path_segments() -> [&'static str; 3] {
    let segments: Vec<&'static str> = View::Graph.collection_path().split('/').collect();
    segments.try_into().expect("the Graph view's collection path has three segments")
}

/// Describes `aggregatedPolicyCompliance` as `view` names it.
fn compliance_type(view: View, name: &'static str) -> EntityType {
    // Only the key is declared non-nullable. The seed view requires every other property on
    // create, but rows created through the Graph view may leave any of them null, and the seed
    // view reads those rows too, so a null can appear in either view. The seed view's rule for
    // creates is stated instead by `InsertRestrictions/RequiredProperties` on its entity set.
    let properties = Property::ALL
        .into_iter()
        .map(|property| StructuralProperty {
            name: property.name(view),
            edm_type: property.edm_type(),
            nullable: property != Property::Id,
        })
        .collect();

    let description = match view {
        View::Seed => {
            "Device compliance counts of one policy in one customer tenant, under the names \
             Microsoft first documented."
        }
        View::Graph => "Device compliance counts of one policy in one customer tenant.",
    };

    EntityType {
        name,
        key: Property::Id.name(view),
        properties,
        navigation_properties: Vec::new(),
        annotations: vec![Annotation {
            term: "Core.Description",
            value: Expression::String(description),
        }],
    }
}

/// Describes one of the types on the Graph view's path: an `id` key and one containment
/// navigation property. OData 4.0 requires a key on every entity type that is not abstract,
/// including the types of singletons and of single-valued navigation properties, and Graph
/// gives these types the `id` of `microsoft.graph.entity`.
fn keyed_container_type(name: &'static str, navigation: NavigationProperty) -> EntityType {
    EntityType {
        name,
        key: "id",
        properties: vec![StructuralProperty {
            name: "id",
            edm_type: EdmType::String,
            nullable: false,
        }],
        navigation_properties: vec![navigation],
        annotations: Vec::new(),
    }
}

/// Returns the annotations that state what a view's collection supports.
///
/// NOTE: updates (PATCH and PUT), deletes and ETags are stated as supported here, and JSON
/// `$batch` in `container_annotations`; keep these terms in step with the HTTP handlers.
fn collection_annotations(view: View) -> Vec<Annotation> {
    use Expression::{Bool, Collection, Enum, PropertyPath, Record};

    let mut insert = vec![("Insertable", Bool(true))];
    let required: Vec<Expression> = Property::ALL
        .into_iter()
        .filter(|property| view.requires_on_create(*property))
        .map(|property| PropertyPath(property.name(view)))
        .collect();
    if !required.is_empty() {
        insert.push(("RequiredProperties", Collection(required)));
    }

    vec![
        annotation("Capabilities.CountRestrictions", Record(vec![("Countable", Bool(true))])),
        annotation("Capabilities.TopSupported", Bool(true)),
        annotation("Capabilities.SkipSupported", Bool(true)),
        annotation("Capabilities.IndexableByKey", Bool(true)),
        annotation("Capabilities.FilterRestrictions", Record(vec![("Filterable", Bool(true))])),
        annotation("Capabilities.SortRestrictions", Record(vec![("Sortable", Bool(true))])),
        annotation("Capabilities.SelectSupport", Record(vec![("Supported", Bool(true))])),
        annotation("Capabilities.ExpandRestrictions", Record(vec![("Expandable", Bool(false))])),
        annotation("Capabilities.SearchRestrictions", Record(vec![("Searchable", Bool(false))])),
        annotation("Capabilities.InsertRestrictions", Record(insert)),
        annotation(
            "Capabilities.UpdateRestrictions",
            Record(vec![
                ("Updatable", Bool(true)),
                (
                    "UpdateMethod",
                    Enum { enum_type: "Capabilities.HttpMethod", members: vec!["PATCH", "PUT"] },
                ),
            ]),
        ),
        annotation("Capabilities.DeleteRestrictions", Record(vec![("Deletable", Bool(true))])),
        // `Core.OptimisticConcurrency` is left out on purpose: the term states that changes
        // require ETags, and Beacon takes `If-Match` without requiring it.
        annotation(
            "Aggregation.ApplySupported",
            Record(vec![
                (
                    "Transformations",
                    Collection(APPLY_TRANSFORMATIONS.map(Expression::String).into()),
                ),
                // The default is `MultipleHierarchies`, but `groupby` rejects `rollup`.
                ("Rollup", Enum { enum_type: "Aggregation.RollupType", members: vec!["None"] }),
            ]),
        ),
    ]
}

/// Returns the annotations on the entity container, which apply to the whole service.
fn container_annotations() -> Vec<Annotation> {
    use Expression::{Bool, Collection, Record};

    vec![
        annotation("Capabilities.KeyAsSegmentSupported", Bool(true)),
        annotation("Capabilities.BatchSupported", Bool(true)),
        annotation(
            "Capabilities.BatchSupport",
            Record(vec![
                ("Supported", Bool(true)),
                ("SupportedFormats", Collection(vec![Expression::String("application/json")])),
            ]),
        ),
    ]
}

fn annotation(term: &'static str, value: Expression) -> Annotation {
    Annotation { term, value }
}

#[cfg(test)]
mod tests;
