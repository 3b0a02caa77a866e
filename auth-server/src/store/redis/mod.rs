//! The Redis backend, so that several auth-server replicas share users, clients, refresh-token
//! families, revocations and login throttles. It keeps the same rules as the embedded backend
//! (`store/conformance/` checks both): every method is one atomic step on the server, either a
//! single command, a `MULTI` block or a Lua script, so no replica ever holds a lock across calls.
//!
//! # Key layout
//!
//! Every key starts with the store's prefix `P` (`auth:` unless configured: see
//! [`RedisStore::open_with_prefix`], or `?prefix=` in the URL). Keys that one atomic step touches
//! together share a hash tag (`{…}`), so the layout also works on Redis Cluster:
//!
//! | key                         | type   | holds                                               | expires          |
//! |-----------------------------|--------|-----------------------------------------------------|------------------|
//! | `P{users}:index`            | set    | every username                                      | never            |
//! | `P{users}:user:<username>`  | hash   | `full_name`, `email`, `password_hash`, `disabled`, `scopes`, `stamp`, `not_before` | never |
//! | `P{users}:removed:<username>` | string | a removed user's access-token cut-off             | `keep_until`     |
//! | `P{clients}:index`          | set    | every client id                                     | never            |
//! | `P{clients}:client:<id>`    | hash   | `secret_hash`, `public`, `introspect`, `grants`, `scopes`, `audiences`, `stamp`, `not_before`, and during a rotation's overlap `previous_secret_hash`, `previous_secret_expires_at` | never |
//! | `P{clients}:removed:<id>`   | string | a removed client's access-token cut-off             | `keep_until`     |
//! | `P{rt}:<token id>`          | hash   | one refresh token: `family_id`, `client_id`, `username`, `scope`, `audience`, `user_stamp`, `client_stamp`, `issued_at`, `expires_at`, and once used `used_at`, `sealed_successor`, `successor_id` | `expires_at` |
//! | `Prevoked-family:<family>`  | string | the family's `expires_at`                           | that time        |
//! | `Prevoked-jti:<jti>`        | string | the access token's `expires_at`                     | that time        |
//! | `P{login:<digest>}:<counter>` | hash | one login counter: `count`, `end` of its current fixed window (`<digest>`: the hex SHA-256 of the username; `<counter>`: `user`, or `address:` and the client address) | window end + grace |
//! | `P{revocations}:meta`       | hash   | the revocation feed's `epoch` (random, set once), `seq` (of the last entry), `floor` (highest seq purged) | never |
//! | `P{revocations}:log`        | zset   | every feed entry (`kind:key`) scored by its seq     | purged after `until` |
//! | `P{revocations}:entries`    | hash   | `kind:key` → `"not_before until"`                   | purged after `until` |
//! | `P{revocations}:ends`       | zset   | every feed entry scored by its `until`, for the purge | purged after `until` |
//! | `P{keys}:signing`           | hash   | one field per signing key: its `kid` → JSON with `state`, `created_at`, `activates_at`, `retired_at`, `expires_at`, `jwk`, `sealed` (base64) | never (deleted by `remove_expired_signing_keys`) |
//!
//! Signing keys live in one hash, so that each lifecycle step (stage, promote, revoke) is one
//! script over one key that sees every key's state; there are a handful of keys at any time.
//!
//! Absent optional fields (`full_name`, `email`, `used_at`, …) mean `None`; lists (`grants`,
//! `audiences`) and scopes are space-separated, as in the embedded backend. Records written
//! before the credential lifecycle have no stamps, flags or cut-off: absent, they read as empty,
//! false (but `introspect`, true: such clients could introspect any token) and 0, as the
//! embedded store's migration fills them.
//!
//! A username and a client id may not be the same (see [`Store::insert_user`]). Users and
//! clients live in different slots, so the check before an insert is a read of the other slot
//! and then the insert script: two operators adding the same name as a user and as a client at
//! the same instant could both succeed. The embedded store checks in the inserting statement.
//!
//! **Trade-off:** [`Store::rotate_refresh`] is given only the old token's id, yet must update it
//! and create its successor atomically, so all refresh tokens of one store share the tag `{rt}`
//! and live in one cluster slot, on one primary. The work per refresh is a few O(1) commands, so
//! one primary carries a lot; spreading families over slots would need an id-to-family index
//! written outside the atomic step, and with it a window where a fresh successor is not found.
//! Users and clients likewise sit in one slot each; they are few and rarely written.
//!
//! # Cluster
//!
//! A `redis+cluster://` (or `rediss+cluster://`) URL names seed nodes of a Redis Cluster; the
//! connection then follows the slot map, `MOVED` and `ASK` by itself (see `cluster`). Every
//! script and pipeline above names keys of one hash tag, hence of one slot, so each runs whole on
//! the one primary that owns the slot; a unit test checks the keys each method builds. While a
//! slot moves, Redis refuses a script or multi-key command on it with `TRYAGAIN` whenever one of
//! its keys is missing on the node asked, which a rotation's new successor always is: rotations
//! wait, within [`REQUEST_DEADLINE`] and then as `Unavailable`, until the whole `{rt}` slot has
//! moved, while single-key steps follow `ASK`. The cluster client also sends a request again
//! after a lost connection, which the single-node connection does only when that is safe (see
//! below): a rotation sent twice finds its token used by itself and answers, within
//! `refresh_reuse_grace`, with the same pair; without the grace the family is revoked. An insert
//! of a refresh token sent twice finds its own record and succeeds.
//!
//! # Sentinel
//!
//! A `redis+sentinel://` (or `rediss+sentinel://`) URL names sentinels and a master name; the
//! connection talks to the primary they name and asks them again after a failover (see
//! [`sentinel`]).
//!
//! # Expiry
//!
//! Refresh tokens, revoked families and revoked access tokens carry a Redis TTL that ends
//! [`EXPIRY_GRACE_SECS`] after their `expires_at`; a login-failure record lives its window plus
//! the same grace, counted by Redis from the failure that opened the window. The grace keeps a
//! Redis clock that runs a little ahead of the replicas' from dropping a revocation while a
//! replica still accepts the token. Methods that receive `now` compare with it, so their answers
//! do not depend on when Redis drops a key; [`Store::refresh`] may return a token up to the grace
//! past its `expires_at`, as the embedded store does until [`Store::purge_expired`], so callers
//! check `expires_at` themselves. `purge_expired` has only the revocation feed to purge, whose
//! entries must leave with the purge floor raised in the same step.
//!
//! # When Redis is away
//!
//! No request waits long for Redis: each store call gives up after [`REQUEST_DEADLINE`] with
//! [`StoreError::Unavailable`], which `/token` answers as 503 `temporarily_unavailable` and
//! `/readyz` as not ready. The connection manager reconnects in the background, trying a few
//! times with a short backoff ([`CONNECTION_TIMEOUT`] each, and [`RESPONSE_TIMEOUT`] for an answer
//! on a live connection), and starts again on the next call after a failed round, so service
//! comes back by itself once Redis answers. A call that failed on the connection is sent once
//! more within its deadline when that is safe: a read after any connection failure, a write only
//! when the connection was refused, since then it cannot have reached Redis. The one exception is
//! the login throttle's reservation, sent again like a read: run twice, it counts one check
//! twice, which errs on the throttle's side. So the first requests
//! after Redis comes back do not fail because the old connection died. Writes are never sent
//! twice after they may have run: an interrupted refresh answers 503, and the client's retry
//! finds the rotation done (within `refresh_reuse_grace` it gets the same pair back).
//!
//! Opening the store connects at once: an auth-server started while Redis is down exits with an
//! error naming the store instead of serving.
//!
//! # What Redis must keep
//!
//! Losing writes brings revoked tokens back and lets a used refresh token be used again.
//! Run Redis with AOF persistence (`appendonly yes`, `appendfsync everysec` or `always`) and
//! `maxmemory-policy noeviction`, since an evicted key is a lost revocation or user. Replicas of
//! Redis are asynchronous: a failover can lose the last writes, so prefer `appendfsync always` and
//! `min-replicas-to-write` where that matters. Through Sentinel the store waits for a replica
//! after each write by default (`replica_acks`, see [`sentinel`]), so that what it answered
//! survives the failover of a failed primary. Scripts need Redis 5 or later.
//!
//! # Files
//!
//! The `Store` methods are split by area into the same files as the embedded backend's
//! (`users`, `clients`, `refresh`, `logins`, `signing_keys`), so that the two ways of keeping one
//! rule can be read side by side. What more than one area needs (sending within the deadline,
//! the account steps users and clients share) stays here, over `connection`, `keys`, `codec`
//! and `scripts`.
//!
//! [`Store::insert_user`]: super::Store::insert_user
//! [`Store::purge_expired`]: super::Store::purge_expired
//! [`Store::refresh`]: super::Store::refresh
//! [`Store::rotate_refresh`]: super::Store::rotate_refresh

