//! What the auth-server persists, behind one trait so that one machine runs on the embedded
//! SQLite file and several replicas share Redis, with the same behaviour on both.
//!
//! Every method is atomic on its own; no caller holds a lock across calls. Times are Unix
//! seconds supplied by the caller, so that tests can speak about expiry without sleeping.

#[cfg(test)]
pub mod conformance;
pub mod embedded;
mod feed;
mod grant_type;
#[cfg(test)]
mod hand_written;
pub mod redis;

use std::sync::Arc;

use async_trait::async_trait;
use oauth2_jwt_verifier::Scope;

pub use feed::{
    cursor_position, name_digest, parse_cursor, RevocationEntry, RevocationFeed, RevocationKind,
};
pub use grant_type::{GrantType, UnknownGrantType};

/// A user as stored. `password_hash` is a PHC string (argon2id) or an imported bcrypt hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserRecord {
    pub username: String,
    pub full_name: Option<String>,
    pub email: Option<String>,
    pub password_hash: String,
    pub disabled: bool,
    pub scopes: Scope,
    /// The user's session stamp: random, written anew by every change that ends the user's
    /// sessions (a new password, disabling) and by adding the user, so that a name removed and
    /// added again is a new account. Each refresh family carries the stamp it was minted under
    /// and refreshes only while it is still the user's.
    pub stamp: String,
    /// Access tokens issued to the user before this Unix time (`iat` below it) are no longer
    /// active; written with `stamp`. It only ever grows: a store moves it past its previous
    /// value at every change, so that a token minted in the same second as an earlier change
    /// (whose `iat` was raised to that change's cut-off) is still cut off by a later one.
    pub not_before: u64,
}

/// A change that ends every session of a user or a client: the new stamp and the cut-off for
/// access tokens, written together with the change itself. The store writes the larger of
/// `not_before` and one past the cut-off it held.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionCut {
    pub stamp: String,
    pub not_before: u64,
}

/// What a removal leaves behind until `keep_until`: a user or client added again under the
/// name gets a cut-off of at least `not_before` (and past the removed one's), so that no access
/// token of the removed account speaks for the new one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Removal {
    pub not_before: u64,
    pub keep_until: u64,
}

/// A registered client. `secret_hash` is the keyed hash of its secret (see `client_auth`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientRecord {
    pub client_id: String,
    /// Empty for a public client, which has no secret.
    pub secret_hash: String,
    /// The secret that the last rotation replaced, while it still works.
    pub previous_secret: Option<PreviousSecret>,
    /// A public client (RFC 6749 §2.1) names itself and never authenticates.
    pub public: bool,
    /// May introspect any token, not only its own (RFC 7662 §4).
    pub introspect: bool,
    pub grants: Vec<GrantType>,
    pub scopes: Scope,
    pub audiences: Vec<String>,
    /// Random, made when the client is added: refresh families carry it, so that a client
    /// removed and added again under the same id never refreshes the old one's families.
    pub stamp: String,
    /// Access tokens issued for the client before this Unix time are no longer active (set when
    /// it is added, and by a secret rotation without overlap).
    pub not_before: u64,
}

/// A client's previous secret, kept during a rotation's overlap.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreviousSecret {
    /// Keyed hash, as `ClientRecord::secret_hash`.
    pub hash: String,
    /// It stops working at this Unix time.
    pub expires_at: u64,
}

/// What `client update` may change in place; `None` leaves a field as it is, so that two
/// updates of different fields never undo each other.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientUpdate {
    pub grants: Option<Vec<GrantType>>,
    pub scopes: Option<Scope>,
    pub audiences: Option<Vec<String>>,
    pub introspect: Option<bool>,
}

/// One refresh token of a family. Only the SHA-256 of the token is kept (`id`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefreshRecord {
    /// Hex SHA-256 of the token.
    pub id: String,
    pub family_id: String,
    pub client_id: String,
    pub username: String,
    pub scope: Scope,
    pub audience: String,
    /// The user's stamp when the family began (see [`UserRecord::stamp`]).
    pub user_stamp: String,
    /// The client's stamp when the family began (see [`ClientRecord::stamp`]); empty for the
    /// default public client.
    pub client_stamp: String,
    pub issued_at: u64,
    /// The family's end: rotation never extends it past the first token's lifetime.
    pub expires_at: u64,
    /// When it was exchanged, if it was.
    pub used_at: Option<u64>,
    /// The response it was exchanged for, sealed under a key derived from the token itself,
    /// so that a retry within the grace window gets the same pair back.
    pub sealed_successor: Option<Vec<u8>>,
    /// Id of the token it was exchanged for.
    pub successor_id: Option<String>,
}

