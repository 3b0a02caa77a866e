//! The revocation feed: one row per kind and key in `revocations`, numbered by an AUTOINCREMENT
//! `seq`, and the feed's epoch and purge floor in the one row of `revocation_feed`.

use sqlx::Row;

use super::{as_i64, as_u64, unavailable, SqliteStore};
use crate::store::{cursor_position, RevocationEntry, RevocationFeed, RevocationKind, StoreError};

pub(super) async fn record_revocation(
    store: &SqliteStore,
    entry: &RevocationEntry,
) -> Result<(), StoreError> {
    // One statement: REPLACE deletes an earlier row of the kind and key and inserts a new one,
    // which takes the next seq, with the later cut-off and end of the two.
    sqlx::query(
        "INSERT OR REPLACE INTO revocations (kind, key, not_before, until)
             SELECT ?1, ?2, max(?3, coalesce(old.not_before, 0)), max(?4, coalesce(old.until, 0))
             FROM (SELECT 1) LEFT JOIN revocations AS old ON old.kind = ?1 AND old.key = ?2",
    )
    .bind(entry.kind.as_str())
    .bind(&entry.key)
    .bind(as_i64(entry.not_before))
    .bind(as_i64(entry.until))
    .execute(&store.writer)
    .await
    .map_err(unavailable)?;
    Ok(())
}

pub(super) async fn revocations_since(
    store: &SqliteStore,
    since: Option<&str>,
    now: u64,
) -> Result<RevocationFeed, StoreError> {
    let meta = sqlx::query(
        "SELECT epoch, floor,
                coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'revocations'), 0) AS seq
             FROM revocation_feed WHERE id = 1",
    )
    .fetch_one(&store.pool)
    .await
    .map_err(unavailable)?;
    let epoch: String = meta.get("epoch");
    let seq = as_u64(meta.get("seq"));
    let floor = as_u64(meta.get("floor"));
    let cursor = format!("{epoch}.{seq}");
    let after = cursor_position(since, &epoch, seq, floor);
    if after == Some(seq) {
        return Ok(RevocationFeed {
            cursor,
            complete: false,
            entries: Vec::new(),
        });
    }
    // Entries up to the seq read above only, so that the cursor never runs ahead of what was
    // sent; one recorded in between comes with the next poll.
    let rows = sqlx::query(
        "SELECT kind, key, not_before, until FROM revocations
             WHERE seq > ?1 AND seq <= ?2 AND until >= ?3 ORDER BY seq",
    )
    .bind(as_i64(after.unwrap_or(0)))
    .bind(as_i64(seq))
    .bind(as_i64(now))
    .fetch_all(&store.pool)
    .await
    .map_err(unavailable)?;
    let entries = rows
        .iter()
        .map(|row| {
            let kind: String = row.get("kind");
            Ok(RevocationEntry {
                kind: RevocationKind::parse(&kind)
                    .ok_or_else(|| StoreError::Corrupt(format!("revocation kind {kind:?}")))?,
                key: row.get("key"),
                not_before: as_u64(row.get("not_before")),
                until: as_u64(row.get("until")),
            })
        })
        .collect::<Result<_, StoreError>>()?;
    Ok(RevocationFeed {
        cursor,
        complete: after.is_none(),
        entries,
    })
}

/// Deletes the entries that ended before `now` and raises the floor past them, in one
/// transaction: a cursor from before a purged entry gets the whole set.
pub(super) async fn purge(store: &SqliteStore, now: u64) -> Result<(), StoreError> {
    let mut tx = store.writer.begin().await.map_err(unavailable)?;
    sqlx::query(
        "UPDATE revocation_feed SET floor = max(floor,
             coalesce((SELECT max(seq) FROM revocations WHERE until < ?1), 0))",
    )
    .bind(as_i64(now))
    .execute(&mut *tx)
    .await
    .map_err(unavailable)?;
    sqlx::query("DELETE FROM revocations WHERE until < ?")
        .bind(as_i64(now))
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
    tx.commit().await.map_err(unavailable)?;
    Ok(())
}
