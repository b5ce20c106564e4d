//! End-to-end tests of the `beacon` binary over real HTTP on loopback.
//!
//! Every test starts its own server process on a free port with a temporary data folder, so
//! tests run in parallel and leave nothing behind. With `BEACON_TEST_STORE=postgres` the
//! servers store their rows in PostgreSQL instead of SQLite, one schema per data folder (see
//! `helpers`).

/// Starting servers, minting tokens, sending requests.
mod helpers;

/// `$apply`: grouping, aggregates and the options after them.
mod apply;
/// Tokens and permissions.
mod auth;
/// `beacon backup` and `beacon restore` with a running server.
mod backup;
/// Every kind of bad input: its status, its Graph error body, and an unchanged collection.
mod bad_input;
/// `$batch`: several requests in one JSON body.
mod batch;
/// The settings file, environment variables and flags, and `beacon config`.
mod config;
/// Crash consistency: writes under load, `kill -9` at random moments, restarts, a journal.
mod crash;
/// Creating entities through both views and reading them back.
mod create_and_read;
/// The dashboard's files: headers, caching and rate limits.
mod dashboard;
/// The CA file for TLS connections to PostgreSQL.
mod database_tls;
/// `$filter`, `$orderby`, `$select`, `$top`, `$skip`, `$count` and `$apply` against a reference
/// evaluator.
mod differential;
/// Faults of the environment: a full store, a held lock, PostgreSQL restarts, unwritable or
/// replaced files, SIGTERM under load.
mod faults;
/// `beacon import` and `beacon export`: formats, round trips, bad rows, conflicts.
mod import_export;
/// Partner isolation in every operation, and hostile input that must change and reveal nothing.
mod isolation;
/// Clients that journal their writes, and the check of a journal against the rows.
mod journal;
/// Durability across `kill -9`, and graceful shutdown.
mod lifecycle;
/// Rate limits, URL and header bounds, and the connection limit.
mod limits;
/// `--log-format`, request ids in log lines, and `RUST_LOG` filtering.
mod logs;
/// `/metrics`, `--metrics-listen` and `/readyz`.
mod observability;
/// The OpenAPI description: served as committed, and each operation responding as described.
mod openapi;
/// Server-driven paging and `$top`.
mod paging;
/// A throwaway PostgreSQL cluster that tests may stop and start.
mod pg_cluster;
/// The OData query options, one behaviour per test.
mod query;
/// Three servers over one PostgreSQL schema.
mod scale_out;
/// Identity provider tokens: forgeries, claim checks, permissions and the key set's fetches.
mod security;
/// Updates, deletes, entity tags, preconditions and metadata levels.
mod update_and_delete;
