//! Request handling: resolve the OData resource path, check the caller, run the operation.
//!
//! One fallback handler serves the whole `/beta` tree because OData paths do not fit a route
//! table: a key may be its own segment or sit in parentheses, segment names compare
//! case-insensitively, and unknown segments must be named in the error.

use std::any::Any;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use beacon_odata::bind;
use beacon_odata::bind::apply::Plan;
use beacon_odata::bind::{Comparison, Node, Type, Typed};
use beacon_odata::entity::{CollectionDocument, EntityDocument, StoredEntity, WriteOptions};
use beacon_odata::etag;
use beacon_odata::media::{self, FormatOption, JsonFormat};
use beacon_odata::model::Property;
use beacon_odata::model::View;
use beacon_odata::path::{self, Resource, SERVICE_VERSION};
use beacon_odata::query::{self, Target};
use beacon_store::{ApplyQuery, ApplyRows, Cursor, ListQuery, OrderKey};
use http_body_util::{LengthLimitError, Limited};

use crate::auth::{Principal, READ_PERMISSION, READ_WRITE_PERMISSION};
use crate::context::JSON_CONTENT_TYPE;
use crate::error::ApiError;
use crate::grouped::GroupedDocument;
use crate::monitoring::{self, Route};
use crate::paging::{self, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, Position};
use crate::{AppState, MAX_BODY_BYTES, documents, rate_limit, writes};

/// `GET /healthz`: whether the process is up. Needs no token.
pub(crate) async fn healthz() -> Response {
    monitoring::set_route(Route::Healthz);
    ([(header::CONTENT_TYPE, "application/json")], r#"{"status":"ok"}"#).into_response()
}

/// Turns a panic in a handler into a plain `500`, which the request-context middleware gives
/// the Graph error shape.
pub(crate) fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    tracing::error!(panic.message = %message, "request handler panicked");
    StatusCode::INTERNAL_SERVER_ERROR.into_response()
}

/// Serves every path that no fixed route matches, and names its route for the metrics.
pub(crate) async fn dispatch(State(state): State<AppState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let outcome = match resolve(&state, &parts) {
        Ok(resource) => {
            monitoring::set_route(Route::of(&resource));
            run(&state, parts, body, resource).await
        }
        Err(error) => Err(error),
    };
    outcome.unwrap_or_else(IntoResponse::into_response)
}

/// Per-request values that every operation handler uses.
pub(crate) struct Call {
    pub principal: Principal,
    /// `scheme://authority/beta`, the prefix of every absolute URL in the response.
    pub service_root: String,
    pub write_options: WriteOptions,
    /// The request's query options, parsed for what the request addresses.
    pub options: query::QueryOptions,
}

/// Returns the methods a resource takes, as the `Allow` header lists them.
fn allowed_methods(resource: &Resource) -> &'static str {
    match resource {
        Resource::Collection(_) => "GET, HEAD, POST",
        Resource::Entity(..) => "GET, HEAD, PATCH, PUT, DELETE",
        Resource::Count(_)
        | Resource::ServiceRoot
        | Resource::Metadata
        | Resource::OpenApi
        | Resource::Container(_) => "GET, HEAD",
        Resource::Batch => "POST",
    }
}

/// Runs one request: resolves its path, checks its method and token, and runs the operation.
/// `$batch` runs each request inside a batch through here as well.
pub(crate) async fn route(state: &AppState, request: Request) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    let resource = resolve(state, &parts)?;
    run(state, parts, body, resource).await
}

/// Returns the error of a request that failed before its token was verified. Such a request
/// counts against its client address, and gets `429` in place of its error once that bucket
/// is empty, which throttles an address that guesses tokens.
fn unverified(state: &AppState, parts: &Parts, error: ApiError) -> ApiError {
    let address = rate_limit::peer_address(&parts.extensions);
    match state.rate_limiter.charge_address(address) {
        Ok(()) => error,
        Err(limited) => limited,
    }
}

/// Resolves the resource that a request's path addresses, before anything else is read.
fn resolve(state: &AppState, parts: &Parts) -> Result<Resource, ApiError> {
    path::parse(parts.uri.path()).map_err(|error| unverified(state, parts, error.into()))
}

