//! Users: their records, password hashes and session cut-offs. A name is checked against the
//! clients in the inserting statement itself, under the one write lock.

use oauth2_jwt_verifier::Scope;
use rusqlite::Row;

use super::readers::{all_rows, optional_row};
use super::{as_i64, as_u64, column, scope, unavailable, write_error, SqliteStore};
use crate::store::{Removal, SessionCut, StoreError, UserRecord};

/// The columns that [`user_from`] reads, in its order, of `users` named `u`.
macro_rules! user_columns {
    () => {
        "u.username, u.full_name, u.email, u.password_hash, u.disabled, u.scopes, u.stamp, \
         u.not_before"
    };
}
pub(super) use user_columns;

/// The user in the columns of [`user_columns!`] from column `first` of `row` on.
pub(super) fn user_from(row: &Row<'_>, first: usize) -> Result<UserRecord, StoreError> {
    Ok(UserRecord {
        username: column(row, first)?,
        full_name: column(row, first + 1)?,
        email: column(row, first + 2)?,
        password_hash: column(row, first + 3)?,
        disabled: column::<i64>(row, first + 4)? != 0,
        scopes: scope(&column::<String>(row, first + 5)?)?,
        stamp: column(row, first + 6)?,
        not_before: as_u64(column(row, first + 7)?),
    })
}

pub(super) async fn user(
    store: &SqliteStore,
    username: &str,
) -> Result<Option<UserRecord>, StoreError> {
    store
        .readers
        .read(username, |conn, username| {
            optional_row(
                conn,
                concat!(
                    "SELECT ",
                    user_columns!(),
                    " FROM users u WHERE u.username = ?1"
                ),
                username,
                |row| user_from(row, 0),
            )
        })
        .await
}

/// One statement: the name is checked against the clients, and the clients removed while their
/// tokens can live, under the same write lock. No row inserted means a client has the name.
pub(super) fn insert_user_query(
    user: &UserRecord,
) -> sqlx::query::Query<'_, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'_>> {
    sqlx::query(
        "INSERT INTO users
            (username, full_name, email, password_hash, disabled, scopes, stamp, not_before)
         SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, max(?8, coalesce(
             (SELECT not_before FROM removed_names WHERE kind = 'user' AND name = ?1), 0))
         WHERE NOT EXISTS (SELECT 1 FROM clients WHERE client_id = ?1)
           AND NOT EXISTS (SELECT 1 FROM removed_names
                           WHERE kind = 'client' AND name = ?1 AND expires_at > unixepoch())",
    )
    .bind(&user.username)
    .bind(&user.full_name)
    .bind(&user.email)
    .bind(&user.password_hash)
    .bind(i64::from(user.disabled))
    .bind(user.scopes.to_string())
    .bind(&user.stamp)
    .bind(as_i64(user.not_before))
}

/// What [`insert_user_query`] did, as `insert_user` answers it.
pub(super) fn user_inserted(
    done: Result<sqlx::sqlite::SqliteQueryResult, sqlx::Error>,
    user: &UserRecord,
) -> Result<(), StoreError> {
    let done = done.map_err(|err| write_error(err, &format!("user {}", user.username)))?;
    if done.rows_affected() == 0 {
        return Err(StoreError::Conflict(format!("client {}", user.username)));
    }
    Ok(())
}

pub(super) async fn insert_user(store: &SqliteStore, user: &UserRecord) -> Result<(), StoreError> {
    user_inserted(insert_user_query(user).execute(&store.writer).await, user)
}

pub(super) async fn replace_password_hash(
    store: &SqliteStore,
    username: &str,
    expected: &str,
    new_hash: &str,
) -> Result<bool, StoreError> {
    let done =
        sqlx::query("UPDATE users SET password_hash = ? WHERE username = ? AND password_hash = ?")
            .bind(new_hash)
            .bind(username)
            .bind(expected)
            .execute(&store.writer)
            .await
            .map_err(unavailable)?;
    Ok(done.rows_affected() == 1)
}

pub(super) async fn set_password_hash(
    store: &SqliteStore,
    username: &str,
    new_hash: &str,
    cut: &SessionCut,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE users SET password_hash = ?, stamp = ?, not_before = max(not_before + 1, ?)
         WHERE username = ?",
    )
    .bind(new_hash)
    .bind(&cut.stamp)
    .bind(as_i64(cut.not_before))
    .bind(username)
    .execute(&store.writer)
    .await
    .map_err(unavailable)?;
    Ok(done.rows_affected() == 1)
}

pub(super) async fn set_user_disabled(
    store: &SqliteStore,
    username: &str,
    disabled: bool,
    cut: Option<&SessionCut>,
) -> Result<bool, StoreError> {
    let done = match cut {
        Some(cut) => sqlx::query(
            "UPDATE users SET disabled = ?, stamp = ?, not_before = max(not_before + 1, ?)
             WHERE username = ?",
        )
        .bind(i64::from(disabled))
        .bind(&cut.stamp)
        .bind(as_i64(cut.not_before))
        .bind(username),
        None => sqlx::query("UPDATE users SET disabled = ? WHERE username = ?")
            .bind(i64::from(disabled))
            .bind(username),
    }
    .execute(&store.writer)
    .await
    .map_err(unavailable)?;
    Ok(done.rows_affected() == 1)
}

pub(super) async fn set_user_scopes(
    store: &SqliteStore,
    username: &str,
    scopes: &Scope,
) -> Result<bool, StoreError> {
    let done = sqlx::query("UPDATE users SET scopes = ? WHERE username = ?")
        .bind(scopes.to_string())
        .bind(username)
        .execute(&store.writer)
        .await
        .map_err(unavailable)?;
    Ok(done.rows_affected() == 1)
}

pub(super) async fn remove_user(
    store: &SqliteStore,
    username: &str,
    removal: Removal,
) -> Result<bool, StoreError> {
    store.remove_named("user", username, removal).await
}

/// On a blocking thread: the answer grows with the table.
pub(super) async fn list_users(store: &SqliteStore) -> Result<Vec<UserRecord>, StoreError> {
    store
        .readers
        .read_blocking("", |conn, _| {
            all_rows(
                conn,
                concat!(
                    "SELECT ",
                    user_columns!(),
                    " FROM users u ORDER BY u.username"
                ),
                |row| user_from(row, 0),
            )
        })
        .await
}
