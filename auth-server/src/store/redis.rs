//! The Redis backend, so that several auth-server replicas share users, clients, refresh-token
//! families, revocations and login throttles. It keeps the same rules as the embedded backend
//! (`store/conformance.rs` checks both): every method is one atomic step on the server, either a
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
//! Users and clients likewise sit in one slot each; they are few and rarely written. The layout
//! is ready for Cluster, but the connection is not: [`RedisStore`] talks to one server (or a
//! proxy) and does not follow `MOVED` redirects.
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
//! check `expires_at` themselves. `purge_expired` has nothing to do here.
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
//! `min-replicas-to-write` where that matters. Scripts need Redis 5 or later.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::ConnectionManager;
use redis::{ErrorKind, FromRedisValue, RedisError, RedisResult, Script};
use shared::Scope;

use super::{
    ClientRecord, ClientUpdate, KeyRevocation, KeyState, LoginSubject, PreviousSecret,
    RefreshRecord, Removal, Rotation, SessionCut, SigningKeyRecord, SlotRelease, Store, StoreError,
    UserRecord,
};

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

/// A store on one Redis server (standalone, or a proxy in front of a cluster), through one
/// multiplexed connection that reconnects by itself.
pub struct RedisStore {
    connection: ConnectionManager,
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
    /// Connects to `redis://[USER:PASSWORD@]HOST[:PORT][/DB][?prefix=PREFIX]`. The key prefix is
    /// the `prefix` query parameter if there is one, else [`DEFAULT_PREFIX`].
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let (url, prefix) = split_prefix(url);
        Self::open_with_prefix(&url, prefix.as_deref().unwrap_or(DEFAULT_PREFIX)).await
    }

    /// Connects to `url` and keeps every key under `prefix`, so that several stores (or test
    /// runs) can share one Redis. The prefix must not contain `{` or `}`, which would change the
    /// hash tags.
    pub async fn open_with_prefix(url: &str, prefix: &str) -> Result<Self, StoreError> {
        if prefix.contains(['{', '}']) {
            return Err(StoreError::Unavailable(format!(
                "the Redis key prefix {prefix:?} must not contain braces"
            )));
        }
        let redacted = super::redact_url(url);
        let opening_error = |err: RedisError| {
            StoreError::Unavailable(format!(
                "connecting to {redacted}: {}",
                scrub_password(url, &err.to_string())
            ))
        };
        let client = redis::Client::open(url).map_err(opening_error)?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECTION_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(RECONNECT_RETRIES)
            .set_max_delay(MAX_RECONNECT_DELAY);
        let connection = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(opening_error)?;
        Ok(Self {
            connection,
            keys: Keys {
                prefix: prefix.to_owned(),
            },
            scripts: Scripts::new(),
        })
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
            match request.attempt(&mut connection).await {
                Err(err) if resend.allows(&err) => request.attempt(&mut connection).await,
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
        let done: u64 = self
            .send(Resend::IfNotSent, Request::Script(&invocation))
            .await?;
        Ok(done == 1)
    }

    /// Inserts a user or client hash (with its `not_before` apart from `pairs`) and its index
    /// member, raising the cut-off to a removed namesake's. False when the key is taken.
    async fn insert_account(
        &self,
        keys: [String; 3],
        member: &str,
        not_before: u64,
        pairs: Vec<(&'static str, String)>,
    ) -> Result<bool, StoreError> {
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
        let inserted: u64 = self
            .send(Resend::IfNotSent, Request::Script(&invocation))
            .await?;
        Ok(inserted == 1)
    }

    async fn remove_account(
        &self,
        keys: [String; 3],
        member: &str,
        removal: Removal,
    ) -> Result<bool, StoreError> {
        let [record, index, tombstone] = keys;
        let removed: u64 = self
            .send(
                Resend::IfNotSent,
                Request::Script(
                    self.scripts
                        .remove_account
                        .key(record)
                        .key(index)
                        .key(tombstone)
                        .arg(member)
                        .arg(removal.not_before)
                        .arg(removal.keep_until.min(MAX_EXPIRE_AT)),
                ),
            )
            .await?;
        Ok(removed == 1)
    }

    /// Writes `cut` and the other `pairs` to the user hash at `key`, if it exists.
    async fn cut_sessions(
        &self,
        key: String,
        cut: &SessionCut,
        pairs: &[(&str, String)],
    ) -> Result<bool, StoreError> {
        let mut invocation = self.scripts.cut_sessions.prepare_invoke();
        invocation.key(key).arg(&cut.stamp).arg(cut.not_before);
        for (field, value) in pairs {
            invocation.arg(*field).arg(value);
        }
        let done: u64 = self
            .send(Resend::IfNotSent, Request::Script(&invocation))
            .await?;
        Ok(done == 1)
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

    /// Records `key` as revoked until `expires_at`, never shortening an earlier revocation.
    async fn revoke(&self, key: String, expires_at: u64) -> Result<(), StoreError> {
        let _: u64 = self
            .send(
                Resend::Always,
                Request::Script(
                    self.scripts
                        .revoke
                        .key(key)
                        .arg(expires_at)
                        .arg(expire_at(expires_at)),
                ),
            )
            .await?;
        Ok(())
    }
}

/// One request to Redis: a command, a pipeline (or `MULTI` block) or a script.
#[derive(Clone, Copy)]
enum Request<'a> {
    Command(&'a redis::Cmd),
    Pipeline(&'a redis::Pipeline),
    Script(&'a redis::ScriptInvocation<'a>),
}

impl Request<'_> {
    async fn attempt<T: FromRedisValue>(
        self,
        connection: &mut ConnectionManager,
    ) -> RedisResult<T> {
        match self {
            Self::Command(command) => command.query_async(connection).await,
            Self::Pipeline(pipeline) => pipeline.query_async(connection).await,
            Self::Script(invocation) => invocation.invoke_async(connection).await,
        }
    }
}

/// When a request that failed on the connection is sent once more (see the module doc).
#[derive(Clone, Copy)]
enum Resend {
    /// After any connection failure: a read, or a write that leaves the same state when it runs
    /// twice.
    Always,
    /// Only when the connection was refused, so that the request cannot have reached Redis.
    IfNotSent,
}

impl Resend {
    fn allows(self, err: &RedisError) -> bool {
        match self {
            Self::Always => err.is_connection_refusal() || err.is_connection_dropped(),
            Self::IfNotSent => err.is_connection_refusal(),
        }
    }
}

/// Splits an optional `prefix` query parameter off `url`; the rest goes to the Redis client.
fn split_prefix(url: &str) -> (String, Option<String>) {
    let Ok(mut parsed) = url::Url::parse(url) else {
        return (url.to_owned(), None);
    };
    let pairs: Vec<(String, String)> = parsed.query_pairs().into_owned().collect();
    let Some(prefix) = pairs
        .iter()
        .find(|(name, _)| name == "prefix")
        .map(|(_, value)| value.clone())
    else {
        return (url.to_owned(), None);
    };
    let rest: Vec<&(String, String)> = pairs.iter().filter(|(name, _)| name != "prefix").collect();
    if rest.is_empty() {
        parsed.set_query(None);
    } else {
        parsed.query_pairs_mut().clear().extend_pairs(rest);
    }
    (parsed.to_string(), Some(prefix))
}

/// Removes the URL's password, as written and as decoded, from a message, should the client
/// library ever quote it.
fn scrub_password(url: &str, message: &str) -> String {
    let Some(password) = url::Url::parse(url)
        .ok()
        .and_then(|parsed| parsed.password().map(str::to_owned))
    else {
        return message.to_owned();
    };
    let mut scrubbed = message.to_owned();
    for secret in [percent_decode(&password), password] {
        if !secret.is_empty() {
            scrubbed = scrubbed.replace(&secret, "[redacted]");
        }
    }
    scrubbed
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let escaped = bytes
            .get(index + 1..index + 3)
            .filter(|_| bytes[index] == b'%')
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                decoded.push(byte);
                index += 3;
            }
            None => {
                decoded.push(bytes[index]);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

fn store_error(err: RedisError) -> StoreError {
    let corrupt = matches!(
        err.kind(),
        ErrorKind::Parse | ErrorKind::UnexpectedReturnType
    ) || err.code() == Some("WRONGTYPE");
    if corrupt {
        StoreError::Corrupt(err.to_string())
    } else {
        StoreError::Unavailable(err.to_string())
    }
}

/// The `EXPIREAT` time for data that stops mattering at `expires_at`.
fn expire_at(expires_at: u64) -> u64 {
    expires_at
        .saturating_add(EXPIRY_GRACE_SECS)
        .min(MAX_EXPIRE_AT)
}

/// Key names; see the table in the module doc.
struct Keys {
    prefix: String,
}

impl Keys {
    fn user_index(&self) -> String {
        format!("{}{{users}}:index", self.prefix)
    }
    fn user(&self, username: &str) -> String {
        format!("{}{{users}}:user:{username}", self.prefix)
    }
    fn removed_user(&self, username: &str) -> String {
        format!("{}{{users}}:removed:{username}", self.prefix)
    }
    fn removed_client(&self, client_id: &str) -> String {
        format!("{}{{clients}}:removed:{client_id}", self.prefix)
    }
    fn client_index(&self) -> String {
        format!("{}{{clients}}:index", self.prefix)
    }
    fn client(&self, client_id: &str) -> String {
        format!("{}{{clients}}:client:{client_id}", self.prefix)
    }
    fn refresh(&self, id: &str) -> String {
        format!("{}{{rt}}:{id}", self.prefix)
    }
    fn revoked_family(&self, family_id: &str) -> String {
        format!("{}revoked-family:{family_id}", self.prefix)
    }
    fn revoked_jti(&self, jti: &str) -> String {
        format!("{}revoked-jti:{jti}", self.prefix)
    }
    /// Every counter of one subject shares the hash tag, so that one script may reserve them.
    fn login(&self, subject: &LoginSubject, counter: &str) -> String {
        format!("{}{{login:{}}}:{counter}", self.prefix, subject.hex())
    }
    fn signing_keys(&self) -> String {
        format!("{}{{keys}}:signing", self.prefix)
    }
}

/// The Lua scripts. Each checks every condition before its first write, because Redis does not
/// roll a script back when it fails halfway.
struct Scripts {
    insert_expiring: Script,
    set_fields_if_exists: Script,
    insert_account: Script,
    remove_account: Script,
    cut_sessions: Script,
    rotate_client_secret: Script,
    compare_and_set_field: Script,
    rotate: Script,
    revoke: Script,
    reserve_login_slots: Script,
    release_login_slots: Script,
    insert_signing_key: Script,
    stage_signing_key: Script,
    promote_signing_key: Script,
    revoke_signing_key: Script,
    remove_expired_signing_keys: Script,
}

impl Scripts {
    fn new() -> Self {
        Self {
            // KEYS: record. ARGV: expire-at time, then field/value pairs. 1 if inserted, 0 if taken.
            insert_expiring: Script::new(
                r"
                if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
                redis.call('HSET', KEYS[1], unpack(ARGV, 2))
                redis.call('EXPIREAT', KEYS[1], ARGV[1])
                return 1
                ",
            ),
            // KEYS: record. ARGV: field/value pairs. Never creates a record. 1 if set.
            set_fields_if_exists: Script::new(
                r"
                if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
                redis.call('HSET', KEYS[1], unpack(ARGV))
                return 1
                ",
            ),
            // KEYS: record, index, removal. ARGV: member, not_before, then the other field/value
            // pairs. Inserts the record and its index member, with the cut-off raised to a
            // removed namesake's. 1 if inserted, 0 if taken.
            insert_account: Script::new(
                r"
                if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
                local removed = tonumber(redis.call('GET', KEYS[3]) or '0') or 0
                local not_before = math.max(tonumber(ARGV[2]), removed)
                redis.call('HSET', KEYS[1], 'not_before', string.format('%.0f', not_before),
                    unpack(ARGV, 3))
                redis.call('SADD', KEYS[2], ARGV[1])
                return 1
                ",
            ),
            // KEYS: record, index, removal. ARGV: member, cut-off, expire-at time. Deletes the
            // record and keeps its cut-off (one past its own, or the given one, or an earlier
            // removal's, whichever is latest) until the expire-at time. 1 if it existed.
            remove_account: Script::new(
                r"
                if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
                local own = tonumber(redis.call('HGET', KEYS[1], 'not_before') or '0') or 0
                local earlier = tonumber(redis.call('GET', KEYS[3]) or '0') or 0
                local cut = math.max(own + 1, tonumber(ARGV[2]), earlier)
                redis.call('DEL', KEYS[1])
                redis.call('SREM', KEYS[2], ARGV[1])
                redis.call('SET', KEYS[3], string.format('%.0f', cut))
                redis.call('EXPIREAT', KEYS[3], ARGV[3])
                return 1
                ",
            ),
            // KEYS: record. ARGV: stamp, cut-off, then other field/value pairs. Writes the stamp
            // and a cut-off past the one held, with the other fields. 1 if the record exists.
            cut_sessions: Script::new(
                r"
                if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
                local held = tonumber(redis.call('HGET', KEYS[1], 'not_before') or '0') or 0
                local cut = math.max(held + 1, tonumber(ARGV[2]))
                redis.call('HSET', KEYS[1], 'stamp', ARGV[1],
                    'not_before', string.format('%.0f', cut), unpack(ARGV, 3))
                return 1
                ",
            ),
            // KEYS: client. ARGV: new secret hash, previous secret's end ('' for none), access
            // token cut-off ('' to leave it; else raised past the one held). The old hash becomes the previous one, replacing
            // any older previous secret. 1 if the client exists.
            rotate_client_secret: Script::new(
                r"
                if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
                local old = redis.call('HGET', KEYS[1], 'secret_hash') or ''
                if ARGV[2] == '' then
                    redis.call('HDEL', KEYS[1], 'previous_secret_hash', 'previous_secret_expires_at')
                else
                    redis.call('HSET', KEYS[1], 'previous_secret_hash', old,
                        'previous_secret_expires_at', ARGV[2])
                end
                redis.call('HSET', KEYS[1], 'secret_hash', ARGV[1])
                if ARGV[3] ~= '' then
                    local held = tonumber(redis.call('HGET', KEYS[1], 'not_before') or '0') or 0
                    local cut = math.max(held + 1, tonumber(ARGV[3]))
                    redis.call('HSET', KEYS[1], 'not_before', string.format('%.0f', cut))
                end
                return 1
                ",
            ),
            // KEYS: record. ARGV: field, expected, new value. 1 if the field was `expected`.
            compare_and_set_field: Script::new(
                r"
                if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
                redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
                return 1
                ",
            ),
            // KEYS: token, successor. ARGV: now, sealed successor, successor id, successor's
            // expire-at time, then the successor's field/value pairs.
            // Returns {1, {}} when rotated, {-1, {}} when the successor id is taken, and
            // {0, current token as field/value pairs, empty if gone} when the token is used or gone.
            rotate: Script::new(
                r"
                if redis.call('EXISTS', KEYS[1]) == 0 then return {0, {}} end
                if redis.call('HEXISTS', KEYS[1], 'used_at') == 1 then
                    return {0, redis.call('HGETALL', KEYS[1])}
                end
                if redis.call('EXISTS', KEYS[2]) == 1 then return {-1, {}} end
                redis.call('HSET', KEYS[1], 'used_at', ARGV[1], 'sealed_successor', ARGV[2], 'successor_id', ARGV[3])
                redis.call('HSET', KEYS[2], unpack(ARGV, 5))
                redis.call('EXPIREAT', KEYS[2], ARGV[4])
                return {1, {}}
                ",
            ),
            // KEYS: revocation. ARGV: expires_at, expire-at time. Keeps the later expiry.
            revoke: Script::new(
                r"
                local current = tonumber(redis.call('GET', KEYS[1]) or '-1')
                if current ~= nil and current >= tonumber(ARGV[1]) then return 0 end
                redis.call('SET', KEYS[1], ARGV[1])
                redis.call('EXPIREAT', KEYS[1], ARGV[2])
                return 1
                ",
            ),
            // KEYS: login counters of one subject. ARGV: now, window, TTL of a new window, then
            // each counter's limit. Returns 0 when a slot was counted on every counter, else the
            // latest end among the windows at their limit, having counted nothing.
            // A window starts at the first slot after the previous one ended.
            reserve_login_slots: Script::new(
                r"
                local now = tonumber(ARGV[1])
                local open = {}
                local refused_until = 0
                for i, key in ipairs(KEYS) do
                    local state = redis.call('HMGET', key, 'count', 'end')
                    local count, window_end = tonumber(state[1]), tonumber(state[2])
                    if count ~= nil and window_end ~= nil and window_end > now then
                        open[i] = true
                        if count >= tonumber(ARGV[3 + i]) and window_end > refused_until then
                            refused_until = window_end
                        end
                    end
                end
                if refused_until > 0 then return refused_until end
                for i, key in ipairs(KEYS) do
                    if open[i] then
                        redis.call('HINCRBY', key, 'count', 1)
                    else
                        local window_end = now + tonumber(ARGV[2])
                        redis.call('HSET', key, 'count', 1, 'end', string.format('%.0f', window_end))
                        redis.call('EXPIRE', key, ARGV[3])
                    end
                end
                return 0
                ",
            ),
            // KEYS: login counters of one subject. ARGV: the latest window end that was open when
            // the slots were taken, then per counter `give-back` (one less, never below zero) or
            // `forget` (zero). Windows opened later are left alone.
            release_login_slots: Script::new(
                r"
                local latest_end = tonumber(ARGV[1])
                for i, key in ipairs(KEYS) do
                    local state = redis.call('HMGET', key, 'count', 'end')
                    local count, window_end = tonumber(state[1]), tonumber(state[2])
                    if count ~= nil and window_end ~= nil and window_end <= latest_end then
                        if ARGV[1 + i] == 'forget' then
                            redis.call('HSET', key, 'count', 0)
                        elseif count > 0 then
                            redis.call('HINCRBY', key, 'count', -1)
                        end
                    end
                end
                return 0
                ",
            ),
            // KEYS: signing keys. ARGV: kid, state, record JSON. 1 if inserted; 0 if the kid is
            // taken, or the key is next or active and another key is in that state.
            insert_signing_key: Script::new(
                r"
                if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return 0 end
                if ARGV[2] == 'next' or ARGV[2] == 'active' then
                    for _, value in ipairs(redis.call('HVALS', KEYS[1])) do
                        if cjson.decode(value).state == ARGV[2] then return 0 end
                    end
                end
                redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
                return 1
                ",
            ),
            // KEYS: signing keys. ARGV: kid, record JSON (a next key), expected active kid.
            // 1 if inserted: no key is next and the active key is the expected one.
            stage_signing_key: Script::new(
                r"
                if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return 0 end
                local active = false
                local all = redis.call('HGETALL', KEYS[1])
                for i = 1, #all, 2 do
                    local state = cjson.decode(all[i + 1]).state
                    if state == 'next' then return 0 end
                    if state == 'active' then active = all[i] end
                end
                if active ~= ARGV[3] then return 0 end
                redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
                return 1
                ",
            ),
            // KEYS: signing keys. ARGV: kid, now, removal time of the retired key.
            // 1 if the next key `kid` was due and is now active, the previous active retired.
            promote_signing_key: Script::new(
                r"
                local raw = redis.call('HGET', KEYS[1], ARGV[1])
                if not raw then return 0 end
                local key = cjson.decode(raw)
                local now = tonumber(ARGV[2])
                if key.state ~= 'next' or key.activates_at > now then return 0 end
                local all = redis.call('HGETALL', KEYS[1])
                for i = 1, #all, 2 do
                    local other = cjson.decode(all[i + 1])
                    if other.state == 'active' then
                        other.state = 'retired'
                        other.retired_at = now
                        other.expires_at = tonumber(ARGV[3])
                        redis.call('HSET', KEYS[1], all[i], cjson.encode(other))
                    end
                end
                key.state = 'active'
                key.activates_at = now
                redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(key))
                return 1
                ",
            ),
            // KEYS: signing keys. ARGV: kid, now, replacement kid, replacement record JSON (an
            // active key). Returns {code, kid}: 0 unknown, 1 already revoked, 2 revoked (it did
            // not sign), 3 revoked the active key and `kid` took over. A revoked key keeps its
            // record without its private key and without a removal time.
            revoke_signing_key: Script::new(
                r"
                local raw = redis.call('HGET', KEYS[1], ARGV[1])
                if not raw then return {0, ''} end
                local key = cjson.decode(raw)
                if key.state == 'revoked' then return {1, ''} end
                local was_active = key.state == 'active'
                local now = tonumber(ARGV[2])
                key.state = 'revoked'
                if not key.retired_at then key.retired_at = now end
                key.expires_at = nil
                key.sealed = ''
                redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(key))
                if not was_active then return {2, ''} end
                local all = redis.call('HGETALL', KEYS[1])
                for i = 1, #all, 2 do
                    local other = cjson.decode(all[i + 1])
                    if other.state == 'next' then
                        other.state = 'active'
                        other.activates_at = now
                        redis.call('HSET', KEYS[1], all[i], cjson.encode(other))
                        return {3, all[i]}
                    end
                end
                redis.call('HSET', KEYS[1], ARGV[3], ARGV[4])
                return {3, ARGV[3]}
                ",
            ),
            // KEYS: signing keys. ARGV: now. Deletes retired and revoked keys whose removal
            // time has come; returns how many.
            remove_expired_signing_keys: Script::new(
                r"
                local now = tonumber(ARGV[1])
                local removed = 0
                local all = redis.call('HGETALL', KEYS[1])
                for i = 1, #all, 2 do
                    local key = cjson.decode(all[i + 1])
                    if (key.state == 'retired' or key.state == 'revoked')
                        and key.expires_at and key.expires_at <= now then
                        redis.call('HDEL', KEYS[1], all[i])
                        removed = removed + 1
                    end
                end
                return removed
                ",
            ),
        }
    }
}

/// The fields of one stored hash, read into a record.
struct Fields {
    what: String,
    map: HashMap<String, Vec<u8>>,
}

impl Fields {
    fn new(what: impl Into<String>, map: HashMap<String, Vec<u8>>) -> Self {
        Self {
            what: what.into(),
            map,
        }
    }

    fn corrupt(&self, field: &str, problem: &str) -> StoreError {
        StoreError::Corrupt(format!("{}: field {field} {problem}", self.what))
    }

    fn optional_bytes(&mut self, field: &str) -> Option<Vec<u8>> {
        self.map.remove(field)
    }

    fn optional_text(&mut self, field: &str) -> Result<Option<String>, StoreError> {
        match self.map.remove(field) {
            None => Ok(None),
            Some(bytes) => String::from_utf8(bytes)
                .map(Some)
                .map_err(|_| self.corrupt(field, "is not UTF-8")),
        }
    }

    fn text(&mut self, field: &str) -> Result<String, StoreError> {
        self.optional_text(field)?
            .ok_or_else(|| self.corrupt(field, "is missing"))
    }

    fn optional_number(&mut self, field: &str) -> Result<Option<u64>, StoreError> {
        match self.optional_text(field)? {
            None => Ok(None),
            Some(text) => text
                .parse()
                .map(Some)
                .map_err(|_| self.corrupt(field, "is not a number")),
        }
    }

    fn number(&mut self, field: &str) -> Result<u64, StoreError> {
        self.optional_number(field)?
            .ok_or_else(|| self.corrupt(field, "is missing"))
    }

    fn scope(&mut self, field: &str) -> Result<Scope, StoreError> {
        let text = self.text(field)?;
        Scope::parse(&text).map_err(|_| self.corrupt(field, "is not a scope"))
    }

    fn words(&mut self, field: &str) -> Result<Vec<String>, StoreError> {
        Ok(self
            .text(field)?
            .split(' ')
            .filter(|word| !word.is_empty())
            .map(str::to_owned)
            .collect())
    }
}

fn user_from(username: &str, hash: HashMap<String, Vec<u8>>) -> Result<UserRecord, StoreError> {
    let mut fields = Fields::new(format!("user {username}"), hash);
    Ok(UserRecord {
        username: username.to_owned(),
        full_name: fields.optional_text("full_name")?,
        email: fields.optional_text("email")?,
        password_hash: fields.text("password_hash")?,
        disabled: fields.text("disabled")? == "1",
        scopes: fields.scope("scopes")?,
        stamp: fields.optional_text("stamp")?.unwrap_or_default(),
        not_before: fields.optional_number("not_before")?.unwrap_or(0),
    })
}

fn user_fields(user: &UserRecord) -> Vec<(&'static str, String)> {
    let mut pairs = vec![
        ("password_hash", user.password_hash.clone()),
        ("disabled", flag(user.disabled).to_owned()),
        ("scopes", user.scopes.to_string()),
        ("stamp", user.stamp.clone()),
        ("not_before", user.not_before.to_string()),
    ];
    if let Some(full_name) = &user.full_name {
        pairs.push(("full_name", full_name.clone()));
    }
    if let Some(email) = &user.email {
        pairs.push(("email", email.clone()));
    }
    pairs
}

fn flag(value: bool) -> &'static str {
    if value {
        "1"
    } else {
        "0"
    }
}