/// Runs a request whose path resolved to `resource`: checks its method and token, and runs
/// the operation.
async fn run(
    state: &AppState,
    parts: Parts,
    body: Body,
    resource: Resource,
) -> Result<Response, ApiError> {
    let limiter = &state.rate_limiter;
    let address = rate_limit::peer_address(&parts.extensions);

    // Check the method before anything else is read.
    let allow = allowed_methods(&resource);
    if !allow.split(", ").any(|method| method == parts.method.as_str()) {
        let method = parts.method.to_string();
        return Err(unverified(state, &parts, ApiError::MethodNotAllowed { method, allow }));
    }
    let is_read = parts.method == Method::GET || parts.method == Method::HEAD;

    // The metadata document describes the service to anyone, as Graph's does, and so does
    // the OpenAPI description.
    if matches!(resource, Resource::Metadata | Resource::OpenApi) {
        limiter.charge_address(address)?;
        let options = query::parse(parts.uri.query(), Target::Document)?;
        return match resource {
            Resource::OpenApi => documents::openapi(&parts, &options),
            _ => documents::metadata(&parts, &options),
        };
    }

    // Then the caller, the query options, and what the caller accepts.
    let principal = authenticate(state, &parts.headers)
        .await
        .map_err(|error| unverified(state, &parts, error))?;
    limiter.charge_caller(&principal.partner, principal.client.clone(), address)?;
    let target = match resource {
        Resource::Collection(_) if is_read => Target::Collection,
        Resource::Entity(..) if is_read => Target::Entity,
        Resource::Collection(_) | Resource::Entity(..) => Target::Change,
        Resource::Count(_) => Target::Count,
        Resource::ServiceRoot | Resource::Metadata | Resource::OpenApi | Resource::Batch => {
            Target::Document
        }
        Resource::Container(_) => Target::Document,
    };
    let options = query::parse(parts.uri.query(), target)?;

    // A resource other than an entity has no entity tag, so only `*` matches it; entities
    // evaluate their conditions against their version.
    if !matches!(resource, Resource::Entity(..)) {
        let precondition = writes::precondition(&parts.headers)?;
        if !precondition.allows_untagged() {
            if is_read && precondition.if_match.is_none() {
                return Ok(StatusCode::NOT_MODIFIED.into_response());
            }
            return Err(writes::untagged_precondition_failed(&precondition));
        }
    }
    let format = match (&resource, options.format) {
        // The bare number of /$count is text, so only JSON responses negotiate JSON.
        (Resource::Count(_), _) => JsonFormat::default(),
        (_, Some(FormatOption::Json(format))) => format,
        _ => media::negotiate_json(header_text(&parts.headers, header::ACCEPT)?)?,
    };
    let call = Call {
        principal,
        service_root: format!("{}/{SERVICE_VERSION}", public_base(state, &parts)?),
        write_options: WriteOptions { format, ..WriteOptions::default() },
        options,
    };

    match resource {
        Resource::Collection(view) if is_read => list(state, &call, &parts, view).await,
        Resource::Collection(view) => writes::create(state, &call, &parts, body, view).await,
        Resource::Entity(view, id) if is_read => get(state, &call, &parts, view, &id).await,
        Resource::Entity(view, id) if parts.method == Method::DELETE => {
            writes::delete(state, &call, &parts, view, &id).await
        }
        Resource::Entity(view, id) => writes::update(state, &call, &parts, body, view, &id).await,
        Resource::Count(view) => count(state, &call, view).await,
        Resource::ServiceRoot => documents::service(&call),
        Resource::Container(container) => documents::container(&call, container),
        Resource::Metadata => documents::metadata(&parts, &call.options),
        Resource::OpenApi => documents::openapi(&parts, &call.options),
        // Each request of a batch gets its own checks when it runs.
        Resource::Batch => crate::batch::run(state, &parts, body).await,
    }
}

/// Checks that a request body is declared as uncompressed JSON, and returns whether its
/// `Content-Type` carries `IEEE754Compatible=true`.
pub(crate) fn check_json_body_headers(headers: &HeaderMap) -> Result<bool, ApiError> {
    if let Some(encoding) = header_text(headers, header::CONTENT_ENCODING)?
        && !encoding.trim().eq_ignore_ascii_case("identity")
    {
        return Err(ApiError::UnsupportedMediaType(format!(
            "The Content-Encoding '{encoding}' is not supported; send the body uncompressed."
        )));
    }
    if headers.get_all(header::CONTENT_TYPE).iter().count() > 1 {
        return Err(ApiError::BadRequest(
            "The request has more than one Content-Type header.".to_owned(),
        ));
    }
    let content_type = match headers.get(header::CONTENT_TYPE).map(|v| v.to_str()) {
        None => None,
        Some(Ok(text)) => Some(text),
        Some(Err(_)) => {
            return Err(ApiError::UnsupportedMediaType(
                "The Content-Type is not supported; send the body as 'application/json'."
                    .to_owned(),
            ));
        }
    };
    Ok(media::check_json_content_type(content_type)?)
}