/// What [`Store::rotate_refresh`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rotation {
    /// This caller marked the token used and stored the successor.
    Rotated,
    /// Another caller got there first, or the token is gone; the current record, if any.
    Lost(Option<Box<RefreshRecord>>),
}

/// Where a signing key is in its life (see `keys::lifecycle`): `Next` is published but does not
/// sign yet, `Active` signs, `Retired` is published until the tokens it signed have expired,
/// `Revoked` is withdrawn at once. There is at most one `Next` and one `Active` key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyState {
    Next,
    Active,
    Retired,
    Revoked,
}

impl KeyState {
    pub const ALL: [KeyState; 4] = [Self::Next, Self::Active, Self::Retired, Self::Revoked];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Next => "next",
            Self::Active => "active",
            Self::Retired => "retired",
            Self::Revoked => "revoked",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|state| state.as_str() == text)
    }
}

impl std::fmt::Display for KeyState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One signing key as stored: the public half in the clear, the private half sealed under the
/// key-encryption key (`keys::encryption`) and bound to `kid`, and its place in the lifecycle.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKeyRecord {
    /// RFC 7638 thumbprint of the public key.
    pub kid: String,
    pub state: KeyState,
    pub created_at: u64,
    /// `Next`: the earliest time it may start signing. Otherwise: when it started.
    pub activates_at: u64,
    /// When it stopped signing (`Retired`) or was withdrawn (`Revoked`).
    pub retired_at: Option<u64>,
    /// `Retired`, `Revoked`: when the record is deleted (a retired key leaves the JWKS then).
    pub expires_at: Option<u64>,
    /// The RFC 7517 JWK: public members only.
    pub public_jwk: String,
    /// The PKCS#8 private key, sealed with AES-256-GCM under the key-encryption key.
    pub sealed_private_key: Vec<u8>,
}

impl std::fmt::Debug for SigningKeyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeyRecord")
            .field("kid", &self.kid)
            .field("state", &self.state)
            .field("created_at", &self.created_at)
            .field("activates_at", &self.activates_at)
            .field("retired_at", &self.retired_at)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// What [`Store::revoke_signing_key`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyRevocation {
    /// No key has that kid.
    Unknown,
    /// It was revoked before; nothing changed.
    AlreadyRevoked,
    /// Revoked now. When it was the active key, `now_active` names the key that took over.
    Revoked { now_active: Option<String> },
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("{0} already exists")]
    Conflict(String),
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

/// See [`Store::refresh_context`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefreshContext {
    pub record: RefreshRecord,
    pub family_revoked: bool,
    /// `None` when the user no longer exists.
    pub user: Option<UserRecord>,
}

#[async_trait]
pub trait Store: Send + Sync {
    /// Answers when the backend is reachable; used by `/readyz`.
    async fn ping(&self) -> Result<(), StoreError>;

    async fn user(&self, username: &str) -> Result<Option<UserRecord>, StoreError>;
    /// `Conflict` when the username is taken by a user or a client, or by a client removed
    /// before its [`Removal::keep_until`] (a client's tokens carry its id as `sub`, RFC 9068 §5,
    /// so the two must never share a name while such tokens live). A user removed within its
    /// [`Removal::keep_until`] comes back with a cut-off past the removed one's.
    async fn insert_user(&self, user: &UserRecord) -> Result<(), StoreError>;
    /// Replaces the hash only if it still is `expected`, so that a rehash on login never undoes
    /// a concurrent `user passwd`. Returns whether it replaced it.
    async fn replace_password_hash(
        &self,
        username: &str,
        expected: &str,
        new_hash: &str,
    ) -> Result<bool, StoreError>;
    /// Sets the hash and ends the user's sessions (writes `cut`'s stamp and cut-off) in one
    /// step. False when there is no such user.
    async fn set_password_hash(
        &self,
        username: &str,
        new_hash: &str,
        cut: &SessionCut,
    ) -> Result<bool, StoreError>;
    /// Sets the flag and, with `cut`, ends the user's sessions in the same step.
    async fn set_user_disabled(
        &self,
        username: &str,
        disabled: bool,
        cut: Option<&SessionCut>,
    ) -> Result<bool, StoreError>;
    /// Replaces the scopes the user may be granted; refresh families narrow to them at their
    /// next refresh.
    async fn set_user_scopes(&self, username: &str, scopes: &Scope) -> Result<bool, StoreError>;
    /// Deletes the user and keeps its cut-off as [`Removal`] says, in one step.
    async fn remove_user(&self, username: &str, removal: Removal) -> Result<bool, StoreError>;
    /// Sorted by username.
    async fn list_users(&self) -> Result<Vec<UserRecord>, StoreError>;

