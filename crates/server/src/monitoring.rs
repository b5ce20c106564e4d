//! Monitoring: Prometheus metrics at `/metrics` and the readiness probe at `/readyz`.
//!
//! Every response leaves through the request-context middleware, which records each request
//! in two metrics with the labels `route`, `view` (only for the routes of a collection, an
//! entity and `$count`), `method` and `status`:
//!
//! - `beacon_http_requests_total`, a counter;
//! - `beacon_http_request_duration_seconds`, a histogram of the time from the request's head
//!   to its response's head, with [`DURATION_BUCKETS`].
//!
//! The route is one of a fixed set (`Route`), never the path, so that hostile or random
//! ids cannot add series. The handler that resolves a request's resource names its route with
//! `set_route`, which writes to a task-local slot that the middleware opened for the request.
//! The slot starts as `unknown`, which is what requests rejected before their path is resolved
//! keep: a path outside the API, or a URL or headers over the limits. A request that times out
//! keeps the route its handler had set. Requests inside a `$batch` run as tasks of their own
//! and are counted only as the batch.
//!
//! Recording allocates nothing on the hot path: each combination of labels gets its counter
//! and histogram registered once, in a table indexed by the labels' positions.
//!
//! The store records its own metrics through the same `metrics` facade (see
//! [`beacon_store::telemetry`]), and [`Metrics::install`] sets `beacon_build_info`.

use std::cell::Cell;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, OnceLock};
use std::time::Duration;

use axum::extract::State;
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use beacon_odata::model::View;
use beacon_odata::path::Resource;
use beacon_store::{Store, StoreError, telemetry};
use metrics::{
    Counter, Histogram, Label, Unit, counter, describe_counter, describe_gauge, describe_histogram,
    gauge, histogram,
};
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};

use crate::AppState;
use crate::error::ApiError;

/// Counter of requests, by route, view, method and status.
const REQUESTS: &str = "beacon_http_requests_total";

/// Histogram of the seconds from a request's head to its response's head.
const REQUEST_DURATION: &str = "beacon_http_request_duration_seconds";

/// Gauge set to 1 whose label `version` is the version of this build.
const BUILD_INFO: &str = "beacon_build_info";

/// The upper bounds, in seconds, of the buckets of every duration histogram.
///
/// A read by key takes well under a millisecond and an aggregation over many rows can take
/// seconds, so the bounds step by factors of about 2.5 from 50 µs to the 30-second request
/// timeout: a latency objective anywhere between 100 µs and 10 s falls on a bound.
pub const DURATION_BUCKETS: [f64; 18] = [
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0, 30.0,
];

/// The upper bounds of the buckets of the SQLite writer's writes per group transaction: powers
/// of two up to the writer's maximum group of 512.
const GROUP_BUCKETS: [f64; 10] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];

/// How often the exporter's histograms are drained between scrapes, which keeps their memory
/// bounded when no one scrapes.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// How long `/readyz` waits for the store's check before it reports the server not ready.
pub const READINESS_TIMEOUT: Duration = Duration::from_secs(2);

/// The `Retry-After` of a `503` from `/readyz`.
const READINESS_RETRY_AFTER: Duration = Duration::from_secs(5);

/// The `Content-Type` of the Prometheus text exposition format.
const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The process's metrics recorder, which renders everything recorded in the Prometheus text
/// format.
#[derive(Clone, Debug)]
pub struct Metrics {
    handle: PrometheusHandle,
}

