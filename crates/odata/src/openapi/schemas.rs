//! The component schemas. Each view's entity has a schema as responses write it and two as
//! request bodies give it. The others describe a page of a listing, the Graph error body, the
//! service document, the containers on the Graph view's path and the `$batch` envelope.

use serde_json::{Value, json};

use super::{HttpLimits, component_ref, object};
use crate::body::{MAX_ID_BYTES, MAX_STRING_BYTES};
use crate::csdl::{MANAGED_TENANT_TYPE, TENANT_RELATIONSHIP_TYPE};
use crate::model::{EdmType, Property, View};

/// The name of the bearer token security scheme.
pub(super) const SECURITY_SCHEME: &str = "bearerToken";

/// The name of the Graph error body schema.
pub(super) const ERROR: &str = "microsoft.graph.ODataErrors.ODataError";

/// The name of the service document schema.
pub(super) const SERVICE_DOCUMENT: &str = "serviceDocument";

/// The name of the schema of one row of a grouped `$apply` result.
const GROUPED_ROW: &str = "groupedResultRow";

/// The name of the `$batch` request body schema.
pub(super) const BATCH_REQUEST: &str = "batchRequest";

/// The name of the `$batch` response body schema.
pub(super) const BATCH_RESPONSE: &str = "batchResponse";

/// The largest value of an Int64 property; the counters take values from 0 to this.
const INT64_MAX: i64 = i64::MAX;

/// The pattern of every string in a request body: any text without U+0000, which no string
/// value may contain (PostgreSQL text cannot store it, so neither store accepts it).
pub(super) const WITHOUT_NUL_PATTERN: &str = "^[^\\u0000]*$";

/// The request bodies a view takes, which differ in what they require.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum RequestBody {
    /// The body of a create (`POST`) or a replace (`PUT`).
    Create,
    /// The body of a merge (`PATCH`).
    Update,
}

/// Returns the name of the schema of an entity of `view` as responses write it: the entity
/// type's qualified name, as `$metadata` declares it.
pub(super) fn entity(view: View) -> &'static str {
    view.type_name()
}

/// Returns the name of the schema of a request body of `view`.
pub(super) fn request(view: View, body: RequestBody) -> String {
    match body {
        RequestBody::Create => format!("{}-create", view.type_name()),
        RequestBody::Update => format!("{}-update", view.type_name()),
    }
}

/// Returns the name of the schema of a page of a listing of `view`.
pub(super) fn collection(view: View) -> String {
    format!("{}-collection", view.type_name())
}

/// Describes the bearer token: a JWT that `beacon token` or an identity provider issues.
pub(super) fn security_scheme() -> Value {
    json!({
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "A JWT signed with RS256 or ES256, from `beacon token` (dev mode) or from \
                        an identity provider such as Microsoft Entra ID (jwks mode). Its `tid` \
                        claim is the partner tenant. Reading needs \
                        `DeviceManagementConfiguration.Read.All` or \
                        `DeviceManagementConfiguration.ReadWrite.All` in `scp` or `roles`; \
                        changes need `DeviceManagementConfiguration.ReadWrite.All`.",
    })
}

/// Builds every component schema.
pub(super) fn components(limits: &HttpLimits) -> Value {
    let mut schemas = Vec::new();
    for view in View::ALL {
        schemas.push((entity(view).to_owned(), entity_schema(view)));
        schemas
            .push((request(view, RequestBody::Create), request_schema(view, RequestBody::Create)));
        schemas
            .push((request(view, RequestBody::Update), request_schema(view, RequestBody::Update)));
        schemas.push((collection(view), collection_schema(view)));
    }
    schemas.push((GROUPED_ROW.to_owned(), grouped_row_schema()));
    schemas.push((ERROR.to_owned(), error_schema()));
    schemas.push((SERVICE_DOCUMENT.to_owned(), service_document_schema()));
    schemas.push((TENANT_RELATIONSHIP_TYPE.to_owned(), container_schema(TENANT_RELATIONSHIP_TYPE)));
    schemas.push((MANAGED_TENANT_TYPE.to_owned(), container_schema(MANAGED_TENANT_TYPE)));
    schemas.push((BATCH_REQUEST.to_owned(), batch_request_schema(limits)));
    schemas.push((BATCH_RESPONSE.to_owned(), batch_response_schema(limits)));
    object(schemas)
}

