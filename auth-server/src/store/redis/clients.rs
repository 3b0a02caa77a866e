//! Clients: one hash each under the `{clients}` tag, with the index of ids and the cut-offs of
//! removed clients; a secret rotation is one script over the client's hash.

use super::codec::{client_fields, client_from, flag};
use super::RedisStore;
use crate::store::{ClientRecord, ClientUpdate, GrantType, Removal, StoreError};

pub(super) async fn client(
    store: &RedisStore,
    client_id: &str,
) -> Result<Option<ClientRecord>, StoreError> {
    let hash = store.hash(&store.keys.client(client_id)).await?;
    if hash.is_empty() {
        return Ok(None);
    }
    client_from(client_id, hash).map(Some)
}

pub(super) async fn insert_client(
    store: &RedisStore,
    client: &ClientRecord,
) -> Result<(), StoreError> {
    let id = &client.client_id;
    let keys = [
        store.keys.client(id),
        store.keys.client_index(),
        store.keys.removed_client(id),
    ];
    let other = ("user", [store.keys.user(id), store.keys.removed_user(id)]);
    store
        .insert_account(
            "client",
            keys,
            other,
            id,
            client.not_before,
            client_fields(client),
        )
        .await
}

pub(super) async fn update_client(
    store: &RedisStore,
    client_id: &str,
    update: &ClientUpdate,
) -> Result<bool, StoreError> {
    let mut pairs = Vec::new();
    if let Some(grants) = &update.grants {
        pairs.push(("grants", GrantType::join(grants, " ")));
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
        return store.exists(store.keys.client(client_id)).await;
    }
    store.set_fields(store.keys.client(client_id), &pairs).await
}

pub(super) async fn rotate_client_secret(
    store: &RedisStore,
    client_id: &str,
    new_hash: &str,
    previous_until: Option<u64>,
    not_before: Option<u64>,
) -> Result<bool, StoreError> {
    let optional = |value: Option<u64>| value.map(|v| v.to_string()).unwrap_or_default();
    store
        .wrote(
            store
                .scripts
                .rotate_client_secret
                .key(store.keys.client(client_id))
                .arg(new_hash)
                .arg(optional(previous_until))
                .arg(optional(not_before)),
        )
        .await
}

pub(super) async fn remove_client(
    store: &RedisStore,
    client_id: &str,
    removal: Removal,
) -> Result<bool, StoreError> {
    let keys = [
        store.keys.client(client_id),
        store.keys.client_index(),
        store.keys.removed_client(client_id),
    ];
    store.remove_account(keys, client_id, removal).await
}

pub(super) async fn list_clients(store: &RedisStore) -> Result<Vec<ClientRecord>, StoreError> {
    store
        .indexed(&store.keys.client_index(), |client_id| {
            store.keys.client(client_id)
        })
        .await?
        .into_iter()
        .map(|(client_id, hash)| client_from(&client_id, hash))
        .collect()
}

#[cfg(test)]
mod tests {
    /// Grants are stored as the words of the token request: a hash with a word that names no
    /// grant type reads as corrupt rather than as a client with fewer grants.
    #[tokio::test]
    #[allow(clippy::unwrap_used)]
    async fn a_stored_grant_word_is_read_back_or_is_corrupt() {
        let (store, mut raw) = super::super::tests::store_and_raw_connection().await;
        let keys = &store.keys;
        let _: () = redis::pipe()
            .cmd("HSET")
            .arg(keys.client("web"))
            .arg(&[
                "secret_hash",
                "",
                "grants",
                "password  refresh_token",
                "scopes",
                "",
                "audiences",
                "",
            ])
            .cmd("HSET")
            .arg(keys.client("old"))
            .arg(&[
                "secret_hash",
                "",
                "grants",
                "password implicit",
                "scopes",
                "",
                "audiences",
                "",
            ])
            .query_async(&mut raw)
            .await
            .unwrap();

        crate::store::hand_written::grant_words_read_back_or_are_corrupt(&store).await;

        let _: u64 = redis::cmd("DEL")
            .arg(keys.client("web"))
            .arg(keys.client("old"))
            .query_async(&mut raw)
            .await
            .unwrap();
    }
}
