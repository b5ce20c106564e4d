//! The load driver: a fixed number of keep-alive HTTP/1.1 connections, each sending its next
//! request as soon as the previous response has been read (a closed loop), for a warm-up and
//! then a timed window.
//!
//! It runs on the caller's runtime, which the benchmark makes single-threaded, so the driver
//! uses at most one of the machine's cores whichever server it loads. A request's latency runs
//! from sending it to having read the whole response body.
//!
//! The window lasts at least its set length and until a minimum number of requests has
//! completed in it, so that a slow profile still yields enough samples. It closes at the first
//! completion after both conditions hold, or at the first completion after its maximum length.
//! Only requests that complete inside the window count towards the request rate and the
//! latencies. The requests still in flight when it closes are finished (and their status
//! checked) before the run returns, so the next run starts on an idle server.
//!
//! A `503 Service Unavailable`, which Beacon sends when a request runs past its time limit, is
//! counted as an error and not as a completed request. Any other unexpected status fails the
//! run, since it means the benchmark sent a wrong request.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full, combinators::BoxBody};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST, HeaderValue};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

type RequestBody = BoxBody<Bytes, std::convert::Infallible>;

/// The requests of one profile: the same method, headers and body, and targets taken in
/// turn.
#[derive(Clone, Debug)]
pub struct RequestSet {
    pub method: Method,
    /// Paths with their query strings; connection `i` starts at an `i`-th share of the list
    /// and then takes them in order, wrapping around.
    pub targets: Arc<Vec<String>>,
    /// The bearer token sent with every request.
    pub token: String,
    /// A JSON body, sent with `Content-Type: application/json`.
    pub body: Option<Bytes>,
    /// The status every response must have.
    pub expected: StatusCode,
}

/// The concurrency and the duration of a run.
#[derive(Clone, Copy, Debug)]
pub struct Load {
    pub connections: usize,
    /// Untimed load before the window, so the window starts with every connection busy.
    pub warmup: Duration,
    /// The shortest window.
    pub window: Duration,
    /// The fewest completed requests a window needs before it may close.
    pub min_requests: usize,
    /// The time after which the window closes at the next completion, however few completed.
    pub max_window: Duration,
}

/// The outcome of one run.
#[derive(Clone, Debug)]
pub struct RunResult {
    /// The requests that completed inside the window.
    pub completed: usize,
    /// The length of the window.
    pub window: Duration,
    /// The latencies of the completed requests in nanoseconds, sorted.
    pub latencies: Vec<u64>,
    /// Every request that completed, in the warm-up, the window and after it.
    pub total: usize,
    /// The `503` responses inside the window.
    pub errors: usize,
    /// The body of the first `503` response of the run.
    pub first_error: Option<String>,
}

impl RunResult {
    /// Returns the completed requests per second of the window.
    pub fn requests_per_second(&self) -> f64 {
        self.completed as f64 / self.window.as_secs_f64()
    }

    /// Returns the latency at quantile `q` (0.5 for the median) by the nearest rank, or `None`
    /// when no request completed inside the window.
    pub fn latency(&self, q: f64) -> Option<Duration> {
        if self.latencies.is_empty() {
            return None;
        }
        let rank = (q * self.latencies.len() as f64).ceil() as usize;
        let index = rank.clamp(1, self.latencies.len()) - 1;
        Some(Duration::from_nanos(self.latencies[index]))
    }
}

/// Drives the server at `address` with `requests` for one run of `load`.
pub async fn run(
    address: SocketAddr,
    requests: &RequestSet,
    load: Load,
) -> anyhow::Result<RunResult> {
    if requests.targets.is_empty() {
        bail!("the request set has no targets");
    }

    // Open every connection before the clock starts, so connecting is not timed.
    let mut senders = Vec::with_capacity(load.connections);
    for _ in 0..load.connections {
        senders.push(connect(address).await?);
    }

    let window_start = Instant::now() + load.warmup;
    let window = Arc::new(Window {
        start: window_start,
        min_end: window_start + load.window,
        max_end: window_start + load.max_window.max(load.window),
        min_requests: load.min_requests,
        completed: AtomicUsize::new(0),
        end: OnceLock::new(),
    });
    let host = HeaderValue::from_str(&address.to_string())?;
    let authorization = HeaderValue::from_str(&format!("Bearer {}", requests.token))?;

    let mut tasks = Vec::with_capacity(load.connections);
    for (index, sender) in senders.into_iter().enumerate() {
        let connection = Connection {
            sender,
            requests: requests.clone(),
            next: index * requests.targets.len() / load.connections,
            host: host.clone(),
            authorization: authorization.clone(),
        };
        tasks.push(tokio::spawn(connection.drive(Arc::clone(&window))));
    }

    let mut latencies = Vec::new();
    let (mut total, mut errors, mut first_error) = (0, 0, None);
    for task in tasks {
        let outcome = task.await.context("a connection task failed")??;
        latencies.extend(outcome.latencies);
        total += outcome.sent;
        errors += outcome.errors;
        first_error = first_error.or(outcome.first_error);
    }
    latencies.sort_unstable();
    let end = window.end.get().copied().context("no request completed after the warm-up")?;
    Ok(RunResult {
        completed: latencies.len(),
        window: end - window_start,
        latencies,
        total,
        errors,
        first_error,
    })
}