mod bulk;
mod clients;
mod cluster;
mod codec;
mod connection;
mod keys;
mod logins;
mod refresh;
mod revocations;
mod scripts;
pub mod sentinel;
mod signing_keys;
mod tls;
mod users;

pub use cluster::redact as redact_multi_host_url;
pub use tls::RedisTls;

use connection::{scrub_password, split_prefix, store_error, Request, Resend};
use keys::Keys;
use scripts::Scripts;

use std::collections::HashMap;
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::{FromRedisValue, RedisError, RedisResult, ScriptInvocation};

use super::{Removal, StoreError};

/// The prefix of every key unless the URL or the caller names another.
pub const DEFAULT_PREFIX: &str = "auth:";

/// How long a key outlives the `expires_at` it records (see the module doc).
pub const EXPIRY_GRACE_SECS: u64 = 60;

/// The latest time Redis accepts for `EXPIREAT` without overflowing (the end of year 9999).
const MAX_EXPIRE_AT: u64 = 253_402_300_799;

/// The longest a store call waits for Redis, resending included, before it is `Unavailable`.
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(2);

/// The longest one attempt to connect (TCP, TLS, `AUTH`, `SELECT`) may take.
pub const CONNECTION_TIMEOUT: Duration = Duration::from_secs(1);

/// The longest Redis may take to answer one command on a live connection. Every command is a
/// few O(1) steps, so this is far above a healthy answer and well below [`REQUEST_DEADLINE`].
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(1);

