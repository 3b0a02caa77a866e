//! Refresh-token families and revocations. A rotation and a login reservation are the two
//! writes whose transaction the statement text opens; see `rotate_refresh` for why each runs
//! in a task of its own.

use rusqlite::Row;

use super::readers::optional_row;
use super::users::{user_columns, user_from};
use super::{
    as_i64, as_u64, column, end_failed_transaction, scope, unavailable, write_error, SqliteStore,
};
use crate::store::{RefreshContext, RefreshRecord, Rotation, StoreError};

/// The columns that [`refresh_from`] reads, in its order, of `refresh_tokens` named `r`.
macro_rules! refresh_columns {
    () => {
        "r.id, r.family_id, r.client_id, r.username, r.scope, r.audience, r.user_stamp, \
         r.client_stamp, r.issued_at, r.expires_at, r.used_at, r.sealed_successor, \
         r.successor_id"
    };
}

/// How many columns [`refresh_columns!`] names.
const REFRESH_COLUMNS: usize = 13;

fn refresh_from(row: &Row<'_>) -> Result<RefreshRecord, StoreError> {
    Ok(RefreshRecord {
        id: column(row, 0)?,
        family_id: column(row, 1)?,
        client_id: column(row, 2)?,
        username: column(row, 3)?,
        scope: scope(&column::<String>(row, 4)?)?,
        audience: column(row, 5)?,
        user_stamp: column(row, 6)?,
        client_stamp: column(row, 7)?,
        issued_at: as_u64(column(row, 8)?),
        expires_at: as_u64(column(row, 9)?),
        used_at: column::<Option<i64>>(row, 10)?.map(as_u64),
        sealed_successor: column(row, 11)?,
        successor_id: column(row, 12)?,
    })
}

const INSERT_REFRESH: &str = "INSERT INTO refresh_tokens
    (id, family_id, client_id, username, scope, audience, user_stamp, client_stamp,
     issued_at, expires_at)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";

pub(super) fn insert_refresh_query(
    token: &RefreshRecord,
) -> sqlx::query::Query<'_, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'_>> {
    sqlx::query(INSERT_REFRESH)
        .bind(&token.id)
        .bind(&token.family_id)
        .bind(&token.client_id)
        .bind(&token.username)
        .bind(token.scope.to_string())
        .bind(&token.audience)
        .bind(&token.user_stamp)
        .bind(&token.client_stamp)
        .bind(as_i64(token.issued_at))
        .bind(as_i64(token.expires_at))
}

pub(super) async fn insert_refresh(
    store: &SqliteStore,
    token: &RefreshRecord,
) -> Result<(), StoreError> {
    match insert_refresh_query(token).execute(&store.writer).await {
        Ok(_) => Ok(()),
        // The same record already stored is this insert done before (see the trait's doc).
        Err(err) => match write_error(err, "refresh token") {
            StoreError::Conflict(what) => match refresh(store, &token.id).await? {
                Some(stored) if stored == *token => Ok(()),
                _ => Err(StoreError::Conflict(what)),
            },
            other => Err(other),
        },
    }
}

pub(super) async fn refresh(
    store: &SqliteStore,
    id: &str,
) -> Result<Option<RefreshRecord>, StoreError> {
    store
        .readers
        .read(id, |conn, id| {
            optional_row(
                conn,
                concat!(
                    "SELECT ",
                    refresh_columns!(),
                    " FROM refresh_tokens r WHERE r.id = ?1"
                ),
                id,
                refresh_from,
            )
        })
        .await
}

/// One statement: the token's columns, whether its family is revoked, then its user's columns
/// (NULL when there is no such user).
pub(super) async fn refresh_context(
    store: &SqliteStore,
    id: &str,
) -> Result<Option<RefreshContext>, StoreError> {
    store
        .readers
        .read(id, |conn, id| {
            optional_row(
                conn,
                concat!(
                    "SELECT ",
                    refresh_columns!(),
                    ", EXISTS (SELECT 1 FROM revoked_families f WHERE f.family_id = r.family_id), ",
                    user_columns!(),
                    " FROM refresh_tokens r LEFT JOIN users u ON u.username = r.username
                     WHERE r.id = ?1"
                ),
                id,
                |row| {
                    let user_first = REFRESH_COLUMNS + 1;
                    let user = match column::<Option<String>>(row, user_first)? {
                        None => None,
                        Some(_) => Some(user_from(row, user_first)?),
                    };
                    Ok(RefreshContext {
                        record: refresh_from(row)?,
                        family_revoked: column::<i64>(row, REFRESH_COLUMNS)? != 0,
                        user,
                    })
                },
            )
        })
        .await
}