fn client_from(
    client_id: &str,
    hash: HashMap<String, Vec<u8>>,
) -> Result<ClientRecord, StoreError> {
    let mut fields = Fields::new(format!("client {client_id}"), hash);
    let previous_hash = fields.optional_text("previous_secret_hash")?;
    let previous_expires_at = fields.optional_number("previous_secret_expires_at")?;
    Ok(ClientRecord {
        client_id: client_id.to_owned(),
        secret_hash: fields.text("secret_hash")?,
        previous_secret: previous_hash
            .zip(previous_expires_at)
            .map(|(hash, expires_at)| PreviousSecret { hash, expires_at }),
        public: fields.optional_text("public")?.as_deref() == Some("1"),
        // Absent on a client registered before the field existed: such a client could
        // introspect any token, and keeps the right (as the embedded store's migration does).
        introspect: fields.optional_text("introspect")?.as_deref() != Some("0"),
        grants: fields.words("grants")?,
        scopes: fields.scope("scopes")?,
        audiences: fields.words("audiences")?,
        stamp: fields.optional_text("stamp")?.unwrap_or_default(),
        not_before: fields.optional_number("not_before")?.unwrap_or(0),
    })
}

fn client_fields(client: &ClientRecord) -> Vec<(&'static str, String)> {
    let mut pairs = vec![
        ("secret_hash", client.secret_hash.clone()),
        ("public", flag(client.public).to_owned()),
        ("introspect", flag(client.introspect).to_owned()),
        ("grants", client.grants.join(" ")),
        ("scopes", client.scopes.to_string()),
        ("audiences", client.audiences.join(" ")),
        ("stamp", client.stamp.clone()),
        ("not_before", client.not_before.to_string()),
    ];
    if let Some(previous) = &client.previous_secret {
        pairs.push(("previous_secret_hash", previous.hash.clone()));
        pairs.push((
            "previous_secret_expires_at",
            previous.expires_at.to_string(),
        ));
    }
    pairs
}