/// Returns the schema of a value of `edm_type` in a response, in the default JSON form.
fn value_schema(edm_type: EdmType, nullable: bool) -> Value {
    let mut schema = match edm_type {
        EdmType::String => json!({ "type": "string" }),
        EdmType::Int64 => json!({
            "type": "integer",
            "format": "int64",
            "minimum": 0,
            "maximum": INT64_MAX,
        }),
        EdmType::DateTimeOffset => json!({ "type": "string", "format": "date-time" }),
    };
    if nullable {
        schema["nullable"] = json!(true);
    }
    schema
}

/// Returns the short EDM type name that `@odata.type` uses for a property's type, such as
/// `Int64`.
fn short_type_name(edm_type: EdmType) -> &'static str {
    edm_type.name().strip_prefix("Edm.").unwrap_or(edm_type.name())
}

/// Describes an entity of `view` as a response writes it, for every `odata.metadata` level
/// and any `$select`: only `id` is always present.
fn entity_schema(view: View) -> Value {
    let mut properties = vec![
        (
            "@odata.context".to_owned(),
            json!({
                "type": "string",
                "format": "uri",
                "description": "The context URL. Only a single-entity response has it, and \
                                only when `odata.metadata` is not `none`.",
            }),
        ),
        (
            "@odata.type".to_owned(),
            json!({
                "type": "string",
                "enum": [format!("#{}", view.type_name())],
                "description": "The entity type; left out when `odata.metadata=none`.",
            }),
        ),
        (
            "@odata.id".to_owned(),
            json!({
                "type": "string",
                "format": "uri",
                "description": "The entity's URL; only with `odata.metadata=full`.",
            }),
        ),
        (
            "@odata.editLink".to_owned(),
            json!({
                "type": "string",
                "format": "uri",
                "description": "The URL to change the entity at; only with \
                                `odata.metadata=full`.",
            }),
        ),
        (
            "@odata.etag".to_owned(),
            json!({
                "type": "string",
                "pattern": "^W/\"-?[0-9]+\"$",
                "description": "The entity's weak entity tag, as the `ETag` header of a \
                                single-entity response gives it; left out when \
                                `odata.metadata=none`.",
            }),
        ),
    ];

    for property in Property::ALL {
        let name = property.name(view);
        let mut schema = match property {
            Property::Id => json!({ "type": "string", "minLength": 1, "maxLength": MAX_ID_BYTES }),
            // A row created through the Graph view may leave any other property null, and
            // both views read every row, so every other property is nullable in both.
            _ => value_schema(property.edm_type(), true),
        };
        schema["description"] = json!(property_description(property, view));
        properties.push((name.to_owned(), schema));

        // `odata.metadata=full` annotates the types that JSON does not show by itself.
        if property.edm_type() != EdmType::String {
            let annotation = json!({
                "type": "string",
                "enum": [format!("#{}", short_type_name(property.edm_type()))],
                "description": format!(
                    "The type of `{name}`; only with `odata.metadata=full`."
                ),
            });
            properties.push((format!("{name}@odata.type"), annotation));
        }
    }

    json!({
        "type": "object",
        "description": format!(
            "An `aggregatedPolicyCompliance` as the {view} view writes it. Only `id` is always \
             present: `$select` chooses the other properties, and `odata.metadata` the \
             `@odata.*` members. Int64 values are strings instead of integers when the client \
             asked for `IEEE754Compatible=true`."
        ),
        "properties": object(properties),
        "required": [Property::Id.name(view)],
        "additionalProperties": false,
    })
}

