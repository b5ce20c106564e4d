//! The paths of the document: each operation with its parameters, request body and responses.
//!
//! Each operation lists every status that Beacon's handlers can return for it. That includes
//! the errors that any request can get: `414` and `431` for the URL and header limits, `429`
//! for the rate limits and `500` for a fault. `503` covers a request timeout, a full connection
//! limit and an unreachable key set. A `GET` has a `HEAD` twin with the same responses and no
//! bodies.

use serde_json::{Value, json};

use super::schemas::{self, RequestBody};
use super::{DOCUMENT_PATH, HttpLimits, SERVICE_TAG, component_ref, object, view_tag};
use crate::csdl::{MANAGED_TENANT_TYPE, TENANT_RELATIONSHIP_TYPE, graph_path_segments};
use crate::filter::MAX_LENGTH as MAX_EXPRESSION_LENGTH;
use crate::model::{Property, View};
use crate::orderby::MAX_ITEMS as MAX_ORDERBY_ITEMS;

/// An error status that operations may return, with the Graph error code its body carries.
struct ErrorStatus {
    status: u16,
    /// The name of its response component.
    name: &'static str,
    /// The `code` of the error body.
    code: &'static str,
    description: &'static str,
    /// Headers the response carries besides the ones every response has.
    headers: &'static [&'static str],
}

/// Every error status that a documented operation can return.
const ERRORS: [ErrorStatus; 16] = [
    ErrorStatus {
        status: 400,
        name: "BadRequest",
        code: "BadRequest",
        description: "The request is invalid: a query option, the body, a header such as \
                      `If-Match`, or a segment of the path. The message names the problem.",
        headers: &[],
    },
    ErrorStatus {
        status: 401,
        name: "Unauthorized",
        code: "InvalidAuthenticationToken",
        description: "The bearer token is missing or invalid; the message names the check that \
                      failed.",
        headers: &["WWW-Authenticate"],
    },
    ErrorStatus {
        status: 403,
        name: "Forbidden",
        code: "Authorization_RequestDenied",
        description: "The token lacks the permission that the operation needs.",
        headers: &[],
    },
    ErrorStatus {
        status: 404,
        name: "NotFound",
        code: "ResourceNotFound",
        description: "No entity with this id exists for the caller's partner tenant.",
        headers: &[],
    },
    ErrorStatus {
        status: 406,
        name: "NotAcceptable",
        code: "NotAcceptable",
        description: "No media range in `Accept` can be served.",
        headers: &[],
    },
    ErrorStatus {
        status: 408,
        name: "RequestTimeout",
        code: "RequestTimeout",
        description: "The client did not send the whole body within the body read timeout.",
        headers: &[],
    },
    ErrorStatus {
        status: 409,
        name: "Conflict",
        code: "Conflict",
        description: "An entity with the id given in the body exists already.",
        headers: &[],
    },
    ErrorStatus {
        status: 412,
        name: "PreconditionFailed",
        code: "PreconditionFailed",
        description: "`If-Match` or `If-None-Match` does not hold for the resource's current \
                      state. A resource without an entity tag, such as a collection, matches \
                      only `*`.",
        headers: &[],
    },
    ErrorStatus {
        status: 413,
        name: "PayloadTooLarge",
        code: "RequestEntityTooLarge",
        description: "The request body is larger than the limit.",
        headers: &[],
    },
    ErrorStatus {
        status: 414,
        name: "UriTooLong",
        code: "RequestUriTooLong",
        description: "The URL (path and query) is longer than the server's limit. Past the \
                      HTTP parser's own, higher limits, the parser answers with a bare `414` or \
                      `431` with no body and none of these headers.",
        headers: &[],
    },
    ErrorStatus {
        status: 415,
        name: "UnsupportedMediaType",
        code: "UnsupportedMediaType",
        description: "The body is not declared as uncompressed `application/json` in UTF-8.",
        headers: &[],
    },
    ErrorStatus {
        status: 429,
        name: "TooManyRequests",
        code: "TooManyRequests",
        description: "The partner tenant, the client or the client's address has used up its \
                      rate limit; retry after `Retry-After` seconds.",
        headers: &["Retry-After"],
    },
    ErrorStatus {
        status: 431,
        name: "RequestHeaderFieldsTooLarge",
        code: "RequestHeaderFieldsTooLarge",
        description: "The request has more header fields, or more header bytes, than the \
                      server's limits. Past the HTTP parser's own, higher limits, the parser \
                      answers with a bare `431` with no body and none of these headers.",
        headers: &[],
    },
    ErrorStatus {
        status: 500,
        name: "InternalServerError",
        code: "InternalServerError",
        description: "A fault inside the service; the server logs the cause.",
        headers: &[],
    },
    ErrorStatus {
        status: 503,
        name: "ServiceUnavailable",
        code: "ServiceUnavailable",
        description: "The request timed out, the store or the identity provider's key set \
                      cannot be reached for now, or the server has reached its connection \
                      limit; retry after `Retry-After` seconds.",
        headers: &["Retry-After"],
    },
    ErrorStatus {
        status: 507,
        name: "InsufficientStorage",
        code: "InsufficientStorage",
        description: "The store has no space left for the change.",
        headers: &[],
    },
];