    async fn client(&self, client_id: &str) -> Result<Option<ClientRecord>, StoreError>;
    /// `Conflict` when the id is taken by a client or a user, or by a user removed before its
    /// [`Removal::keep_until`]. A client removed within its [`Removal::keep_until`] comes back
    /// with a cut-off past the removed one's.
    async fn insert_client(&self, client: &ClientRecord) -> Result<(), StoreError>;
    /// Replaces the grants, scopes, audiences and introspection right that `update` names, in
    /// one step. False when there is no such client.
    async fn update_client(
        &self,
        client_id: &str,
        update: &ClientUpdate,
    ) -> Result<bool, StoreError>;
    /// Makes `new_hash` the client's secret in one step. With `previous_until`, the secret it
    /// replaces keeps working until then (one previous secret at most: an older one is
    /// dropped); without, it stops at once. `not_before`, when given, becomes the client's
    /// cut-off for access tokens (or one past the one it had, whichever is later). False when
    /// there is no such client.
    async fn rotate_client_secret(
        &self,
        client_id: &str,
        new_hash: &str,
        previous_until: Option<u64>,
        not_before: Option<u64>,
    ) -> Result<bool, StoreError>;
    /// Deletes the client and keeps its cut-off as [`Removal`] says, in one step.
    async fn remove_client(&self, client_id: &str, removal: Removal) -> Result<bool, StoreError>;
    /// Sorted by client id.
    async fn list_clients(&self) -> Result<Vec<ClientRecord>, StoreError>;

    /// Stores the first token of a new family. Storing the same record again succeeds (a
    /// connection that sends a request again may have delivered it once already); another
    /// record under a taken id is a `Conflict`.
    async fn insert_refresh(&self, token: &RefreshRecord) -> Result<(), StoreError>;
    async fn refresh(&self, id: &str) -> Result<Option<RefreshRecord>, StoreError>;
    /// What the refresh grant reads before it rotates: the token, whether its family is
    /// revoked, and its user. A backend may answer in one step (the embedded store does, with a
    /// join); the default asks the three questions in turn.
    async fn refresh_context(&self, id: &str) -> Result<Option<RefreshContext>, StoreError> {
        let Some(record) = self.refresh(id).await? else {
            return Ok(None);
        };
        let family_revoked = self.family_revoked(&record.family_id).await?;
        let user = self.user(&record.username).await?;
        Ok(Some(RefreshContext {
            record,
            family_revoked,
            user,
        }))
    }
    /// Marks `id` used at `now`, records the sealed successor and stores `successor`, all at
    /// once and only if `id` was unused. Of concurrent callers exactly one gets `Rotated`.
    async fn rotate_refresh(
        &self,
        id: &str,
        now: u64,
        sealed_successor: &[u8],
        successor: &RefreshRecord,
    ) -> Result<Rotation, StoreError>;
    /// Ends the family; it stays recorded as revoked until `expires_at`.
    async fn revoke_family(&self, family_id: &str, expires_at: u64) -> Result<(), StoreError>;
    async fn family_revoked(&self, family_id: &str) -> Result<bool, StoreError>;

    /// Records a revoked access token until it would have expired anyway.
    async fn revoke_access_token(&self, jti: &str, expires_at: u64) -> Result<(), StoreError>;
    async fn access_token_revoked(&self, jti: &str, now: u64) -> Result<bool, StoreError>;

