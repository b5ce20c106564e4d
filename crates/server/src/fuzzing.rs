//! Entry points for the fuzz targets in the repository's `fuzz/` crate, one per kind of input
//! the service parses. This module is not part of the API and may change at any time.
//!
//! Each function takes the bytes a fuzzer writes and runs them through the code a request
//! reaches. It panics only when an invariant breaks. Examples are a rejection that would not
//! be a `4xx`, a `$filter` that does not print back to the same tree, and SQL with a value
//! written into its text. Others are SQL that fails in SQLite with an error that would become
//! a `500`, an accepted body that does not read back as written, and a skiptoken that does not
//! decode again after it is encoded. The test
//! `tests/fuzz_corpus.rs` runs every file of the committed corpus and regressions through the
//! same functions, so `cargo test` covers them without a fuzzer.

use std::future::Future;
use std::path::Path;
use std::pin::pin;
use std::sync::OnceLock;
use std::task::{Context, Poll, Waker};

use axum::http::{HeaderMap, HeaderValue, Method, header};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use beacon_odata::bind::{self, Type, Typed};
use beacon_odata::body::{self, ReadOptions};
use beacon_odata::entity::{Entity, EntityDocument, StoredEntity, WriteOptions};
use beacon_odata::filter;
use beacon_odata::media::JsonFormat;
use beacon_odata::model::View;
use beacon_odata::path::{self, Resource};
use beacon_odata::query::{self, BoundQuery, QueryOptions, Target};
use beacon_store::sql::{self, Dialect, Postgres, Sqlite, apply};
use beacon_store::sqlite::fuzzing::{PARTNER, run_statement};
use beacon_store::{ApplyQuery, Cursor, ListQuery, OrderKey, Param, StoreError};

use crate::auth::{self, Authenticator, SigningKey};
use crate::batch::{self, MAX_REQUESTS};
use crate::error::ApiError;
use crate::paging::SkiptokenKey;

/// The request time of every bound query, 2026-01-01T00:00:00Z in ticks, so that a
/// failing input fails again on any day.
pub const NOW: i64 = 17_672_256_000_000_000;

/// The scope that skiptokens are signed for.
const SKIPTOKEN_SCOPE: &str = "fuzz-partner\nGraph\nNone\nNone\nNone\nNone\nNone\nNone";

/// The P-256 key that signs and verifies the tokens of [`token`]. It guards nothing: it exists
/// only so that fuzzed claims and headers can carry a valid signature.
const TOKEN_KEY_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg+KFsZFRTeuwx3h1H
qXkEoIp+aF4do1GkpXxELtToMNyhRANCAATR2SyeHAIbyP2Fp4mZyAiuOcvHf8o4
acFLYnzZg2lDKFFsC8L/jNnswVD/cdmZG2Sl73nGcKwLblI+mFoCo3uq
-----END PRIVATE KEY-----
";

/// The key and the dev mode authenticator of [`token`], built on first use.
static TOKEN_CHECK: OnceLock<(SigningKey, Authenticator)> = OnceLock::new();

/// Parses a whole query string of a collection request, binds it to both views and compiles
/// it for both dialects, and checks that the other targets reject or accept its options
/// without a server error.
pub fn query(data: &[u8]) {
    let Ok(raw) = std::str::from_utf8(data) else { return };
    for target in
        [Target::Collection, Target::Entity, Target::Count, Target::Change, Target::Document]
    {
        match query::parse(Some(raw), target) {
            Ok(options) if target == Target::Collection => bind_and_compile(&options),
            Ok(_) => {}
            Err(error) => assert_client_error(&ApiError::from(error)),
        }
    }
}

/// Parses a `$filter`, checks that it prints back to the same tree, then binds and compiles
/// it as [`query`] does.
pub fn filter(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(expr) = filter::parse(text) {
        let printed = expr.to_string();

        // Binary operators gain parentheses when printed, so a long expression may print past
        // the length limit. Such a print is not read back.
        if printed.chars().count() <= filter::MAX_LENGTH {
            let reparsed = filter::parse(&printed)
                .unwrap_or_else(|error| panic!("{text:?} prints as {printed:?}: {error}"));
            assert_eq!(reparsed.to_string(), printed, "{text:?} does not print stably");
        }
    }
    bind_and_compile(&QueryOptions { filter: Some(text.to_owned()), ..Default::default() });
}