/// The headers that every response carries.
const COMMON_HEADERS: [&str; 3] = ["request-id", "client-request-id", "OData-Version"];

/// The errors that every operation that needs a token can return. `412` is among them because
/// `If-Match` and `If-None-Match` apply to every resource but the two public documents.
const TOKEN_ERRORS: [u16; 8] = [400, 401, 412, 414, 429, 431, 500, 503];

/// The errors that the operations without a token (`$metadata` and this document) can return.
const PUBLIC_ERRORS: [u16; 7] = [400, 406, 414, 429, 431, 500, 503];

/// Whether an operation needs a bearer token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Access {
    Token,
    Public,
}

/// Whether a response is written with its body or, for `HEAD`, without.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Body {
    Written,
    Omitted,
}

/// Builds every path with its operations.
pub(super) fn paths(limits: &HttpLimits) -> Value {
    let mut paths = vec![
        ("/".to_owned(), read_pair(service_document)),
        ("/$metadata".to_owned(), read_pair(metadata)),
        (format!("/{DOCUMENT_PATH}"), read_pair(openapi_document)),
        ("/$batch".to_owned(), json!({ "post": batch(limits) })),
    ];
    let [singleton, managed_tenants, _] = graph_path_segments();
    paths.push((format!("/{singleton}"), read_pair(|body| container(Container::Singleton, body))));
    paths.push((
        format!("/{singleton}/{managed_tenants}"),
        read_pair(|body| container(Container::ManagedTenants, body)),
    ));

    for view in View::ALL {
        let collection = format!("/{}", view.collection_path());
        let mut item = read_pair(|body| list(view, limits, body));
        item["post"] = create(view);
        paths.push((collection.clone(), item));

        paths.push((format!("{collection}/$count"), read_pair(|body| count(view, body))));

        let mut item = read_pair(|body| get(view, body));
        item["patch"] = update(view, "PATCH");
        item["put"] = update(view, "PUT");
        item["delete"] = delete(view);
        item["parameters"] = json!([component_ref("parameters", "id")]);
        paths.push((format!("{collection}/{{id}}"), item));
    }
    object(paths)
}

/// Builds the `get` and `head` operations of a path from one function, so that the two differ
/// only in their bodies, operation ids and summaries.
fn read_pair(operation: impl Fn(Body) -> Value) -> Value {
    let mut head = operation(Body::Omitted);
    let get = operation(Body::Written);
    head["operationId"] = json!(format!("{}.Head", get["operationId"].as_str().unwrap_or("")));
    head["summary"] =
        json!(format!("{} Headers only, as `HEAD`.", get["summary"].as_str().unwrap_or_default()));
    json!({ "get": get, "head": head })
}

/// Returns the prefix of the operation ids of `view`: its collection path with dots.
fn operation_prefix(view: View) -> String {
    view.collection_path().replace('/', ".")
}

/// The containers on the Graph view's path.
#[derive(Clone, Copy, Debug)]
enum Container {
    Singleton,
    ManagedTenants,
}

