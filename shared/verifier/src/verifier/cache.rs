//! Tokens that verified, remembered so that a client sending the same token again costs a hash
//! lookup instead of an RSA verification.
//!
//! What the cache promises:
//! - an entry is only ever made for a token that passed every check of [`super::Verifier`];
//! - a hit is judged again on `exp` (with the verifier's leeway), every time; `nbf` and the
//!   other claims cannot change for the same bytes;
//! - a cache belongs to one key set: the verifier installs an empty cache whenever it installs
//!   keys, so that a token signed with a key that is no longer published is verified afresh
//!   (and refused);
//! - it holds at most `capacity` entries (first in, first out), keyed by the SHA-256 of the
//!   token, so that it keeps no usable token and its memory is bounded by the setting.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use aws_lc_rs::digest::{digest, SHA256};

use crate::claims::AccessClaims;

/// Shards, each behind its own lock, so that workers verifying different tokens rarely wait.
const SHARDS: usize = 16;

/// The SHA-256 of a token: computed once per verification, for the lookup and the insert.
pub(crate) struct Key([u8; 32]);

pub(crate) struct TokenCache {
    shards: Vec<Mutex<Shard>>,
    per_shard: usize,
}

#[derive(Default)]
struct Shard {
    entries: HashMap<[u8; 32], AccessClaims>,
    /// Insertion order, oldest first: the next to go when the shard is full.
    order: VecDeque<[u8; 32]>,
}

/// What a lookup found.
// The claims go straight into the caller's result, by value as `verify` returns them; a box
// would cost an allocation per hit.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Lookup {
    /// The token verified before and has not expired: its claims.
    Valid(AccessClaims),
    /// The token verified before and has expired since; the entry is gone.
    Expired,
    Miss,
}

impl TokenCache {
    /// A cache of at most `capacity` tokens; 0 turns it off.
    pub(crate) fn new(capacity: usize) -> Self {
        let n_shards = if capacity == 0 { 0 } else { SHARDS };
        Self {
            shards: (0..n_shards).map(|_| Mutex::default()).collect(),
            per_shard: capacity.div_ceil(SHARDS),
        }
    }

    pub(crate) fn key(token: &str) -> Key {
        let mut key = [0u8; 32];
        key.copy_from_slice(digest(&SHA256, token.as_bytes()).as_ref());
        Key(key)
    }

    fn shard(&self, key: &Key) -> Option<&Mutex<Shard>> {
        let index = usize::from(key.0[0]) % SHARDS;
        self.shards.get(index)
    }

    /// Looks `token` up; a hit counts as valid while `now <= exp + leeway`, as jsonwebtoken's
    /// own `exp` check has it.
    pub(crate) fn get(&self, key: &Key, now: u64, leeway: u64) -> Lookup {
        let Some(shard) = self.shard(key) else {
            return Lookup::Miss;
        };
        let Ok(mut shard) = shard.lock() else {
            return Lookup::Miss;
        };
        match shard.entries.get(&key.0) {
            None => Lookup::Miss,
            Some(claims) if claims.exp.saturating_add(leeway) >= now => {
                Lookup::Valid(claims.clone())
            }
            Some(_) => {
                shard.entries.remove(&key.0);
                Lookup::Expired
            }
        }
    }

    /// Remembers a token that has just passed every check.
    pub(crate) fn insert(&self, key: Key, claims: &AccessClaims) {
        let Some(shard) = self.shard(&key) else {
            return;
        };
        let Ok(mut shard) = shard.lock() else {
            return;
        };
        if shard.entries.contains_key(&key.0) {
            return;
        }
        // Oldest first; keys of entries removed as expired may still be in the order list.
        while shard.entries.len() >= self.per_shard {
            match shard.order.pop_front() {
                Some(oldest) => {
                    shard.entries.remove(&oldest);
                }
                None => break,
            }
        }
        if shard.order.len() >= 2 * self.per_shard {
            let Shard { entries, order } = &mut *shard;
            order.retain(|key| entries.contains_key(key));
        }
        shard.entries.insert(key.0, claims.clone());
        shard.order.push_back(key.0);
    }