pub(super) async fn rotate_refresh(
    store: &SqliteStore,
    id: &str,
    now: u64,
    sealed_successor: &[u8],
    successor: &RefreshRecord,
) -> Result<Rotation, StoreError> {
    // One round trip to the database thread: the mark and the insert in one transaction,
    // the insert only when the mark took (`changes()` counts the UPDATE's rows). Two
    // rotations of one token serialise on the write lock, and the second marks nothing.
    //
    // The transaction is opened by the statement text, not by sqlx, so nothing would roll
    // it back if this future were dropped half way (a client hanging up): sqlx stops at the
    // first row nobody receives, the COMMIT never runs, and the writer stays inside the
    // transaction, hiding every later write from the readers. So it runs in a task of its
    // own, which finishes whatever becomes of the request.
    let task = {
        let (writer, id, sealed, successor) = (
            store.writer.clone(),
            id.to_owned(),
            sealed_successor.to_vec(),
            successor.clone(),
        );
        async move {
            let mut conn = writer.acquire().await.map_err(unavailable)?;
            // Numbered parameters (`?NNN`) name one argument list across all the
            // statements; a plain `?` would take the next argument in order instead.
            let done = sqlx::query(
                "BEGIN IMMEDIATE;
                 UPDATE refresh_tokens
                     SET used_at = ?1, sealed_successor = ?2, successor_id = ?3
                     WHERE id = ?4 AND used_at IS NULL;
                 INSERT INTO refresh_tokens
                     (id, family_id, client_id, username, scope, audience,
                      issued_at, expires_at, user_stamp, client_stamp)
                     SELECT ?3, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13 WHERE changes() = 1
                     RETURNING id;
                 COMMIT;",
            )
            .bind(as_i64(now))
            .bind(sealed)
            .bind(&successor.id)
            .bind(&id)
            .bind(&successor.family_id)
            .bind(&successor.client_id)
            .bind(&successor.username)
            .bind(successor.scope.to_string())
            .bind(&successor.audience)
            .bind(as_i64(successor.issued_at))
            .bind(as_i64(successor.expires_at))
            .bind(&successor.user_stamp)
            .bind(&successor.client_stamp)
            // All of it is read (`fetch_all`), so that the COMMIT runs; the one row is the
            // successor's id, there only when the mark took.
            .fetch_all(&mut *conn)
            .await;
            match done {
                Ok(inserted) => Ok(inserted.len() == 1),
                Err(err) => {
                    end_failed_transaction(conn).await;
                    Err(write_error(err, "refresh token"))
                }
            }
        }
    };
    let rotated = tokio::spawn(task)
        .await
        .map_err(|err| StoreError::Unavailable(format!("the rotation task failed: {err}")))??;
    if rotated {
        return Ok(Rotation::Rotated);
    }
    Ok(Rotation::Lost(refresh(store, id).await?.map(Box::new)))
}

/// Records `id` in `table` (keyed by `column`) as revoked until `expires_at`, never shortening
/// an earlier revocation.
async fn revoke(
    store: &SqliteStore,
    table: &str,
    column: &str,
    id: &str,
    expires_at: u64,
) -> Result<(), StoreError> {
    sqlx::query(&format!(
        "INSERT INTO {table} ({column}, expires_at) VALUES (?, ?)
         ON CONFLICT ({column}) DO UPDATE SET expires_at = max(expires_at, excluded.expires_at)"
    ))
    .bind(id)
    .bind(as_i64(expires_at))
    .execute(&store.writer)
    .await
    .map_err(unavailable)?;
    Ok(())
}

