//! Clients: their records, secrets and rotations. An id is checked against the usernames in the
//! inserting statement itself, under the one write lock.

use oauth2_jwt_verifier::Scope;
use rusqlite::Row;

use super::readers::{all_rows, optional_row};
use super::{as_i64, as_u64, column, scope, unavailable, write_error, SqliteStore};
use crate::store::{ClientRecord, ClientUpdate, GrantType, PreviousSecret, Removal, StoreError};

fn words(text: &str) -> Vec<String> {
    text.split(' ')
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The stored grant words of a client; a word that names no grant type is corrupt data.
fn grant_types(client_id: &str, text: &str) -> Result<Vec<GrantType>, StoreError> {
    words(text)
        .iter()
        .map(|word| {
            GrantType::parse(word).ok_or_else(|| {
                StoreError::Corrupt(format!("client {client_id}: unknown grant {word:?}"))
            })
        })
        .collect()
}

/// The columns that [`client_from`] reads, in its order.
macro_rules! client_columns {
    () => {
        "client_id, secret_hash, previous_secret_hash, previous_secret_expires_at, public, \
         introspect, grants, scopes, audiences, stamp, not_before"
    };
}

fn client_from(row: &Row<'_>) -> Result<ClientRecord, StoreError> {
    let client_id: String = column(row, 0)?;
    let previous_hash: Option<String> = column(row, 2)?;
    let previous_expires_at: Option<i64> = column(row, 3)?;
    Ok(ClientRecord {
        secret_hash: column(row, 1)?,
        previous_secret: previous_hash
            .zip(previous_expires_at)
            .map(|(hash, expires_at)| PreviousSecret {
                hash,
                expires_at: as_u64(expires_at),
            }),
        public: column::<i64>(row, 4)? != 0,
        introspect: column::<i64>(row, 5)? != 0,
        grants: grant_types(&client_id, &column::<String>(row, 6)?)?,
        scopes: scope(&column::<String>(row, 7)?)?,
        audiences: words(&column::<String>(row, 8)?),
        stamp: column(row, 9)?,
        not_before: as_u64(column(row, 10)?),
        client_id,
    })
}

pub(super) async fn client(
    store: &SqliteStore,
    client_id: &str,
) -> Result<Option<ClientRecord>, StoreError> {
    store
        .readers
        .read(client_id, |conn, client_id| {
            optional_row(
                conn,
                concat!(
                    "SELECT ",
                    client_columns!(),
                    " FROM clients WHERE client_id = ?1"
                ),
                client_id,
                client_from,
            )
        })
        .await
}

pub(super) async fn insert_client(
    store: &SqliteStore,
    client: &ClientRecord,
) -> Result<(), StoreError> {
    // One statement: the id is checked against the usernames, and the users removed while
    // their tokens can live, under the same write lock.
    let done = sqlx::query(
        "INSERT INTO clients
            (client_id, secret_hash, previous_secret_hash, previous_secret_expires_at,
             public, introspect, grants, scopes, audiences, stamp, not_before)
         SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, max(?11, coalesce(
             (SELECT not_before FROM removed_names WHERE kind = 'client' AND name = ?1), 0))
         WHERE NOT EXISTS (SELECT 1 FROM users WHERE username = ?1)
           AND NOT EXISTS (SELECT 1 FROM removed_names
                           WHERE kind = 'user' AND name = ?1 AND expires_at > unixepoch())",
    )
    .bind(&client.client_id)
    .bind(&client.secret_hash)
    .bind(client.previous_secret.as_ref().map(|p| p.hash.as_str()))
    .bind(
        client
            .previous_secret
            .as_ref()
            .map(|p| as_i64(p.expires_at)),
    )
    .bind(i64::from(client.public))
    .bind(i64::from(client.introspect))
    .bind(GrantType::join(&client.grants, " "))
    .bind(client.scopes.to_string())
    .bind(client.audiences.join(" "))
    .bind(&client.stamp)
    .bind(as_i64(client.not_before))
    .execute(&store.writer)
    .await
    .map_err(|err| write_error(err, &format!("client {}", client.client_id)))?;
    if done.rows_affected() == 0 {
        return Err(StoreError::Conflict(format!("user {}", client.client_id)));
    }
    Ok(())
}

pub(super) async fn update_client(
    store: &SqliteStore,
    client_id: &str,
    update: &ClientUpdate,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE clients SET grants = coalesce(?, grants), scopes = coalesce(?, scopes),
            audiences = coalesce(?, audiences), introspect = coalesce(?, introspect)
         WHERE client_id = ?",
    )
    .bind(
        update
            .grants
            .as_ref()
            .map(|grants| GrantType::join(grants, " ")),
    )
    .bind(update.scopes.as_ref().map(Scope::to_string))
    .bind(
        update
            .audiences
            .as_ref()
            .map(|audiences| audiences.join(" ")),
    )
    .bind(update.introspect.map(i64::from))
    .bind(client_id)
    .execute(&store.writer)
    .await
    .map_err(unavailable)?;
    Ok(done.rows_affected() == 1)
}

pub(super) async fn rotate_client_secret(
    store: &SqliteStore,
    client_id: &str,
    new_hash: &str,
    previous_until: Option<u64>,
    not_before: Option<u64>,
) -> Result<bool, StoreError> {
    // The right-hand sides all read the row as it was, so the old hash moves to
    // `previous_secret_hash` in the same statement that replaces it.
    let done = sqlx::query(
        "UPDATE clients SET
            previous_secret_hash = CASE WHEN ?1 IS NULL THEN NULL ELSE secret_hash END,
            previous_secret_expires_at = ?1,
            secret_hash = ?2,
            not_before = CASE WHEN ?3 IS NULL THEN not_before
                ELSE max(not_before + 1, ?3) END
         WHERE client_id = ?4",
    )
    .bind(previous_until.map(as_i64))
    .bind(new_hash)
    .bind(not_before.map(as_i64))
    .bind(client_id)
    .execute(&store.writer)
    .await
    .map_err(unavailable)?;
    Ok(done.rows_affected() == 1)
}

pub(super) async fn remove_client(
    store: &SqliteStore,
    client_id: &str,
    removal: Removal,
) -> Result<bool, StoreError> {
    store.remove_named("client", client_id, removal).await
}

/// On a blocking thread: the answer grows with the table.
pub(super) async fn list_clients(store: &SqliteStore) -> Result<Vec<ClientRecord>, StoreError> {
    store
        .readers
        .read_blocking("", |conn, _| {
            all_rows(
                conn,
                concat!(
                    "SELECT ",
                    client_columns!(),
                    " FROM clients ORDER BY client_id"
                ),
                client_from,
            )
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Grants are stored as the words of the token request: a row with a word that names no
    /// grant type reads as corrupt rather than as a client with fewer grants.
    #[tokio::test]
    async fn a_stored_grant_word_is_read_back_or_is_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open_in(dir.path()).await.unwrap();
        sqlx::raw_sql(
            "INSERT INTO clients (client_id, secret_hash, grants, scopes, audiences)
                 VALUES ('web', '', 'password  refresh_token', '', ''),
                        ('old', '', 'password implicit', '', '');",
        )
        .execute(&store.writer)
        .await
        .unwrap();
        crate::store::hand_written::grant_words_read_back_or_are_corrupt(&store).await;
    }
}
