//! Refresh tokens (all under the one `{rt}` tag, so that a rotation is one script; see the
//! trade-off in the module doc of `store::redis`) and revocations, which carry a Redis TTL.

use std::collections::HashMap;

use super::codec::{refresh_fields, refresh_from};
use super::connection::{expire_at, Request, Resend};
use super::RedisStore;
use crate::store::{RefreshRecord, Rotation, StoreError};

/// Records `key` as revoked until `expires_at`, never shortening an earlier revocation.
async fn revoke(store: &RedisStore, key: String, expires_at: u64) -> Result<(), StoreError> {
    let _: u64 = store
        .send(
            Resend::Always,
            Request::Script(
                store
                    .scripts
                    .revoke
                    .key(key)
                    .arg(expires_at)
                    .arg(expire_at(expires_at)),
            ),
        )
        .await?;
    Ok(())
}

pub(super) async fn insert_refresh(
    store: &RedisStore,
    token: &RefreshRecord,
) -> Result<(), StoreError> {
    let mut invocation = store.scripts.insert_expiring.prepare_invoke();
    invocation
        .key(store.keys.refresh(&token.id))
        .arg(expire_at(token.expires_at));
    for (field, value) in refresh_fields(token) {
        invocation.arg(field).arg(value);
    }
    if store.wrote(&invocation).await? {
        return Ok(());
    }
    // The id is the hash of 256 random bits, so a taken id is this very insert run twice: the
    // cluster client sends a request again after a dropped connection, and the first may have
    // landed. The same record is a success; anything else is a real conflict.
    match refresh(store, &token.id).await? {
        Some(stored) if stored == *token => Ok(()),
        _ => Err(StoreError::Conflict("refresh token".to_owned())),
    }
}

pub(super) async fn refresh(
    store: &RedisStore,
    id: &str,
) -> Result<Option<RefreshRecord>, StoreError> {
    let hash = store.hash(&store.keys.refresh(id)).await?;
    if hash.is_empty() {
        return Ok(None);
    }
    refresh_from(id, hash).map(Some)
}

pub(super) async fn rotate_refresh(
    store: &RedisStore,
    id: &str,
    now: u64,
    sealed_successor: &[u8],
    successor: &RefreshRecord,
) -> Result<Rotation, StoreError> {
    let mut invocation = store.scripts.rotate.prepare_invoke();
    invocation
        .key(store.keys.refresh(id))
        .key(store.keys.refresh(&successor.id))
        .arg(now)
        .arg(sealed_successor)
        .arg(&successor.id)
        .arg(expire_at(successor.expires_at));
    for (field, value) in refresh_fields(successor) {
        invocation.arg(field).arg(value);
    }
    let (outcome, current): (i64, HashMap<String, Vec<u8>>) = store
        .send(Resend::IfNotSent, Request::Script(&invocation))
        .await?;
    match outcome {
        1 => Ok(Rotation::Rotated),
        -1 => Err(StoreError::Conflict("refresh token".to_owned())),
        _ if current.is_empty() => Ok(Rotation::Lost(None)),
        _ => refresh_from(id, current).map(|record| Rotation::Lost(Some(Box::new(record)))),
    }
}

pub(super) async fn revoke_family(
    store: &RedisStore,
    family_id: &str,
    expires_at: u64,
) -> Result<(), StoreError> {
    revoke(store, store.keys.revoked_family(family_id), expires_at).await
}

pub(super) async fn family_revoked(
    store: &RedisStore,
    family_id: &str,
) -> Result<bool, StoreError> {
    let count: u64 = store
        .send(
            Resend::Always,
            Request::Command(redis::cmd("EXISTS").arg(store.keys.revoked_family(family_id))),
        )
        .await?;
    Ok(count == 1)
}

pub(super) async fn revoke_access_token(
    store: &RedisStore,
    jti: &str,
    expires_at: u64,
) -> Result<(), StoreError> {
    revoke(store, store.keys.revoked_jti(jti), expires_at).await
}

pub(super) async fn access_token_revoked(
    store: &RedisStore,
    jti: &str,
    now: u64,
) -> Result<bool, StoreError> {
    let expires_at: Option<String> = store
        .send(
            Resend::Always,
            Request::Command(redis::cmd("GET").arg(store.keys.revoked_jti(jti))),
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