impl Metrics {
    /// Installs the Prometheus recorder as the process's `metrics` recorder, describes every
    /// metric, sets `beacon_build_info`, and starts the task that drains the histograms every
    /// 5 seconds. Call it once, inside the Tokio runtime, before the store opens, so
    /// that nothing recorded at start is lost.
    pub fn install() -> Result<Metrics, BuildError> {
        let handle = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), &DURATION_BUCKETS)?
            .set_buckets_for_metric(
                Matcher::Full(telemetry::COMMIT_WRITES.to_owned()),
                &GROUP_BUCKETS,
            )?
            .install_recorder()?;

        describe_counter!(REQUESTS, "Requests answered, by route, view, method and status.");
        describe_histogram!(
            REQUEST_DURATION,
            Unit::Seconds,
            "Time from a request's head to its response's head, by route, view, method and status."
        );
        describe_gauge!(BUILD_INFO, "Always 1; the label version is the version of this build.");
        telemetry::describe();
        gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);

        let upkeep = handle.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(UPKEEP_INTERVAL);
            loop {
                ticks.tick().await;
                upkeep.run_upkeep();
            }
        });
        Ok(Metrics { handle })
    }

    /// Writes every metric in the Prometheus text format.
    pub fn render(&self) -> String {
        self.handle.render()
    }
}

/// The state of `GET /metrics`: the recorder to render, and the store whose gauges it updates
/// first.
#[derive(Clone, Debug)]
pub struct MetricsEndpoint {
    /// The recorder.
    pub metrics: Metrics,
    /// The store.
    pub store: Arc<dyn Store>,
}

/// `GET /metrics`: every metric in the Prometheus text format. Needs no token and is not
/// rate-limited.
pub(crate) async fn render_metrics(State(endpoint): State<MetricsEndpoint>) -> Response {
    set_route(Route::Metrics);
    endpoint.store.update_gauges().await;
    let body = endpoint.metrics.render();
    ([(header::CONTENT_TYPE, PROMETHEUS_CONTENT_TYPE)], body).into_response()
}

/// Whether the last readiness check failed, so that a lasting failure is logged as a warning
/// once and not at every probe.
static REPORTED_NOT_READY: AtomicBool = AtomicBool::new(false);

/// `GET /readyz`: `200` when the store's check, which includes a schema at this build's
/// version, succeeds within [`READINESS_TIMEOUT`], else `503` with `Retry-After`. Needs no token
/// and is not rate-limited.
pub(crate) async fn readyz(State(state): State<AppState>) -> Response {
    set_route(Route::Readyz);
    let outcome = tokio::time::timeout(READINESS_TIMEOUT, state.store.check_ready()).await;
    let (message, error) = match outcome {
        Ok(Ok(())) => {
            if REPORTED_NOT_READY.swap(false, Ordering::Relaxed) {
                tracing::info!("the store is ready again");
            }
            let body = r#"{"status":"ready"}"#;
            return ([(header::CONTENT_TYPE, "application/json")], body).into_response();
        }
        Ok(Err(error)) => (
            "The server is not ready: its database cannot be reached or is not migrated."
                .to_owned(),
            error,
        ),
        Err(_) => (
            format!(
                "The server is not ready: its database did not answer within {} seconds.",
                READINESS_TIMEOUT.as_secs()
            ),
            StoreError::Busy,
        ),
    };

    // The cause is logged, not sent, since the probe needs no token. Its text names the
    // file or server and the problem, which the debug form may only show as a type.
    let cause = cause_text(&error);
    if REPORTED_NOT_READY.swap(true, Ordering::Relaxed) {
        tracing::debug!(error.message = %error, error.cause = %cause, error.cause_chain = ?error, "the store is not ready");
    } else {
        tracing::warn!(error.message = %error, error.cause = %cause, error.cause_chain = ?error, "the store is not ready");
    }
    ApiError::DependencyUnavailable { message, retry_after: READINESS_RETRY_AFTER }.into_response()
}

/// Joins the messages of an error's sources, or returns an empty string when it has none.
fn cause_text(error: &dyn std::error::Error) -> String {
    let mut parts = Vec::new();
    let mut source = error.source();
    while let Some(cause) = source {
        parts.push(cause.to_string());
        source = cause.source();
    }
    parts.join(": ")
}