/// Connection attempts after the first in one reconnection round, with a backoff from 100 ms
/// (doubling, jittered, at most [`MAX_RECONNECT_DELAY`]): a refused round ends within a second.
const RECONNECT_RETRIES: usize = 2;
const MAX_RECONNECT_DELAY: Duration = Duration::from_millis(500);

/// How the store reaches Redis: one node (or a proxy) through a connection manager that
/// reconnects to it; whichever node the sentinels name the primary (see `sentinel`); or a
/// Cluster (see `cluster`), whose client follows the slot map. Each reconnects by itself and is
/// cheap to clone. It lives here, above `connection` and `sentinel`, because the Sentinel
/// connection itself sends `connection`'s requests.
#[derive(Clone)]
enum Connection {
    Single(ConnectionManager),
    Sentinel(sentinel::SentinelConnection),
    Cluster(redis::cluster_async::ClusterConnection),
}

impl Connection {
    /// Whether the store may send a request that failed with `err` once more, as `resend`
    /// allows. Not a write on a Cluster: its client has already sent the request again itself,
    /// after errors that do not prove it never ran.
    fn may_resend(&self, resend: Resend, err: &RedisError) -> bool {
        resend.allows(err)
            && !(matches!(resend, Resend::IfNotSent) && matches!(self, Self::Cluster(_)))
    }