/// The timed window of a run, shared by its connections.
#[derive(Debug)]
struct Window {
    start: Instant,
    /// The window closes at the first completion from here on once it has `min_requests`.
    min_end: Instant,
    /// The window closes at the first completion from here on in any case.
    max_end: Instant,
    min_requests: usize,
    /// Completions inside the window so far.
    completed: AtomicUsize,
    /// The completion that closed the window.
    end: OnceLock<Instant>,
}

impl Window {
    /// Records a request that completed at `done` and returns whether it counts: whether it
    /// completed inside the window. It may be the completion that closes the window.
    fn record(&self, done: Instant) -> bool {
        if done < self.start {
            return false;
        }
        if let Some(end) = self.end.get() {
            return done <= *end;
        }
        let completed = self.completed.fetch_add(1, Ordering::Relaxed) + 1;
        let enough = done >= self.min_end && completed >= self.min_requests;
        if enough || done >= self.max_end {
            let _ = self.end.set(done);
        }
        true
    }

    /// Returns whether connections should stop sending new requests.
    fn is_closed(&self) -> bool {
        self.end.get().is_some() || Instant::now() >= self.max_end
    }
}

/// Opens one keep-alive HTTP/1.1 connection.
async fn connect(address: SocketAddr) -> anyhow::Result<SendRequest<RequestBody>> {
    let stream = TcpStream::connect(address)
        .await
        .with_context(|| format!("cannot connect to {address}"))?;
    stream.set_nodelay(true)?;
    let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
    // The connection task ends when the sender is dropped or the server closes.
    tokio::spawn(connection);
    Ok(sender)
}

/// The results of one connection in a run.
#[derive(Debug, Default)]
struct Outcome {
    /// The latencies, in nanoseconds, of the expected responses inside the window.
    latencies: Vec<u64>,
    /// The requests sent.
    sent: usize,
    /// The `503` responses inside the window.
    errors: usize,
    first_error: Option<String>,
}

/// One connection's closed loop.
struct Connection {
    sender: SendRequest<RequestBody>,
    requests: RequestSet,
    /// The index of the next target.
    next: usize,
    host: HeaderValue,
    authorization: HeaderValue,
}

impl Connection {
    /// Sends requests until the window closes.
    async fn drive(mut self, window: Arc<Window>) -> anyhow::Result<Outcome> {
        let mut outcome = Outcome::default();
        while !window.is_closed() {
            outcome.sent += 1;
            let request = self.request()?;
            self.sender.ready().await.context("the connection closed")?;
            let sent = Instant::now();
            let response = self.sender.send_request(request).await.context("the request failed")?;
            let status = response.status();
            let body = response.into_body().collect().await.context("reading the body failed")?;
            let done = Instant::now();
            let counted = window.record(done);
            if status == StatusCode::SERVICE_UNAVAILABLE && status != self.requests.expected {
                outcome.errors += usize::from(counted);
                if outcome.first_error.is_none() {
                    let body = body.to_bytes();
                    outcome.first_error = Some(String::from_utf8_lossy(&body).into_owned());
                }
                continue;
            }
            if status != self.requests.expected {
                let body = body.to_bytes();
                bail!(
                    "{} {} returned {status}, not {}: {}",
                    self.requests.method,
                    self.requests.targets[(self.next - 1) % self.requests.targets.len()],
                    self.requests.expected,
                    String::from_utf8_lossy(&body)
                );
            }
            if counted {
                outcome.latencies.push(u64::try_from((done - sent).as_nanos()).unwrap_or(u64::MAX));
            }
        }
        Ok(outcome)
    }

    /// Builds the next request of the set.
    fn request(&mut self) -> anyhow::Result<Request<RequestBody>> {
        let targets = &self.requests.targets;
        let target = &targets[self.next % targets.len()];
        self.next += 1;
        let mut builder = Request::builder()
            .method(self.requests.method.clone())
            .uri(target.as_str())
            .header(HOST, self.host.clone())
            .header(AUTHORIZATION, self.authorization.clone());
        let body = match &self.requests.body {
            Some(body) => {
                builder = builder.header(CONTENT_TYPE, "application/json");
                Full::new(body.clone()).boxed()
            }
            None => Empty::new().boxed(),
        };
        Ok(builder.body(body)?)
    }
}