fn refresh_from(id: &str, hash: HashMap<String, Vec<u8>>) -> Result<RefreshRecord, StoreError> {
    let mut fields = Fields::new(format!("refresh token {id}"), hash);
    Ok(RefreshRecord {
        id: id.to_owned(),
        family_id: fields.text("family_id")?,
        client_id: fields.text("client_id")?,
        username: fields.text("username")?,
        scope: fields.scope("scope")?,
        audience: fields.text("audience")?,
        user_stamp: fields.optional_text("user_stamp")?.unwrap_or_default(),
        client_stamp: fields.optional_text("client_stamp")?.unwrap_or_default(),
        issued_at: fields.number("issued_at")?,
        expires_at: fields.number("expires_at")?,
        used_at: fields.optional_number("used_at")?,
        sealed_successor: fields.optional_bytes("sealed_successor"),
        successor_id: fields.optional_text("successor_id")?,
    })
}

/// A signing key as the JSON value of its field in `P{keys}:signing`; the scripts read and
/// change `state` and the times, never the key material.
#[derive(serde::Serialize, serde::Deserialize)]
struct StoredSigningKey {
    state: String,
    created_at: u64,
    activates_at: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    retired_at: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expires_at: Option<u64>,
    jwk: String,
    /// Standard base64 of the sealed private key.
    sealed: String,
}

