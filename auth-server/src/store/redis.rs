//! The Redis backend, shared by several replicas. (Being written: see store/conformance.rs.)

use async_trait::async_trait;

use super::{ClientRecord, RefreshRecord, Rotation, Store, StoreError, UserRecord};

pub struct RedisStore {
    _private: (),
}

impl RedisStore {
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        Err(StoreError::Unavailable(format!("the Redis backend is not built yet: {}", super::redact_url(url))))
    }
}

#[async_trait]
impl Store for RedisStore {
    async fn ping(&self) -> Result<(), StoreError> { unimplemented_backend() }
    async fn user(&self, _: &str) -> Result<Option<UserRecord>, StoreError> { unimplemented_backend() }
    async fn insert_user(&self, _: &UserRecord) -> Result<(), StoreError> { unimplemented_backend() }
    async fn replace_password_hash(&self, _: &str, _: &str, _: &str) -> Result<bool, StoreError> { unimplemented_backend() }
    async fn set_password_hash(&self, _: &str, _: &str) -> Result<bool, StoreError> { unimplemented_backend() }
    async fn set_user_disabled(&self, _: &str, _: bool) -> Result<bool, StoreError> { unimplemented_backend() }
    async fn remove_user(&self, _: &str) -> Result<bool, StoreError> { unimplemented_backend() }
    async fn list_users(&self) -> Result<Vec<UserRecord>, StoreError> { unimplemented_backend() }
    async fn client(&self, _: &str) -> Result<Option<ClientRecord>, StoreError> { unimplemented_backend() }
    async fn insert_client(&self, _: &ClientRecord) -> Result<(), StoreError> { unimplemented_backend() }
    async fn remove_client(&self, _: &str) -> Result<bool, StoreError> { unimplemented_backend() }
    async fn list_clients(&self) -> Result<Vec<ClientRecord>, StoreError> { unimplemented_backend() }
    async fn insert_refresh(&self, _: &RefreshRecord) -> Result<(), StoreError> { unimplemented_backend() }
    async fn refresh(&self, _: &str) -> Result<Option<RefreshRecord>, StoreError> { unimplemented_backend() }
    async fn rotate_refresh(&self, _: &str, _: u64, _: &[u8], _: &RefreshRecord) -> Result<Rotation, StoreError> { unimplemented_backend() }
    async fn revoke_family(&self, _: &str, _: u64) -> Result<(), StoreError> { unimplemented_backend() }
    async fn family_revoked(&self, _: &str) -> Result<bool, StoreError> { unimplemented_backend() }
    async fn revoke_access_token(&self, _: &str, _: u64) -> Result<(), StoreError> { unimplemented_backend() }
    async fn access_token_revoked(&self, _: &str, _: u64) -> Result<bool, StoreError> { unimplemented_backend() }
    async fn record_failure(&self, _: &str, _: u64, _: u64) -> Result<(u64, u64), StoreError> { unimplemented_backend() }
    async fn failures(&self, _: &str, _: u64) -> Result<(u64, u64), StoreError> { unimplemented_backend() }
    async fn clear_failures(&self, _: &str) -> Result<(), StoreError> { unimplemented_backend() }
    async fn purge_expired(&self, _: u64) -> Result<(), StoreError> { unimplemented_backend() }
}

fn unimplemented_backend<T>() -> Result<T, StoreError> {
    Err(StoreError::Unavailable("the Redis backend is not built yet".into()))
}
