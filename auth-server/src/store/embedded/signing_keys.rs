//! Signing keys and their lifecycle steps. Each step is one conditional statement or one
//! transaction; the partial unique indexes on `state` are the backstop against two next or two
//! active keys.

use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use super::{as_i64, as_u64, unavailable, write_error, SqliteStore};
use crate::store::{KeyRevocation, KeyState, SigningKeyRecord, StoreError};

fn signing_key_from(row: &SqliteRow) -> Result<SigningKeyRecord, StoreError> {
    let kid: String = row.get("kid");
    let state: String = row.get("state");
    Ok(SigningKeyRecord {
        state: KeyState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("signing key {kid}: state {state:?}")))?,
        created_at: as_u64(row.get("created_at")),
        activates_at: as_u64(row.get("activates_at")),
        retired_at: row.get::<Option<i64>, _>("retired_at").map(as_u64),
        expires_at: row.get::<Option<i64>, _>("expires_at").map(as_u64),
        public_jwk: row.get("public_jwk"),
        sealed_private_key: row.get("sealed_private_key"),
        kid,
    })
}

/// Inserts a signing key (parameters `?1`…`?8`, see [`bind_signing_key`]) when the `WHERE` that
/// follows holds; `?9` onwards are its own parameters.
const INSERT_SIGNING_KEY: &str = "INSERT INTO signing_keys
    (kid, state, created_at, activates_at, retired_at, expires_at, public_jwk, sealed_private_key)
    SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8";

fn bind_signing_key<'q>(
    query: sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>>,
    key: &'q SigningKeyRecord,
) -> sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>> {
    query
        .bind(&key.kid)
        .bind(key.state.as_str())
        .bind(as_i64(key.created_at))
        .bind(as_i64(key.activates_at))
        .bind(key.retired_at.map(as_i64))
        .bind(key.expires_at.map(as_i64))
        .bind(&key.public_jwk)
        .bind(&key.sealed_private_key)
}

/// A lost race on the one-next or one-active index, or a taken kid, is "not inserted".
fn inserted(
    result: Result<sqlx::sqlite::SqliteQueryResult, sqlx::Error>,
) -> Result<bool, StoreError> {
    match result {
        Ok(done) => Ok(done.rows_affected() == 1),
        Err(sqlx::Error::Database(db)) if db.is_unique_violation() => Ok(false),
        Err(err) => Err(unavailable(err)),
    }
}

pub(super) async fn signing_keys(store: &SqliteStore) -> Result<Vec<SigningKeyRecord>, StoreError> {
    sqlx::query("SELECT * FROM signing_keys ORDER BY created_at DESC, activates_at DESC, kid DESC")
        .fetch_all(&store.pool)
        .await
        .map_err(unavailable)?
        .iter()
        .map(signing_key_from)
        .collect()
}

pub(super) async fn insert_signing_key(
    store: &SqliteStore,
    key: &SigningKeyRecord,
) -> Result<bool, StoreError> {
    let sql = format!(
        "{INSERT_SIGNING_KEY} WHERE NOT EXISTS (SELECT 1 FROM signing_keys WHERE kid = ?1
            OR (state = ?2 AND state IN ('next', 'active')))"
    );
    inserted(
        bind_signing_key(sqlx::query(&sql), key)
            .execute(&store.writer)
            .await,
    )
}

pub(super) async fn stage_signing_key(
    store: &SqliteStore,
    key: &SigningKeyRecord,
    expected_active: &str,
) -> Result<bool, StoreError> {
    if key.state != KeyState::Next {
        return Ok(false);
    }
    let sql = format!(
        "{INSERT_SIGNING_KEY} WHERE NOT EXISTS
            (SELECT 1 FROM signing_keys WHERE kid = ?1 OR state = 'next')
         AND (SELECT kid FROM signing_keys WHERE state = 'active') IS ?9"
    );
    inserted(
        bind_signing_key(sqlx::query(&sql), key)
            .bind(expected_active)
            .execute(&store.writer)
            .await,
    )
}