    /// Sends `request` once.
    async fn attempt<T: FromRedisValue>(&mut self, request: Request<'_>) -> RedisResult<T> {
        match self {
            Self::Single(manager) => request.run(manager).await,
            Self::Sentinel(sentinel) => sentinel.attempt(request).await,
            Self::Cluster(cluster) => request.run(cluster).await,
        }
    }
}

/// A store on one Redis server (standalone, or a proxy in front of a cluster) through one
/// multiplexed connection, on the primary that sentinels name, or on a Redis Cluster; each
/// reconnects by itself.
pub struct RedisStore {
    connection: Connection,
    keys: Keys,
    scripts: Scripts,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.keys.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Connects to `redis://[USER:PASSWORD@]HOST[:PORT][/DB][?prefix=PREFIX]`, or `rediss://…`
    /// for TLS checked against the system's roots, to the primary that sentinels name
    /// (`redis+sentinel://`, see [`sentinel`]), or to a Cluster through its seeds,
    /// `redis+cluster://[USER:PASSWORD@]HOST:PORT,HOST:PORT[?prefix=PREFIX]` (or
    /// `rediss+cluster://`). The key prefix is the `prefix` query parameter if there is one,
    /// else [`DEFAULT_PREFIX`].
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        Self::open_tls(url, &RedisTls::default()).await
    }

    /// As [`RedisStore::open`], with the CA and client certificate files of `tls` for a
    /// `rediss://` URL.
    pub async fn open_tls(url: &str, tls: &RedisTls) -> Result<Self, StoreError> {
        if cluster::is_cluster_url(url) {
            let prefix = cluster::parse(url)
                .map_err(|problem| {
                    StoreError::Unavailable(format!(
                        "connecting to {}: {problem}",
                        cluster::redact(url)
                    ))
                })?
                .prefix;
            return Self::open_with_prefix_tls(
                url,
                prefix.as_deref().unwrap_or(DEFAULT_PREFIX),
                tls,
            )
            .await;
        }
        let (url, prefix) = if sentinel::names_sentinels(url) {
            sentinel::split_prefix(url)
        } else {
            split_prefix(url)
        };
        Self::open_with_prefix_tls(&url, prefix.as_deref().unwrap_or(DEFAULT_PREFIX), tls).await
    }

    /// Connects to `url` and keeps every key under `prefix`, so that several stores (or test
    /// runs) can share one Redis. The prefix must not contain `{` or `}`, which would change the
    /// hash tags.
    pub async fn open_with_prefix(url: &str, prefix: &str) -> Result<Self, StoreError> {
        Self::open_with_prefix_tls(url, prefix, &RedisTls::default()).await
    }

    /// As [`RedisStore::open_with_prefix`], with the files of `tls` for a `rediss://` URL.
    pub async fn open_with_prefix_tls(
        url: &str,
        prefix: &str,
        tls: &RedisTls,
    ) -> Result<Self, StoreError> {
        if prefix.contains(['{', '}']) {
            return Err(StoreError::Unavailable(format!(
                "the Redis key prefix {prefix:?} must not contain braces"
            )));
        }
        let connection = if cluster::is_cluster_url(url) {
            let opening_error = |problem: String| {
                StoreError::Unavailable(format!(
                    "connecting to {}: {problem}",
                    cluster::redact(url)
                ))
            };
            let nodes = cluster::parse(url).map_err(opening_error)?.nodes;
            Connection::Cluster(
                cluster::connect(url, &nodes, tls)
                    .await
                    .map_err(opening_error)?,
            )
        } else if sentinel::names_sentinels(url) {
            Connection::Sentinel(sentinel::SentinelConnection::open(url, tls).await?)
        } else {
            Connection::Single(Self::single(url, tls).await?)
        };
        Ok(Self {
            connection,
            keys: Keys {
                prefix: prefix.to_owned(),
            },
            scripts: Scripts::new(),
        })
    }

    /// A connection manager for the one node `url` names.
    async fn single(url: &str, tls: &RedisTls) -> Result<ConnectionManager, StoreError> {
        let redacted = super::redact_url(url);
        let opening_error = |err: RedisError| {
            StoreError::Unavailable(format!(
                "connecting to {redacted}: {}",
                scrub_password(url, &err.to_string())
            ))
        };
        let client = tls::client(url, tls).map_err(|problem| {
            StoreError::Unavailable(format!(
                "connecting to {redacted}: {}",
                scrub_password(url, &problem)
            ))
        })?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECTION_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(RECONNECT_RETRIES)
            .set_max_delay(MAX_RECONNECT_DELAY);
        ConnectionManager::new_with_config(client, config)
            .await
            .map_err(opening_error)
    }

    /// The prefix of every key this store writes.
    pub fn prefix(&self) -> &str {
        &self.keys.prefix
    }

    /// Sends `request`, again once if `resend` allows it, and gives up after
    /// [`REQUEST_DEADLINE`] (see the module doc).
    async fn send<T: FromRedisValue + Send>(
        &self,
        resend: Resend,
        request: Request<'_>,
    ) -> Result<T, StoreError> {
        let attempts = async {
            let mut connection = self.connection.clone();
            match connection.attempt(request).await {
                Err(err) if connection.may_resend(resend, &err) => {
                    connection.attempt(request).await
                }
                outcome => outcome,
            }
        };
        match tokio::time::timeout(REQUEST_DEADLINE, attempts).await {
            Ok(outcome) => outcome.map_err(store_error),
            Err(_) => Err(StoreError::Unavailable(format!(
                "Redis did not answer within {} ms",
                REQUEST_DEADLINE.as_millis()
            ))),
        }
    }

    /// Runs a script that writes and answers 1 when it did: whether it wrote. Sent again only
    /// when the first attempt cannot have reached Redis.
    async fn wrote(&self, invocation: &ScriptInvocation<'_>) -> Result<bool, StoreError> {
        let done: u64 = self
            .send(Resend::IfNotSent, Request::Script(invocation))
            .await?;
        Ok(done == 1)
    }

    async fn hash(&self, key: &str) -> Result<HashMap<String, Vec<u8>>, StoreError> {
        self.send(
            Resend::Always,
            Request::Command(redis::cmd("HGETALL").arg(key)),
        )
        .await
    }

    /// Reads the hashes of the members of `index`, sorted by member. Members whose hash was
    /// removed in the meantime are skipped.
    async fn indexed(
        &self,
        index: &str,
        key_of: impl Fn(&str) -> String,
    ) -> Result<Vec<(String, HashMap<String, Vec<u8>>)>, StoreError> {
        let mut members: Vec<String> = self
            .send(
                Resend::Always,
                Request::Command(redis::cmd("SMEMBERS").arg(index)),
            )
            .await?;
        if members.is_empty() {
            return Ok(Vec::new());
        }
        members.sort_unstable();
        let mut pipeline = redis::pipe();
        for member in &members {
            pipeline.cmd("HGETALL").arg(key_of(member));
        }
        let hashes: Vec<HashMap<String, Vec<u8>>> = self
            .send(Resend::Always, Request::Pipeline(&pipeline))
            .await?;
        Ok(members
            .into_iter()
            .zip(hashes)
            .filter(|(_, hash)| !hash.is_empty())
            .collect())
    }

    /// Sets fields of the hash at `key` in one step, only if it exists.
    async fn set_fields(&self, key: String, pairs: &[(&str, String)]) -> Result<bool, StoreError> {
        let mut invocation = self.scripts.set_fields_if_exists.prepare_invoke();
        invocation.key(key);
        for (field, value) in pairs {
            invocation.arg(*field).arg(value);
        }
        self.wrote(&invocation).await
    }

    /// Inserts a user or a client (`kind`) under `member`: its hash (with its `not_before` apart
    /// from `pairs`) and its index member, the cut-off raised to a removed namesake's.
    /// `Conflict` when the name is taken: by this kind, or by the other kind (`other`: its
    /// record and its removal, both in its one slot, so one `EXISTS` asks for both).
    async fn insert_account(
        &self,
        kind: &str,
        keys: [String; 3],
        other: (&str, [String; 2]),
        member: &str,
        not_before: u64,
        pairs: Vec<(&'static str, String)>,
    ) -> Result<(), StoreError> {
        let (other_kind, [other_record, other_removal]) = other;
        let taken: u64 = self
            .send(
                Resend::Always,
                Request::Command(redis::cmd("EXISTS").arg(other_record).arg(other_removal)),
            )
            .await?;
        if taken > 0 {
            return Err(StoreError::Conflict(format!("{other_kind} {member}")));
        }
        let mut invocation = self.scripts.insert_account.prepare_invoke();
        let [record, index, removal] = keys;
        invocation
            .key(record)
            .key(index)
            .key(removal)
            .arg(member)
            .arg(not_before);
        for (field, value) in pairs.into_iter().filter(|(f, _)| *f != "not_before") {
            invocation.arg(field).arg(value);
        }
        if self.wrote(&invocation).await? {
            Ok(())
        } else {
            Err(StoreError::Conflict(format!("{kind} {member}")))
        }
    }

    async fn remove_account(
        &self,
        keys: [String; 3],
        member: &str,
        removal: Removal,
    ) -> Result<bool, StoreError> {
        let [record, index, tombstone] = keys;
        self.wrote(
            self.scripts
                .remove_account
                .key(record)
                .key(index)
                .key(tombstone)
                .arg(member)
                .arg(removal.not_before)
                .arg(removal.keep_until.min(MAX_EXPIRE_AT)),
        )
        .await
    }

    async fn exists(&self, key: String) -> Result<bool, StoreError> {
        let count: u64 = self
            .send(
                Resend::Always,
                Request::Command(redis::cmd("EXISTS").arg(key)),
            )
            .await?;
        Ok(count == 1)
    }
}