/// `GET` on a collection: a page of entities, or of a `$apply` result.
fn list(view: View, limits: &HttpLimits, body: Body) -> Value {
    let responses = responses(
        vec![
            ("200", ok("One page of the result.", &["Preference-Applied"], collection(view), body)),
            ("304", not_modified(false)),
        ],
        Access::Token,
        &[403, 406],
        body,
    );
    json!({
        "operationId": format!("{}.List", operation_prefix(view)),
        "summary": "List entities.",
        "description": format!(
            "Returns the entities of the caller's partner tenant that pass `$filter`, in `id` \
             order unless `$orderby` says otherwise, at most {} a page. `@odata.nextLink` leads \
             to the next page. Rows added while a client pages through are never returned \
             twice, and no row that existed before the first page is skipped, except that a \
             `$apply` that groups pages by position.",
            limits.default_page_size
        ),
        "tags": [view_tag(view)],
        "parameters": [
            parameter("filter"),
            parameter(&format!("select-{view}")),
            parameter(&format!("orderby-{view}")),
            parameter("top"),
            parameter("skip"),
            parameter("count"),
            parameter("apply"),
            parameter("skiptoken"),
            parameter("format"),
            parameter("Prefer-maxpagesize"),
            parameter("client-request-id"),
        ],
        "responses": responses,
    })
}

/// `GET` on a collection's `/$count`.
fn count(view: View, body: Body) -> Value {
    let content = json!({
        "text/plain": {
            "schema": {
                "type": "string",
                "pattern": "^[0-9]+$",
                "description": "The number in decimal digits.",
            },
        },
    });
    let responses = responses(
        vec![
            ("200", ok("The number of entities that pass `$filter`.", &[], content, body)),
            ("304", not_modified(false)),
        ],
        Access::Token,
        &[403],
        body,
    );
    json!({
        "operationId": format!("{}.GetCount", operation_prefix(view)),
        "summary": "Count entities.",
        "description": "Returns the number of the caller's entities that pass `$filter`, as \
                        text. `Accept` is not checked, since the answer is always text.",
        "tags": [view_tag(view)],
        "parameters": [
            parameter("filter"),
            parameter("format"),
            parameter("client-request-id"),
        ],
        "responses": responses,
    })
}

/// `GET` on one entity.
fn get(view: View, body: Body) -> Value {
    let responses = responses(
        vec![
            ("200", ok("The entity.", &["ETag"], entity(view), body)),
            ("304", not_modified(true)),
        ],
        Access::Token,
        &[403, 404, 406],
        body,
    );
    json!({
        "operationId": format!("{}.Get", operation_prefix(view)),
        "summary": "Read one entity.",
        "description": "Returns the entity with its entity tag in `ETag`. `If-None-Match` with \
                        the current tag gives `304`, and `If-Match` without it gives `412`.",
        "tags": [view_tag(view)],
        "parameters": [
            parameter(&format!("select-{view}")),
            parameter("format"),
            parameter("If-Match"),
            parameter("If-None-Match"),
            parameter("client-request-id"),
        ],
        "responses": responses,
    })
}

/// `POST` on a collection.
fn create(view: View) -> Value {
    let responses = responses(
        vec![
            (
                "201",
                ok(
                    "The entity was created; the body is the entity as stored.",
                    &["Location", "ETag", "Preference-Applied"],
                    entity(view),
                    Body::Written,
                ),
            ),
            (
                "204",
                no_content(
                    "The entity was created, and `Prefer: return=minimal` left out the body.",
                    &["Location", "OData-EntityId", "ETag", "Preference-Applied"],
                ),
            ),
        ],
        Access::Token,
        &[403, 406, 408, 409, 413, 415, 507],
        Body::Written,
    );
    json!({
        "operationId": format!("{}.Create", operation_prefix(view)),
        "summary": "Create an entity.",
        "description": "Stores a new entity for the caller's partner tenant. The answer is sent \
                        once the change is durable. `$select` shapes the returned entity.",
        "tags": [view_tag(view)],
        "parameters": [
            parameter(&format!("select-{view}")),
            parameter("format"),
            parameter("Prefer-return"),
            parameter("client-request-id"),
        ],
        "requestBody": request_body(&schemas::request(view, RequestBody::Create), create_example(view)),
        "responses": responses,
    })
}

