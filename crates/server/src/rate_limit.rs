//! Request rate limits: token buckets per partner tenant, per client, and per client address.
//!
//! Each bucket holds up to `burst` tokens and refills at `per_second` tokens a second. A request
//! takes one token from each bucket it counts against, and gets `429` with `Retry-After` when a
//! bucket contains less than one. Three kinds of bucket exist:
//!
//! - one per partner tenant, for every request with a valid token;
//! - one per client within a partner tenant, for every request with a valid token. The client is
//!   the token's client application (`azp`, else `appid`) or, for a token without either, the
//!   peer's IP address;
//! - one per client address, for requests without a valid token: requests to `$metadata` and
//!   `openapi.json`, which need none, and requests rejected before a token was verified (a path
//!   or method error, or a missing or invalid token). A request from an address whose bucket is empty
//!   gets `429` before its token is checked, so token guessing from one address is throttled.
//!   Valid requests never take from this bucket, but are refused with the rest while it is
//!   empty.
//!
//! An IPv6 address counts by its /64 network, since one host usually has a whole /64.
//!
//! Buckets live in this process only: several servers behind a load balancer each apply the
//! limits on their own. A full bucket is the same as none, so a periodic sweep removes full
//! buckets, and each kind of bucket keeps at most [`MAX_BUCKETS`] of them.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use axum::http::Extensions;
use beacon_store::PartnerTenantId;

use crate::error::ApiError;

/// The maximum number of buckets of one kind. Past it, a request whose key has no bucket yet
/// is let through unlimited, and a warning is logged.
pub const MAX_BUCKETS: usize = 100_000;

/// How often buckets that have refilled completely are removed.
const SWEEP_INTERVAL: Duration = Duration::from_secs(10);

/// The shortest time between two sweeps that a full map starts.
const MIN_SWEEP_GAP: Duration = Duration::from_secs(1);

/// The rate and burst of one kind of bucket.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateLimit {
    /// Tokens added a second; `0` turns this kind of limit off.
    pub per_second: f64,
    /// The maximum number of tokens in a bucket, and so of requests accepted at once.
    pub burst: u32,
}

impl RateLimit {
    /// A limit that never rejects.
    pub const OFF: RateLimit = RateLimit { per_second: 0.0, burst: 1 };

    fn is_on(self) -> bool {
        self.per_second > 0.0
    }

    /// Describes the limit for an error message, such as "50 requests a second with bursts of
    /// 100".
    fn describe(self) -> String {
        format!("{} requests a second with bursts of {}", self.per_second, self.burst)
    }
}

/// The rate limits of every kind of bucket.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateLimits {
    /// The bucket of each partner tenant.
    pub partner: RateLimit,
    /// The bucket of each client within a partner tenant, and of each client address for
    /// requests without a valid token.
    pub client: RateLimit,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            partner: RateLimit { per_second: 50.0, burst: 100 },
            client: RateLimit { per_second: 50.0, burst: 100 },
        }
    }
}

impl RateLimits {
    /// Limits that never reject.
    pub const OFF: RateLimits = RateLimits { partner: RateLimit::OFF, client: RateLimit::OFF };
}

/// The identity of a client within a partner tenant.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Client {
    /// The token's client application.
    Application(String),
    /// The peer address, for tokens that name no client application.
    Address(IpAddr),
}

/// Every bucket of one server process.
#[derive(Debug)]
pub struct RateLimiter {
    limits: RateLimits,
    partners: Buckets<PartnerTenantId>,
    clients: Buckets<(PartnerTenantId, Client)>,
    addresses: Buckets<IpAddr>,
}

impl RateLimiter {
    /// Creates a limiter with no buckets yet.
    pub fn new(limits: RateLimits) -> RateLimiter {
        let now = Instant::now();
        RateLimiter {
            limits,
            partners: Buckets::new(limits.partner, "partner", now),
            clients: Buckets::new(limits.client, "client", now),
            addresses: Buckets::new(limits.client, "client address", now),
        }
    }

    /// Takes a token from the client address's bucket for a request without a valid token, or
    /// returns `429` when the bucket is empty. Requests with valid tokens never touch this
    /// bucket, so a flood of bad tokens from one address (or from a proxy that many clients
    /// share) does not lock out the callers that have valid tokens.
    pub(crate) fn charge_address(&self, address: Option<IpAddr>) -> Result<(), ApiError> {
        let Some(address) = address else { return Ok(()) };
        self.addresses.take(address_key(address), Instant::now()).map_err(|wait| {
            too_many(
                wait,
                format!(
                    "Too many requests without a valid access token came from this client \
                     address; the limit is {}.",
                    self.limits.client.describe()
                ),
            )
        })
    }