/// Describes the body of a create, replace or merge through `view`.
fn request_schema(view: View, body: RequestBody) -> Value {
    let mut properties = vec![(
        "@odata.type".to_owned(),
        json!({
            "type": "string",
            "enum": [format!("#{}", view.type_name()), view.type_name()],
            "description": "The entity type, which must be this view's if given.",
        }),
    )];
    let mut required = Vec::new();

    for property in Property::ALL {
        let name = property.name(view);
        let mut schema = match property {
            Property::Id => json!({
                "type": "string",
                "nullable": true,
                "maxLength": MAX_ID_BYTES,
                "pattern": WITHOUT_NUL_PATTERN,
                "description": format!(
                    "The key, at most {MAX_ID_BYTES} bytes of UTF-8. A create without it, or \
                     with null or an empty string, gets a new lowercase GUID, and an id that \
                     exists already gets `409`. `PATCH` and `PUT` ignore it, because the URL \
                     names the entity."
                ),
            }),
            _ => {
                let required_here = view.requires_on_create(property);
                if required_here && body == RequestBody::Create {
                    required.push(name);
                }
                let mut schema = value_schema(property.edm_type(), !required_here);
                if property.edm_type() == EdmType::String {
                    schema["pattern"] = json!(WITHOUT_NUL_PATTERN);
                }
                schema["description"] = json!(property_description(property, view));
                schema
            }
        };
        if property.edm_type() == EdmType::String && property != Property::Id {
            schema["maxLength"] = json!(MAX_STRING_BYTES);
            schema["description"] = json!(format!(
                "{} At most {MAX_STRING_BYTES} bytes of UTF-8.",
                schema["description"].as_str().unwrap_or_default()
            ));
        }
        if property.edm_type() == EdmType::DateTimeOffset {
            schema["description"] = json!(format!(
                "{} An RFC 3339 date-time with at most 7 fractional second digits, from \
                 0001-01-01 to 9999-12-31 in UTC.",
                schema["description"].as_str().unwrap_or_default()
            ));
        }
        properties.push((name.to_owned(), schema));

        // A `property@odata.type` annotation must name the property's declared type.
        let short = short_type_name(property.edm_type());
        let declared = property.edm_type().name();
        properties.push((
            format!("{name}@odata.type"),
            json!({
                "type": "string",
                "enum": [format!("#{short}"), short, format!("#{declared}"), declared],
                "description": format!("The type of `{name}`, which must be its declared type."),
            }),
        ));
    }

    let rules = match (view, body) {
        (View::Seed, RequestBody::Create) => {
            "The body of a create (`POST`) or a replace (`PUT`) through the seed view: every \
             property but `id` is required and must not be null."
        }
        (View::Seed, RequestBody::Update) => {
            "The body of a merge (`PATCH`) through the seed view: any property may be left \
             out, but none but `id` may be null."
        }
        (View::Graph, RequestBody::Create) => {
            "The body of a create (`POST`) or a replace (`PUT`) through the Graph view: every \
             property is optional and may be null. A replace sets the properties left out to \
             null."
        }
        (View::Graph, RequestBody::Update) => {
            "The body of a merge (`PATCH`) through the Graph view: every property is optional \
             and may be null, and only the properties given change."
        }
    };
    let mut schema = json!({
        "type": "object",
        "description": format!(
            "{rules} Other instance annotations (members whose name contains `@`) are ignored, \
             and a member that names no property gets `400`, as does a string that contains \
             U+0000. With `IEEE754Compatible=true` in the `Content-Type`, Int64 values may also \
             be strings of decimal digits."
        ),
        "properties": object(properties),
        "additionalProperties": false,
    });
    if !required.is_empty() {
        schema["required"] = json!(required);
    }
    schema
}

/// Describes a property, naming the view where the name differs between the views.
fn property_description(property: Property, view: View) -> String {
    let text = match property {
        Property::Id => "The key.",
        Property::TenantId => "The customer tenant's id.",
        Property::TenantDisplayName => "The customer tenant's display name.",
        Property::CompliancePolicyId => "The compliance policy's id.",
        Property::CompliancePolicyName => "The compliance policy's display name.",
        Property::CompliancePolicyType => "The kind of policy, such as `deviceCompliancePolicy`.",
        Property::CompliancePolicyPlatform => {
            "The device platform the policy applies to, such as `windows10AndLater`."
        }
        Property::NumberOfCompliantDevices => "How many devices are compliant.",
        Property::NumberOfNonCompliantDevices => "How many devices are not compliant.",
        Property::NumberOfErrorDevices => {
            "How many devices reported an error evaluating the policy."
        }
        Property::PolicyModifiedDateTime => "When the policy was last modified.",
        Property::LastRefreshedDateTime => "When these counts were last refreshed.",
    };
    let other = match view {
        View::Seed => View::Graph,
        View::Graph => View::Seed,
    };
    match property.name(other) {
        other_name if other_name != property.name(view) => {
            format!("{text} The {other} view calls it `{other_name}`.")
        }
        _ => text.to_owned(),
    }
}