    /// Takes one login slot on every one of `counters` (a name and its limit, at least 1) of
    /// `subject`, all at once, before a password is checked. When any counter already holds its
    /// limit in its current window, nothing is counted anywhere and the answer is `Some` of the
    /// latest end among the windows at their limit; otherwise one slot is counted on each and the
    /// answer is `None`. A window is fixed: it lasts `window` seconds from the slot that opened it,
    /// the first slot after the previous window ended. Of concurrent callers at most `limit` per
    /// counter and window get `None`.
    async fn reserve_login_slots(
        &self,
        subject: &LoginSubject,
        counters: &[(&str, u64)],
        now: u64,
        window: u64,
    ) -> Result<Option<u64>, StoreError>;
    /// Hands back slots that [`Store::reserve_login_slots`] took at `taken_at` with `window`, all
    /// at once: `GiveBack` counts one slot less (never below zero), `Forget` counts none. Only a
    /// window that was open at `taken_at` is changed, so that a slot is never given back to a
    /// later window, which does not hold it.
    async fn release_login_slots(
        &self,
        subject: &LoginSubject,
        counters: &[(&str, SlotRelease)],
        taken_at: u64,
        window: u64,
    ) -> Result<(), StoreError>;

    /// Every signing key held, newest first (by `created_at`, then `activates_at`, then `kid`, so
    /// that a key staged within the second its predecessor was made still comes first).
    async fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>, StoreError>;
    /// Inserts `key` unless its kid is taken or, for a `Next` or `Active` key, another key is
    /// in that state already. Returns whether it inserted. Used at first start and to import
    /// key files; of concurrent first starts exactly one inserts an active key.
    async fn insert_signing_key(&self, key: &SigningKeyRecord) -> Result<bool, StoreError>;
    /// Inserts `key` (which must be `Next`) only if no key is `Next` and the active key is
    /// `expected_active`. Of concurrent stagings exactly one inserts, and a staging decided on
    /// a view from before the last promotion inserts nothing.
    async fn stage_signing_key(
        &self,
        key: &SigningKeyRecord,
        expected_active: &str,
    ) -> Result<bool, StoreError>;
    /// Makes the `Next` key `kid` active at `now`, if its `activates_at` has come, and retires
    /// the active key at `now`, to be removed at `retired_expires_at`: all at once. Of
    /// concurrent callers exactly one gets `true`.
    async fn promote_signing_key(
        &self,
        kid: &str,
        now: u64,
        retired_expires_at: u64,
    ) -> Result<bool, StoreError>;
    /// Revokes `kid` at `now` and erases its private key; the record stays as a tombstone (no
    /// `expires_at`), so that an imported key file cannot bring the key back. When it was the
    /// active key, the `Next` key becomes active at once or, without one, `replacement` (an
    /// `Active` record) is inserted: there is never a moment without an active key.
    async fn revoke_signing_key(
        &self,
        kid: &str,
        now: u64,
        replacement: &SigningKeyRecord,
    ) -> Result<KeyRevocation, StoreError>;
    /// Deletes retired and revoked keys whose `expires_at` is at or before `now`; returns how
    /// many it deleted.
    async fn remove_expired_signing_keys(&self, now: u64) -> Result<u64, StoreError>;

    /// Adds `entry` to the revocation feed with the next sequence number, replacing an earlier
    /// entry of the same kind and key (keeping the later `not_before` and `until` of the two),
    /// so that a holder of the feed learns it at its next poll.
    async fn record_revocation(&self, entry: &RevocationEntry) -> Result<(), StoreError>;
    /// The feed after the cursor `since`, or the whole current set when `since` is absent,
    /// malformed, of another store (epoch), ahead of the store or behind its purge floor.
    /// Entries whose `until` is before `now` are left out.
    async fn revocations_since(
        &self,
        since: Option<&str>,
        now: u64,
    ) -> Result<RevocationFeed, StoreError>;

    /// Inserts many users, then many first tokens of refresh families, as
    /// [`Store::insert_user`] and [`Store::insert_refresh`] would one by one (the same checks,
    /// the same records), in fewer round trips: for loading a large population at once (the
    /// benchmark's loader). A backend may write a whole call in one transaction (the embedded
    /// store does) or not (Redis pipelines the single steps): after a `Conflict`, some of the
    /// call may be written. Callers pass batches of a few thousand.
    async fn insert_many(
        &self,
        users: &[UserRecord],
        tokens: &[RefreshRecord],
    ) -> Result<(), StoreError> {
        for user in users {
            self.insert_user(user).await?;
        }
        for token in tokens {
            self.insert_refresh(token).await?;
        }
        Ok(())
    }

