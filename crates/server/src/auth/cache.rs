//! A bounded cache of verified tokens, so that a client that sends the same token with every
//! request pays for one signature check, not one per request.
//!
//! Entries are keyed by the SHA-256 digest of the token, so the cache stores no token. An entry
//! is used only while its token is unexpired (its `exp` plus the clock skew), and only while the
//! key set that verified it is still the current one. A reload of the identity provider's keys
//! starts a new generation, and entries of older generations are verified again. Rejected
//! tokens are not cached, so every rejection is checked in full.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::digest::{SHA256, digest};

use super::Principal;

/// The maximum number of cached tokens. By an estimate of 200 bytes an entry (digest, partner,
/// client id and map overhead), a full cache takes under 2 MiB.
pub(crate) const MAX_ENTRIES: usize = 8192;

/// The SHA-256 digest of a token.
type Digest = [u8; 32];

/// One verified token.
#[derive(Debug)]
struct Entry {
    principal: Principal,
    /// The first second, counted from 1970-01-01T00:00:00Z, at which the token is expired even
    /// with the clock skew.
    expired_from: u64,
    /// The key set generation that verified the token.
    generation: u64,
}

/// Verified tokens and who they speak for.
#[derive(Debug, Default)]
pub(crate) struct TokenCache {
    entries: Mutex<HashMap<Digest, Entry>>,
}

impl TokenCache {
    /// Returns the principal of a token verified under key set `generation`, if it is cached
    /// and still unexpired.
    pub(crate) fn get(&self, token: &str, generation: u64) -> Option<Principal> {
        let key = digest_of(token);
        let now = unix_seconds();
        let mut entries = self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let entry = entries.get(&key)?;
        if entry.generation == generation && now < entry.expired_from {
            return Some(entry.principal.clone());
        }
        entries.remove(&key);
        None
    }

    /// Remembers that `token` was verified under key set `generation` and speaks for
    /// `principal` until `expires_at` (its `exp`) plus `clock_skew_seconds`.
    pub(crate) fn insert(
        &self,
        token: &str,
        principal: &Principal,
        expires_at: u64,
        clock_skew_seconds: u64,
        generation: u64,
    ) {
        let key = digest_of(token);
        let now = unix_seconds();
        let expired_from = expires_at.saturating_add(clock_skew_seconds).saturating_add(1);
        if expired_from <= now {
            return;
        }

        let mut entries = self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if entries.len() >= MAX_ENTRIES {
            // Expired and superseded entries go first. If every entry is still live, the cache
            // starts over: the tokens in use are verified once more and return.
            entries.retain(|_, entry| entry.generation == generation && now < entry.expired_from);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        let entry = Entry { principal: principal.clone(), expired_from, generation };
        entries.insert(key, entry);
    }

    /// Returns the number of cached tokens.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.lock().unwrap().len()
    }
}

fn digest_of(token: &str) -> Digest {
    let mut key = [0; 32];
    key.copy_from_slice(digest(&SHA256, token.as_bytes()).as_ref());
    key
}

fn unix_seconds() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_secs())
}

#[cfg(test)]
mod tests {
    use beacon_store::PartnerTenantId;

    use super::*;

    fn principal(partner: &str) -> Principal {
        Principal {
            partner: PartnerTenantId::new(partner.to_owned()),
            client: None,
            can_read: true,
            can_write: false,
        }
    }

    #[test]
    fn cached_token_returns_its_principal() {
        let cache = TokenCache::default();
        cache.insert("a.b.c", &principal("p"), unix_seconds() + 600, 0, 1);

        assert_eq!(cache.get("a.b.c", 1), Some(principal("p")));
        assert_eq!(cache.get("a.b.d", 1), None);
    }

    #[test]
    fn expired_token_is_not_served() {
        let cache = TokenCache::default();
        let now = unix_seconds();
        cache.insert("old", &principal("p"), now - 120, 60, 1);
        cache.insert("in-skew", &principal("p"), now - 30, 60, 1);

        assert_eq!(cache.get("old", 1), None);
        assert_eq!(cache.get("in-skew", 1), Some(principal("p")));
    }

    #[test]
    fn new_key_set_generation_misses() {
        let cache = TokenCache::default();
        cache.insert("t", &principal("p"), unix_seconds() + 600, 0, 1);

        assert_eq!(cache.get("t", 2), None);
        assert_eq!(cache.get("t", 1), None, "the stale entry is removed");
    }

    #[test]
    fn full_cache_stays_bounded() {
        let cache = TokenCache::default();
        let later = unix_seconds() + 600;
        for i in 0..MAX_ENTRIES + 10 {
            cache.insert(&format!("token-{i}"), &principal("p"), later, 0, 1);
        }

        assert!(cache.len() <= MAX_ENTRIES, "{} entries", cache.len());
        let last = format!("token-{}", MAX_ENTRIES + 9);
        assert_eq!(cache.get(&last, 1), Some(principal("p")));
    }
}
