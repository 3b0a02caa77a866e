//! The revocation feed: every key under the tag `{revocations}`, so that recording an entry
//! (next seq, replacing the kind and key's earlier entry) and reading the entries after a
//! cursor are one script each. Entries carry no Redis TTL: `purge_expired` deletes them and
//! raises the purge floor in the same script, which a TTL could not.

use super::connection::{Request, Resend};
use super::RedisStore;
use crate::store::{parse_cursor, RevocationEntry, RevocationFeed, RevocationKind, StoreError};

/// The most entries one purge deletes, so that the script stays short; the next tick goes on.
const PURGE_BATCH: u64 = 10_000;

/// A random epoch, stored only by the first script that finds the feed without one.
fn new_epoch() -> String {
    format!(
        "{:016x}{:08x}",
        rand::random::<u64>(),
        rand::random::<u32>()
    )
}

fn member(entry: &RevocationEntry) -> String {
    format!("{}:{}", entry.kind.as_str(), entry.key)
}

pub(super) async fn record_revocation(
    store: &RedisStore,
    entry: &RevocationEntry,
) -> Result<(), StoreError> {
    let keys = &store.keys;
    let _: u64 = store
        .send(
            Resend::IfNotSent,
            Request::Script(
                store
                    .scripts
                    .record_revocation
                    .key(keys.revocations("meta"))
                    .key(keys.revocations("log"))
                    .key(keys.revocations("entries"))
                    .key(keys.revocations("ends"))
                    .arg(new_epoch())
                    .arg(member(entry))
                    .arg(entry.not_before)
                    .arg(entry.until),
            ),
        )
        .await?;
    Ok(())
}

pub(super) async fn revocations_since(
    store: &RedisStore,
    since: Option<&str>,
    now: u64,
) -> Result<RevocationFeed, StoreError> {
    let keys = &store.keys;
    let (their_epoch, their_seq) = since
        .and_then(parse_cursor)
        .map_or((String::new(), String::new()), |(epoch, seq)| {
            (epoch.to_owned(), seq.to_string())
        });
    let (epoch, seq, complete, pairs): (String, u64, u8, Vec<String>) = store
        .send(
            Resend::Always,
            Request::Script(
                store
                    .scripts
                    .revocations_since
                    .key(keys.revocations("meta"))
                    .key(keys.revocations("log"))
                    .key(keys.revocations("entries"))
                    .arg(new_epoch())
                    .arg(their_epoch)
                    .arg(their_seq),
            ),
        )
        .await?;
    let mut entries = Vec::with_capacity(pairs.len() / 2);
    for pair in pairs.chunks_exact(2) {
        let entry = entry_from(&pair[0], &pair[1])?;
        if entry.until >= now {
            entries.push(entry);
        }
    }
    Ok(RevocationFeed {
        cursor: format!("{epoch}.{seq}"),
        complete: complete == 1,
        entries,
    })
}

fn entry_from(member: &str, value: &str) -> Result<RevocationEntry, StoreError> {
    let corrupt = || StoreError::Corrupt(format!("revocation entry {member:?}"));
    let (kind, key) = member.split_once(':').ok_or_else(corrupt)?;
    let (not_before, until) = value.split_once(' ').ok_or_else(corrupt)?;
    Ok(RevocationEntry {
        kind: RevocationKind::parse(kind).ok_or_else(corrupt)?,
        key: key.to_owned(),
        not_before: not_before.parse().map_err(|_| corrupt())?,
        until: until.parse().map_err(|_| corrupt())?,
    })
}

pub(super) async fn purge(store: &RedisStore, now: u64) -> Result<(), StoreError> {
    let keys = &store.keys;
    let _: u64 = store
        .send(
            Resend::IfNotSent,
            Request::Script(
                store
                    .scripts
                    .purge_revocations
                    .key(keys.revocations("meta"))
                    .key(keys.revocations("log"))
                    .key(keys.revocations("entries"))
                    .key(keys.revocations("ends"))
                    .arg(now)
                    .arg(PURGE_BATCH),
            ),
        )
        .await?;
    Ok(())
}
