//! The embedded backend: one SQLite file in WAL mode, so that a single machine needs nothing
//! else installed. The CLI opens the same file while the server runs; WAL lets both read, and
//! a busy timeout covers the rare write from another process. Within the server all writes go
//! through one connection (see [`SqliteStore`]).

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use shared::Scope;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Row, SqlitePool};

use super::{
    ClientRecord, ClientUpdate, GrantType, KeyRevocation, KeyState, LoginSubject, PreviousSecret,
    RefreshContext, RefreshRecord, Removal, Rotation, SessionCut, SigningKeyRecord, SlotRelease,
    Store, StoreError, UserRecord,
};

pub struct SqliteStore {
    /// Readers: WAL lets them run beside the writer and each other.
    pool: SqlitePool,
    /// The one connection that writes. SQLite takes one writer at a time anyway; with several
    /// writing connections the losers sleep in its busy handler (1 ms, 2 ms, 5 ms, ...), which
    /// under load showed as a p99 of hundreds of milliseconds on the refresh grant. Here writers
    /// wait in the pool's queue instead and are served in turn.
    writer: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `sqlite://PATH` and applies migrations. A new
    /// database file is created with mode 0600, in a directory created with mode 0700: it holds
    /// password hashes. SQLite gives its `-wal` and `-shm` files the database file's mode.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|err| StoreError::Unavailable(err.to_string()))?;
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        if let Some(parent) = options
            .get_filename()
            .parent()
            .filter(|p| !in_memory && !p.as_os_str().is_empty())
        {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)
                .map_err(|err| {
                    StoreError::Unavailable(format!("creating {}: {err}", parent.display()))
                })?;
        }
        Self::open_with(options, !in_memory).await
    }

    /// A store in a file under `dir`, for tests.
    pub async fn open_in(dir: &Path) -> Result<Self, StoreError> {
        Self::open_with(
            SqliteConnectOptions::new().filename(dir.join("auth.db")),
            true,
        )
        .await
    }

    /// `on_disk`: the options name a file (not an in-memory database). A missing one is created
    /// here, empty (SQLite takes that as an empty database) and with mode 0600, before SQLite
    /// would create it with its default, 0644: it never exists with others' access for a moment.
    async fn open_with(options: SqliteConnectOptions, on_disk: bool) -> Result<Self, StoreError> {
        if on_disk {
            use std::os::unix::fs::OpenOptionsExt;
            let path = options.get_filename();
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
            {
                Ok(_) => {}
                Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(err) => {
                    return Err(StoreError::Unavailable(format!(
                        "creating {}: {err}",
                        path.display()
                    )))
                }
            }
        }
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        // No ping before lending a connection (`test_before_acquire`): a connection to a local
        // file does not go stale, and with sqlx every ping is one more hand-off to the
        // connection's thread, on every query.
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options.clone())
            .await
            .map_err(unavailable)?;
        sqlx::migrate!("./migrations")
            .run(&writer)
            .await
            .map_err(|err| StoreError::Unavailable(format!("migrating: {err}")))?;
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .test_before_acquire(false)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await
            .map_err(unavailable)?;
        Ok(Self { pool, writer })
    }
}

impl SqliteStore {
    /// Deletes the user or client `name` (`kind` is `user` or `client`) and records its
    /// cut-off, one past the one it had or `removal.not_before`, in one transaction.
    async fn remove_named(
        &self,
        kind: &str,
        name: &str,
        removal: Removal,
    ) -> Result<bool, StoreError> {
        let (table, column) = match kind {
            "user" => ("users", "username"),
            _ => ("clients", "client_id"),
        };
        let mut tx = self.writer.begin().await.map_err(unavailable)?;
        sqlx::query(&format!(
            "INSERT INTO removed_names (kind, name, not_before, expires_at)
             SELECT ?1, {column}, max(not_before + 1, ?3), ?4 FROM {table} WHERE {column} = ?2
             ON CONFLICT (kind, name) DO UPDATE SET
                 not_before = max(not_before, excluded.not_before),
                 expires_at = max(expires_at, excluded.expires_at)"
        ))
        .bind(kind)
        .bind(name)
        .bind(as_i64(removal.not_before))
        .bind(as_i64(removal.keep_until))
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        let done = sqlx::query(&format!("DELETE FROM {table} WHERE {column} = ?"))
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        Ok(done.rows_affected() == 1)
    }
}