/// `PATCH` or `PUT` on one entity.
fn update(view: View, method: &str) -> Value {
    let (operation, summary, description, body_kind, example) = match method {
        "PUT" => (
            "Replace",
            "Replace an entity.",
            "Replaces every property of the entity; properties left out become null, which the \
             seed view does not allow. `PUT` never creates an entity.",
            RequestBody::Create,
            create_example(view),
        ),
        _ => (
            "Update",
            "Update an entity.",
            "Changes only the properties given.",
            RequestBody::Update,
            json!({ Property::NumberOfErrorDevices.name(view): 0 }),
        ),
    };
    let responses = responses(
        vec![
            (
                "200",
                ok(
                    "The entity was changed, and `Prefer: return=representation` asked for it.",
                    &["ETag", "Preference-Applied"],
                    entity(view),
                    Body::Written,
                ),
            ),
            ("204", no_content("The entity was changed.", &["ETag", "Preference-Applied"])),
        ],
        Access::Token,
        &[403, 404, 406, 408, 413, 415, 507],
        Body::Written,
    );
    json!({
        "operationId": format!("{}.{operation}", operation_prefix(view)),
        "summary": summary,
        "description": format!(
            "{description} An `id` in the body is ignored. With `If-Match`, the change applies \
             only while the entity's tag matches, and of two requests racing with the same tag \
             exactly one succeeds. The new tag comes back in `ETag`."
        ),
        "tags": [view_tag(view)],
        "parameters": [
            parameter(&format!("select-{view}")),
            parameter("format"),
            parameter("If-Match"),
            parameter("If-None-Match"),
            parameter("Prefer-return"),
            parameter("client-request-id"),
        ],
        "requestBody": request_body(&schemas::request(view, body_kind), example),
        "responses": responses,
    })
}

/// `DELETE` on one entity.
fn delete(view: View) -> Value {
    let responses = responses(
        vec![("204", no_content("The entity was deleted.", &[]))],
        Access::Token,
        &[403, 404, 406, 507],
        Body::Written,
    );
    json!({
        "operationId": format!("{}.Delete", operation_prefix(view)),
        "summary": "Delete an entity.",
        "description": "Deletes the entity; with `If-Match`, only while its tag matches.",
        "tags": [view_tag(view)],
        "parameters": [
            parameter("If-Match"),
            parameter("If-None-Match"),
            parameter("client-request-id"),
        ],
        "responses": responses,
    })
}

/// `GET` on the service root.
fn service_document(body: Body) -> Value {
    let responses = responses(
        vec![
            (
                "200",
                ok(
                    "The service document.",
                    &[],
                    json_content(component_ref("schemas", schemas::SERVICE_DOCUMENT)),
                    body,
                ),
            ),
            ("304", not_modified(false)),
        ],
        Access::Token,
        &[403, 406],
        body,
    );
    json!({
        "operationId": "service.GetServiceDocument",
        "summary": "Read the service document.",
        "description": "Lists the seed view's entity set and the singleton that starts the \
                        Graph view's path.",
        "tags": [SERVICE_TAG],
        "parameters": [parameter("format"), parameter("client-request-id")],
        "responses": responses,
    })
}

/// `GET` on a container of the Graph view's path.
fn container(container: Container, body: Body) -> Value {
    let (type_name, operation_id, summary) = match container {
        Container::Singleton => (
            TENANT_RELATIONSHIP_TYPE,
            "tenantRelationships.Get",
            "Read the tenantRelationships singleton.",
        ),
        Container::ManagedTenants => (
            MANAGED_TENANT_TYPE,
            "tenantRelationships.managedTenants.Get",
            "Read the managedTenants container.",
        ),
    };
    let responses = responses(
        vec![
            (
                "200",
                ok("The container.", &[], json_content(component_ref("schemas", type_name)), body),
            ),
            ("304", not_modified(false)),
        ],
        Access::Token,
        &[403, 406],
        body,
    );
    json!({
        "operationId": operation_id,
        "summary": summary,
        "description": "Returns a container on the Graph view's path. Its only property is its \
                        key, the caller's partner tenant.",
        "tags": [SERVICE_TAG],
        "parameters": [parameter("format"), parameter("client-request-id")],
        "responses": responses,
    })
}

/// `GET $metadata`, which needs no token.
fn metadata(body: Body) -> Value {
    let content = json!({
        "application/xml": {
            "schema": { "description": "The CSDL XML document (OData 4.0)." },
        },
        "application/json": {
            "schema": { "type": "object", "description": "The CSDL JSON document." },
        },
    });
    let responses = responses(
        vec![("200", ok("The metadata document.", &[], content, body))],
        Access::Public,
        &[],
        body,
    );
    json!({
        "operationId": "service.GetMetadata",
        "summary": "Read the metadata document.",
        "description": "Returns the model in CSDL XML, or in CSDL JSON when `$format` or \
                        `Accept` prefers JSON. Needs no token; requests count against the \
                        client address's rate limit.",
        "tags": [SERVICE_TAG],
        "security": [],
        "parameters": [parameter("metadata-format"), parameter("client-request-id")],
        "responses": responses,
    })
}