fn signing_key_json(key: &SigningKeyRecord) -> Result<String, StoreError> {
    use base64::Engine;
    serde_json::to_string(&StoredSigningKey {
        state: key.state.as_str().to_owned(),
        created_at: key.created_at,
        activates_at: key.activates_at,
        retired_at: key.retired_at,
        expires_at: key.expires_at,
        jwk: key.public_jwk.clone(),
        sealed: base64::engine::general_purpose::STANDARD.encode(&key.sealed_private_key),
    })
    .map_err(|err| StoreError::Corrupt(format!("signing key {}: {err}", key.kid)))
}

fn signing_key_from(kid: &str, json: &[u8]) -> Result<SigningKeyRecord, StoreError> {
    use base64::Engine;
    let corrupt = |what: &str| StoreError::Corrupt(format!("signing key {kid}: {what}"));
    let stored: StoredSigningKey =
        serde_json::from_slice(json).map_err(|err| corrupt(&err.to_string()))?;
    Ok(SigningKeyRecord {
        kid: kid.to_owned(),
        state: KeyState::parse(&stored.state).ok_or_else(|| corrupt("unknown state"))?,
        created_at: stored.created_at,
        activates_at: stored.activates_at,
        retired_at: stored.retired_at,
        expires_at: stored.expires_at,
        public_jwk: stored.jwk,
        sealed_private_key: base64::engine::general_purpose::STANDARD
            .decode(stored.sealed)
            .map_err(|_| corrupt("sealed key is not base64"))?,
    })
}