/// The part of the API that served a request, as the `route` and `view` labels name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Route {
    Collection(View),
    Entity(View),
    Count(View),
    Service,
    Container,
    Metadata,
    OpenApi,
    Batch,
    Healthz,
    Readyz,
    Metrics,
    /// The dashboard's page and its files.
    Dashboard,
    /// No route: a path outside the API, or a request rejected before its path was resolved.
    Unknown,
}

/// The number of distinct [`Route`] values, views included.
const ROUTES: usize = 16;

impl Route {
    /// Returns the route of a resolved resource.
    pub(crate) fn of(resource: &Resource) -> Route {
        match resource {
            Resource::Collection(view) => Route::Collection(*view),
            Resource::Entity(view, _) => Route::Entity(*view),
            Resource::Count(view) => Route::Count(*view),
            Resource::ServiceRoot => Route::Service,
            Resource::Container(_) => Route::Container,
            Resource::Metadata => Route::Metadata,
            Resource::OpenApi => Route::OpenApi,
            Resource::Batch => Route::Batch,
        }
    }

    /// Returns the value of the `route` label.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Route::Collection(_) => "collection",
            Route::Entity(_) => "entity",
            Route::Count(_) => "count",
            Route::Service => "service",
            Route::Container => "container",
            Route::Metadata => "metadata",
            Route::OpenApi => "openapi",
            Route::Batch => "batch",
            Route::Healthz => "healthz",
            Route::Readyz => "readyz",
            Route::Metrics => "metrics",
            Route::Dashboard => "dashboard",
            Route::Unknown => "unknown",
        }
    }

    /// Returns the value of the `view` label, for the routes that have one.
    fn view(self) -> Option<&'static str> {
        match self {
            Route::Collection(view) | Route::Entity(view) | Route::Count(view) => {
                Some(match view {
                    View::Seed => "seed",
                    View::Graph => "graph",
                })
            }
            _ => None,
        }
    }

    /// Returns the route's position, below [`ROUTES`].
    fn index(self) -> usize {
        let view = |view: View| match view {
            View::Seed => 0,
            View::Graph => 1,
        };
        match self {
            Route::Collection(v) => view(v),
            Route::Entity(v) => 2 + view(v),
            Route::Count(v) => 4 + view(v),
            Route::Service => 6,
            Route::Container => 7,
            Route::Metadata => 8,
            Route::OpenApi => 9,
            Route::Batch => 10,
            Route::Healthz => 11,
            Route::Readyz => 12,
            Route::Metrics => 13,
            Route::Unknown => 14,
            Route::Dashboard => 15,
        }
    }
}

tokio::task_local! {
    /// The route of the request that the current task serves.
    static ROUTE: Cell<Route>;
}

/// Names the route that serves the current request. Outside a request (inside a `$batch`, say)
/// it does nothing.
pub(crate) fn set_route(route: Route) {
    let _ = ROUTE.try_with(|slot| slot.set(route));
}

/// Runs a request's handling with a route slot that starts as [`Route::Unknown`], and returns
/// its output with the route that the handling named.
pub(crate) async fn track_route<F: Future>(handling: F) -> (F::Output, Route) {
    let tracked = async {
        let output = handling.await;
        (output, ROUTE.with(Cell::get))
    };
    ROUTE.scope(Cell::new(Route::Unknown), tracked).await
}

/// The `method` label values, with `other` last for any method outside the list, so that
/// made-up methods cannot add series.
const METHODS: [&str; 8] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other"];

/// The statuses the server sends, with their `status` label values. A status outside the list
/// is still recorded, at the cost of registering its series on each request.
const STATUSES: [(u16, &str); 21] = [
    (200, "200"),
    (201, "201"),
    (204, "204"),
    (304, "304"),
    (400, "400"),
    (401, "401"),
    (403, "403"),
    (404, "404"),
    (405, "405"),
    (406, "406"),
    (408, "408"),
    (409, "409"),
    (412, "412"),
    (413, "413"),
    (414, "414"),
    (415, "415"),
    (429, "429"),
    (431, "431"),
    (500, "500"),
    (503, "503"),
    (507, "507"),
];

