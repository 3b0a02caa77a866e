//! The bulk insert of a population (the benchmark's loader): the single inserts' own checks and
//! scripts, sent as pipelines rather than one round trip each, so that the keys and fields are
//! those the single inserts write.

use super::codec::{refresh_fields, user_fields};
use super::connection::{expire_at, Request, Resend};
use super::RedisStore;
use crate::store::{RefreshRecord, StoreError, UserRecord};

/// Loads `source` first in `pipeline`, so that the `EVALSHA`s after it find the script even on
/// a server that has not seen it (the single steps load it on `NOSCRIPT`; a pipeline cannot).
fn load(pipeline: &mut redis::Pipeline, source: &str) {
    pipeline.cmd("SCRIPT").arg("LOAD").arg(source).ignore();
}

pub(super) async fn insert_many(
    store: &RedisStore,
    users: &[UserRecord],
    tokens: &[RefreshRecord],
) -> Result<(), StoreError> {
    if !users.is_empty() {
        insert_users(store, users).await?;
    }
    if !tokens.is_empty() {
        insert_tokens(store, tokens).await?;
    }
    Ok(())
}

async fn insert_users(store: &RedisStore, users: &[UserRecord]) -> Result<(), StoreError> {
    // The check `insert_account` makes before its script (a client, or a removed one, with the
    // name), for every user at once.
    let mut checks = redis::pipe();
    for user in users {
        checks
            .cmd("EXISTS")
            .arg(store.keys.client(&user.username))
            .arg(store.keys.removed_client(&user.username));
    }
    let taken: Vec<u64> = store
        .send(Resend::Always, Request::Pipeline(&checks))
        .await?;
    if let Some((user, _)) = users.iter().zip(&taken).find(|(_, count)| **count > 0) {
        return Err(StoreError::Conflict(format!("client {}", user.username)));
    }
    let mut inserts = redis::pipe();
    load(&mut inserts, include_str!("scripts/insert_account.lua"));
    for user in users {
        let name = &user.username;
        let command = inserts
            .cmd("EVALSHA")
            .arg(store.scripts.insert_account.get_hash())
            .arg(3)
            .arg(store.keys.user(name))
            .arg(store.keys.user_index())
            .arg(store.keys.removed_user(name))
            .arg(name)
            .arg(user.not_before);
        for (field, value) in user_fields(user)
            .into_iter()
            .filter(|(field, _)| *field != "not_before")
        {
            command.arg(field).arg(value);
        }
    }
    let done: Vec<u64> = store
        .send(Resend::IfNotSent, Request::Pipeline(&inserts))
        .await?;
    match users.iter().zip(&done).find(|(_, wrote)| **wrote != 1) {
        Some((user, _)) => Err(StoreError::Conflict(format!("user {}", user.username))),
        None => Ok(()),
    }
}

async fn insert_tokens(store: &RedisStore, tokens: &[RefreshRecord]) -> Result<(), StoreError> {
    let mut inserts = redis::pipe();
    load(&mut inserts, include_str!("scripts/insert_expiring.lua"));
    for token in tokens {
        let command = inserts
            .cmd("EVALSHA")
            .arg(store.scripts.insert_expiring.get_hash())
            .arg(1)
            .arg(store.keys.refresh(&token.id))
            .arg(expire_at(token.expires_at));
        for (field, value) in refresh_fields(token) {
            command.arg(field).arg(value);
        }
    }
    let done: Vec<u64> = store
        .send(Resend::IfNotSent, Request::Pipeline(&inserts))
        .await?;
    if done.iter().any(|wrote| *wrote != 1) {
        return Err(StoreError::Conflict("refresh token".to_owned()));
    }
    Ok(())
}
