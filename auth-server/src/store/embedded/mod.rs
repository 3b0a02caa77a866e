//! The embedded backend: one SQLite file in WAL mode, so that a single machine needs nothing
//! else installed. The CLI opens the same file while the server runs; WAL lets both read, and
//! a busy timeout covers the rare write from another process. Within the server all writes go
//! through one connection (see [`SqliteStore`]).
//!
//! The `Store` methods are split by area into the same files as the Redis backend's (`users`,
//! `clients`, `refresh`, `logins`, `signing_keys`, `revocations`), so that the two ways of keeping one rule can
//! be read side by side; what every area needs (opening, the writer, conversions) stays here.

mod clients;
mod logins;
mod refresh;
mod revocations;
mod signing_keys;
mod users;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use oauth2_jwt_verifier::Scope;
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqlitePool};

use super::{RefreshContext, Removal, StoreError};

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

/// Rows one statement of the purge deletes at most. The writer is one connection and SQLite
/// has one write lock, and writers take turns on it: deleting a hundred thousand expired
/// refresh tokens in one statement took 5.7 s on the development machine, and every login and
/// refresh waited for it (wrk counted timeouts). In statements of a thousand (about 0.1 s each
/// there, expired tokens lying anywhere in the id index), refreshes ran at a ninth of their
/// rate during a purge of a million; a hundred leave the writer to them far more often.
const PURGE_CHUNK: i64 = 100;

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

/// Ends the transaction that a statement text opened on `conn` and a failed statement left
/// open: rolls it back or, should the ROLLBACK fail too, closes the connection rather than lend
/// it out again inside the transaction.
async fn end_failed_transaction(mut conn: PoolConnection<Sqlite>) {
    if sqlx::query("ROLLBACK").execute(&mut *conn).await.is_err() {
        let _ = conn.close().await;
    }
}

fn scope(text: &str) -> Result<Scope, StoreError> {
    Scope::parse(text).map_err(|_| StoreError::Corrupt(format!("scope {text:?}")))
}

fn as_u64(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

fn as_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

super::store_by_area!(SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn refresh_context(&self, id: &str) -> Result<Option<RefreshContext>, StoreError> {
        refresh::refresh_context(self, id).await
    }

    /// One transaction on the writer, with the statements of the single inserts: the whole call
    /// is written or, on any error, none of it.
    async fn insert_many(
        &self,
        users: &[UserRecord],
        tokens: &[RefreshRecord],
    ) -> Result<(), StoreError> {
        let mut tx = self.writer.begin().await.map_err(unavailable)?;
        for user in users {
            users::user_inserted(users::insert_user_query(user).execute(&mut *tx).await, user)?;
        }
        for token in tokens {
            refresh::insert_refresh_query(token)
                .execute(&mut *tx)
                .await
                .map_err(|err| write_error(err, "refresh token"))?;
        }
        tx.commit().await.map_err(unavailable)
    }

    /// Waits for open connections and checkpoints the WAL into the database file.
    async fn close(&self) {
        self.pool.close().await;
        self.writer.close().await;
    }

    /// In statements of at most [`PURGE_CHUNK`] rows each, so that requests that write wait
    /// behind one short statement, never behind the whole purge.
    async fn purge_expired(&self, now: u64) -> Result<(), StoreError> {
        let now = as_i64(now);
        for (table, column) in [
            ("refresh_tokens", "expires_at"),
            ("revoked_families", "expires_at"),
            ("revoked_access_tokens", "expires_at"),
            ("login_failures", "window_end"),
            ("removed_names", "expires_at"),
        ] {
            let statement = format!(
                "DELETE FROM {table} WHERE rowid IN
                     (SELECT rowid FROM {table} WHERE {column} < ?1 LIMIT ?2)"
            );
            loop {
                let done = sqlx::query(&statement)
                    .bind(now)
                    .bind(PURGE_CHUNK)
                    .execute(&self.writer)
                    .await
                    .map_err(unavailable)?;
                if done.rows_affected() < PURGE_CHUNK.unsigned_abs() {
                    break;
                }
            }
        }
        revocations::purge(self, as_u64(now)).await
    }
});

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{RefreshRecord, Store};

    /// The purge deletes in chunks: more expired tokens than one chunk all go, in as many
    /// statements as it takes, and the live ones stay.
    #[tokio::test]
    async fn the_purge_deletes_more_than_a_chunk_and_keeps_live_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open_in(dir.path()).await.unwrap();
        let now = 1_000_000;
        let token = |index: usize, expires_at: u64| RefreshRecord {
            id: format!("token-{index}"),
            family_id: format!("family-{index}"),
            client_id: "web".to_owned(),
            username: "alice".to_owned(),
            scope: Scope::from_tokens(["profile"]),
            audience: "api".to_owned(),
            user_stamp: String::new(),
            client_stamp: String::new(),
            issued_at: 1,
            expires_at,
            used_at: None,
            sealed_successor: None,
            successor_id: None,
        };
        let expired = 2 * PURGE_CHUNK.unsigned_abs() as usize + 7;
        let tokens: Vec<RefreshRecord> = (0..expired + 10)
            .map(|index| token(index, if index < expired { now - 1 } else { now + 1 }))
            .collect();
        store.insert_many(&[], &tokens).await.unwrap();
        store.purge_expired(now).await.unwrap();
        let left: i64 = sqlx::query_scalar("SELECT count(*) FROM refresh_tokens")
            .fetch_one(&store.pool)
            .await
            .unwrap();
        assert_eq!(left, 10);
        assert!(store
            .refresh(&format!("token-{expired}"))
            .await
            .unwrap()
            .is_some());
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
        crate::store::hand_written::read_as_upgraded(&store).await;
    }
}