    /// Takes a token from the buckets of the partner and of the client for a request with a
    /// valid token. When either is empty, takes from neither and returns `429`.
    pub(crate) fn charge_caller(
        &self,
        partner: &PartnerTenantId,
        application: Option<String>,
        address: Option<IpAddr>,
    ) -> Result<(), ApiError> {
        let now = Instant::now();
        let client = match (application, address) {
            (Some(application), _) => Some(Client::Application(application)),
            (None, Some(address)) => Some(Client::Address(address_key(address))),
            (None, None) => None,
        };
        let client_key = client.map(|client| (partner.clone(), client));

        if let Some(key) = &client_key
            && let Err(wait) = self.clients.take(key.clone(), now)
        {
            return Err(too_many(
                wait,
                format!(
                    "This client has sent too many requests for the partner tenant; the limit \
                     for each client is {}.",
                    self.limits.client.describe()
                ),
            ));
        }
        if let Err(wait) = self.partners.take(partner.clone(), now) {
            if let Some(key) = &client_key {
                self.clients.give_back(key);
            }
            return Err(too_many(
                wait,
                format!(
                    "The partner tenant has sent too many requests; the limit for each partner \
                     tenant is {}.",
                    self.limits.partner.describe()
                ),
            ));
        }
        Ok(())
    }
}

/// Builds the `429` for a bucket that has a token again after `wait`.
fn too_many(wait: Duration, limit: String) -> ApiError {
    let seconds = retry_after_seconds(wait);
    let unit = if seconds == 1 { "second" } else { "seconds" };
    ApiError::TooManyRequests {
        message: format!("{limit} Retry after {seconds} {unit}."),
        retry_after_seconds: seconds,
    }
}

/// Rounds a wait up to whole seconds, at least 1, as `Retry-After` takes it.
fn retry_after_seconds(wait: Duration) -> u64 {
    let whole = wait.as_secs().saturating_add(u64::from(wait.subsec_nanos() > 0));
    whole.max(1)
}

/// Returns the address that counts for `address`: an IPv4 address as it is, including one
/// mapped into IPv6, and an IPv6 address's /64 network.
fn address_key(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let network = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(Ipv6Addr::from(network))
            }
        },
    }
}

/// Returns the peer's IP address, which `serve` records for each connection. It is `None` for
/// an application served some other way, where only the partner and application buckets apply.
pub(crate) fn peer_address(extensions: &Extensions) -> Option<IpAddr> {
    extensions.get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(peer)| peer.ip())
}

/// One token bucket.
#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl Bucket {
    /// Returns the tokens in the bucket at `now`.
    fn tokens_at(&self, limit: RateLimit, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        (self.tokens + elapsed * limit.per_second).min(f64::from(limit.burst))
    }
}

/// Returns how long a bucket holding `tokens` takes to reach one token.
fn wait_for_token(tokens: f64, limit: RateLimit) -> Duration {
    let seconds = ((1.0 - tokens) / limit.per_second).max(0.0);
    Duration::try_from_secs_f64(seconds).unwrap_or(Duration::MAX)
}

/// The buckets of one kind, keyed by `K`.
struct Buckets<K> {
    limit: RateLimit,
    /// The kind of key, for the log.
    kind: &'static str,
    map: Mutex<BucketMap<K>>,
}

impl<K> std::fmt::Debug for Buckets<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let count = self.map.lock().map_or(0, |map| map.buckets.len());
        f.debug_struct("Buckets")
            .field("kind", &self.kind)
            .field("limit", &self.limit)
            .field("count", &count)
            .finish()
    }
}

struct BucketMap<K> {
    buckets: HashMap<K, Bucket>,
    last_sweep: Instant,
    /// Whether a request went unlimited since the last sweep, so the warning is logged once.
    overflow_logged: bool,
}

impl<K: Clone + Eq + Hash> Buckets<K> {
    fn new(limit: RateLimit, kind: &'static str, now: Instant) -> Self {
        let map = BucketMap { buckets: HashMap::new(), last_sweep: now, overflow_logged: false };
        Buckets { limit, kind, map: Mutex::new(map) }
    }