/// The counter and histogram of one combination of labels.
struct RequestInstruments {
    requests: Counter,
    duration: Histogram,
}

impl RequestInstruments {
    fn register(route: Route, method: &'static str, status: Label) -> RequestInstruments {
        let mut labels = Vec::with_capacity(4);
        labels.push(Label::from_static_parts("route", route.name()));
        if let Some(view) = route.view() {
            labels.push(Label::from_static_parts("view", view));
        }
        labels.push(Label::from_static_parts("method", method));
        labels.push(status);
        RequestInstruments {
            requests: counter!(REQUESTS, labels.clone()),
            duration: histogram!(REQUEST_DURATION, labels),
        }
    }

    fn record(&self, elapsed: Duration) {
        self.requests.increment(1);
        self.duration.record(elapsed.as_secs_f64());
    }
}

/// The registered instruments of each route, method and listed status, filled on first use.
/// Recording a request through it took about 50 ns, against about 430 ns with a key built by
/// the `metrics` macros on each call (a release build looping over one label set on the
/// 2-core development machine).
static INSTRUMENTS: LazyLock<Box<[OnceLock<RequestInstruments>]>> = LazyLock::new(|| {
    (0..ROUTES * METHODS.len() * STATUSES.len()).map(|_| OnceLock::new()).collect()
});

/// Records one completed request.
pub(crate) fn record_request(route: Route, method: &Method, status: StatusCode, elapsed: Duration) {
    let method_index = match *method {
        Method::GET => 0,
        Method::HEAD => 1,
        Method::POST => 2,
        Method::PUT => 3,
        Method::PATCH => 4,
        Method::DELETE => 5,
        Method::OPTIONS => 6,
        _ => 7,
    };
    let method_label = METHODS[method_index];
    let code = status.as_u16();
    let Some(status_index) = STATUSES.iter().position(|(listed, _)| *listed == code) else {
        let status_label = Label::new("status", status.as_str().to_owned());
        RequestInstruments::register(route, method_label, status_label).record(elapsed);
        return;
    };

    let slot = (route.index() * METHODS.len() + method_index) * STATUSES.len() + status_index;
    INSTRUMENTS[slot]
        .get_or_init(|| {
            let status_label = Label::from_static_parts("status", STATUSES[status_index].1);
            RequestInstruments::register(route, method_label, status_label)
        })
        .record(elapsed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_indexes_are_distinct_and_in_range() {
        let routes = [
            Route::Collection(View::Seed),
            Route::Collection(View::Graph),
            Route::Entity(View::Seed),
            Route::Entity(View::Graph),
            Route::Count(View::Seed),
            Route::Count(View::Graph),
            Route::Service,
            Route::Container,
            Route::Metadata,
            Route::OpenApi,
            Route::Batch,
            Route::Healthz,
            Route::Readyz,
            Route::Metrics,
            Route::Unknown,
            Route::Dashboard,
        ];
        let mut seen = [false; ROUTES];
        for route in routes {
            let index = route.index();
            assert!(index < ROUTES, "{route:?} has index {index}");
            assert!(!seen[index], "{route:?} shares index {index}");
            seen[index] = true;
        }
    }

    #[test]
    fn status_labels_match_their_codes() {
        for (code, label) in STATUSES {
            assert_eq!(code.to_string(), label);
        }
    }

    #[tokio::test]
    async fn route_slot_keeps_last_route() {
        let ((), route) = track_route(async {}).await;
        assert_eq!(route, Route::Unknown);

        let ((), route) = track_route(async {
            set_route(Route::Batch);
            tokio::task::yield_now().await;
            set_route(Route::Entity(View::Graph));
        })
        .await;
        assert_eq!(route, Route::Entity(View::Graph));
    }

    #[test]
    fn setting_a_route_outside_a_request_does_nothing() {
        set_route(Route::Metrics);
    }
}