fn unavailable(err: sqlx::Error) -> StoreError {
    StoreError::Unavailable(err.to_string())
}

fn write_error(err: sqlx::Error, what: &str) -> StoreError {
    match &err {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::Conflict(what.to_owned())
        }
        _ => unavailable(err),
    }
}

fn scope(text: &str) -> Result<Scope, StoreError> {
    Scope::parse(text).map_err(|_| StoreError::Corrupt(format!("scope {text:?}")))
}

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

fn as_u64(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

fn as_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// A login counter's row key: the subject's hex digest (fixed length, no `:`), then the name.
fn login_key(subject: &LoginSubject, counter: &str) -> String {
    format!("{}:{counter}", subject.hex())
}

fn user_from(row: &SqliteRow) -> Result<UserRecord, StoreError> {
    Ok(UserRecord {
        username: row.get("username"),
        full_name: row.get("full_name"),
        email: row.get("email"),
        password_hash: row.get("password_hash"),
        disabled: row.get::<i64, _>("disabled") != 0,
        scopes: scope(row.get("scopes"))?,
        stamp: row.get("stamp"),
        not_before: as_u64(row.get("not_before")),
    })
}

fn client_from(row: &SqliteRow) -> Result<ClientRecord, StoreError> {
    let client_id: String = row.get("client_id");
    let grants = grant_types(&client_id, row.get("grants"))?;
    let previous_hash: Option<String> = row.get("previous_secret_hash");
    let previous_expires_at: Option<i64> = row.get("previous_secret_expires_at");
    Ok(ClientRecord {
        client_id,
        secret_hash: row.get("secret_hash"),
        previous_secret: previous_hash
            .zip(previous_expires_at)
            .map(|(hash, expires_at)| PreviousSecret {
                hash,
                expires_at: as_u64(expires_at),
            }),
        public: row.get::<i64, _>("public") != 0,
        introspect: row.get::<i64, _>("introspect") != 0,
        grants,
        scopes: scope(row.get("scopes"))?,
        audiences: words(row.get("audiences")),
        stamp: row.get("stamp"),
        not_before: as_u64(row.get("not_before")),
    })
}

fn refresh_from(row: &SqliteRow) -> Result<RefreshRecord, StoreError> {
    Ok(RefreshRecord {
        id: row.get("id"),
        family_id: row.get("family_id"),
        client_id: row.get("client_id"),
        username: row.get("username"),
        scope: scope(row.get("scope"))?,
        audience: row.get("audience"),
        user_stamp: row.get("user_stamp"),
        client_stamp: row.get("client_stamp"),
        issued_at: as_u64(row.get("issued_at")),
        expires_at: as_u64(row.get("expires_at")),
        used_at: row.get::<Option<i64>, _>("used_at").map(as_u64),
        sealed_successor: row.get("sealed_successor"),
        successor_id: row.get("successor_id"),
    })
}

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

const INSERT_REFRESH: &str = "INSERT INTO refresh_tokens
    (id, family_id, client_id, username, scope, audience, user_stamp, client_stamp,
     issued_at, expires_at)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";

fn insert_refresh_query(
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

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn user(&self, username: &str) -> Result<Option<UserRecord>, StoreError> {
        sqlx::query("SELECT * FROM users WHERE username = ?")
            .bind(username)
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable)?
            .as_ref()
            .map(user_from)
            .transpose()
    }

    async fn insert_user(&self, user: &UserRecord) -> Result<(), StoreError> {
        // One statement: the name is checked against the clients, and the clients removed while
        // their tokens can live, under the same write lock.
        let done = sqlx::query(
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
        .execute(&self.writer)
        .await
        .map_err(|err| write_error(err, &format!("user {}", user.username)))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::Conflict(format!("client {}", user.username)));
        }
        Ok(())
    }

    async fn replace_password_hash(
        &self,
        username: &str,
        expected: &str,
        new_hash: &str,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE users SET password_hash = ? WHERE username = ? AND password_hash = ?",
        )
        .bind(new_hash)
        .bind(username)
        .bind(expected)
        .execute(&self.writer)
        .await
        .map_err(unavailable)?;
        Ok(done.rows_affected() == 1)
    }

    async fn set_password_hash(
        &self,
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
        .execute(&self.writer)
        .await
        .map_err(unavailable)?;
        Ok(done.rows_affected() == 1)
    }

    async fn set_user_disabled(
        &self,
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
        .execute(&self.writer)
        .await
        .map_err(unavailable)?;
        Ok(done.rows_affected() == 1)
    }

    async fn set_user_scopes(&self, username: &str, scopes: &Scope) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE users SET scopes = ? WHERE username = ?")
            .bind(scopes.to_string())
            .bind(username)
            .execute(&self.writer)
            .await
            .map_err(unavailable)?;
        Ok(done.rows_affected() == 1)
    }

    async fn remove_user(&self, username: &str, removal: Removal) -> Result<bool, StoreError> {
        self.remove_named("user", username, removal).await
    }

    async fn list_users(&self) -> Result<Vec<UserRecord>, StoreError> {
        sqlx::query("SELECT * FROM users ORDER BY username")
            .fetch_all(&self.pool)
            .await
            .map_err(unavailable)?
            .iter()
            .map(user_from)
            .collect()
    }

    async fn client(&self, client_id: &str) -> Result<Option<ClientRecord>, StoreError> {
        sqlx::query("SELECT * FROM clients WHERE client_id = ?")
            .bind(client_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable)?
            .as_ref()
            .map(client_from)
            .transpose()
    }

    async fn insert_client(&self, client: &ClientRecord) -> Result<(), StoreError> {
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
        .execute(&self.writer)
        .await
        .map_err(|err| write_error(err, &format!("client {}", client.client_id)))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::Conflict(format!("user {}", client.client_id)));
        }
        Ok(())
    }

    async fn update_client(
        &self,
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
        .execute(&self.writer)
        .await
        .map_err(unavailable)?;
        Ok(done.rows_affected() == 1)
    }

    async fn rotate_client_secret(
        &self,
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
        .execute(&self.writer)
        .await
        .map_err(unavailable)?;
        Ok(done.rows_affected() == 1)
    }

    async fn remove_client(&self, client_id: &str, removal: Removal) -> Result<bool, StoreError> {
        self.remove_named("client", client_id, removal).await
    }

    async fn list_clients(&self) -> Result<Vec<ClientRecord>, StoreError> {
        sqlx::query("SELECT * FROM clients ORDER BY client_id")
            .fetch_all(&self.pool)
            .await
            .map_err(unavailable)?
            .iter()
            .map(client_from)
            .collect()
    }

    async fn insert_refresh(&self, token: &RefreshRecord) -> Result<(), StoreError> {
        insert_refresh_query(token)
            .execute(&self.writer)
            .await
            .map_err(|err| write_error(err, "refresh token"))?;
        Ok(())
    }

    async fn refresh(&self, id: &str) -> Result<Option<RefreshRecord>, StoreError> {
        sqlx::query("SELECT * FROM refresh_tokens WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable)?
            .as_ref()
            .map(refresh_from)
            .transpose()
    }

    async fn refresh_context(&self, id: &str) -> Result<Option<RefreshContext>, StoreError> {
        let Some(row) = sqlx::query(
            "SELECT r.*,
                EXISTS (SELECT 1 FROM revoked_families f WHERE f.family_id = r.family_id)
                    AS family_revoked,
                u.username AS user_username, u.full_name AS user_full_name,
                u.email AS user_email, u.password_hash AS user_password_hash,
                u.disabled AS user_disabled, u.scopes AS user_scopes,
                u.stamp AS user_current_stamp, u.not_before AS user_not_before
             FROM refresh_tokens r LEFT JOIN users u ON u.username = r.username
             WHERE r.id = ?",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(unavailable)?
        else {
            return Ok(None);
        };
        let user = match row.get::<Option<String>, _>("user_username") {
            None => None,
            Some(username) => Some(UserRecord {
                username,
                full_name: row.get("user_full_name"),
                email: row.get("user_email"),
                password_hash: row.get("user_password_hash"),
                disabled: row.get::<i64, _>("user_disabled") != 0,
                scopes: scope(row.get("user_scopes"))?,
                stamp: row.get("user_current_stamp"),
                not_before: as_u64(row.get("user_not_before")),
            }),
        };
        Ok(Some(RefreshContext {
            record: refresh_from(&row)?,
            family_revoked: row.get::<i64, _>("family_revoked") != 0,
            user,
        }))
    }

    async fn rotate_refresh(
        &self,
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
                self.writer.clone(),
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
                        // The statement that failed left the transaction open on this connection.
                        // Should the ROLLBACK fail too, the connection is closed rather than lent
                        // out again inside the transaction.
                        if sqlx::query("ROLLBACK").execute(&mut *conn).await.is_err() {
                            let _ = conn.close().await;
                        }
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
        Ok(Rotation::Lost(self.refresh(id).await?.map(Box::new)))
    }

    async fn revoke_family(&self, family_id: &str, expires_at: u64) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO revoked_families (family_id, expires_at) VALUES (?, ?)
             ON CONFLICT (family_id) DO UPDATE SET expires_at = max(expires_at, excluded.expires_at)",
        )
        .bind(family_id)
        .bind(as_i64(expires_at))
        .execute(&self.writer)
        .await
        .map_err(unavailable)?;
        Ok(())
    }

    async fn family_revoked(&self, family_id: &str) -> Result<bool, StoreError> {
        let row = sqlx::query("SELECT 1 FROM revoked_families WHERE family_id = ?")
            .bind(family_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable)?;
        Ok(row.is_some())
    }

    async fn revoke_access_token(&self, jti: &str, expires_at: u64) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO revoked_access_tokens (jti, expires_at) VALUES (?, ?)
             ON CONFLICT (jti) DO UPDATE SET expires_at = max(expires_at, excluded.expires_at)",
        )
        .bind(jti)
        .bind(as_i64(expires_at))
        .execute(&self.writer)
        .await
        .map_err(unavailable)?;
        Ok(())
    }

    async fn access_token_revoked(&self, jti: &str, now: u64) -> Result<bool, StoreError> {
        let row =
            sqlx::query("SELECT 1 FROM revoked_access_tokens WHERE jti = ? AND expires_at >= ?")
                .bind(jti)
                .bind(as_i64(now))
                .fetch_optional(&self.pool)
                .await
                .map_err(unavailable)?;
        Ok(row.is_some())
    }

    async fn reserve_login_slots(
        &self,
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
            let writer = self.writer.clone();
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
                        if sqlx::query("ROLLBACK").execute(&mut *conn).await.is_err() {
                            let _ = conn.close().await;
                        }
                        Err(unavailable(err))
                    }
                }
            }
        };
        tokio::spawn(task).await.map_err(|err| {
            StoreError::Unavailable(format!("the login reservation task failed: {err}"))
        })?
    }

    async fn release_login_slots(
        &self,
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
        .execute(&self.writer)
        .await
        .map_err(unavailable)?;
        Ok(())
    }

    async fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>, StoreError> {
        sqlx::query(
            "SELECT * FROM signing_keys ORDER BY created_at DESC, activates_at DESC, kid DESC",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?
        .iter()
        .map(signing_key_from)
        .collect()
    }

    async fn insert_signing_key(&self, key: &SigningKeyRecord) -> Result<bool, StoreError> {
        let sql = format!(
            "{INSERT_SIGNING_KEY} WHERE NOT EXISTS (SELECT 1 FROM signing_keys WHERE kid = ?1
                OR (state = ?2 AND state IN ('next', 'active')))"
        );
        inserted(
            bind_signing_key(sqlx::query(&sql), key)
                .execute(&self.writer)
                .await,
        )
    }

    async fn stage_signing_key(
        &self,
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
                .execute(&self.writer)
                .await,
        )
    }

    async fn promote_signing_key(
        &self,
        kid: &str,
        now: u64,
        retired_expires_at: u64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.writer.begin().await.map_err(unavailable)?;
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

    async fn revoke_signing_key(
        &self,
        kid: &str,
        now: u64,
        replacement: &SigningKeyRecord,
    ) -> Result<KeyRevocation, StoreError> {
        let mut tx = self.writer.begin().await.map_err(unavailable)?;
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

    async fn remove_expired_signing_keys(&self, now: u64) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "DELETE FROM signing_keys WHERE state IN ('retired', 'revoked') AND expires_at <= ?",
        )
        .bind(as_i64(now))
        .execute(&self.writer)
        .await
        .map_err(unavailable)?;
        Ok(done.rows_affected())
    }

    /// Waits for open connections and checkpoints the WAL into the database file.
    async fn close(&self) {
        self.pool.close().await;
        self.writer.close().await;
    }

    async fn purge_expired(&self, now: u64) -> Result<(), StoreError> {
        let now = as_i64(now);
        for statement in [
            "DELETE FROM refresh_tokens WHERE expires_at < ?",
            "DELETE FROM revoked_families WHERE expires_at < ?",
            "DELETE FROM revoked_access_tokens WHERE expires_at < ?",
            "DELETE FROM login_failures WHERE window_end < ?",
            "DELETE FROM removed_names WHERE expires_at < ?",
        ] {
            sqlx::query(statement)
                .bind(now)
                .execute(&self.writer)
                .await
                .map_err(unavailable)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    /// A store written before the credential lifecycle (migrations 0001 and 0002 only)
    /// upgrades in place: its rows get empty stamps, which match each other, so refresh tokens
    /// keep refreshing until the first change that ends sessions; no cut-off; and its clients
    /// keep the right to introspect that every client had then.
    #[tokio::test]
    async fn a_store_from_before_the_credential_lifecycle_upgrades_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let old_migrations = tempfile::tempdir().unwrap();
        for name in ["0001_initial.sql", "0002_signing_keys.sql"] {
            std::fs::copy(
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("migrations")
                    .join(name),
                old_migrations.path().join(name),
            )
            .unwrap();
        }
        let old = SqlitePoolOptions::new()
            .connect_with(
                SqliteConnectOptions::new()
                    .filename(dir.path().join("auth.db"))
                    .create_if_missing(true),
            )
            .await
            .unwrap();
        sqlx::migrate::Migrator::new(old_migrations.path())
            .await
            .unwrap()
            .run(&old)
            .await
            .unwrap();
        sqlx::raw_sql(
            "INSERT INTO users (username, password_hash, scopes) VALUES ('old', '$argon2id$x', 'read');
             INSERT INTO clients (client_id, secret_hash, grants, scopes, audiences)
                 VALUES ('rs', 'hmac-sha256$s$m', 'client_credentials', '', '');
             INSERT INTO refresh_tokens
                 (id, family_id, client_id, username, scope, audience, issued_at, expires_at)
                 VALUES ('t1', 'f1', 'public', 'old', 'read', 'api', 1, 99999999999);",
        )
        .execute(&old)
        .await
        .unwrap();
        old.close().await;

        let store = SqliteStore::open_in(dir.path()).await.unwrap();
        let user = store.user("old").await.unwrap().unwrap();
        assert_eq!((user.stamp.as_str(), user.not_before), ("", 0));
        let client = store.client("rs").await.unwrap().unwrap();
        assert!(client.introspect && !client.public);
        assert_eq!(client.grants, vec![GrantType::ClientCredentials]);
        assert_eq!((client.stamp.as_str(), client.not_before), ("", 0));
        let context = store.refresh_context("t1").await.unwrap().unwrap();
        assert_eq!(
            (
                context.record.user_stamp.as_str(),
                context.record.client_stamp.as_str()
            ),
            ("", "")
        );
        assert_eq!(context.user.map(|user| user.stamp), Some(String::new()));
    }

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