pub(super) async fn revoke_family(
    store: &SqliteStore,
    family_id: &str,
    expires_at: u64,
) -> Result<(), StoreError> {
    revoke(
        store,
        "revoked_families",
        "family_id",
        family_id,
        expires_at,
    )
    .await
}

pub(super) async fn family_revoked(
    store: &SqliteStore,
    family_id: &str,
) -> Result<bool, StoreError> {
    let row = sqlx::query("SELECT 1 FROM revoked_families WHERE family_id = ?")
        .bind(family_id)
        .fetch_optional(&store.pool)
        .await
        .map_err(unavailable)?;
    Ok(row.is_some())
}

pub(super) async fn revoke_access_token(
    store: &SqliteStore,
    jti: &str,
    expires_at: u64,
) -> Result<(), StoreError> {
    revoke(store, "revoked_access_tokens", "jti", jti, expires_at).await
}

pub(super) async fn access_token_revoked(
    store: &SqliteStore,
    jti: &str,
    now: u64,
) -> Result<bool, StoreError> {
    let row = sqlx::query("SELECT 1 FROM revoked_access_tokens WHERE jti = ? AND expires_at >= ?")
        .bind(jti)
        .bind(as_i64(now))
        .fetch_optional(&store.pool)
        .await
        .map_err(unavailable)?;
    Ok(row.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;
    use oauth2_jwt_verifier::Scope;

    fn token(id: &str, family_id: &str) -> RefreshRecord {
        RefreshRecord {
            id: id.to_owned(),
            family_id: family_id.to_owned(),
            client_id: "web".to_owned(),
            username: "alice".to_owned(),
            scope: Scope::from_tokens(["profile"]),
            audience: "api".to_owned(),
            user_stamp: "u1".to_owned(),
            client_stamp: "c1".to_owned(),
            issued_at: 1_000,
            expires_at: 10_000,
            used_at: None,
            sealed_successor: None,
            successor_id: None,
        }
    }

    /// The one-round-trip rotation leaves nothing half done when its insert fails: the mark is
    /// rolled back and the writer connection is usable again.
    #[tokio::test]
    async fn a_failed_rotation_is_rolled_back_whole() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open_in(dir.path()).await.unwrap();
        let first = token("first", "family");
        let taken = token("taken", "family");
        store.insert_refresh(&first).await.unwrap();
        store.insert_refresh(&taken).await.unwrap();

        let clash = store
            .rotate_refresh("first", 2_000, b"sealed", &taken)
            .await;
        assert!(matches!(clash, Err(StoreError::Conflict(_))), "{clash:?}");
        assert_eq!(store.refresh("first").await.unwrap(), Some(first.clone()));

        let next = token("next", "family");
        assert_eq!(
            store
                .rotate_refresh("first", 2_000, b"sealed", &next)
                .await
                .unwrap(),
            Rotation::Rotated
        );
        let marked = store.refresh("first").await.unwrap().unwrap();
        assert_eq!(marked.used_at, Some(2_000));
        assert_eq!(marked.successor_id.as_deref(), Some("next"));
        assert_eq!(store.refresh("next").await.unwrap(), Some(next));
    }

    /// A request dropped while its rotation is under way (a client hanging up) must not leave
    /// the writer inside the rotation's transaction: later writes would stay invisible to the
    /// readers. Each rotation here is polled once and dropped.
    #[tokio::test]
    async fn a_rotation_whose_caller_goes_away_still_ends_its_transaction() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open_in(dir.path()).await.unwrap();
        for round in 0..50 {
            let current = token(&format!("current-{round}"), "family");
            store.insert_refresh(&current).await.unwrap();
            let successor = token(&format!("successor-{round}"), "family");
            let rotation = store.rotate_refresh(&current.id, 2_000, b"sealed", &successor);
            let _ = tokio::time::timeout(std::time::Duration::ZERO, rotation).await;

            let later = token(&format!("later-{round}"), "family");
            store.insert_refresh(&later).await.unwrap();
            assert_eq!(
                store.refresh(&later.id).await.unwrap(),
                Some(later),
                "round {round}: a write after a dropped rotation is visible to readers"
            );
        }
    }
}