/// Describes a page of a listing of `view`.
fn collection_schema(view: View) -> Value {
    json!({
        "type": "object",
        "description": "One page of a listing.",
        "properties": {
            "@odata.context": {
                "type": "string",
                "format": "uri",
                "description": "The context URL; left out when `odata.metadata=none`.",
            },
            "@odata.count": {
                "type": "integer",
                "format": "int64",
                "minimum": 0,
                "description": "The number of entities in the whole result, with \
                                `$count=true`; a string with `IEEE754Compatible=true`.",
            },
            "value": {
                "type": "array",
                "description": "The entities of this page in order, or the rows of a `$apply` \
                                that groups or aggregates.",
                "items": {
                    "anyOf": [
                        component_ref("schemas", entity(view)),
                        component_ref("schemas", GROUPED_ROW),
                    ],
                },
            },
            "@odata.nextLink": {
                "type": "string",
                "format": "uri",
                "description": "The absolute URL of the next page, present while more remain.",
            },
        },
        "required": ["value"],
        "additionalProperties": false,
    })
}

/// Describes a row of a `$apply` result that groups or aggregates, whose members are the
/// grouping properties and the aggregates' aliases.
fn grouped_row_schema() -> Value {
    json!({
        "type": "object",
        "description": "A row of a `$apply` result that groups or aggregates: the grouping \
                        properties under their names and each aggregate under its alias. \
                        Aggregates carry `alias@odata.type` for types that JSON does not show \
                        unless `odata.metadata=none`, and every value does with \
                        `odata.metadata=full`.",
        "properties": {
            "@odata.id": {
                "type": "string",
                "nullable": true,
                "description": "Always null, because a row of a grouped result has no \
                                identity; left out when `odata.metadata=none`.",
            },
        },
        "additionalProperties": true,
    })
}

/// Describes the Graph error body, which every error response carries.
fn error_schema() -> Value {
    json!({
        "type": "object",
        "description": "The Graph error body of every error response.",
        "properties": {
            "error": {
                "type": "object",
                "properties": {
                    "code": {
                        "type": "string",
                        "description": "A stable code such as `BadRequest`.",
                    },
                    "message": {
                        "type": "string",
                        "description": "A sentence that says what failed.",
                    },
                    "innerError": {
                        "type": "object",
                        "properties": {
                            "date": {
                                "type": "string",
                                "format": "date-time",
                                "description": "When the error happened.",
                            },
                            "request-id": {
                                "type": "string",
                                "description": "The id the service gave the request, also \
                                                sent as the `request-id` header.",
                            },
                            "client-request-id": {
                                "type": "string",
                                "description": "The client's `client-request-id`, or the \
                                                request id when it sent no usable one.",
                            },
                        },
                        "required": ["date", "request-id", "client-request-id"],
                        "additionalProperties": false,
                    },
                },
                "required": ["code", "message", "innerError"],
                "additionalProperties": false,
            },
        },
        "required": ["error"],
        "additionalProperties": false,
    })
}

/// Describes the service document at the service root.
fn service_document_schema() -> Value {
    json!({
        "type": "object",
        "description": "The OData service document: the entity set of the seed view and the \
                        singleton that starts the Graph view's path.",
        "properties": {
            "@odata.context": {
                "type": "string",
                "format": "uri",
                "description": "The URL of `$metadata`; left out when `odata.metadata=none`.",
            },
            "value": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "name": { "type": "string" },
                        "kind": { "type": "string", "enum": ["EntitySet", "Singleton"] },
                        "url": {
                            "type": "string",
                            "description": "The URL relative to the service root.",
                        },
                    },
                    "required": ["name", "kind", "url"],
                    "additionalProperties": false,
                },
            },
        },
        "required": ["value"],
        "additionalProperties": false,
    })
}