/// Parses, binds and compiles an `$orderby` as [`query`] does.
pub fn orderby(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    bind_and_compile(&QueryOptions { orderby: Some(text.to_owned()), ..Default::default() });
}

/// Parses and binds a `$select` as [`query`] does, alone and after a grouping `$apply`.
pub fn select(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    bind_and_compile(&QueryOptions { select: Some(text.to_owned()), ..Default::default() });
    let grouped = "groupby((tenantId),aggregate($count as total))".to_owned();
    bind_and_compile(&QueryOptions {
        select: Some(text.to_owned()),
        apply: Some(grouped),
        ..Default::default()
    });
}

/// Parses, binds and compiles an `$apply` as [`query`] does.
pub fn apply(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    bind_and_compile(&QueryOptions { apply: Some(text.to_owned()), ..Default::default() });
}

/// Binds `options` to both views. Each rejection must be a `4xx`, and each bound query must
/// compile to statements that [`check_statement`] accepts.
fn bind_and_compile(options: &QueryOptions) {
    for view in [View::Seed, View::Graph] {
        match options.bind(view, NOW) {
            Ok(bound) => compile(bound),
            Err(error) => assert_client_error(&ApiError::from(error)),
        }
    }
}

/// Compiles a bound query as the collection handler does: a `$apply` that only filters joins
/// the `$filter`, and any other plan reads its own result. A listing compiles for a first page
/// and for pages that resume after a row with null keys and with non-null keys.
fn compile(mut bound: BoundQuery) {
    let order: Vec<OrderKey> = bound
        .order
        .iter()
        .map(|(expr, descending)| OrderKey { expr: expr.clone(), descending: *descending })
        .collect();
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
                let query = ApplyQuery { plan, filter: bound.filter, order, offset: 3, limit: 101 };
                for dialect in dialects() {
                    let (text, params) = apply::select_query(dialect, PARTNER, &query);
                    check_statement(dialect, &text, &params);
                    let filter = query.filter.as_ref();
                    let (text, params) = apply::count_query(dialect, PARTNER, &query.plan, filter);
                    check_statement(dialect, &text, &params);
                }
                return;
            }
        }
    }

    let null_keys = order.iter().map(|_| Param::Null).collect();
    let sample_keys = order.iter().map(|key| sample_value(&key.expr)).collect();
    let cursors = [
        None,
        Some(Cursor { keys: null_keys, id: "m".to_owned() }),
        Some(Cursor { keys: sample_keys, id: "m".to_owned() }),
    ];
    for after in cursors {
        let query = ListQuery {
            filter: bound.filter.clone(),
            order: order.clone(),
            after,
            offset: 0,
            limit: 101,
        };
        for dialect in dialects() {
            let (statements, params) = sql::select_statements(dialect, PARTNER, &query);
            assert!(!statements.is_empty(), "a listing compiles to no statement");
            for text in &statements {
                check_statement(dialect, text, &params);
            }
        }
    }
    for dialect in dialects() {
        let (text, params) = sql::count_query(dialect, PARTNER, bound.filter.as_ref());
        check_statement(dialect, &text, &params);
    }
}

fn dialects() -> [&'static dyn Dialect; 2] {
    [&Sqlite, &Postgres]
}

/// Returns a non-null value of an order key's type, as a skiptoken would carry it.
fn sample_value(key: &Typed) -> Param {
    match key.ty {
        Type::String => Param::Text("m".to_owned()),
        _ => Param::Integer(1),
    }
}

/// Checks that a statement binds every value instead of writing it into the text, and that
/// each placeholder names a bound parameter. A SQLite statement must also run on the test
/// database, or fail only with an error that becomes a `400`.
fn check_statement(dialect: &dyn Dialect, text: &str, params: &[Param]) {
    assert!(!text.contains('\''), "a value is written into the SQL: {text}");
    let marker = if dialect.placeholder(1).starts_with('?') { '?' } else { '$' };
    for (at, _) in text.match_indices(marker) {
        let digits: String = text[at + 1..].chars().take_while(|c| c.is_ascii_digit()).collect();
        let number: usize = digits.parse().unwrap_or_else(|_| panic!("a bare {marker} in {text}"));
        assert!(
            (1..=params.len()).contains(&number),
            "placeholder {marker}{number} of {} parameters in {text}",
            params.len()
        );
    }
    if marker == '?' {
        match run_statement(text, params) {
            Ok(()) | Err(StoreError::InvalidQuery(_)) => {}
            Err(error) => panic!("SQLite failed with {error:?} on {text} with {params:?}"),
        }
    }
}

