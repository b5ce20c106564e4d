//! The OData and Microsoft Graph vocabulary that Beacon speaks, with no I/O.
//!
//! Everything here is pure: it turns request text into typed values and typed values into
//! response text, so the storage and HTTP layers never interpret OData themselves.
//!
//! # Layout
//!
//! - [`model`]: the `aggregatedPolicyCompliance` entity type, its properties with their EDM
//!   types, and the two views (the older seed names and Graph's shipped names) that expose it.
//! - [`datetime`]: the `Edm.DateTimeOffset` value, exact to 100 nanoseconds, with its text form.
//! - [`json`]: strict JSON parsing that rejects duplicate keys and keeps integers exact.
//! - [`body`]: the rules that turn a request body into validated property values.
//! - [`entity`]: an entity's values and how a view writes them as an OData JSON response.
//! - [`etag`]: entity tags, and the `If-Match` and `If-None-Match` preconditions.
//! - [`error`]: the Graph error body `{"error":{"code","message","innerError"}}`.
//! - [`media`]: `Content-Type` and `Accept` parsing, including the `IEEE754Compatible` parameter.
//! - [`path`]: the resource path of a request URL, such as a collection or one entity by key.
//! - [`query`]: the system query options of a request URL.
//! - [`filter`]: the `$filter` expression language, parsed into an unbound syntax tree.
//! - [`bind`]: names resolved against a view and types checked, ready to compile to SQL.
//! - [`orderby`]: the `$orderby` option, a list of expressions each sorted up or down.
//! - [`select`]: the `$select` option, the property paths a response includes.
//! - [`apply`]: the `$apply` option of Data Aggregation, a sequence of transformations.
//! - [`csdl`]: the `$metadata` document in CSDL XML and CSDL JSON, written from [`model`].
//! - [`openapi`]: the OpenAPI description of the API, written from [`model`] as well.

pub mod apply;
pub mod bind;
pub mod body;
pub mod csdl;
pub mod datetime;
pub mod entity;
pub mod error;
pub mod etag;
pub mod filter;
pub mod json;
pub mod media;
pub mod model;
pub mod openapi;
pub mod orderby;
pub mod path;
pub mod query;
pub mod select;