/// Describes one of the containers on the Graph view's path, whose entity type is
/// `type_name`.
fn container_schema(type_name: &str) -> Value {
    json!({
        "type": "object",
        "description": "A container on the Graph view's path. Its only property is its key, \
                        the caller's partner tenant.",
        "properties": {
            "@odata.context": {
                "type": "string",
                "format": "uri",
                "description": "The context URL; left out when `odata.metadata=none`.",
            },
            "@odata.type": {
                "type": "string",
                "enum": [format!("#{type_name}")],
                "description": "The entity type; left out when `odata.metadata=none`.",
            },
            "id": {
                "type": "string",
                "description": "The partner tenant, the `tid` of the caller's token.",
            },
        },
        "required": ["id"],
        "additionalProperties": false,
    })
}

/// Describes the body of a `$batch` request.
fn batch_request_schema(limits: &HttpLimits) -> Value {
    json!({
        "type": "object",
        "description": format!(
            "Up to {} requests in Graph's JSON batch format. Ids must be unique, compared \
             without regard to case, and a `dependsOn` may name only earlier requests. A \
             malformed batch gets `400` and runs nothing.",
            limits.max_batch_requests
        ),
        "properties": {
            "requests": {
                "type": "array",
                "minItems": 1,
                "maxItems": limits.max_batch_requests,
                "items": {
                    "type": "object",
                    "properties": {
                        "id": {
                            "type": "string",
                            "minLength": 1,
                            "description": "The client's id for the request, unique in the \
                                            batch.",
                        },
                        "method": {
                            "type": "string",
                            "enum": ["GET", "POST", "PATCH", "PUT", "DELETE"],
                            "description": "The method; its case does not matter.",
                        },
                        "url": {
                            "type": "string",
                            "description": "The URL relative to the service root, such as \
                                            `/aggregatedPolicyCompliances?$top=2`. An \
                                            absolute URL, one that starts with the version, \
                                            or a nested `$batch` gets `400`.",
                        },
                        "headers": {
                            "type": "object",
                            "nullable": true,
                            "additionalProperties": { "type": "string" },
                            "description": "The request's own headers. The batch's \
                                            `Authorization` applies unless these give one.",
                        },
                        "body": {
                            "description": "The body: a JSON value for a JSON `Content-Type`, a \
                                            string for a `text/*` one, and base64 for any \
                                            other. A body needs a `Content-Type` header, and \
                                            `GET` and `DELETE` take none.",
                        },
                        "dependsOn": {
                            "type": "array",
                            "nullable": true,
                            "items": { "type": "string" },
                            "description": "Ids of earlier requests that must finish first. \
                                            If one of them fails (status 400 or more), this \
                                            request gets `424` without running.",
                        },
                    },
                    "required": ["id", "method", "url"],
                },
            },
        },
        "required": ["requests"],
    })
}

/// Describes the body of a `$batch` response.
fn batch_response_schema(limits: &HttpLimits) -> Value {
    json!({
        "type": "object",
        "description": "One response per request of the batch, in request order.",
        "properties": {
            "responses": {
                "type": "array",
                "minItems": 1,
                "maxItems": limits.max_batch_requests,
                "items": {
                    "type": "object",
                    "properties": {
                        "id": { "type": "string", "description": "The request's id." },
                        "status": {
                            "type": "integer",
                            "minimum": 100,
                            "maximum": 599,
                            "description": "The status the request would get alone, or `424` \
                                            when a request it depends on failed.",
                        },
                        "headers": {
                            "type": "object",
                            "additionalProperties": { "type": "string" },
                        },
                        "body": {
                            "description": "The response body: JSON as it is, text as a JSON \
                                            string, and any other body as base64url. Left out \
                                            when the response has no body.",
                        },
                    },
                    "required": ["id", "status", "headers"],
                    "additionalProperties": false,
                },
            },
        },
        "required": ["responses"],
        "additionalProperties": false,
    })
}
