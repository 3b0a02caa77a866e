//! Login throttle counters: one row per subject and counter, reserved and released in single
//! statements over a JSON list of counters.

use sqlx::Row;

use super::{as_i64, as_u64, end_failed_transaction, unavailable, SqliteStore};
use crate::store::{LoginSubject, SlotRelease, StoreError};

/// A login counter's row key: the subject's hex digest (fixed length, no `:`), then the name.
fn login_key(subject: &LoginSubject, counter: &str) -> String {
    format!("{}:{counter}", subject.hex())
}

pub(super) async fn reserve_login_slots(
    store: &SqliteStore,
    subject: &LoginSubject,
    counters: &[(&str, u64)],
    now: u64,
    window: u64,
) -> Result<Option<u64>, StoreError> {
    if counters.is_empty() {
        return Ok(None);
    }
    let counters = serde_json::Value::Array(
        counters
            .iter()
            .map(|(name, limit)| serde_json::json!([login_key(subject, name), as_i64(*limit)]))
            .collect(),
    )
    .to_string();
    // The refusal is read and the slots counted inside one write transaction, so no other
    // reservation comes between. As in `rotate_refresh`, the statement text opens the
    // transaction, so it runs in a task of its own: a request dropped half way (a client
    // hanging up) cannot leave the writer inside it.
    let task = {
        let writer = store.writer.clone();
        async move {
            let mut conn = writer.acquire().await.map_err(unavailable)?;
            // ?1 the counters as JSON `[[key, limit], …]`, ?2 now, ?3 the window length.
            let done = sqlx::query(
                "BEGIN IMMEDIATE;
                 SELECT max(f.window_end) AS refused_until
                     FROM json_each(?1) AS c JOIN login_failures AS f ON f.key = c.value ->> 0
                     WHERE f.window_end > ?2 AND f.count >= c.value ->> 1;
                 INSERT INTO login_failures (key, count, window_end)
                     SELECT c.value ->> 0, 1, ?2 + ?3 FROM json_each(?1) AS c
                     WHERE NOT EXISTS (
                         SELECT 1 FROM json_each(?1) AS full
                             JOIN login_failures AS f ON f.key = full.value ->> 0
                             WHERE f.window_end > ?2 AND f.count >= full.value ->> 1)
                     ON CONFLICT (key) DO UPDATE SET
                         count = CASE WHEN window_end <= ?2 THEN 1 ELSE count + 1 END,
                         window_end = CASE WHEN window_end <= ?2 THEN ?2 + ?3 ELSE window_end END;
                 COMMIT;",
            )
            .bind(counters)
            .bind(as_i64(now))
            .bind(as_i64(window))
            .fetch_all(&mut *conn)
            .await;
            match done {
                Ok(rows) => Ok(rows
                    .first()
                    .and_then(|row| row.get::<Option<i64>, _>("refused_until"))
                    .map(as_u64)),
                Err(err) => {
                    end_failed_transaction(conn).await;
                    Err(unavailable(err))
                }
            }
        }
    };
    tokio::spawn(task).await.map_err(|err| {
        StoreError::Unavailable(format!("the login reservation task failed: {err}"))
    })?
}

pub(super) async fn release_login_slots(
    store: &SqliteStore,
    subject: &LoginSubject,
    counters: &[(&str, SlotRelease)],
    taken_at: u64,
    window: u64,
) -> Result<(), StoreError> {
    if counters.is_empty() {
        return Ok(());
    }
    let counters = serde_json::Value::Array(
        counters
            .iter()
            .map(|(name, release)| {
                let forget = matches!(release, SlotRelease::Forget);
                serde_json::json!([login_key(subject, name), forget])
            })
            .collect(),
    )
    .to_string();
    // One statement, so atomic on its own. ?1 the counters as JSON `[[key, forget], …]`,
    // ?2 the latest window end that was open when the slots were taken.
    sqlx::query(
        "UPDATE login_failures AS f
             SET count = CASE WHEN c.value ->> 1 THEN 0 ELSE max(f.count - 1, 0) END
             FROM json_each(?1) AS c
             WHERE f.key = c.value ->> 0 AND f.window_end <= ?2",
    )
    .bind(counters)
    .bind(as_i64(taken_at.saturating_add(window)))
    .execute(&store.writer)
    .await
    .map_err(unavailable)?;
    Ok(())
}
