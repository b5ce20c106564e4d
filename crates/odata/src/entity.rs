//! An entity's values and how a view writes them as OData JSON.
//!
//! By default the writers here produce the `odata.metadata=minimal` form that Graph sends: the
//! control information `@odata.context`, `@odata.type` and `@odata.etag` first, then `id` and
//! every declared property in declaration order, with `null` for a property that has no value.
//! `odata.metadata=none` leaves out all control information but `@odata.count` and
//! `@odata.nextLink`; `odata.metadata=full` adds each entity's `@odata.id` and
//! `@odata.editLink` and the type of every Int64 and DateTimeOffset value, which JSON alone
//! does not tell. Int64 values are JSON integers, or JSON strings when the client asked for
//! `IEEE754Compatible=true`.

use serde::Serialize;
use serde::ser::{SerializeMap, SerializeSeq, Serializer};

use crate::datetime::DateTimeOffset;
use crate::media::{JsonFormat, Metadata};
use crate::model::{EdmType, FIELD_COUNT, Property, View};
use crate::{etag, path};

/// A property value; which variant a property takes follows from its [`crate::model::EdmType`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Value {
    /// An `Edm.String` value.
    String(String),
    /// An `Edm.Int64` value.
    Int64(i64),
    /// An `Edm.DateTimeOffset` value.
    DateTimeOffset(DateTimeOffset),
}

/// The values of the non-key properties, indexed by [`Property::field_index`]; `None` is null.
pub type Fields = [Option<Value>; FIELD_COUNT];

/// One `aggregatedPolicyCompliance` as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entity {
    /// The key.
    pub id: String,
    /// Every other property.
    pub fields: Fields,
}

impl Entity {
    /// Returns the value of a non-key property, or `None` for null and for [`Property::Id`].
    pub fn get(&self, property: Property) -> Option<&Value> {
        property.field_index().and_then(|i| self.fields[i].as_ref())
    }
}

/// An entity as stored, with its version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredEntity {
    /// The entity's values.
    pub entity: Entity,
    /// Changes on every write of the entity; its entity tag is [`etag::format`] of it.
    pub version: i64,
}

/// Options for writing values in a response.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriteOptions {
    /// The JSON form the client asked for.
    pub format: JsonFormat,
    /// The non-key properties to write, as `$select` chose them.
    pub selection: Selection,
}

/// A set of non-key properties to write; the key is always written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Selection(u16);

impl Selection {
    /// Every property.
    pub const ALL: Selection = Selection((1 << FIELD_COUNT) - 1);

    /// No property but the key.
    pub const NONE: Selection = Selection(0);

    /// Returns this set with `property` added.
    pub fn with(self, property: Property) -> Selection {
        match property.field_index() {
            Some(i) => Selection(self.0 | 1 << i),
            None => self,
        }
    }

    /// Returns whether `property` is written. The key always is.
    pub fn contains(self, property: Property) -> bool {
        property.field_index().is_none_or(|i| self.0 & (1 << i) != 0)
    }
}

impl Default for Selection {
    fn default() -> Self {
        Selection::ALL
    }
}

/// A single-entity response body.
#[derive(Debug)]
pub struct EntityDocument<'a> {
    /// The absolute `@odata.context` URL.
    pub context: &'a str,
    /// The absolute URL of the service root, which entity URLs start with.
    pub service_root: &'a str,
    /// The view whose names and type the body uses.
    pub view: View,
    /// The entity written.
    pub entity: &'a StoredEntity,
    /// Options for writing values.
    pub options: WriteOptions,
}

impl Serialize for EntityDocument<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        if self.options.format.metadata != Metadata::None {
            map.serialize_entry("@odata.context", self.context)?;
        }
        write_members(&mut map, self.service_root, self.view, self.entity, self.options)?;
        map.end()
    }
}

/// A collection response body: one page of entities and the link to the next page.
#[derive(Debug)]
pub struct CollectionDocument<'a> {
    /// The absolute `@odata.context` URL.
    pub context: &'a str,
    /// The absolute URL of the service root, which entity URLs start with.
    pub service_root: &'a str,
    /// The view whose names and type the body uses.
    pub view: View,
    /// The entities of this page, in order.
    pub entities: &'a [StoredEntity],
    /// The number of entities in the whole result, when `$count=true` asked for it.
    pub count: Option<u64>,
    /// The absolute URL of the next page, when there is one.
    pub next_link: Option<&'a str>,
    /// Options for writing values.
    pub options: WriteOptions,
}