pub(super) async fn promote_signing_key(
    store: &SqliteStore,
    kid: &str,
    now: u64,
    retired_expires_at: u64,
) -> Result<bool, StoreError> {
    let mut tx = store.writer.begin().await.map_err(unavailable)?;
    // Writes only, so the transaction takes the write lock at its first statement and two
    // promotions serialise; the second finds the key no longer next.
    sqlx::query(
        "UPDATE signing_keys SET state = 'retired', retired_at = ?1, expires_at = ?2
         WHERE state = 'active' AND EXISTS (SELECT 1 FROM signing_keys
            WHERE kid = ?3 AND state = 'next' AND activates_at <= ?1)",
    )
    .bind(as_i64(now))
    .bind(as_i64(retired_expires_at))
    .bind(kid)
    .execute(&mut *tx)
    .await
    .map_err(unavailable)?;
    let promoted = sqlx::query(
        "UPDATE signing_keys SET state = 'active', activates_at = ?1
         WHERE kid = ?2 AND state = 'next' AND activates_at <= ?1",
    )
    .bind(as_i64(now))
    .bind(kid)
    .execute(&mut *tx)
    .await
    .map_err(unavailable)?;
    if promoted.rows_affected() == 1 {
        tx.commit().await.map_err(unavailable)?;
        Ok(true)
    } else {
        tx.rollback().await.map_err(unavailable)?;
        Ok(false)
    }
}

pub(super) async fn revoke_signing_key(
    store: &SqliteStore,
    kid: &str,
    now: u64,
    replacement: &SigningKeyRecord,
) -> Result<KeyRevocation, StoreError> {
    let mut tx = store.writer.begin().await.map_err(unavailable)?;
    let revoke = |states: &'static str| {
        format!(
            "UPDATE signing_keys SET state = 'revoked', retired_at = coalesce(retired_at, ?1),
                expires_at = NULL, sealed_private_key = X''
             WHERE kid = ?2 AND state IN ({states})"
        )
    };
    let inactive = sqlx::query(&revoke("'next', 'retired'"))
        .bind(as_i64(now))
        .bind(kid)
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
    if inactive.rows_affected() == 1 {
        tx.commit().await.map_err(unavailable)?;
        return Ok(KeyRevocation::Revoked { now_active: None });
    }
    let active = sqlx::query(&revoke("'active'"))
        .bind(as_i64(now))
        .bind(kid)
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
    if active.rows_affected() == 0 {
        let found = sqlx::query("SELECT 1 FROM signing_keys WHERE kid = ?")
            .bind(kid)
            .fetch_optional(&mut *tx)
            .await
            .map_err(unavailable)?;
        tx.rollback().await.map_err(unavailable)?;
        return Ok(if found.is_some() {
            KeyRevocation::AlreadyRevoked
        } else {
            KeyRevocation::Unknown
        });
    }
    let next = sqlx::query(
        "UPDATE signing_keys SET state = 'active', activates_at = ?1
         WHERE state = 'next' RETURNING kid",
    )
    .bind(as_i64(now))
    .fetch_optional(&mut *tx)
    .await
    .map_err(unavailable)?;
    let now_active = match next {
        Some(row) => row.get::<String, _>("kid"),
        None => {
            let sql = format!("{INSERT_SIGNING_KEY} WHERE ?2 = 'active'");
            let done = bind_signing_key(sqlx::query(&sql), replacement)
                .execute(&mut *tx)
                .await
                .map_err(|err| write_error(err, "signing key"))?;
            if done.rows_affected() != 1 {
                tx.rollback().await.map_err(unavailable)?;
                return Err(StoreError::Corrupt(
                    "the replacement of a revoked active key must be active".into(),
                ));
            }
            replacement.kid.clone()
        }
    };
    tx.commit().await.map_err(unavailable)?;
    Ok(KeyRevocation::Revoked {
        now_active: Some(now_active),
    })
}

pub(super) async fn remove_expired_signing_keys(
    store: &SqliteStore,
    now: u64,
) -> Result<u64, StoreError> {
    let done = sqlx::query(
        "DELETE FROM signing_keys WHERE state IN ('retired', 'revoked') AND expires_at <= ?",
    )
    .bind(as_i64(now))
    .execute(&store.writer)
    .await
    .map_err(unavailable)?;
    Ok(done.rows_affected())
}
