//! Users: one hash each under the `{users}` tag, with the index of names and the cut-offs of
//! removed users; a change that ends sessions writes the stamp and cut-off in the same script.

use oauth2_jwt_verifier::Scope;

use super::codec::{flag, user_fields, user_from};
use super::RedisStore;
use crate::store::{Removal, SessionCut, StoreError, UserRecord};

/// Writes `cut` and the other `pairs` to the user hash at `key`, if it exists.
async fn cut_sessions(
    store: &RedisStore,
    key: String,
    cut: &SessionCut,
    pairs: &[(&str, String)],
) -> Result<bool, StoreError> {
    let mut invocation = store.scripts.cut_sessions.prepare_invoke();
    invocation.key(key).arg(&cut.stamp).arg(cut.not_before);
    for (field, value) in pairs {
        invocation.arg(*field).arg(value);
    }
    store.wrote(&invocation).await
}

pub(super) async fn user(
    store: &RedisStore,
    username: &str,
) -> Result<Option<UserRecord>, StoreError> {
    let hash = store.hash(&store.keys.user(username)).await?;
    if hash.is_empty() {
        return Ok(None);
    }
    user_from(username, hash).map(Some)
}

pub(super) async fn insert_user(store: &RedisStore, user: &UserRecord) -> Result<(), StoreError> {
    let name = &user.username;
    let keys = [
        store.keys.user(name),
        store.keys.user_index(),
        store.keys.removed_user(name),
    ];
    let other = (
        "client",
        [store.keys.client(name), store.keys.removed_client(name)],
    );
    store
        .insert_account(
            "user",
            keys,
            other,
            name,
            user.not_before,
            user_fields(user),
        )
        .await
}

pub(super) async fn replace_password_hash(
    store: &RedisStore,
    username: &str,
    expected: &str,
    new_hash: &str,
) -> Result<bool, StoreError> {
    store
        .wrote(
            store
                .scripts
                .compare_and_set_field
                .key(store.keys.user(username))
                .arg("password_hash")
                .arg(expected)
                .arg(new_hash),
        )
        .await
}

pub(super) async fn set_password_hash(
    store: &RedisStore,
    username: &str,
    new_hash: &str,
    cut: &SessionCut,
) -> Result<bool, StoreError> {
    cut_sessions(
        store,
        store.keys.user(username),
        cut,
        &[("password_hash", new_hash.to_owned())],
    )
    .await
}

pub(super) async fn set_user_disabled(
    store: &RedisStore,
    username: &str,
    disabled: bool,
    cut: Option<&SessionCut>,
) -> Result<bool, StoreError> {
    let pairs = [("disabled", flag(disabled).to_owned())];
    match cut {
        Some(cut) => cut_sessions(store, store.keys.user(username), cut, &pairs).await,
        None => store.set_fields(store.keys.user(username), &pairs).await,
    }
}

pub(super) async fn set_user_scopes(
    store: &RedisStore,
    username: &str,
    scopes: &Scope,
) -> Result<bool, StoreError> {
    store
        .set_fields(store.keys.user(username), &[("scopes", scopes.to_string())])
        .await
}

pub(super) async fn remove_user(
    store: &RedisStore,
    username: &str,
    removal: Removal,
) -> Result<bool, StoreError> {
    let keys = [
        store.keys.user(username),
        store.keys.user_index(),
        store.keys.removed_user(username),
    ];
    store.remove_account(keys, username, removal).await
}

pub(super) async fn list_users(store: &RedisStore) -> Result<Vec<UserRecord>, StoreError> {
    store
        .indexed(&store.keys.user_index(), |username| {
            store.keys.user(username)
        })
        .await?
        .into_iter()
        .map(|(username, hash)| user_from(&username, hash))
        .collect()
}