    /// False for a cache of capacity 0, which need not be asked (nor a token hashed).
    pub(crate) fn is_enabled(&self) -> bool {
        !self.shards.is_empty()
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.shards
            .iter()
            .filter_map(|shard| shard.lock().ok().map(|shard| shard.entries.len()))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::claims::{Audience, Scope};

    fn claims(exp: u64) -> AccessClaims {
        AccessClaims {
            iss: "https://issuer".into(),
            sub: "alice".into(),
            aud: Audience::One("api".into()),
            exp,
            iat: 0,
            nbf: None,
            jti: "jti".into(),
            client_id: "public".into(),
            scope: Scope::default(),
            preferred_username: Some("alice".into()),
            name: None,
            email: None,
        }
    }

    #[test]
    fn a_hit_is_judged_on_exp_with_the_leeway_every_time() {
        let cache = TokenCache::new(8);
        cache.insert(TokenCache::key("token"), &claims(1000));
        assert!(
            matches!(cache.get(&TokenCache::key("token"), 1000, 0), Lookup::Valid(c) if c.exp == 1000)
        );
        assert!(matches!(
            cache.get(&TokenCache::key("token"), 1030, 30),
            Lookup::Valid(_)
        ));
        assert!(matches!(
            cache.get(&TokenCache::key("token"), 1031, 30),
            Lookup::Expired
        ));
        // An expired entry is dropped, not kept to be judged again.
        assert!(matches!(
            cache.get(&TokenCache::key("token"), 0, 0),
            Lookup::Miss
        ));
        assert!(matches!(
            cache.get(&TokenCache::key("another"), 0, 0),
            Lookup::Miss
        ));
    }

    #[test]
    fn the_cache_holds_at_most_its_capacity_oldest_out_first() {
        let cache = TokenCache::new(SHARDS * 2);
        let tokens: Vec<String> = (0..SHARDS * 20).map(|i| format!("token {i}")).collect();
        for token in &tokens {
            cache.insert(TokenCache::key(token), &claims(u64::MAX));
        }
        assert!(cache.len() <= SHARDS * 2, "{}", cache.len());
        // The newest token is there, the oldest gone.
        let newest = tokens.last().unwrap();
        assert!(matches!(
            cache.get(&TokenCache::key(newest), 0, 0),
            Lookup::Valid(_)
        ));
        assert!(matches!(
            cache.get(&TokenCache::key(&tokens[0]), 0, 0),
            Lookup::Miss
        ));
    }

    #[test]
    fn capacity_zero_remembers_nothing() {
        let cache = TokenCache::new(0);
        cache.insert(TokenCache::key("token"), &claims(u64::MAX));
        assert!(matches!(
            cache.get(&TokenCache::key("token"), 0, 0),
            Lookup::Miss
        ));
    }

    #[test]
    fn order_list_stays_bounded_when_entries_expire() {
        let cache = TokenCache::new(SHARDS);
        for i in 0..SHARDS * 50 {
            let token = format!("token {i}");
            cache.insert(TokenCache::key(&token), &claims(10));
            assert!(matches!(
                cache.get(&TokenCache::key(&token), 100, 0),
                Lookup::Expired
            ));
        }
        let longest = cache
            .shards
            .iter()
            .map(|shard| shard.lock().unwrap().order.len())
            .max()
            .unwrap();
        assert!(longest <= 2 * cache.per_shard + 1, "{longest}");
    }
}

/// The cache seen through the verifier: hits counted, and forgotten when the keys change.
#[cfg(test)]
mod verifier_tests {
    use std::time::Duration;

    use test_kit::TestSigner;

    use super::super::{unix_now, KeySet, Verifier, VerifierConfig, VerifyError};

    /// A test key under its kid.
    struct Signer {
        kid: &'static str,
        key: TestSigner,
    }

    impl Signer {
        fn new(kid: &'static str) -> Self {
            Self {
                kid,
                key: TestSigner::generate(),
            }
        }

        fn jwks(&self) -> KeySet {
            self.jwks_fresh_for(Duration::from_secs(60))
        }