super::store_by_area!(RedisStore {
    async fn ping(&self) -> Result<(), StoreError> {
        let _: String = self
            .send(Resend::Always, Request::Command(&redis::cmd("PING")))
            .await?;
        Ok(())
    }

    async fn insert_many(
        &self,
        users: &[UserRecord],
        tokens: &[RefreshRecord],
    ) -> Result<(), StoreError> {
        // The pipelines load their scripts with a keyless `SCRIPT LOAD`, which reaches one
        // node only: on a Cluster, one insert after the other.
        if let Connection::Cluster(_) = self.connection {
            for user in users {
                users::insert_user(self, user).await?;
            }
            for token in tokens {
                refresh::insert_refresh(self, token).await?;
            }
            return Ok(());
        }
        bulk::insert_many(self, users, tokens).await
    }

    /// Every expiring key carries a Redis TTL but the revocation feed's entries, which are
    /// purged here with the floor raised past them (see `revocations`).
    async fn purge_expired(&self, now: u64) -> Result<(), StoreError> {
        revocations::purge(self, now).await
    }
});

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::LoginSubject;
    use redis::aio::MultiplexedConnection;

    /// A store under a fresh prefix, and a connection of its own to write records as an older
    /// version or a hand would have.
    pub(super) async fn store_and_raw_connection() -> (RedisStore, MultiplexedConnection) {
        use crate::store::conformance::{fresh_test_prefix, redis_test_url};
        let url = redis_test_url();
        let prefix = fresh_test_prefix();
        let store = RedisStore::open_with_prefix(&url, &prefix).await.unwrap();
        let raw = redis::Client::open(url.as_str())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        (store, raw)
    }

    #[test]
    fn prefix_comes_from_the_query_and_leaves_the_rest() {
        assert_eq!(
            split_prefix("redis://127.0.0.1:6379/0?prefix=team%3A&protocol=resp3"),
            (
                "redis://127.0.0.1:6379/0?protocol=resp3".to_owned(),
                Some("team:".to_owned())
            )
        );
        assert_eq!(
            split_prefix("redis://h/1?prefix=x"),
            ("redis://h/1".to_owned(), Some("x".to_owned()))
        );
        assert_eq!(
            split_prefix("redis://h/1"),
            ("redis://h/1".to_owned(), None)
        );
    }

    #[test]
    fn keys_of_one_atomic_step_share_a_hash_tag() {
        let keys = Keys {
            prefix: "auth:".to_owned(),
        };
        assert_eq!(keys.user("a}b"), "auth:{users}:user:a}b");
        assert_eq!(keys.user_index(), "auth:{users}:index");
        assert_eq!(keys.client("c"), "auth:{clients}:client:c");
        assert_eq!(keys.client_index(), "auth:{clients}:index");
        assert_eq!(keys.refresh("ab12"), "auth:{rt}:ab12");
        assert_eq!(keys.signing_keys(), "auth:{keys}:signing");
        let subject = LoginSubject([0xab; 32]);
        let tag = format!("auth:{{login:{}}}:", "ab".repeat(32));
        assert_eq!(keys.login(&subject, "user"), format!("{tag}user"));
        assert_eq!(
            keys.login(&subject, "address:2001:db8::/64"),
            format!("{tag}address:2001:db8::/64")
        );
    }

    /// Records written before the credential lifecycle have no stamps, flags or cut-offs: they
    /// read as empty stamps (which match each other, so refresh tokens keep refreshing until
    /// the first change that ends sessions), no cut-off, and clients keep the right to
    /// introspect that every client had then.
    #[tokio::test]
    #[allow(clippy::unwrap_used)]
    async fn records_from_before_the_credential_lifecycle_read_as_upgraded() {
        let (store, mut raw) = store_and_raw_connection().await;
        let keys = &store.keys;
        let _: () = redis::pipe()
            .cmd("HSET")
            .arg(keys.user("old"))
            .arg(&[
                "password_hash",
                "$argon2id$x",
                "disabled",
                "0",
                "scopes",
                "read",
            ])
            .cmd("HSET")
            .arg(keys.client("rs"))
            .arg(&[
                "secret_hash",
                "hmac-sha256$s$m",
                "grants",
                "client_credentials",
                "scopes",
                "",
                "audiences",
                "",
            ])
            .cmd("HSET")
            .arg(keys.refresh("t1"))
            .arg(&[
                "family_id",
                "f1",
                "client_id",
                "public",
                "username",
                "old",
                "scope",
                "read",
                "audience",
                "api",
                "issued_at",
                "1",
                "expires_at",
                "99999999999",
            ])
            .query_async(&mut raw)
            .await
            .unwrap();

        crate::store::hand_written::read_as_upgraded(&store).await;

        let mut cleanup = redis::cmd("DEL");
        for key in [keys.user("old"), keys.client("rs"), keys.refresh("t1")] {
            cleanup.arg(key);
        }
        let _: u64 = cleanup.query_async(&mut raw).await.unwrap();
    }

    #[test]
    fn password_never_reaches_messages() {
        let url = "redis://user:s%3Acret@127.0.0.1:1/0";
        assert_eq!(
            scrub_password(url, "failed s:cret and s%3Acret"),
            "failed [redacted] and [redacted]"
        );
    }

    #[tokio::test]
    async fn unreachable_redis_is_unavailable_without_the_password() {
        let error = RedisStore::open("redis://user:hunter2@127.0.0.1:1/0").await;
        let message = match error {
            Err(StoreError::Unavailable(message)) => message,
            _ => String::new(),
        };
        assert!(!message.is_empty(), "a closed port must be unavailable");
        assert!(!message.contains("hunter2"), "{message}");
        assert!(message.contains("127.0.0.1:1"), "{message}");
    }

    #[tokio::test]
    async fn braces_in_the_prefix_are_refused() {
        let error = RedisStore::open_with_prefix("redis://127.0.0.1:1/0", "a{b}:").await;
        assert!(
            matches!(error, Err(StoreError::Unavailable(message)) if message.contains("braces"))
        );
    }
}