/// `GET` on one entity, with the conditions of `If-Match` and `If-None-Match`.
async fn get(
    state: &AppState,
    call: &Call,
    parts: &Parts,
    view: View,
    id: &str,
) -> Result<Response, ApiError> {
    require_read(&call.principal)?;
    let bound = call.options.bind(view, bind::now_ticks())?;
    let precondition = writes::precondition(&parts.headers)?;

    let Some(stored) = state.store.get(&call.principal.partner, id).await? else {
        return Err(writes::not_found(id));
    };

    // A failed If-Match wins over If-None-Match, as RFC 9110 orders them.
    if precondition.if_match.as_ref().is_some_and(|tags| !tags.contains(stored.version)) {
        return Err(writes::precondition_failed(&precondition));
    }
    if precondition.if_none_match.as_ref().is_some_and(|tags| tags.contains(stored.version)) {
        let mut response = StatusCode::NOT_MODIFIED.into_response();
        insert_etag(&mut response, stored.version);
        return Ok(response);
    }

    let options = WriteOptions { selection: bound.selection, ..call.write_options };
    let projection = projection(&bound.selected_names);
    entity_response(StatusCode::OK, call, options, view, &stored, &projection)
}

/// Builds a single-entity response in the view's names, with its `ETag`.
pub(crate) fn entity_response(
    status: StatusCode,
    call: &Call,
    options: WriteOptions,
    view: View,
    stored: &StoredEntity,
    projection: &str,
) -> Result<Response, ApiError> {
    let context =
        format!("{}/$metadata#{}{projection}/$entity", call.service_root, view.collection_path());
    let document = EntityDocument {
        context: &context,
        service_root: &call.service_root,
        view,
        entity: stored,
        options,
    };
    let mut response = json_response(status, &document, options.format)?;
    insert_etag(&mut response, stored.version);
    Ok(response)
}

/// Sets the `ETag` header of a single-entity response.
pub(crate) fn insert_etag(response: &mut Response, version: i64) {
    if let Ok(value) = HeaderValue::from_str(&etag::format(version)) {
        response.headers_mut().insert(header::ETAG, value);
    }
}

/// `GET` on a collection: one page of the query's result, with a next link when more remain.
async fn list(
    state: &AppState,
    call: &Call,
    parts: &Parts,
    view: View,
) -> Result<Response, ApiError> {
    require_read(&call.principal)?;
    let options = &call.options;
    let mut bound = options.bind(view, bind::now_ticks())?;

    // A $apply that only filters is a filter, and pages by key like any listing.
    if let Some(plan) = bound.plan.take() {
        match plan.into_filter() {
            Ok(Some(condition)) => {
                bound.filter = Some(match bound.filter.take() {
                    Some(filter) => bind::and(condition, filter),
                    None => condition,
                });
            }
            Ok(None) => {}
            Err(plan) => {
                return list_applied(state, call, parts, view, options, bound, plan).await;
            }
        }
    }
    let partner = &call.principal.partner;

    // A skiptoken resumes where the previous page ended; only the first page applies $skip.
    let scope = query_scope(partner.as_str(), view, options);
    let mut position = match options.skiptoken.as_deref() {
        Some(token) => Some(state.skiptoken_key.decode(token, &scope, bound.order.len())?),
        None => None,
    };
    let order = order_keys(&bound);
    if let Some(position) = &mut position
        && position.cursor.keys.len() != order.len()
    {
        position.cursor = read_cursor(state, partner, &order, &position.cursor.id).await?;
    }
    let served = position.as_ref().map_or(0, |p| p.served);
    let offset = if position.is_some() { 0 } else { options.skip.unwrap_or(0) };

    let page = PageSize::of(parts, options.top, served);
    let limit = page.limit;

    let count = match options.count {
        true => Some(state.store.count(partner, bound.filter.clone()).await?),
        false => None,
    };

    // Read one row past the page to learn whether another page follows.
    let mut rows = if limit == 0 {
        Vec::new()
    } else {
        let query = ListQuery {
            filter: bound.filter.clone(),
            order,
            after: position.map(|p| p.cursor),
            offset,
            limit: limit + 1,
        };
        state.store.list(partner, query).await?
    };
    let more = rows.len() > limit;
    rows.truncate(limit);

    let collection_url = format!("{}/{}", call.service_root, view.collection_path());
    let served = served + rows.len() as u64;
    let top_left = options.top.is_none_or(|top| top > served);
    let next_link = match rows.last() {
        Some(last) if more && top_left => {
            let position = Position { cursor: last.cursor.clone(), served };
            let token = state.skiptoken_key.encode(&position, &scope);
            Some(paging::next_link(&collection_url, &options.pairs, &token))
        }
        _ => None,
    };

    let entities: Vec<StoredEntity> = rows.into_iter().map(|row| row.stored).collect();
    let response = entity_page(call, view, &bound, &entities, count, next_link.as_deref())?;
    Ok(page.confirm(response))
}