impl Serialize for CollectionDocument<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        if self.options.format.metadata != Metadata::None {
            map.serialize_entry("@odata.context", self.context)?;
        }
        match self.count {
            Some(count) if self.options.format.int64_as_string => {
                map.serialize_entry("@odata.count", &format_args!("{count}"))?;
            }
            Some(count) => map.serialize_entry("@odata.count", &count)?,
            None => {}
        }
        map.serialize_entry("value", &Items(self))?;
        if let Some(link) = self.next_link {
            map.serialize_entry("@odata.nextLink", link)?;
        }
        map.end()
    }
}

/// The `value` array of a collection document.
struct Items<'a, 'b>(&'a CollectionDocument<'b>);

impl Serialize for Items<'_, '_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let document = self.0;
        let mut seq = serializer.serialize_seq(Some(document.entities.len()))?;
        for entity in document.entities {
            seq.serialize_element(&Member {
                service_root: document.service_root,
                view: document.view,
                entity,
                options: document.options,
            })?;
        }
        seq.end()
    }
}

/// One entity inside a collection, without its own `@odata.context`.
struct Member<'a> {
    service_root: &'a str,
    view: View,
    entity: &'a StoredEntity,
    options: WriteOptions,
}

impl Serialize for Member<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        write_members(&mut map, self.service_root, self.view, self.entity, self.options)?;
        map.end()
    }
}

fn write_members<M: SerializeMap>(
    map: &mut M,
    service_root: &str,
    view: View,
    stored: &StoredEntity,
    options: WriteOptions,
) -> Result<(), M::Error> {
    let entity = &stored.entity;
    let metadata = options.format.metadata;

    // Control information comes before the properties.
    if metadata != Metadata::None {
        map.serialize_entry("@odata.type", &format_args!("#{}", view.type_name()))?;
    }
    if metadata == Metadata::Full {
        let url = path::entity_url(service_root, view, &entity.id);
        map.serialize_entry("@odata.id", &url)?;
        map.serialize_entry("@odata.editLink", &url)?;
    }
    if metadata != Metadata::None {
        map.serialize_entry("@odata.etag", &etag::format(stored.version))?;
    }

    map.serialize_entry("id", &entity.id)?;
    for property in Property::FIELDS {
        if !options.selection.contains(property) {
            continue;
        }
        let name = property.name(view);
        if metadata == Metadata::Full {
            match property.edm_type() {
                EdmType::String => {}
                EdmType::Int64 => map.serialize_entry(&TypeOf(name), "#Int64")?,
                EdmType::DateTimeOffset => map.serialize_entry(&TypeOf(name), "#DateTimeOffset")?,
            }
        }
        match entity.get(property) {
            None => map.serialize_entry(name, &())?,
            Some(Value::String(text)) => map.serialize_entry(name, text)?,
            Some(Value::Int64(number)) if options.format.int64_as_string => {
                map.serialize_entry(name, &format_args!("{number}"))?
            }
            Some(Value::Int64(number)) => map.serialize_entry(name, number)?,
            Some(Value::DateTimeOffset(instant)) => {
                map.serialize_entry(name, &format_args!("{instant}"))?
            }
        }
    }
    Ok(())
}

/// The name of a property's `@odata.type` annotation, such as `numberOfErrorDevices@odata.type`.
struct TypeOf<'a>(&'a str);

