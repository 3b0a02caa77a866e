//! Clients: one hash each under the `{clients}` tag, with the index of ids and the cut-offs of
//! removed clients; a secret rotation is one script over the client's hash.

use super::codec::{client_fields, client_from, flag};
use super::connection::{Request, Resend};
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
    let done: u64 = store
        .send(
            Resend::IfNotSent,
            Request::Script(
                store
                    .scripts
                    .rotate_client_secret
                    .key(store.keys.client(client_id))
                    .arg(new_hash)
                    .arg(optional(previous_until))
                    .arg(optional(not_before)),
            ),
        )
        .await?;
    Ok(done == 1)
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
    use super::*;
    use crate::store::Store;

    /// Grants are stored as the words of the token request: a hash with a word that names no
    /// grant type reads as corrupt rather than as a client with fewer grants.
    #[tokio::test]
    #[allow(clippy::unwrap_used)]
    async fn a_stored_grant_word_is_read_back_or_is_corrupt() {
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

        let web = store.client("web").await.unwrap().unwrap();
        assert_eq!(
            web.grants,
            vec![GrantType::Password, GrantType::RefreshToken]
        );
        let old = store.client("old").await;
        assert!(
            matches!(&old, Err(StoreError::Corrupt(message)) if message.contains("implicit")),
            "{old:?}"
        );

        let _: u64 = redis::cmd("DEL")
            .arg(keys.client("web"))
            .arg(keys.client("old"))
            .query_async(&mut raw)
            .await
            .unwrap();
    }
}