    /// Deletes what has expired by `now`. Backends with native expiry may do nothing.
    async fn purge_expired(&self, now: u64) -> Result<(), StoreError>;

    /// Flushes and closes at shutdown. Backends that write through at once do nothing.
    async fn close(&self) {}
}

/// Whose failed logins a set of counters counts: the SHA-256 of the username, so that the
/// keys a client can make the store write have one size, whatever it sends as a username.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct LoginSubject(pub [u8; 32]);

impl LoginSubject {
    /// Lower-case hex: 64 characters, none of them a separator or a brace.
    pub fn hex(&self) -> String {
        use std::fmt::Write as _;
        self.0
            .iter()
            .fold(String::with_capacity(64), |mut text, byte| {
                let _ = write!(text, "{byte:02x}");
                text
            })
    }
}

impl std::fmt::Debug for LoginSubject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LoginSubject({})", self.hex())
    }
}

/// What a good login does with the slot it took on a counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlotRelease {
    /// Gives back its own slot; the failures around it stay counted.
    GiveBack,
    /// Forgives the counter: the count goes to zero, the window keeps its end.
    Forget,
}

/// Implements [`Store`] for a backend laid out by area: each method is the function of the same
/// name, taking the store first, in the backend's module for its area (`users`, `clients`,
/// `refresh`, `logins`, `signing_keys`, `revocations`). So both backends read alike, area by area, and the
/// methods are listed once here rather than once per backend. What the backend answers itself
/// (`ping`, `purge_expired`, and any method that replaces a default) follows in braces.
macro_rules! store_by_area {
    ($backend:ty { $($own:tt)* }) => {
        $crate::store::store_by_area!(@impl $backend { $($own)* }
            users::user(username: &str) -> Option<UserRecord>;
            users::insert_user(user: &UserRecord) -> ();
            users::replace_password_hash(username: &str, expected: &str, new_hash: &str) -> bool;
            users::set_password_hash(username: &str, new_hash: &str, cut: &SessionCut) -> bool;
            users::set_user_disabled(username: &str, disabled: bool, cut: Option<&SessionCut>)
                -> bool;
            users::set_user_scopes(username: &str, scopes: &Scope) -> bool;
            users::remove_user(username: &str, removal: Removal) -> bool;
            users::list_users() -> Vec<UserRecord>;
            clients::client(client_id: &str) -> Option<ClientRecord>;
            clients::insert_client(client: &ClientRecord) -> ();
            clients::update_client(client_id: &str, update: &ClientUpdate) -> bool;
            clients::rotate_client_secret(client_id: &str, new_hash: &str,
                previous_until: Option<u64>, not_before: Option<u64>) -> bool;
            clients::remove_client(client_id: &str, removal: Removal) -> bool;
            clients::list_clients() -> Vec<ClientRecord>;
            refresh::insert_refresh(token: &RefreshRecord) -> ();
            refresh::refresh(id: &str) -> Option<RefreshRecord>;
            refresh::rotate_refresh(id: &str, now: u64, sealed_successor: &[u8],
                successor: &RefreshRecord) -> Rotation;
            refresh::revoke_family(family_id: &str, expires_at: u64) -> ();
            refresh::family_revoked(family_id: &str) -> bool;
            refresh::revoke_access_token(jti: &str, expires_at: u64) -> ();
            refresh::access_token_revoked(jti: &str, now: u64) -> bool;
            logins::reserve_login_slots(subject: &LoginSubject, counters: &[(&str, u64)],
                now: u64, window: u64) -> Option<u64>;
            logins::release_login_slots(subject: &LoginSubject,
                counters: &[(&str, SlotRelease)], taken_at: u64, window: u64) -> ();
            signing_keys::signing_keys() -> Vec<SigningKeyRecord>;
            signing_keys::insert_signing_key(key: &SigningKeyRecord) -> bool;
            signing_keys::stage_signing_key(key: &SigningKeyRecord, expected_active: &str)
                -> bool;
            signing_keys::promote_signing_key(kid: &str, now: u64, retired_expires_at: u64)
                -> bool;
            signing_keys::revoke_signing_key(kid: &str, now: u64, replacement: &SigningKeyRecord)
                -> KeyRevocation;
            signing_keys::remove_expired_signing_keys(now: u64) -> u64;
            revocations::record_revocation(entry: &RevocationEntry) -> ();
            revocations::revocations_since(since: Option<&str>, now: u64) -> RevocationFeed;
        );
    };
    (@impl $backend:ty { $($own:tt)* }
        $($area:ident :: $name:ident ($($arg:ident : $ty:ty),*) -> $answer:ty;)*) => {
        const _: () = {
            use oauth2_jwt_verifier::Scope;
            use $crate::store::{
                ClientRecord, ClientUpdate, KeyRevocation, LoginSubject, RefreshRecord, Removal,
                RevocationEntry, RevocationFeed, Rotation, SessionCut, SigningKeyRecord,
                SlotRelease, Store, StoreError, UserRecord,
            };

            #[async_trait::async_trait]
            impl Store for $backend {
                $(
                    async fn $name(&self, $($arg: $ty),*) -> Result<$answer, StoreError> {
                        $area::$name(self, $($arg),*).await
                    }
                )*
                $($own)*
            }
        };
    };
}
pub(crate) use store_by_area;