        fn jwks_fresh_for(&self, fresh_for: Duration) -> KeySet {
            KeySet::from_jwks(self.key.jwks(self.kid).as_bytes(), fresh_for).unwrap()
        }

        fn token(&self, exp: u64) -> String {
            let header = serde_json::json!({"alg": "RS256", "typ": "at+jwt", "kid": self.kid});
            let claims = serde_json::json!({
                "iss": "http://127.0.0.1:9", "sub": "alice", "aud": "api", "exp": exp,
                "iat": exp - 900, "jti": "j", "client_id": "public", "scope": "read",
                "preferred_username": "alice"
            });
            self.key.sign(&header, &claims)
        }
    }

    fn verifier(keys: KeySet, capacity: usize) -> Verifier {
        let mut config = VerifierConfig::new("http://127.0.0.1:9".parse().unwrap(), "api");
        // The issuer is a closed port and stays unasked: unknown kids are refused offline.
        config.unknown_kid_cooldown = Duration::from_secs(3600);
        config.token_cache_capacity = capacity;
        Verifier::with_keys(config, keys).unwrap()
    }

    #[tokio::test]
    async fn a_token_sent_again_is_a_cache_hit() {
        let signer = Signer::new("k1");
        let verifier = verifier(signer.jwks(), 16);
        let token = signer.token(unix_now() + 900);

        let first = verifier.verify(&token).await.unwrap();
        let second = verifier.verify(&token).await.unwrap();

        assert_eq!(first, second);
        assert_eq!(verifier.inner.counters.cache_hits(), 1);
        assert_eq!(verifier.inner.counters.outcome(0), 2);
    }

    #[tokio::test]
    async fn new_keys_empty_the_cache_so_tokens_of_a_withdrawn_key_are_refused() {
        let old = Signer::new("old");
        let verifier = verifier(old.jwks(), 16);
        let token = old.token(unix_now() + 900);
        verifier.verify(&token).await.unwrap();

        verifier.inner.install(Signer::new("new").jwks(), None);

        assert_eq!(verifier.verify(&token).await, Err(VerifyError::UnknownKid));
        assert_eq!(verifier.inner.counters.cache_hits(), 0);
    }

    #[tokio::test]
    async fn a_cached_verdict_is_refused_once_the_keys_are_too_stale() {
        let signer = Signer::new("k1");
        let verifier = verifier(signer.jwks(), 16);
        let token = signer.token(unix_now() + 900);
        // As a fetch installs them: fresh for no time, usable a second past that.
        let bound = Some(Duration::from_secs(1));
        verifier
            .inner
            .install(signer.jwks_fresh_for(Duration::ZERO), bound);
        verifier.verify(&token).await.unwrap();
        verifier.verify(&token).await.unwrap();
        assert_eq!(verifier.inner.counters.cache_hits(), 1, "in the cache");

        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while verifier.readiness() == super::super::Readiness::Ready {
            assert!(std::time::Instant::now() < deadline, "never too stale");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(
            verifier.verify(&token).await,
            Err(VerifyError::KeysUnavailable),
            "the cache does not answer for keys too stale to trust"
        );
        assert_eq!(verifier.inner.counters.cache_hits(), 1);

        verifier
            .inner
            .install(signer.jwks_fresh_for(Duration::from_secs(60)), bound);
        assert!(verifier.verify(&token).await.is_ok(), "fresh keys again");
    }

    #[tokio::test]
    async fn refused_tokens_are_not_remembered_and_capacity_zero_is_off() {
        let signer = Signer::new("k1");
        let uncached = verifier(signer.jwks(), 0);
        let token = signer.token(unix_now() + 900);
        uncached.verify(&token).await.unwrap();
        uncached.verify(&token).await.unwrap();
        assert_eq!(uncached.inner.counters.cache_hits(), 0);

        let cached = verifier(signer.jwks(), 16);
        let expired = signer.token(unix_now() - 3600);
        assert_eq!(cached.verify(&expired).await, Err(VerifyError::Expired));
        assert_eq!(cached.verify(&expired).await, Err(VerifyError::Expired));
        assert_eq!(cached.inner.counters.cache_hits(), 0);
    }
}