impl Serialize for TypeOf<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&format_args!("{}@odata.type", self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> StoredEntity {
        let mut fields: Fields = Default::default();
        fields[Property::TenantId.field_index().unwrap()] = Some(Value::String("t".into()));
        fields[Property::NumberOfCompliantDevices.field_index().unwrap()] =
            Some(Value::Int64(9_007_199_254_740_993));
        fields[Property::LastRefreshedDateTime.field_index().unwrap()] = Some(
            Value::DateTimeOffset(DateTimeOffset::parse("2024-03-01T07:30:00.1234567Z").unwrap()),
        );
        StoredEntity { entity: Entity { id: "a".into(), fields }, version: 7 }
    }

    #[test]
    fn entity_document_uses_view_names_in_order() {
        let entity = sample();
        let document = EntityDocument {
            context: "ctx",
            service_root: "http://h/beta",
            view: View::Seed,
            entity: &entity,
            options: WriteOptions::default(),
        };
        let text = serde_json::to_string(&document).unwrap();
        assert!(text.starts_with(
            r##"{"@odata.context":"ctx","@odata.type":"#microsoft.management.services.api.aggregatedPolicyCompliance","@odata.etag":"W/\"7\"","id":"a","organizationId":"t","organizationDisplayName":null,"##
        ));
        assert!(text.contains(r#""numberOfCompliantDevices":9007199254740993,"#));
        assert!(text.ends_with(r#""lastRefreshedDateTime":"2024-03-01T07:30:00.1234567Z"}"#));
    }

    #[test]
    fn int64_is_string_with_ieee754() {
        let entity = sample();
        let document = EntityDocument {
            context: "ctx",
            service_root: "http://h/beta",
            view: View::Graph,
            entity: &entity,
            options: WriteOptions {
                format: JsonFormat { int64_as_string: true, ..JsonFormat::default() },
                ..WriteOptions::default()
            },
        };
        let text = serde_json::to_string(&document).unwrap();
        assert!(text.contains(r#""numberOfCompliantDevices":"9007199254740993""#));
        assert!(text.contains(r#""tenantId":"t""#));
    }

    #[test]
    fn collection_next_link_follows_value() {
        let entities = [sample(), sample()];
        let document = CollectionDocument {
            context: "ctx",
            service_root: "http://h/beta",
            view: View::Graph,
            entities: &entities,
            count: None,
            next_link: Some("next"),
            options: WriteOptions::default(),
        };
        let value: serde_json::Value = serde_json::to_value(&document).unwrap();
        assert_eq!(value["value"].as_array().unwrap().len(), 2);
        assert_eq!(value["@odata.nextLink"], "next");
        assert!(value["value"][0].get("@odata.context").is_none());
        let text = serde_json::to_string(&document).unwrap();
        assert!(text.ends_with(r#"],"@odata.nextLink":"next"}"#));
    }

    #[test]
    fn no_metadata_leaves_out_control_information() {
        let entities = [sample()];
        let options = WriteOptions {
            format: JsonFormat { metadata: Metadata::None, ..JsonFormat::default() },
            ..WriteOptions::default()
        };
        let document = CollectionDocument {
            context: "ctx",
            service_root: "http://h/beta",
            view: View::Graph,
            entities: &entities,
            count: Some(1),
            next_link: Some("next"),
            options,
        };
        let text = serde_json::to_string(&document).unwrap();
        assert!(
            text.starts_with(r#"{"@odata.count":1,"value":[{"id":"a","tenantId":"t","#),
            "{text}"
        );
        assert!(!text.contains("@odata.type"), "{text}");
        assert!(!text.contains("@odata.etag"), "{text}");
        assert!(text.ends_with(r#""@odata.nextLink":"next"}"#), "{text}");
    }

    #[test]
    fn full_metadata_adds_links_and_value_types() {
        let entity = sample();
        let options = WriteOptions {
            format: JsonFormat { metadata: Metadata::Full, ..JsonFormat::default() },
            ..WriteOptions::default()
        };
        let document = EntityDocument {
            context: "ctx",
            service_root: "http://h/beta",
            view: View::Graph,
            entity: &entity,
            options,
        };
        let value: serde_json::Value = serde_json::to_value(&document).unwrap();
        let url = "http://h/beta/tenantRelationships/managedTenants/aggregatedPolicyCompliances/a";
        assert_eq!(value["@odata.id"], url);
        assert_eq!(value["@odata.editLink"], url);
        assert_eq!(value["@odata.etag"], "W/\"7\"");
        assert_eq!(value["numberOfCompliantDevices@odata.type"], "#Int64");
        assert_eq!(value["lastRefreshedDateTime@odata.type"], "#DateTimeOffset");
        assert!(value.get("tenantId@odata.type").is_none());
    }
}