/// Returns the `$orderby` keys of a bound query as the store takes them.
fn order_keys(bound: &query::BoundQuery) -> Vec<OrderKey> {
    let keys = bound.order.iter();
    keys.map(|(expr, descending)| OrderKey { expr: expr.clone(), descending: *descending })
        .collect()
}

/// Writes a page of entities with the selection, count and next link of a listing.
fn entity_page(
    call: &Call,
    view: View,
    bound: &query::BoundQuery,
    entities: &[StoredEntity],
    count: Option<u64>,
    next_link: Option<&str>,
) -> Result<Response, ApiError> {
    let context = format!(
        "{}/$metadata#{}{}",
        call.service_root,
        view.collection_path(),
        projection(&bound.selected_names)
    );
    let options = WriteOptions { selection: bound.selection, ..call.write_options };
    let document = CollectionDocument {
        context: &context,
        service_root: &call.service_root,
        view,
        entities,
        count,
        next_link,
        options,
    };
    json_response(StatusCode::OK, &document, options.format)
}

/// Reads the order-key values of the row `id`, for a skiptoken that was too long to carry
/// them.
async fn read_cursor(
    state: &AppState,
    partner: &beacon_store::PartnerTenantId,
    order: &[OrderKey],
    id: &str,
) -> Result<Cursor, ApiError> {
    let is_row = Typed {
        node: Node::Compare {
            op: Comparison::Eq,
            left: Box::new(Typed { node: Node::Property(Property::Id), ty: Type::String }),
            right: Box::new(Typed { node: Node::String(id.to_owned()), ty: Type::String }),
        },
        ty: Type::Boolean,
    };
    let query =
        ListQuery { filter: Some(is_row), order: order.to_vec(), limit: 1, ..Default::default() };
    match state.store.list(partner, query).await?.pop() {
        Some(row) => Ok(row.cursor),
        None => Err(ApiError::BadRequest(
            "The row that the previous page ended at no longer exists, so this $skiptoken \
             cannot resume; start again from the first page."
                .to_owned(),
        )),
    }
}