/// The fields of a token that has not been used yet.
fn refresh_fields(token: &RefreshRecord) -> [(&'static str, String); 9] {
    [
        ("family_id", token.family_id.clone()),
        ("client_id", token.client_id.clone()),
        ("username", token.username.clone()),
        ("scope", token.scope.to_string()),
        ("audience", token.audience.clone()),
        ("user_stamp", token.user_stamp.clone()),
        ("client_stamp", token.client_stamp.clone()),
        ("issued_at", token.issued_at.to_string()),
        ("expires_at", token.expires_at.to_string()),
    ]
}

#[async_trait]
impl Store for RedisStore {
    async fn ping(&self) -> Result<(), StoreError> {
        let _: String = self
            .send(Resend::Always, Request::Command(&redis::cmd("PING")))
            .await?;
        Ok(())
    }

    async fn user(&self, username: &str) -> Result<Option<UserRecord>, StoreError> {
        let hash = self.hash(&self.keys.user(username)).await?;
        if hash.is_empty() {
            return Ok(None);
        }
        user_from(username, hash).map(Some)
    }

    async fn insert_user(&self, user: &UserRecord) -> Result<(), StoreError> {
        if self.exists(self.keys.client(&user.username)).await?
            || self
                .exists(self.keys.removed_client(&user.username))
                .await?
        {
            return Err(StoreError::Conflict(format!("client {}", user.username)));
        }
        let keys = [
            self.keys.user(&user.username),
            self.keys.user_index(),
            self.keys.removed_user(&user.username),
        ];
        if self
            .insert_account(keys, &user.username, user.not_before, user_fields(user))
            .await?
        {
            Ok(())
        } else {
            Err(StoreError::Conflict(format!("user {}", user.username)))
        }
    }

    async fn replace_password_hash(
        &self,
        username: &str,
        expected: &str,
        new_hash: &str,
    ) -> Result<bool, StoreError> {
        let replaced: u64 = self
            .send(
                Resend::IfNotSent,
                Request::Script(
                    self.scripts
                        .compare_and_set_field
                        .key(self.keys.user(username))
                        .arg("password_hash")
                        .arg(expected)
                        .arg(new_hash),
                ),
            )
            .await?;
        Ok(replaced == 1)
    }

    async fn set_password_hash(
        &self,
        username: &str,
        new_hash: &str,
        cut: &SessionCut,
    ) -> Result<bool, StoreError> {
        self.cut_sessions(
            self.keys.user(username),
            cut,
            &[("password_hash", new_hash.to_owned())],
        )
        .await
    }

    async fn set_user_disabled(
        &self,
        username: &str,
        disabled: bool,
        cut: Option<&SessionCut>,
    ) -> Result<bool, StoreError> {
        let pairs = [("disabled", flag(disabled).to_owned())];
        match cut {
            Some(cut) => {
                self.cut_sessions(self.keys.user(username), cut, &pairs)
                    .await
            }
            None => self.set_fields(self.keys.user(username), &pairs).await,
        }
    }

    async fn set_user_scopes(&self, username: &str, scopes: &Scope) -> Result<bool, StoreError> {
        self.set_fields(self.keys.user(username), &[("scopes", scopes.to_string())])
            .await
    }

    async fn remove_user(&self, username: &str, removal: Removal) -> Result<bool, StoreError> {
        let keys = [
            self.keys.user(username),
            self.keys.user_index(),
            self.keys.removed_user(username),
        ];
        self.remove_account(keys, username, removal).await
    }

    async fn list_users(&self) -> Result<Vec<UserRecord>, StoreError> {
        self.indexed(&self.keys.user_index(), |username| self.keys.user(username))
            .await?
            .into_iter()
            .map(|(username, hash)| user_from(&username, hash))
            .collect()
    }

    async fn client(&self, client_id: &str) -> Result<Option<ClientRecord>, StoreError> {
        let hash = self.hash(&self.keys.client(client_id)).await?;
        if hash.is_empty() {
            return Ok(None);
        }
        client_from(client_id, hash).map(Some)
    }

    async fn insert_client(&self, client: &ClientRecord) -> Result<(), StoreError> {
        if self.exists(self.keys.user(&client.client_id)).await?
            || self
                .exists(self.keys.removed_user(&client.client_id))
                .await?
        {
            return Err(StoreError::Conflict(format!("user {}", client.client_id)));
        }
        let keys = [
            self.keys.client(&client.client_id),
            self.keys.client_index(),
            self.keys.removed_client(&client.client_id),
        ];
        if self
            .insert_account(
                keys,
                &client.client_id,
                client.not_before,
                client_fields(client),
            )
            .await?
        {
            Ok(())
        } else {
            Err(StoreError::Conflict(format!("client {}", client.client_id)))
        }
    }

    async fn update_client(
        &self,
        client_id: &str,
        update: &ClientUpdate,
    ) -> Result<bool, StoreError> {
        let mut pairs = Vec::new();
        if let Some(grants) = &update.grants {
            pairs.push(("grants", grants.join(" ")));
        }
        if let Some(scopes) = &update.scopes {
            pairs.push(("scopes", scopes.to_string()));
        }
        if let Some(audiences) = &update.audiences {
            pairs.push(("audiences", audiences.join(" ")));
        }
        if let Some(introspect) = update.introspect {
            pairs.push(("introspect", flag(introspect).to_owned()));
        }
        if pairs.is_empty() {
            return self.exists(self.keys.client(client_id)).await;
        }
        self.set_fields(self.keys.client(client_id), &pairs).await
    }

    async fn rotate_client_secret(
        &self,
        client_id: &str,
        new_hash: &str,
        previous_until: Option<u64>,
        not_before: Option<u64>,
    ) -> Result<bool, StoreError> {
        let optional = |value: Option<u64>| value.map(|v| v.to_string()).unwrap_or_default();
        let done: u64 = self
            .send(
                Resend::IfNotSent,
                Request::Script(
                    self.scripts
                        .rotate_client_secret
                        .key(self.keys.client(client_id))
                        .arg(new_hash)
                        .arg(optional(previous_until))
                        .arg(optional(not_before)),
                ),
            )
            .await?;
        Ok(done == 1)
    }

    async fn remove_client(&self, client_id: &str, removal: Removal) -> Result<bool, StoreError> {
        let keys = [
            self.keys.client(client_id),
            self.keys.client_index(),
            self.keys.removed_client(client_id),
        ];
        self.remove_account(keys, client_id, removal).await
    }

    async fn list_clients(&self) -> Result<Vec<ClientRecord>, StoreError> {
        self.indexed(&self.keys.client_index(), |client_id| {
            self.keys.client(client_id)
        })
        .await?
        .into_iter()
        .map(|(client_id, hash)| client_from(&client_id, hash))
        .collect()
    }

    async fn insert_refresh(&self, token: &RefreshRecord) -> Result<(), StoreError> {
        let mut invocation = self.scripts.insert_expiring.prepare_invoke();
        invocation
            .key(self.keys.refresh(&token.id))
            .arg(expire_at(token.expires_at));
        for (field, value) in refresh_fields(token) {
            invocation.arg(field).arg(value);
        }
        let inserted: u64 = self
            .send(Resend::IfNotSent, Request::Script(&invocation))
            .await?;
        if inserted == 1 {
            Ok(())
        } else {
            Err(StoreError::Conflict("refresh token".to_owned()))
        }
    }

    async fn refresh(&self, id: &str) -> Result<Option<RefreshRecord>, StoreError> {
        let hash = self.hash(&self.keys.refresh(id)).await?;
        if hash.is_empty() {
            return Ok(None);
        }
        refresh_from(id, hash).map(Some)
    }

    async fn rotate_refresh(
        &self,
        id: &str,
        now: u64,
        sealed_successor: &[u8],
        successor: &RefreshRecord,
    ) -> Result<Rotation, StoreError> {
        let mut invocation = self.scripts.rotate.prepare_invoke();
        invocation
            .key(self.keys.refresh(id))
            .key(self.keys.refresh(&successor.id))
            .arg(now)
            .arg(sealed_successor)
            .arg(&successor.id)
            .arg(expire_at(successor.expires_at));
        for (field, value) in refresh_fields(successor) {
            invocation.arg(field).arg(value);
        }
        let (outcome, current): (i64, HashMap<String, Vec<u8>>) = self
            .send(Resend::IfNotSent, Request::Script(&invocation))
            .await?;
        match outcome {
            1 => Ok(Rotation::Rotated),
            -1 => Err(StoreError::Conflict("refresh token".to_owned())),
            _ if current.is_empty() => Ok(Rotation::Lost(None)),
            _ => refresh_from(id, current).map(|record| Rotation::Lost(Some(Box::new(record)))),
        }
    }

    async fn revoke_family(&self, family_id: &str, expires_at: u64) -> Result<(), StoreError> {
        self.revoke(self.keys.revoked_family(family_id), expires_at)
            .await
    }

    async fn family_revoked(&self, family_id: &str) -> Result<bool, StoreError> {
        let count: u64 = self
            .send(
                Resend::Always,
                Request::Command(redis::cmd("EXISTS").arg(self.keys.revoked_family(family_id))),
            )
            .await?;
        Ok(count == 1)
    }

    async fn revoke_access_token(&self, jti: &str, expires_at: u64) -> Result<(), StoreError> {
        self.revoke(self.keys.revoked_jti(jti), expires_at).await
    }

    async fn access_token_revoked(&self, jti: &str, now: u64) -> Result<bool, StoreError> {
        let expires_at: Option<String> = self
            .send(
                Resend::Always,
                Request::Command(redis::cmd("GET").arg(self.keys.revoked_jti(jti))),
            )
            .await?;
        match expires_at {
            None => Ok(false),
            Some(text) => {
                let expires_at: u64 = text.parse().map_err(|_| {
                    StoreError::Corrupt(format!(
                        "revoked access token {jti}: expiry is not a number"
                    ))
                })?;
                Ok(expires_at >= now)
            }
        }
    }

    async fn reserve_login_slots(
        &self,
        subject: &LoginSubject,
        counters: &[(&str, u64)],
        now: u64,
        window: u64,
    ) -> Result<Option<u64>, StoreError> {
        if counters.is_empty() {
            return Ok(None);
        }
        let ttl = window.saturating_add(EXPIRY_GRACE_SECS).min(MAX_EXPIRE_AT);
        let mut invocation = self.scripts.reserve_login_slots.prepare_invoke();
        invocation.arg(now).arg(window).arg(ttl);
        for (name, limit) in counters {
            invocation.key(self.keys.login(subject, name)).arg(*limit);
        }
        // Sent again after a dropped connection, as a read is: should the first attempt have
        // run, the check counts twice, which errs on the throttle's side; refusing the login
        // instead would make every first request after a Redis restart a 503.
        let refused_until: u64 = self
            .send(Resend::Always, Request::Script(&invocation))
            .await?;
        Ok((refused_until > 0).then_some(refused_until))
    }

    async fn release_login_slots(
        &self,
        subject: &LoginSubject,
        counters: &[(&str, SlotRelease)],
        taken_at: u64,
        window: u64,
    ) -> Result<(), StoreError> {
        if counters.is_empty() {
            return Ok(());
        }
        let mut invocation = self.scripts.release_login_slots.prepare_invoke();
        invocation.arg(taken_at.saturating_add(window));
        for (name, release) in counters {
            let how = match release {
                SlotRelease::GiveBack => "give-back",
                SlotRelease::Forget => "forget",
            };
            invocation.key(self.keys.login(subject, name)).arg(how);
        }
        let _: u64 = self
            .send(Resend::IfNotSent, Request::Script(&invocation))
            .await?;
        Ok(())
    }

    async fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>, StoreError> {
        let fields: HashMap<String, Vec<u8>> = self.hash(&self.keys.signing_keys()).await?;
        let mut keys = fields
            .iter()
            .map(|(kid, json)| signing_key_from(kid, json))
            .collect::<Result<Vec<_>, _>>()?;
        keys.sort_by(|a, b| {
            (b.created_at, b.activates_at, &b.kid).cmp(&(a.created_at, a.activates_at, &a.kid))
        });
        Ok(keys)
    }

    async fn insert_signing_key(&self, key: &SigningKeyRecord) -> Result<bool, StoreError> {
        let inserted: u64 = self
            .send(
                Resend::IfNotSent,
                Request::Script(
                    self.scripts
                        .insert_signing_key
                        .key(self.keys.signing_keys())
                        .arg(&key.kid)
                        .arg(key.state.as_str())
                        .arg(signing_key_json(key)?),
                ),
            )
            .await?;
        Ok(inserted == 1)
    }

    async fn stage_signing_key(
        &self,
        key: &SigningKeyRecord,
        expected_active: &str,
    ) -> Result<bool, StoreError> {
        if key.state != KeyState::Next {
            return Ok(false);
        }
        let inserted: u64 = self
            .send(
                Resend::IfNotSent,
                Request::Script(
                    self.scripts
                        .stage_signing_key
                        .key(self.keys.signing_keys())
                        .arg(&key.kid)
                        .arg(signing_key_json(key)?)
                        .arg(expected_active),
                ),
            )
            .await?;
        Ok(inserted == 1)
    }

    async fn promote_signing_key(
        &self,
        kid: &str,
        now: u64,
        retired_expires_at: u64,
    ) -> Result<bool, StoreError> {
        let promoted: u64 = self
            .send(
                Resend::IfNotSent,
                Request::Script(
                    self.scripts
                        .promote_signing_key
                        .key(self.keys.signing_keys())
                        .arg(kid)
                        .arg(now)
                        .arg(retired_expires_at),
                ),
            )
            .await?;
        Ok(promoted == 1)
    }

    async fn revoke_signing_key(
        &self,
        kid: &str,
        now: u64,
        replacement: &SigningKeyRecord,
    ) -> Result<KeyRevocation, StoreError> {
        if replacement.state != KeyState::Active {
            return Err(StoreError::Corrupt(
                "the replacement of a revoked active key must be active".into(),
            ));
        }
        let (code, now_active): (i64, String) = self
            .send(
                Resend::IfNotSent,
                Request::Script(
                    self.scripts
                        .revoke_signing_key
                        .key(self.keys.signing_keys())
                        .arg(kid)
                        .arg(now)
                        .arg(&replacement.kid)
                        .arg(signing_key_json(replacement)?),
                ),
            )
            .await?;
        Ok(match code {
            0 => KeyRevocation::Unknown,
            1 => KeyRevocation::AlreadyRevoked,
            2 => KeyRevocation::Revoked { now_active: None },
            _ => KeyRevocation::Revoked {
                now_active: Some(now_active),
            },
        })
    }

    async fn remove_expired_signing_keys(&self, now: u64) -> Result<u64, StoreError> {
        self.send(
            Resend::Always,
            Request::Script(
                self.scripts
                    .remove_expired_signing_keys
                    .key(self.keys.signing_keys())
                    .arg(now),
            ),
        )
        .await
    }

    /// Nothing to do: every expiring key carries a Redis TTL.
    async fn purge_expired(&self, _now: u64) -> Result<(), StoreError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        use crate::store::conformance::{fresh_test_prefix, redis_test_url};
        let url = redis_test_url();
        let prefix = fresh_test_prefix();
        let store = RedisStore::open_with_prefix(&url, &prefix).await.unwrap();
        let mut raw = redis::Client::open(url.as_str())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
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

        let user = store.user("old").await.unwrap().unwrap();
        assert_eq!((user.stamp.as_str(), user.not_before), ("", 0));
        let client = store.client("rs").await.unwrap().unwrap();
        assert!(client.introspect && !client.public);
        assert_eq!((client.stamp.as_str(), client.not_before), ("", 0));
        assert_eq!(client.previous_secret, None);
        let context = store.refresh_context("t1").await.unwrap().unwrap();
        assert_eq!(
            (
                context.record.user_stamp.as_str(),
                context.record.client_stamp.as_str()
            ),
            ("", "")
        );
        assert_eq!(context.user.map(|user| user.stamp), Some(String::new()));

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