/// `GET openapi.json`, this document, which needs no token.
fn openapi_document(body: Body) -> Value {
    let content = json!({
        "application/json": {
            "schema": { "type": "object", "description": "An OpenAPI 3.0 document." },
        },
    });
    let responses = responses(
        vec![("200", ok("This document.", &[], content, body))],
        Access::Public,
        &[],
        body,
    );
    json!({
        "operationId": "service.GetOpenApiDocument",
        "summary": "Read this OpenAPI description.",
        "description": "Returns this document. Needs no token; requests count against the \
                        client address's rate limit. `$format` takes only JSON values.",
        "tags": [SERVICE_TAG],
        "security": [],
        "parameters": [parameter("format"), parameter("client-request-id")],
        "responses": responses,
    })
}

/// `POST $batch`.
fn batch(limits: &HttpLimits) -> Value {
    let responses = responses(
        vec![(
            "200",
            ok(
                "One response per request, each with the status, headers and body that the \
                 request would get alone.",
                &[],
                json_content(component_ref("schemas", schemas::BATCH_RESPONSE)),
                Body::Written,
            ),
        )],
        Access::Token,
        &[406, 408, 413, 415],
        Body::Written,
    );
    let example = json!({
        "requests": [
            { "id": "1", "method": "GET", "url": "/aggregatedPolicyCompliances?$top=2" },
            {
                "id": "2",
                "method": "GET",
                "url": "/aggregatedPolicyCompliances/$count",
                "dependsOn": ["1"],
            },
        ],
    });
    json!({
        "operationId": "service.Batch",
        "summary": "Run several requests in one.",
        "description": format!(
            "Runs up to {} requests given in Graph's JSON batch format. Each request carries \
             its own headers and the batch's token unless it gives its own, and gets the \
             permission checks, limits and response it would get alone. Requests without \
             `dependsOn` may run at the same time. The batch counts once against the rate \
             limits and each request inside it once more.",
            limits.max_batch_requests
        ),
        "tags": [SERVICE_TAG],
        "parameters": [parameter("client-request-id")],
        "requestBody": request_body(schemas::BATCH_REQUEST, example),
        "responses": responses,
    })
}

/// Returns a JSON body whose schema is `schema`.
fn json_content(schema: Value) -> Value {
    json!({ "application/json": { "schema": schema } })
}

/// Returns a JSON body of one entity of `view`.
fn entity(view: View) -> Value {
    json_content(component_ref("schemas", schemas::entity(view)))
}

/// Returns a JSON body of a page of a listing of `view`.
fn collection(view: View) -> Value {
    json_content(component_ref("schemas", &schemas::collection(view)))
}

/// Returns a required JSON request body of the schema `schema_name`, with an example.
fn request_body(schema_name: &str, example: Value) -> Value {
    json!({
        "required": true,
        "content": {
            "application/json": {
                "schema": component_ref("schemas", schema_name),
                "example": example,
            },
        },
    })
}

/// Returns the example body of a create through `view`.
fn create_example(view: View) -> Value {
    let members = Property::FIELDS.into_iter().map(|property| {
        let value = match property {
            Property::Id => unreachable!("Property::FIELDS leaves out the key"),
            Property::TenantId => json!("4a3bc0d2-51e2-4c5f-9c61-0d6a4e1f0b7a"),
            Property::TenantDisplayName => json!("Contoso Ltd"),
            Property::CompliancePolicyId => json!("0c4bd1d4-1d3f-4b86-8b93-3f0a5d0e5c21"),
            Property::CompliancePolicyName => json!("Windows 10 baseline"),
            Property::CompliancePolicyType => json!("deviceCompliancePolicy"),
            Property::CompliancePolicyPlatform => json!("windows10AndLater"),
            Property::NumberOfCompliantDevices => json!(120),
            Property::NumberOfNonCompliantDevices => json!(7),
            Property::NumberOfErrorDevices => json!(1),
            Property::PolicyModifiedDateTime => json!("2024-02-12T09:15:00Z"),
            Property::LastRefreshedDateTime => json!("2024-03-01T07:30:00Z"),
        };
        (property.name(view).to_owned(), value)
    });
    object(members)
}