/// Decodes a create or update body for both views, the first byte choosing whether Int64
/// values may be strings (`IEEE754Compatible=true`), and applies the create, replace and
/// update rules. A body accepted for a create is written as a response would write it, and
/// must read back to the same values.
pub fn body(data: &[u8]) {
    let Some((&flags, text)) = data.split_first() else { return };
    let options = ReadOptions { int64_as_string: flags & 1 == 1 };
    for view in [View::Seed, View::Graph] {
        let input = match body::decode(view, text, options) {
            Ok(input) => input,
            Err(error) => {
                assert_client_error(&ApiError::from(error));
                continue;
            }
        };
        if let Err(error) = input.clone().into_patch(view) {
            assert_client_error(&ApiError::from(error));
        }
        if let Err(error) = input.clone().into_replacement(view) {
            assert_client_error(&ApiError::from(error));
        }
        match input.into_create(view) {
            Ok((id, fields)) => {
                let id = id.unwrap_or_else(|| "generated".to_owned());
                let stored = StoredEntity { entity: Entity { id, fields }, version: 1 };
                check_written_body_reads_back(view, &stored, options);
            }
            Err(error) => assert_client_error(&ApiError::from(error)),
        }
    }
}

/// Writes `stored` as an entity response and reads it back as a create body.
fn check_written_body_reads_back(view: View, stored: &StoredEntity, options: ReadOptions) {
    let format = JsonFormat { int64_as_string: options.int64_as_string, ..Default::default() };
    let document = EntityDocument {
        context: "http://localhost/beta/$metadata#entity",
        service_root: "http://localhost/beta",
        view,
        entity: stored,
        options: WriteOptions { format, ..Default::default() },
    };
    let written = serde_json::to_vec(&document).expect("an entity serializes");
    let read = body::decode(view, &written, options)
        .and_then(|input| input.into_create(view))
        .unwrap_or_else(|error| {
            panic!("{} does not read back: {error}", String::from_utf8_lossy(&written))
        });
    assert_eq!(read.1, stored.entity.fields, "{}", String::from_utf8_lossy(&written));
}

/// Decodes a skiptoken with a fixed key. The first byte chooses the input's form and the
/// number of order keys expected. With the first byte even, the rest is a token as a client
/// sends it. With the first byte odd, the rest is a payload that is signed first, so the
/// decoding after the signature check runs on fuzzed JSON. A decoded position must decode
/// again after it is encoded.
pub fn skiptoken(data: &[u8]) {
    let Some((&flags, rest)) = data.split_first() else { return };
    let key = SkiptokenKey::new([0x5a; 32]);
    let keys = usize::from(flags >> 1) % 4;
    let token = if flags & 1 == 1 {
        key.sign_payload(rest, SKIPTOKEN_SCOPE)
    } else {
        let Ok(text) = std::str::from_utf8(rest) else { return };
        text.to_owned()
    };
    let position = match key.decode(&token, SKIPTOKEN_SCOPE, keys) {
        Ok(position) => position,
        Err(error) => {
            assert_client_error(&error);
            return;
        }
    };

    // A token without values makes the handler read them from the row before it writes the
    // next token, so only a position with all its values is written again here.
    assert!(position.cursor.keys.is_empty() || position.cursor.keys.len() == keys);
    if position.cursor.keys.len() != keys {
        return;
    }

    // A payload too long for its values keeps only the key, so the values may be gone.
    let again = key
        .decode(&key.encode(&position, SKIPTOKEN_SCOPE), SKIPTOKEN_SCOPE, keys)
        .expect("a token the key wrote decodes");
    assert_eq!(again.cursor.id, position.cursor.id);
    assert_eq!(again.served, position.served);
    if !again.cursor.keys.is_empty() {
        assert_eq!(again.cursor.keys, position.cursor.keys);
    }
}