/// `GET` on a collection with `$apply`: a page of the plan's result. Pages are counted by
/// position, since a grouped row has no key to resume after.
async fn list_applied(
    state: &AppState,
    call: &Call,
    parts: &Parts,
    view: View,
    options: &query::QueryOptions,
    bound: query::BoundQuery,
    plan: Plan,
) -> Result<Response, ApiError> {
    let partner = &call.principal.partner;
    let scope = query_scope(partner.as_str(), view, options);
    let served = match options.skiptoken.as_deref() {
        Some(token) => state.skiptoken_key.decode(token, &scope, 0)?.served,
        None => 0,
    };
    let page = PageSize::of(parts, options.top, served);
    let limit = page.limit;

    let count = match options.count {
        true => Some(state.store.apply_count(partner, plan.clone(), bound.filter.clone()).await?),
        false => None,
    };
    let order = order_keys(&bound);
    let columns = plan.columns.clone();
    let query = ApplyQuery {
        plan,
        filter: bound.filter.clone(),
        order,
        offset: options.skip.unwrap_or(0).saturating_add(served),
        limit: limit + 1,
    };
    let rows = match limit {
        0 => ApplyRows::Rows(Vec::new()),
        _ => state.store.apply(partner, query).await?,
    };

    // The next link records how many rows were served.
    let length = match &rows {
        ApplyRows::Entities(rows) => rows.len(),
        ApplyRows::Rows(rows) => rows.len(),
    };
    let more = length > limit;
    let served = served + length.min(limit) as u64;
    let collection_url = format!("{}/{}", call.service_root, view.collection_path());
    let next_link = (more && options.top.is_none_or(|top| top > served)).then(|| {
        let position = Position { cursor: Cursor { keys: Vec::new(), id: String::new() }, served };
        let token = state.skiptoken_key.encode(&position, &scope);
        paging::next_link(&collection_url, &options.pairs, &token)
    });

    let response = match (rows, columns) {
        (ApplyRows::Rows(mut rows), Some(columns)) => {
            rows.truncate(limit);
            let selected: Vec<usize> =
                bound.selected_columns.clone().unwrap_or_else(|| (0..columns.len()).collect());
            let names: Vec<&str> =
                selected.iter().map(|&i| columns[i].column.name.as_str()).collect();
            let context = format!(
                "{}/$metadata#{}({})",
                call.service_root,
                view.collection_path(),
                names.join(",")
            );
            let document = GroupedDocument {
                context: &context,
                count,
                columns: &columns,
                selected: &selected,
                rows: &rows,
                next_link: next_link.as_deref(),
                format: call.write_options.format,
            };
            json_response(StatusCode::OK, &document, call.write_options.format)?
        }
        (rows, _) => {
            let mut entities: Vec<StoredEntity> = match rows {
                ApplyRows::Entities(rows) => rows,
                ApplyRows::Rows(_) => Vec::new(),
            };
            entities.truncate(limit);
            entity_page(call, view, &bound, &entities, count, next_link.as_deref())?
        }
    };
    Ok(page.confirm(response))
}

/// The page size of a collection request.
struct PageSize {
    /// The size `Prefer: odata.maxpagesize` requests, if it does.
    preferred: Option<usize>,
    /// The size applied: the preferred one up to [`MAX_PAGE_SIZE`], else [`DEFAULT_PAGE_SIZE`].
    size: usize,
    /// How many rows this page may hold: the size, or less where `$top` leaves less.
    limit: usize,
}

impl PageSize {
    /// Works out the page size of a request whose earlier pages served `served` rows.
    fn of(parts: &Parts, top: Option<u64>, served: u64) -> PageSize {
        let preferred = paging::preferred_page_size(&parts.headers);
        let size = preferred.unwrap_or(DEFAULT_PAGE_SIZE).min(MAX_PAGE_SIZE);
        let remaining = top.map(|top| top.saturating_sub(served));
        let limit =
            remaining.map_or(size, |left| size.min(usize::try_from(left).unwrap_or(usize::MAX)));
        PageSize { preferred, size, limit }
    }

    /// Adds `Preference-Applied` to a response when the client stated a preference.
    fn confirm(&self, mut response: Response) -> Response {
        if self.preferred.is_some()
            && let Ok(value) = HeaderValue::from_str(&format!("odata.maxpagesize={}", self.size))
        {
            response.headers_mut().insert("preference-applied", value);
        }
        response
    }
}

/// `GET` on a collection's `/$count`: the number of entities that pass `$filter`, as text.
async fn count(state: &AppState, call: &Call, view: View) -> Result<Response, ApiError> {
    require_read(&call.principal)?;
    let bound = call.options.bind(view, bind::now_ticks())?;
    let count = state.store.count(&call.principal.partner, bound.filter).await?;
    Ok(([(header::CONTENT_TYPE, "text/plain;charset=utf-8")], count.to_string()).into_response())
}

/// Writes the part of `@odata.context` that names the selected properties, such as `(id,tenantId)`.
pub(crate) fn projection(names: &Option<Vec<&'static str>>) -> String {
    match names {
        Some(names) => {
            let mut all = vec!["id"];
            all.extend(names.iter().copied().filter(|name| *name != "id"));
            format!("({})", all.join(","))
        }
        None => String::new(),
    }
}

/// Writes the scope a skiptoken is bound to: the partner, the view and every option that shapes the
/// result, so that a token taken to another query is refused.
fn query_scope(partner: &str, view: View, options: &query::QueryOptions) -> String {
    format!(
        "{partner}\n{view}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}",
        options.apply, options.filter, options.orderby, options.select, options.top, options.skip
    )
}