/// Builds the responses of an operation: its own successes, then the errors that every
/// operation of its `access` can return and `extra_errors`, in status order.
fn responses(
    successes: Vec<(&str, Value)>,
    access: Access,
    extra_errors: &[u16],
    body: Body,
) -> Value {
    let mut statuses: Vec<u16> = extra_errors.to_vec();
    match access {
        Access::Token => statuses.extend(TOKEN_ERRORS),
        Access::Public => statuses.extend(PUBLIC_ERRORS),
    }
    statuses.sort_unstable();
    statuses.dedup();

    let mut members: Vec<(String, Value)> =
        successes.into_iter().map(|(status, response)| (status.to_owned(), response)).collect();
    for status in statuses {
        members.push((status.to_string(), error_response(status, body)));
    }
    object(members)
}

/// Returns a success response with `content`, or without it for `HEAD`.
fn ok(description: &str, headers: &[&str], content: Value, body: Body) -> Value {
    let mut response = json!({
        "description": description,
        "headers": response_headers(headers),
    });
    if body == Body::Written {
        response["content"] = content;
    }
    response
}

/// Returns a success response without a body.
fn no_content(description: &str, headers: &[&str]) -> Value {
    json!({ "description": description, "headers": response_headers(headers) })
}

/// Returns the `304` of a read. Only an entity has an entity tag; any other resource gets
/// `304` for `If-None-Match: *`, which matches every existing resource.
fn not_modified(tagged: bool) -> Value {
    if tagged {
        no_content("The entity's current tag is one that `If-None-Match` lists.", &["ETag"])
    } else {
        no_content(
            "`If-None-Match: *` was sent, and the resource exists. A resource without an \
             entity tag matches only `*`.",
            &[],
        )
    }
}

/// Returns an error response: a reference to its component, or for `HEAD` the same response
/// without its body.
fn error_response(status: u16, body: Body) -> Value {
    let error = error_status(status);
    match body {
        Body::Written => component_ref("responses", error.name),
        Body::Omitted => json!({
            "description": error.description,
            "headers": response_headers(error.headers),
        }),
    }
}

fn error_status(status: u16) -> &'static ErrorStatus {
    ERRORS
        .iter()
        .find(|error| error.status == status)
        .unwrap_or_else(|| panic!("no error response is defined for status {status}"))
}

/// Returns the headers of a response: the ones every response has, then `headers`.
fn response_headers(headers: &[&str]) -> Value {
    let names = COMMON_HEADERS.iter().chain(headers);
    object(names.map(|name| ((*name).to_owned(), component_ref("headers", name))))
}

/// Builds the response components, one per error status.
pub(super) fn response_components() -> Value {
    let responses = ERRORS.iter().map(|error| {
        let mut schema = component_ref("schemas", schemas::ERROR);
        // The code of each status is fixed, so the body's schema states it.
        schema = json!({
            "allOf": [schema],
            "properties": {
                "error": {
                    "properties": { "code": { "type": "string", "enum": [error.code] } },
                },
            },
        });
        let response = json!({
            "description": error.description,
            "headers": response_headers(error.headers),
            "content": json_content(schema),
        });
        (error.name.to_owned(), response)
    });
    object(responses)
}

/// Returns each error status that the document describes with the Graph error code its body
/// states, so that the HTTP layer's tests can compare them with its own mapping.
pub fn error_codes() -> Vec<(u16, &'static str)> {
    ERRORS.iter().map(|error| (error.status, error.code)).collect()
}

/// Builds the header components.
pub(super) fn header_components() -> Value {
    json!({
        "request-id": {
            "description": "The id the service gave the request; error bodies repeat it.",
            "required": true,
            "schema": { "type": "string" },
        },
        "client-request-id": {
            "description": "The request's `client-request-id` if it sent a usable one \
                            (printable ASCII, at most 256 bytes), else the request id.",
            "required": true,
            "schema": { "type": "string" },
        },
        "OData-Version": {
            "description": "The OData version of the response.",
            "required": true,
            "schema": { "type": "string", "enum": ["4.0"] },
        },
        "ETag": {
            "description": "The entity's weak entity tag, for `If-Match` and `If-None-Match`.",
            "required": true,
            "schema": { "type": "string", "pattern": "^W/\"-?[0-9]+\"$" },
        },
        "Location": {
            "description": "The URL of the new entity.",
            "required": true,
            "schema": { "type": "string", "format": "uri" },
        },
        "OData-EntityId": {
            "description": "The URL of the new entity.",
            "required": true,
            "schema": { "type": "string", "format": "uri" },
        },
        "Preference-Applied": {
            "description": "The preference of `Prefer` that was applied, such as \
                            `return=minimal` or `odata.maxpagesize=50`.",
            "schema": { "type": "string" },
        },
        "Retry-After": {
            "description": "The whole seconds to wait before retrying.",
            "required": true,
            "schema": { "type": "integer", "minimum": 1 },
        },
        "WWW-Authenticate": {
            "description": "The authentication scheme to use.",
            "required": true,
            "schema": { "type": "string", "enum": ["Bearer"] },
        },
    })
}