/// Opens the backend that `url` names: `sqlite://PATH`, `redis://…` or `rediss://…` (TLS), or
/// `redis+sentinel://…` (`rediss+sentinel://…`) for the primary that sentinels name, or
/// `redis+cluster://…` or `rediss+cluster://…` (a Redis Cluster).
pub async fn open(url: &str) -> anyhow::Result<Arc<dyn Store>> {
    open_with(url, &redis::RedisTls::default()).await
}

/// As [`open`], with the CA and client certificate files of `tls` for a `rediss://` URL. The
/// only place that looks at the scheme.
pub async fn open_with(url: &str, tls: &redis::RedisTls) -> anyhow::Result<Arc<dyn Store>> {
    use anyhow::Context;
    let scheme = url
        .split_once("://")
        .map(|(scheme, _)| scheme)
        .unwrap_or_default();
    match scheme {
        "sqlite" if tls.is_set() => anyhow::bail!("AUTH_REDIS_* files need a rediss:// store"),
        "sqlite" => Ok(Arc::new(
            embedded::SqliteStore::open(url)
                .await
                .with_context(|| format!("opening {url}"))?,
        )),
        "redis" | "rediss" | "redis+sentinel" | "rediss+sentinel" | "redis+cluster"
        | "rediss+cluster" => Ok(Arc::new(
            redis::RedisStore::open_tls(url, tls)
                .await
                .with_context(|| format!("opening {}", redact_url(url)))?,
        )),
        _ => anyhow::bail!(
            "AUTH_STORE must start with sqlite://, redis://, rediss://, redis+sentinel://, \
             rediss+sentinel://, redis+cluster:// or rediss+cluster://, got {:?}",
            redact_url(url)
        ),
    }
}

/// A store URL fit for logs and errors: any password is replaced.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("redacted"));
            parsed.to_string()
        }
        // Sentinel and Cluster URLs list several hosts, which is no URL to the parser; and a
        // password with a raw `/` parses as no password at all (`redis://u:12/x@h` is host `u`,
        // port 12): mask by the text's last `@` then.
        _ => redis::redact_multi_host_url(url),
    }
}

#[cfg(test)]
mod backend_tests {
    use super::conformance::{self, TestBackend};

    // A test fails loudly when its backend cannot be set up; the workspace bans `expect` elsewhere.
    #[allow(clippy::expect_used)]
    async fn open_embedded() -> TestBackend {
        let dir = tempfile::tempdir().expect("creating a temporary directory");
        let store = super::embedded::SqliteStore::open_in(dir.path())
            .await
            .expect("opening the embedded store");
        TestBackend::new(store, dir)
    }

    /// An in-memory database, which the hot reads reach through SQLite's shared cache.
    #[allow(clippy::expect_used)]
    async fn open_embedded_in_memory() -> TestBackend {
        let store = super::embedded::SqliteStore::open("sqlite::memory:")
            .await
            .expect("opening the embedded store in memory");
        TestBackend::new(store, ())
    }

    conformance::conformance_tests!(embedded, open_embedded().await);
    conformance::conformance_tests!(embedded_in_memory, open_embedded_in_memory().await);
    conformance::conformance_tests!(redis, TestBackend::redis().await);
    conformance::conformance_tests!(redis_tls, TestBackend::redis_tls().await);
    conformance::conformance_tests!(redis_cluster, TestBackend::redis_cluster().await);
    conformance::conformance_tests!(redis_sentinel, TestBackend::redis_sentinel().await);
}