/// Checks a bearer token with a fixed key set, as dev mode does. The first byte chooses what
/// the rest is, modulo 4: 0 a whole token, 1 the JSON claims of a token that the key signs,
/// 2 the JSON header of such a token, and 3 a JSON Web Key Set to parse. Every rejection
/// must be a `4xx`, and a token must never be accepted unless the key signed it.
pub fn token(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else { return };
    let (key, authenticator) = TOKEN_CHECK.get_or_init(|| {
        let key = SigningKey::from_pem(TOKEN_KEY_PEM.as_bytes(), Path::new("fuzzing key"))
            .expect("the fuzzing key is valid");
        let authenticator = Authenticator::dev(&key, auth::DEFAULT_CLOCK_SKEW);
        (key, authenticator)
    });
    let valid_header = format!(r#"{{"alg":"ES256","typ":"JWT","kid":"{}"}}"#, key.key_id());

    // Valid from 2001 until far past any clock the checks read.
    let valid_claims = format!(
        r#"{{"iss":"{}","aud":"{}","tid":"{}","scp":"{}","nbf":1000000000,"exp":{}}}"#,
        auth::DEV_ISSUER,
        auth::DEV_AUDIENCE,
        auth::DEV_PARTNER_TENANT,
        auth::READ_PERMISSION,
        i64::MAX / 2,
    );
    let signed = |header: &[u8], claims: &[u8]| {
        let message =
            format!("{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(claims));
        let signature = key.sign_message(&message).expect("the fuzzing key signs");
        format!("{message}.{signature}")
    };

    let (token, signed_by_key) = match mode % 4 {
        0 => match std::str::from_utf8(rest) {
            Ok(text) => (text.to_owned(), false),
            Err(_) => return,
        },
        1 => (signed(valid_header.as_bytes(), rest), true),
        2 => (signed(rest, valid_claims.as_bytes()), true),
        _ => {
            // The key set parser either finds usable keys or reports why none is.
            let _ = auth::parse_key_set(rest);
            return;
        }
    };
    match ready(authenticator.authenticate(&token)) {
        Ok(principal) => {
            assert!(signed_by_key, "a token the key did not sign was accepted: {token}");
            assert!(!principal.partner.as_str().is_empty(), "no partner in {token}");
        }
        Err(error) => assert_client_error(&ApiError::from(error)),
    }
}

/// Parses a `$batch` body with the batch headers of an authorized request. An accepted
/// envelope must hold what the batch module promises: at most [`MAX_REQUESTS`] requests with
/// unique ids, dependencies only on earlier requests, URLs under the service root, and
/// bodies only where the method takes one. Each inner request's path and query must then
/// parse or be rejected with a `4xx`.
pub fn batch(data: &[u8]) {
    let mut batch_headers = HeaderMap::new();
    batch_headers.insert(header::HOST, HeaderValue::from_static("localhost"));
    batch_headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer fuzz"));
    let requests = match batch::parse_batch(data, &batch_headers) {
        Ok(requests) => requests,
        Err(error) => {
            assert_client_error(&error);
            return;
        }
    };

    assert!(!requests.is_empty(), "an accepted batch has no requests");
    assert!(requests.len() <= MAX_REQUESTS, "{} requests", requests.len());
    let ids: Vec<String> = requests.iter().map(|r| r.id.to_lowercase()).collect();
    for (position, request) in requests.iter().enumerate() {
        assert!(!ids[..position].contains(&ids[position]), "id {} repeats", request.id);
        assert!(request.depends_on.iter().all(|&d| d < position), "{:?}", request.depends_on);
        assert!(request.uri.path().starts_with("/beta/"), "{}", request.uri);
        assert_eq!(request.headers.get(header::HOST), batch_headers.get(header::HOST));
        assert!(request.headers.contains_key(header::AUTHORIZATION));
        if !request.body.is_empty() {
            assert_ne!(request.method, Method::GET);
            assert_ne!(request.method, Method::DELETE);
            let length = request.headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok());
            assert_eq!(length, Some(request.body.len().to_string().as_str()));
        }
        match path::parse(request.uri.path()) {
            Ok(Resource::Batch) => panic!("a nested $batch was accepted: {}", request.uri),
            Ok(_) => {}
            Err(error) => assert_client_error(&ApiError::from(error)),
        }
        if let Err(error) = query::parse(request.uri.query(), Target::Collection) {
            assert_client_error(&ApiError::from(error));
        }
    }
}

/// Panics unless `error` becomes a `4xx` response.
fn assert_client_error(error: &ApiError) {
    let (status, _) = error.status_and_code();
    assert!(status.is_client_error(), "{error:?} becomes {status}");
}

/// Runs a future that must complete without waiting, as verification with a fixed key set does.
fn ready<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("verification with a fixed key set waited"),
    }
}