/// The value of `If-Match` and `If-None-Match`: `*`, or a comma-separated list of entity tags
/// `[W/]"opaque"`, as RFC 9110 defines them. Beacon also takes bytes above 0x7F between the
/// quotes, which this ASCII pattern leaves out.
const ENTITY_TAGS_PATTERN: &str =
    "^[ \\t,]*(?:\\*|(?:W/)?\"[!#-~]*\"(?:[ \\t]*,[ \\t,]*(?:W/)?\"[!#-~]*\")*)[ \\t,]*$";

/// Returns a reference to the parameter component `name`.
fn parameter(name: &str) -> Value {
    component_ref("parameters", name)
}

/// Builds the parameter components.
pub(super) fn parameter_components() -> Value {
    let mut parameters = vec![
        (
            "id".to_owned(),
            json!({
                "name": "id",
                "in": "path",
                "required": true,
                "description": "The entity's key, percent-encoded as one path segment. An id \
                                that starts with `$`, or is `.` or `..`, can be addressed only \
                                as `collection('{id}')`, which this description leaves out.",
                "schema": {
                    "type": "string",
                    // Not empty, not starting with `$`, and neither `.` nor `..`.
                    "pattern": "^(?:[^$.]|\\.[^.]|\\.\\.[\\s\\S])[\\s\\S]*$",
                },
            }),
        ),
        (
            "filter".to_owned(),
            json!({
                "name": "$filter",
                "in": "query",
                "description": format!(
                    "A condition in OData's expression language that entities must meet, with \
                     OData's null rules; at most {MAX_EXPRESSION_LENGTH} characters."
                ),
                "schema": { "type": "string", "maxLength": MAX_EXPRESSION_LENGTH },
                "example": "numberOfNonCompliantDevices gt 0 and \
                            startswith(compliancePolicyPlatform,'windows')",
            }),
        ),
        (
            "apply".to_owned(),
            json!({
                "name": "$apply",
                "in": "query",
                "description": format!(
                    "A sequence of Data Aggregation transformations separated by `/`: \
                     aggregate, groupby (without rollup), filter, orderby, top, skip, topcount, \
                     bottomcount and identity; at most {MAX_EXPRESSION_LENGTH} characters. The \
                     other options apply to its result."
                ),
                "schema": { "type": "string", "maxLength": MAX_EXPRESSION_LENGTH },
                // The other options' examples must apply to this one's result, so it keeps
                // the entity type.
                "example": "topcount(5,numberOfNonCompliantDevices)",
            }),
        ),
        (
            "top".to_owned(),
            json!({
                "name": "$top",
                "in": "query",
                "description": "The maximum number of entities in the whole result.",
                "schema": { "type": "integer", "minimum": 0, "maximum": u64::MAX },
            }),
        ),
        (
            "skip".to_owned(),
            json!({
                "name": "$skip",
                "in": "query",
                "description": "How many entities of the result to leave out first.",
                "schema": { "type": "integer", "minimum": 0, "maximum": u64::MAX },
            }),
        ),
        (
            "count".to_owned(),
            json!({
                "name": "$count",
                "in": "query",
                "description": "With `true`, the response gives the size of the whole result \
                                in `@odata.count`.",
                "schema": { "type": "boolean" },
            }),
        ),
        (
            "skiptoken".to_owned(),
            json!({
                "name": "$skiptoken",
                "in": "query",
                "description": "The position that the previous page ended at. Take it from \
                                `@odata.nextLink` with the other options unchanged; a token \
                                made for another query, or altered, gets `400`.",
                "schema": { "type": "string" },
            }),
        ),
        (
            "format".to_owned(),
            json!({
                "name": "$format",
                "in": "query",
                "description": "The response format, which takes precedence over `Accept`. \
                                `IEEE754Compatible=true` may be added to the media type, and \
                                then Int64 values are returned as strings.",
                "schema": {
                    "type": "string",
                    "enum": [
                        "json",
                        "application/json",
                        "application/json;odata.metadata=minimal",
                        "application/json;odata.metadata=none",
                        "application/json;odata.metadata=full",
                    ],
                },
            }),
        ),
        (
            "metadata-format".to_owned(),
            json!({
                "name": "$format",
                "in": "query",
                "description": "The format of the metadata document, which takes precedence \
                                over `Accept`: CSDL XML or CSDL JSON.",
                "schema": {
                    "type": "string",
                    "enum": ["xml", "application/xml", "json", "application/json"],
                },
            }),
        ),
        (
            "If-Match".to_owned(),
            json!({
                "name": "If-Match",
                "in": "header",
                "description": "`*` or a comma-separated list of entity tags such as \
                                `W/\"42\"`: the request applies only while the entity's tag \
                                is listed, else it gets `412`. Tags compare weakly.",
                "schema": { "type": "string", "pattern": ENTITY_TAGS_PATTERN },
            }),
        ),
        (
            "If-None-Match".to_owned(),
            json!({
                "name": "If-None-Match",
                "in": "header",
                "description": "`*` or a comma-separated list of entity tags: the request \
                                applies only while the entity's tag is not listed. A read then \
                                gets `304`, and a change `412`.",
                "schema": { "type": "string", "pattern": ENTITY_TAGS_PATTERN },
            }),
        ),
        (
            "Prefer-maxpagesize".to_owned(),
            json!({
                "name": "Prefer",
                "in": "header",
                "description": "`odata.maxpagesize=N` sets the page size, up to the server's \
                                maximum; `Preference-Applied` confirms the size used. Other \
                                preferences are ignored.",
                "schema": { "type": "string" },
                "example": "odata.maxpagesize=50",
            }),
        ),
        (
            "Prefer-return".to_owned(),
            json!({
                "name": "Prefer",
                "in": "header",
                "description": "`return=minimal` or `return=representation` chooses whether \
                                a write returns the entity; `Preference-Applied` confirms it. \
                                Other preferences are ignored.",
                "schema": { "type": "string" },
                "example": "return=minimal",
            }),
        ),
        (
            "client-request-id".to_owned(),
            json!({
                "name": "client-request-id",
                "in": "header",
                "description": "The client's id for the request, echoed in the \
                                `client-request-id` header and in error bodies when it is \
                                printable ASCII of at most 256 bytes.",
                "schema": { "type": "string" },
            }),
        ),
    ];

    for view in View::ALL {
        parameters.push((format!("select-{view}"), select_parameter(view)));
        parameters.push((format!("orderby-{view}"), orderby_parameter(view)));
    }
    object(parameters)
}