    /// Takes a token from the bucket of `key` at `now`, or returns the wait until it contains
    /// one.
    fn take(&self, key: K, now: Instant) -> Result<(), Duration> {
        if !self.limit.is_on() {
            return Ok(());
        }
        let mut map = self.lock();
        map.sweep_if_due(self.limit, now, MAX_BUCKETS);
        if map.buckets.len() >= MAX_BUCKETS && !map.buckets.contains_key(&key) {
            if !map.overflow_logged {
                map.overflow_logged = true;
                tracing::warn!(
                    kind = self.kind,
                    buckets = MAX_BUCKETS,
                    "too many rate-limit buckets in use; requests from new keys are not \
                     limited until idle buckets are removed"
                );
            }
            return Ok(());
        }
        let full = Bucket { tokens: f64::from(self.limit.burst), updated: now };
        let bucket = map.buckets.entry(key).or_insert(full);
        let tokens = bucket.tokens_at(self.limit, now);
        if tokens < 1.0 {
            return Err(wait_for_token(tokens, self.limit));
        }
        *bucket = Bucket { tokens: tokens - 1.0, updated: now };
        Ok(())
    }

    /// Returns a token taken by [`Buckets::take`] for a request that was then rejected anyway.
    fn give_back(&self, key: &K) {
        let mut map = self.lock();
        if let Some(bucket) = map.buckets.get_mut(key) {
            bucket.tokens = (bucket.tokens + 1.0).min(f64::from(self.limit.burst));
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BucketMap<K>> {
        // A panic while the lock was held leaves at worst one bucket off by a token.
        self.map.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl<K: Eq + Hash> BucketMap<K> {
    /// Removes the buckets that have refilled completely, every [`SWEEP_INTERVAL`], or sooner
    /// (but at most every [`MIN_SWEEP_GAP`]) when the map contains `capacity` buckets.
    fn sweep_if_due(&mut self, limit: RateLimit, now: Instant, capacity: usize) {
        let since = now.saturating_duration_since(self.last_sweep);
        let due =
            since >= SWEEP_INTERVAL || (self.buckets.len() >= capacity && since >= MIN_SWEEP_GAP);
        if !due {
            return;
        }
        let burst = f64::from(limit.burst);
        self.buckets.retain(|_, bucket| bucket.tokens_at(limit, now) < burst);
        self.last_sweep = now;
        self.overflow_logged = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE_A_SECOND: RateLimit = RateLimit { per_second: 1.0, burst: 3 };

    fn partner(id: &str) -> PartnerTenantId {
        PartnerTenantId::new(id)
    }

    #[test]
    fn bucket_accepts_burst_then_rejects() {
        let start = Instant::now();
        let buckets = Buckets::new(ONE_A_SECOND, "test", start);

        for request in 0..3 {
            assert_eq!(buckets.take("a", start), Ok(()), "request {request}");
        }
        let wait = buckets.take("a", start).unwrap_err();

        assert_eq!(wait, Duration::from_secs(1));
    }

    #[test]
    fn bucket_refills_at_rate() {
        let start = Instant::now();
        let buckets = Buckets::new(ONE_A_SECOND, "test", start);
        for _ in 0..3 {
            buckets.take("a", start).unwrap();
        }

        let wait = buckets.take("a", start + Duration::from_millis(400)).unwrap_err();
        assert!(wait.abs_diff(Duration::from_millis(600)) < Duration::from_micros(1), "{wait:?}");
        assert_eq!(buckets.take("a", start + Duration::from_secs(1)), Ok(()));
        assert!(buckets.take("a", start + Duration::from_secs(1)).is_err());
    }

    #[test]
    fn bucket_refill_stops_at_burst() {
        let start = Instant::now();
        let buckets = Buckets::new(ONE_A_SECOND, "test", start);
        buckets.take("a", start).unwrap();
        let later = start + Duration::from_secs(3600);

        for _ in 0..3 {
            buckets.take("a", later).unwrap();
        }

        assert!(buckets.take("a", later).is_err());
    }

    #[test]
    fn buckets_are_separate_per_key() {
        let start = Instant::now();
        let buckets = Buckets::new(ONE_A_SECOND, "test", start);
        for _ in 0..3 {
            buckets.take("a", start).unwrap();
        }

        assert!(buckets.take("a", start).is_err());
        assert_eq!(buckets.take("b", start), Ok(()));
    }

    #[test]
    fn zero_rate_turns_limit_off() {
        let start = Instant::now();
        let buckets = Buckets::new(RateLimit::OFF, "test", start);

        for _ in 0..1000 {
            assert_eq!(buckets.take("a", start), Ok(()));
        }
        assert!(buckets.lock().buckets.is_empty());
    }

    #[test]
    fn sweep_removes_only_full_buckets() {
        let start = Instant::now();
        let buckets = Buckets::new(ONE_A_SECOND, "test", start);
        buckets.take("idle", start).unwrap();
        let later = start + SWEEP_INTERVAL;
        for _ in 0..3 {
            buckets.take("busy", later - Duration::from_millis(10)).unwrap();
        }

        buckets.take("new", later).unwrap();

        let map = buckets.lock();
        assert!(!map.buckets.contains_key("idle"), "a refilled bucket was kept");
        assert!(map.buckets.contains_key("busy"));
        assert!(map.buckets.contains_key("new"));
    }

    #[test]
    fn full_map_lets_new_keys_through() {
        let start = Instant::now();
        let buckets = Buckets::new(ONE_A_SECOND, "test", start);
        {
            let mut map = buckets.lock();
            let empty = Bucket { tokens: 0.0, updated: start };
            for key in 0..MAX_BUCKETS {
                map.buckets.insert(key, empty);
            }
        }

        assert_eq!(buckets.take(MAX_BUCKETS, start), Ok(()));
        assert_eq!(buckets.take(MAX_BUCKETS, start), Ok(()));
        assert!(buckets.take(0, start).is_err());
        assert_eq!(buckets.lock().buckets.len(), MAX_BUCKETS);
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after_seconds(Duration::ZERO), 1);
        assert_eq!(retry_after_seconds(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_seconds(Duration::from_secs(1)), 1);
        assert_eq!(retry_after_seconds(Duration::from_millis(1001)), 2);
        assert_eq!(retry_after_seconds(Duration::from_secs(5)), 5);
    }

    #[test]
    fn ipv6_addresses_count_by_network() {
        let host: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let neighbour: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();

        assert_eq!(address_key(host), address_key(neighbour));
        assert_ne!(address_key(host), address_key(other));
        assert_eq!(address_key(mapped), "192.0.2.7".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn partner_limit_leaves_other_partners_alone() {
        let limiter =
            RateLimiter::new(RateLimits { partner: ONE_A_SECOND, client: RateLimit::OFF });
        let address = Some("192.0.2.1".parse().unwrap());
        for _ in 0..3 {
            limiter.charge_caller(&partner("a"), None, address).unwrap();
        }

        let rejected = limiter.charge_caller(&partner("a"), None, address).unwrap_err();
        assert!(matches!(rejected, ApiError::TooManyRequests { retry_after_seconds: 1, .. }));
        assert!(limiter.charge_caller(&partner("b"), None, address).is_ok());
    }

    #[test]
    fn client_limit_counts_each_application() {
        let limiter =
            RateLimiter::new(RateLimits { partner: RateLimit::OFF, client: ONE_A_SECOND });
        let address = Some("192.0.2.1".parse().unwrap());
        let application = || Some("app-1".to_owned());
        for _ in 0..3 {
            limiter.charge_caller(&partner("a"), application(), address).unwrap();
        }

        assert!(limiter.charge_caller(&partner("a"), application(), address).is_err());
        assert!(limiter.charge_caller(&partner("a"), Some("app-2".to_owned()), address).is_ok());
        assert!(limiter.charge_caller(&partner("a"), None, address).is_ok());
        assert!(limiter.charge_caller(&partner("b"), application(), address).is_ok());
    }

    #[test]
    fn rejected_partner_request_gives_client_token_back() {
        let limiter = RateLimiter::new(RateLimits {
            partner: RateLimit { per_second: 1.0, burst: 1 },
            client: RateLimit { per_second: 1.0, burst: 2 },
        });
        let address = Some("192.0.2.1".parse().unwrap());
        limiter.charge_caller(&partner("a"), None, address).unwrap();

        assert!(limiter.charge_caller(&partner("a"), None, address).is_err());
        assert!(limiter.charge_caller(&partner("b"), None, address).is_ok());
    }

    #[test]
    fn address_limit_applies_only_to_unverified_requests() {
        let limiter =
            RateLimiter::new(RateLimits { partner: RateLimit::OFF, client: ONE_A_SECOND });
        let address = Some("192.0.2.1".parse().unwrap());
        for _ in 0..3 {
            limiter.charge_address(address).unwrap();
        }

        let rejected = limiter.charge_address(address).unwrap_err();
        assert!(matches!(rejected, ApiError::TooManyRequests { .. }));
        assert!(limiter.charge_address(Some("192.0.2.2".parse().unwrap())).is_ok());
        assert!(limiter.charge_address(None).is_ok());

        // A caller with a valid token from the same address is still served.
        assert!(limiter.charge_caller(&partner("a"), None, address).is_ok());
    }
}
