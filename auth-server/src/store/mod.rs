//! What the auth-server persists, behind one trait so that one machine runs on the embedded
//! SQLite file and several replicas share Redis, with the same behaviour on both.
//!
//! Every method is atomic on its own; no caller holds a lock across calls. Times are Unix
//! seconds supplied by the caller, so that tests can speak about expiry without sleeping.

#[cfg(test)]
pub mod conformance;
pub mod embedded;
pub mod redis;

use std::sync::Arc;

use async_trait::async_trait;
use shared::Scope;

/// A user as stored. `password_hash` is a PHC string (argon2id) or an imported bcrypt hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserRecord {
    pub username: String,
    pub full_name: Option<String>,
    pub email: Option<String>,
    pub password_hash: String,
    pub disabled: bool,
    pub scopes: Scope,
}

/// A registered client. `secret_hash` is the keyed hash of its secret (see `client_auth`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientRecord {
    pub client_id: String,
    pub secret_hash: String,
    pub grants: Vec<String>,
    pub scopes: Scope,
    pub audiences: Vec<String>,
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

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} already exists")]
    Conflict(String),
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

#[async_trait]
pub trait Store: Send + Sync {
    /// Answers when the backend is reachable; used by `/readyz`.
    async fn ping(&self) -> Result<(), StoreError>;

    async fn user(&self, username: &str) -> Result<Option<UserRecord>, StoreError>;
    /// `Conflict` when the username is taken.
    async fn insert_user(&self, user: &UserRecord) -> Result<(), StoreError>;
    /// Replaces the hash only if it still is `expected`, so that a rehash on login never undoes
    /// a concurrent `user passwd`. Returns whether it replaced it.
    async fn replace_password_hash(
        &self,
        username: &str,
        expected: &str,
        new_hash: &str,
    ) -> Result<bool, StoreError>;
    /// Returns false when there is no such user.
    async fn set_password_hash(&self, username: &str, new_hash: &str) -> Result<bool, StoreError>;
    async fn set_user_disabled(&self, username: &str, disabled: bool) -> Result<bool, StoreError>;
    async fn remove_user(&self, username: &str) -> Result<bool, StoreError>;
    /// Sorted by username.
    async fn list_users(&self) -> Result<Vec<UserRecord>, StoreError>;

    async fn client(&self, client_id: &str) -> Result<Option<ClientRecord>, StoreError>;
    /// `Conflict` when the id is taken.
    async fn insert_client(&self, client: &ClientRecord) -> Result<(), StoreError>;
    async fn remove_client(&self, client_id: &str) -> Result<bool, StoreError>;
    /// Sorted by client id.
    async fn list_clients(&self) -> Result<Vec<ClientRecord>, StoreError>;

    /// Stores the first token of a new family.
    async fn insert_refresh(&self, token: &RefreshRecord) -> Result<(), StoreError>;
    async fn refresh(&self, id: &str) -> Result<Option<RefreshRecord>, StoreError>;
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

    /// Counts one failure against `key` in a fixed window of `window` seconds that starts with
    /// the first failure; returns the count in the current window and when that window ends.
    async fn record_failure(
        &self,
        key: &str,
        now: u64,
        window: u64,
    ) -> Result<(u64, u64), StoreError>;
    /// The failures counted against `key` in its current window, and when that window ends.
    async fn failures(&self, key: &str, now: u64) -> Result<(u64, u64), StoreError>;
    async fn clear_failures(&self, key: &str) -> Result<(), StoreError>;

    /// Deletes what has expired by `now`. Backends with native expiry may do nothing.
    async fn purge_expired(&self, now: u64) -> Result<(), StoreError>;

    /// Flushes and closes at shutdown. Backends that write through at once do nothing.
    async fn close(&self) {}
}

/// Opens the backend that `url` names: `sqlite://PATH` (the default) or `redis://HOST:PORT/DB`.
/// The only place that looks at the scheme.
pub async fn open(url: &str) -> anyhow::Result<Arc<dyn Store>> {
    use anyhow::Context;
    let scheme = url
        .split_once("://")
        .map(|(scheme, _)| scheme)
        .unwrap_or_default();
    match scheme {
        "sqlite" => Ok(Arc::new(
            embedded::SqliteStore::open(url)
                .await
                .with_context(|| format!("opening {url}"))?,
        )),
        "rediss" => anyhow::bail!("AUTH_STORE: TLS to Redis (rediss://) is not supported yet; use a TLS proxy such as stunnel or a private network"),
        "redis" => Ok(Arc::new(
            redis::RedisStore::open(url)
                .await
                .with_context(|| format!("opening {}", redact_url(url)))?,
        )),
        _ => anyhow::bail!(
            "AUTH_STORE must start with sqlite:// or redis://, got {:?}",
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
        _ => url.to_owned(),
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

    conformance::conformance_tests!(embedded, open_embedded().await);
    conformance::conformance_tests!(redis, TestBackend::redis().await);
}