/// Verifies the bearer token of a request.
async fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<Principal, ApiError> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        let message = if headers.contains_key(header::AUTHORIZATION) {
            "The request has more than one Authorization header."
        } else {
            "The access token is missing; send it as 'Authorization: Bearer <token>'."
        };
        return Err(ApiError::InvalidToken(message.to_owned()));
    };

    let Ok(text) = value.to_str().map(str::trim) else {
        return Err(ApiError::InvalidToken(
            "The Authorization header contains characters that are not allowed in a token."
                .to_owned(),
        ));
    };
    let (scheme, token) = text.split_once(' ').unwrap_or((text, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(ApiError::InvalidToken(
            "The Authorization header must use the Bearer scheme: 'Authorization: Bearer <token>'."
                .to_owned(),
        ));
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(ApiError::InvalidToken("The access token is empty.".to_owned()));
    }
    Ok(state.verifier.authenticate(token).await?)
}

pub(crate) fn require_read(principal: &Principal) -> Result<(), ApiError> {
    if principal.can_read {
        return Ok(());
    }
    Err(ApiError::Forbidden(format!(
        "Insufficient privileges to complete the operation: reading needs the permission \
         {READ_PERMISSION} or {READ_WRITE_PERMISSION}."
    )))
}

pub(crate) fn require_write(principal: &Principal) -> Result<(), ApiError> {
    if principal.can_write {
        return Ok(());
    }
    Err(ApiError::Forbidden(format!(
        "Insufficient privileges to complete the operation: changes need the permission \
         {READ_WRITE_PERMISSION}."
    )))
}

/// Returns a header's value as text, `None` when absent, or an error when not visible ASCII.
pub(crate) fn header_text(headers: &HeaderMap, name: HeaderName) -> Result<Option<&str>, ApiError> {
    match headers.get(&name) {
        None => Ok(None),
        Some(value) => value.to_str().map(Some).map_err(|_| {
            ApiError::BadRequest(format!(
                "The {name} header contains characters that are not allowed."
            ))
        }),
    }
}

/// `scheme://authority` of the service as the client addressed it.
fn public_base(state: &AppState, parts: &Parts) -> Result<String, ApiError> {
    if let Some(url) = &state.public_url {
        return Ok(url.trim_end_matches('/').to_owned());
    }
    let host = match parts.uri.authority() {
        Some(authority) => authority.as_str(),
        None => header_text(&parts.headers, header::HOST)?.unwrap_or(""),
    };
    let valid = !host.is_empty()
        && host.len() <= 255
        && host.bytes().all(|b| b.is_ascii_alphanumeric() || b".-_:[]".contains(&b));
    if !valid {
        return Err(ApiError::BadRequest("The Host header is missing or invalid.".to_owned()));
    }
    Ok(format!("http://{host}"))
}

/// Reads the whole body, rejecting one over [`MAX_BODY_BYTES`] before and while reading it.
pub(crate) async fn read_body(
    headers: &HeaderMap,
    body: Body,
    timeout: std::time::Duration,
) -> Result<Bytes, ApiError> {
    let too_large = ApiError::PayloadTooLarge { limit: MAX_BODY_BYTES };
    let declared =
        header_text(headers, header::CONTENT_LENGTH)?.and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|length| length > MAX_BODY_BYTES as u64) {
        return Err(too_large);
    }
    let collect = http_body_util::BodyExt::collect(Limited::new(body, MAX_BODY_BYTES));
    match tokio::time::timeout(timeout, collect).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(error)) if error.downcast_ref::<LengthLimitError>().is_some() => Err(too_large),
        Ok(Err(_)) => {
            Err(ApiError::BadRequest("The request body could not be read completely.".to_owned()))
        }
        Err(_) => Err(ApiError::RequestTimeout(timeout)),
    }
}

/// Writes a JSON response in the form the client asked for.
pub(crate) fn json_response(
    status: StatusCode,
    document: &impl serde::Serialize,
    format: JsonFormat,
) -> Result<Response, ApiError> {
    let body = serde_json::to_vec(document)
        .map_err(|error| ApiError::Internal(std::sync::Arc::new(error)))?;
    let content_type = HeaderValue::from_str(&format.content_type())
        .unwrap_or_else(|_| HeaderValue::from_static(JSON_CONTENT_TYPE));
    Ok((status, [(header::CONTENT_TYPE, content_type)], body).into_response())
}
