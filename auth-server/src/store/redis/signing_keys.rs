//! Signing keys: one hash of every key's JSON, so that each lifecycle step is one script that
//! sees every key's state.

use std::collections::HashMap;

use super::codec::{signing_key_from, signing_key_json};
use super::connection::{Request, Resend};
use super::RedisStore;
use crate::store::{KeyRevocation, KeyState, SigningKeyRecord, StoreError};

pub(super) async fn signing_keys(store: &RedisStore) -> Result<Vec<SigningKeyRecord>, StoreError> {
    let fields: HashMap<String, Vec<u8>> = store.hash(&store.keys.signing_keys()).await?;
    let mut keys = fields
        .iter()
        .map(|(kid, json)| signing_key_from(kid, json))
        .collect::<Result<Vec<_>, _>>()?;
    keys.sort_by(|a, b| {
        (b.created_at, b.activates_at, &b.kid).cmp(&(a.created_at, a.activates_at, &a.kid))
    });
    Ok(keys)
}

pub(super) async fn insert_signing_key(
    store: &RedisStore,
    key: &SigningKeyRecord,
) -> Result<bool, StoreError> {
    store
        .wrote(
            store
                .scripts
                .insert_signing_key
                .key(store.keys.signing_keys())
                .arg(&key.kid)
                .arg(key.state.as_str())
                .arg(signing_key_json(key)?),
        )
        .await
}

pub(super) async fn stage_signing_key(
    store: &RedisStore,
    key: &SigningKeyRecord,
    expected_active: &str,
) -> Result<bool, StoreError> {
    if key.state != KeyState::Next {
        return Ok(false);
    }
    store
        .wrote(
            store
                .scripts
                .stage_signing_key
                .key(store.keys.signing_keys())
                .arg(&key.kid)
                .arg(signing_key_json(key)?)
                .arg(expected_active),
        )
        .await
}

pub(super) async fn promote_signing_key(
    store: &RedisStore,
    kid: &str,
    now: u64,
    retired_expires_at: u64,
) -> Result<bool, StoreError> {
    store
        .wrote(
            store
                .scripts
                .promote_signing_key
                .key(store.keys.signing_keys())
                .arg(kid)
                .arg(now)
                .arg(retired_expires_at),
        )
        .await
}

pub(super) async fn revoke_signing_key(
    store: &RedisStore,
    kid: &str,
    now: u64,
    replacement: &SigningKeyRecord,
) -> Result<KeyRevocation, StoreError> {
    if replacement.state != KeyState::Active {
        return Err(StoreError::Corrupt(
            "the replacement of a revoked active key must be active".into(),
        ));
    }
    let (code, now_active): (i64, String) = store
        .send(
            Resend::IfNotSent,
            Request::Script(
                store
                    .scripts
                    .revoke_signing_key
                    .key(store.keys.signing_keys())
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

pub(super) async fn remove_expired_signing_keys(
    store: &RedisStore,
    now: u64,
) -> Result<u64, StoreError> {
    store
        .send(
            Resend::Always,
            Request::Script(
                store
                    .scripts
                    .remove_expired_signing_keys
                    .key(store.keys.signing_keys())
                    .arg(now),
            ),
        )
        .await
}