/// Returns a regular expression that matches one property name of `view`.
fn property_name_pattern(view: View) -> String {
    let names: Vec<&str> = Property::ALL.iter().map(|property| property.name(view)).collect();
    format!("(?:{})", names.join("|"))
}

/// Describes `$select` on `view`: a comma-separated list of its property names and `*`, each
/// with optional spaces and tabs around it, as the parser skips them.
fn select_parameter(view: View) -> Value {
    let item = format!("[ \\t]*(?:\\*|{})[ \\t]*", property_name_pattern(view));
    json!({
        "name": "$select",
        "in": "query",
        "description": format!(
            "The properties to return, comma-separated, at most {MAX_EXPRESSION_LENGTH} \
             characters; `id` is always returned. After a `$apply` that groups, it names the \
             result's columns instead, which the pattern here leaves out."
        ),
        "schema": {
            "type": "string",
            "maxLength": MAX_EXPRESSION_LENGTH,
            "pattern": format!("^{item}(?:,{item})*$"),
        },
        "example": format!(
            "{},{}",
            Property::TenantDisplayName.name(view),
            Property::NumberOfNonCompliantDevices.name(view)
        ),
    })
}

/// Describes `$orderby` on `view`. The schema has no pattern, because a sort key may be any
/// expression, such as `tolower(compliancePolicyName)`, which no regular expression describes.
fn orderby_parameter(view: View) -> Value {
    json!({
        "name": "$orderby",
        "in": "query",
        "description": format!(
            "Up to {MAX_ORDERBY_ITEMS} sort keys, comma-separated, at most \
             {MAX_EXPRESSION_LENGTH} characters. Each key is a property or an expression, \
             followed by `asc` (the default) or `desc`. Entities that tie on every key come in \
             `id` order."
        ),
        "schema": { "type": "string", "maxLength": MAX_EXPRESSION_LENGTH },
        "example": format!("{} desc", Property::NumberOfNonCompliantDevices.name(view)),
    })
}
