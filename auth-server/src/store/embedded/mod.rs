//! The embedded backend: one SQLite file in WAL mode, so that a single machine needs nothing
//! else installed. The CLI opens the same file while the server runs; WAL lets both read, and
//! a busy timeout covers the rare write from another process. Within the server all writes go
//! through one connection (see [`SqliteStore`]).
//!
//! Two drivers, each where it fits. sqlx runs the migrations, every write and most reads off
//! the request paths. It runs each connection on a thread of its own, so every query is a
//! hand-off to that thread and back (a channel send, a wake-up and a context switch each way):
//! `finish_task_switch` was a tenth of the server under the refresh grant, and one client read
//! took about 40 µs, against under 2 µs on the calling thread (`client_lookup/store_embedded`
//! in `bench/`). The reads that token requests make (`user`, `client`,
//! `refresh_context`, `refresh`) run instead on read-only rusqlite connections, directly on the
//! calling async thread ([`readers`]). That is sound because such a read does not wait for
//! a lock: in WAL mode a reader takes no lock that a writer holds, and with a busy timeout of 0
//! it never sleeps in SQLite's busy handler. What it can still cost on the async thread, and
//! why that is accepted: a read from the page cache costs microseconds, less than the hand-off
//! it replaces; each commit by another connection empties a reader's page cache, so under
//! writes a read does its few B-tree page reads again (from the OS's cache while the database
//! fits in memory, from the disk when it does not, as a memory-mapped or any other design
//! would); and SQLite's own retry when starting a read races a checkpoint or a log restart
//! sleeps briefly (rare, microseconds at first). When SQLite does answer a read busy (recovery
//! of the WAL index, or another process holding the file in exclusive locking mode), the same
//! read runs again on a blocking thread with the store's busy timeout (at most eight at once),
//! so that no long wait happens on an async worker. An in-memory database is shared with other connections only through SQLite's
//! shared cache, where a reader waits for a writer's table lock: there every read runs on a
//! blocking thread. The lists of users and clients are read on the same connections (one
//! conversion per record), always on a blocking thread: their answer grows with the table.
//!
//! Writes stay on sqlx's connection thread: a write may wait up to the busy timeout for another
//! process's lock, and a commit may checkpoint the WAL into the database file (many pages
//! written and synced); neither may hold an async worker.
//!
//! The `Store` methods are split by area into the same files as the Redis backend's (`users`,
//! `clients`, `refresh`, `logins`, `signing_keys`, `revocations`), so that the two ways of keeping one rule can
//! be read side by side; what every area needs (opening, the writer, conversions) stays here.

mod clients;
mod logins;
mod readers;
mod refresh;
mod revocations;
mod signing_keys;
mod users;

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use oauth2_jwt_verifier::Scope;
use readers::Readers;
use rusqlite::types::FromSql;
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqlitePool};

use super::{RefreshContext, Removal, StoreError};

/// How long a statement waits for another connection's lock before it fails.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

pub struct SqliteStore {
    /// The hot reads' connections (see the module doc).
    readers: Arc<Readers>,
    /// Every other read: WAL lets them run beside the writer and each other.
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
    ///
    /// The `vfs` and `immutable` URL parameters are refused: the hot reads' connections open the
    /// file by its path with SQLite's default file system, and a database that sqlx's
    /// connections locked another way (or not at all) would be read half written.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        if let Some((_, query)) = url.split_once('?') {
            for pair in query.split('&') {
                let name = pair.split_once('=').map_or(pair, |(name, _)| name);
                if name.eq_ignore_ascii_case("vfs") || name.eq_ignore_ascii_case("immutable") {
                    return Err(StoreError::Unavailable(format!(
                        "the embedded store does not support the URL parameter {name:?}"
                    )));
                }
            }
        }
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
        let path = options.get_filename().to_owned();
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(BUSY_TIMEOUT)
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
        let readers = Readers::open(&path, !on_disk)?;
        Ok(Self {
            readers,
            pool,
            writer,
        })
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

/// Column `index` of `row`; a value of another type, or NULL where the record has no room for
/// one, is corrupt data.
fn column<T: FromSql>(row: &rusqlite::Row<'_>, index: usize) -> Result<T, StoreError> {
    row.get(index)
        .map_err(|err| StoreError::Corrupt(err.to_string()))
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

    /// Waits for open connections and checkpoints the WAL into the database file. The readers
    /// close first and refuse new reads; a read still under way (a request outliving the
    /// shutdown's grace period) would keep the writer from checkpointing as it closes, so the
    /// writer checkpoints explicitly first, which waits for such a read as any write does.
    async fn close(&self) {
        self.readers.close();
        self.pool.close().await;
        if let Err(err) = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&self.writer)
            .await
        {
            tracing::warn!(error = %err, "the final checkpoint of the SQLite store failed; the next start recovers the log");
        }
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
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::store::{
        ClientRecord, ClientUpdate, GrantType, RefreshRecord, Rotation, Store, UserRecord,
    };

    fn client(client_id: &str) -> ClientRecord {
        ClientRecord {
            client_id: client_id.to_owned(),
            secret_hash: "keyed-hash".to_owned(),
            previous_secret: None,
            public: false,
            introspect: false,
            grants: vec![GrantType::ClientCredentials],
            scopes: Scope::from_tokens(["items:read"]),
            audiences: vec!["api".to_owned()],
            stamp: "client-stamp".to_owned(),
            not_before: 0,
        }
    }

    fn user(username: &str) -> UserRecord {
        UserRecord {
            username: username.to_owned(),
            full_name: None,
            email: Some(format!("{username}@example.com")),
            password_hash: "$argon2id$x".to_owned(),
            disabled: false,
            scopes: Scope::from_tokens(["profile"]),
            stamp: "user-stamp".to_owned(),
            not_before: 0,
        }
    }

    fn refresh_token(id: &str, username: &str) -> RefreshRecord {
        RefreshRecord {
            id: id.to_owned(),
            family_id: "family".to_owned(),
            client_id: "web".to_owned(),
            username: username.to_owned(),
            scope: Scope::from_tokens(["profile"]),
            audience: "api".to_owned(),
            user_stamp: "user-stamp".to_owned(),
            client_stamp: "client-stamp".to_owned(),
            issued_at: 1_000,
            expires_at: 10_000,
            used_at: None,
            sealed_successor: None,
            successor_id: None,
        }
    }

    /// The hot reads run on reader connections kept from one read to the next, beside the
    /// writer's: each sees what the writer committed just before it, as no reader keeps the
    /// snapshot of an earlier read.
    #[tokio::test]
    async fn the_hot_reads_see_the_write_committed_just_before_them() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open_in(dir.path()).await.unwrap();

        let mut alice = user("alice");
        store.insert_user(&alice).await.unwrap();
        assert_eq!(store.user("alice").await.unwrap(), Some(alice.clone()));
        alice.scopes = Scope::from_tokens(["profile", "admin"]);
        assert!(store.set_user_scopes("alice", &alice.scopes).await.unwrap());
        assert_eq!(store.user("alice").await.unwrap(), Some(alice.clone()));

        let mut web = client("web");
        assert_eq!(store.client("web").await.unwrap(), None);
        store.insert_client(&web).await.unwrap();
        assert_eq!(store.client("web").await.unwrap(), Some(web.clone()));
        web.introspect = true;
        let update = ClientUpdate {
            grants: None,
            scopes: None,
            audiences: None,
            introspect: Some(true),
        };
        assert!(store.update_client("web", &update).await.unwrap());
        assert_eq!(store.client("web").await.unwrap(), Some(web));

        let mut first = refresh_token("first", "alice");
        assert_eq!(store.refresh("first").await.unwrap(), None);
        assert_eq!(store.refresh_context("first").await.unwrap(), None);
        store.insert_refresh(&first).await.unwrap();
        assert_eq!(store.refresh("first").await.unwrap(), Some(first.clone()));
        let context = store.refresh_context("first").await.unwrap().unwrap();
        assert_eq!(
            (&context.record, context.family_revoked, &context.user),
            (&first, false, &Some(alice.clone()))
        );

        let next = refresh_token("next", "alice");
        assert_eq!(
            store
                .rotate_refresh("first", 2_000, b"sealed", &next)
                .await
                .unwrap(),
            Rotation::Rotated
        );
        first.used_at = Some(2_000);
        first.sealed_successor = Some(b"sealed".to_vec());
        first.successor_id = Some("next".to_owned());
        assert_eq!(store.refresh("first").await.unwrap(), Some(first.clone()));
        assert_eq!(store.refresh("next").await.unwrap(), Some(next.clone()));

        store.revoke_family("family", 10_000).await.unwrap();
        assert!(store.set_user_disabled("alice", true, None).await.unwrap());
        alice.disabled = true;
        let context = store.refresh_context("first").await.unwrap().unwrap();
        assert_eq!(
            (&context.record, context.family_revoked, &context.user),
            (&first, true, &Some(alice))
        );
    }

    /// A read that SQLite answers busy moves to a blocking thread and waits there, never on the
    /// async thread. Here another connection holds the database in exclusive locking mode (as
    /// another process may): `client` finds it busy, waits with the busy timeout on a blocking
    /// thread while another task of this one-thread runtime keeps running, and returns the
    /// record once the lock is released. Without the retry the read would fail; run inline
    /// with a busy timeout, it would stop the other task.
    #[tokio::test]
    async fn a_read_that_finds_the_database_busy_waits_off_the_async_thread() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open_in(dir.path()).await.unwrap();
        store.insert_client(&client("web")).await.unwrap();
        // In WAL mode a connection that has read keeps a shared lock on the file until it
        // closes, and an exclusive lock waits for every shared one: the store's connections
        // close first. The hot reads open new readers as they need them.
        store.readers.close_idle();
        for pool in [&store.pool, &store.writer] {
            // sqlx gives a connection back to its pool in a task of its own, and one still on
            // its way back when the pool closes stays open in it.
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while pool.num_idle() < pool.size() as usize {
                assert!(
                    std::time::Instant::now() < deadline,
                    "a connection stays in use"
                );
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            pool.close().await;
        }

        let path = dir.path().join("auth.db");
        let holder = rusqlite::Connection::open(&path).unwrap();
        holder
            .pragma_update(None, "locking_mode", "EXCLUSIVE")
            .unwrap();
        // The first write takes the exclusive lock, and exclusive locking mode keeps it.
        holder
            .execute("UPDATE clients SET scopes = scopes", [])
            .unwrap();
        let probe = rusqlite::Connection::open_with_flags(
            &path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .unwrap();
        probe.busy_timeout(Duration::ZERO).unwrap();
        let busy = probe.query_row("SELECT count(*) FROM clients", [], |row| {
            row.get::<_, i64>(0)
        });
        assert_eq!(
            busy.map_err(|err| err.sqlite_error_code()),
            Err(Some(rusqlite::ErrorCode::DatabaseBusy)),
            "the holder keeps other connections from reading"
        );
        drop(probe);

        let release = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            drop(holder);
        });
        let ticks = Arc::new(AtomicUsize::new(0));
        let ticker = tokio::spawn({
            let ticks = Arc::clone(&ticks);
            async move {
                loop {
                    ticks.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        });
        let started = std::time::Instant::now();
        let read = store.client("web").await;
        let waited = started.elapsed();
        ticker.abort();
        release.join().unwrap();

        assert_eq!(read.unwrap(), Some(client("web")));
        assert!(
            waited >= Duration::from_millis(150),
            "the read waited for the lock: {waited:?}"
        );
        let ticks = ticks.load(Ordering::Relaxed);
        assert!(
            ticks >= 5,
            "the other task ran {ticks} times while the read waited {waited:?}"
        );
    }

    /// Closing the store refuses further hot reads (no reader connection is opened after it)
    /// and checkpoints the whole write-ahead log into the database file, so that the file
    /// alone holds every write, even while another connection is still open on it (a read
    /// outliving the shutdown, or another process): the writer's own checkpoint on closing
    /// needs to be the last connection, the explicit one does not.
    #[tokio::test]
    async fn a_closed_store_refuses_hot_reads_and_leaves_the_log_checkpointed() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open_in(dir.path()).await.unwrap();
        store.insert_client(&client("web")).await.unwrap();
        assert_eq!(store.client("web").await.unwrap(), Some(client("web")));
        let other = rusqlite::Connection::open(dir.path().join("auth.db")).unwrap();
        let _: i64 = other
            .query_row("SELECT count(*) FROM clients", [], |row| row.get(0))
            .unwrap();
        store.close().await;
        assert!(matches!(
            store.client("web").await,
            Err(StoreError::Unavailable(_))
        ));
        let log = dir.path().join("auth.db-wal");
        let left = std::fs::metadata(&log).map_or(0, |meta| meta.len());
        assert_eq!(
            left, 0,
            "the write-ahead log holds {left} bytes after closing"
        );
        drop(other);
        drop(store);
        // The database file copied alone, as a backup of it after a shutdown would be.
        let copy = tempfile::tempdir().unwrap();
        std::fs::copy(dir.path().join("auth.db"), copy.path().join("auth.db")).unwrap();
        let file_only = rusqlite::Connection::open(copy.path().join("auth.db")).unwrap();
        let clients: i64 = file_only
            .query_row("SELECT count(*) FROM clients", [], |row| row.get(0))
            .unwrap();
        assert_eq!(clients, 1);
    }

    /// The hot reads open the file by its path with SQLite's default file system, so URL
    /// parameters that would make sqlx's connections lock it another way are refused.
    #[tokio::test]
    async fn the_vfs_and_immutable_url_parameters_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        for parameter in ["vfs=unix-dotfile", "immutable=1", "mode=rwc&VFS=unix-none"] {
            let url = format!(
                "sqlite://{}?{parameter}",
                dir.path().join("auth.db").display()
            );
            match SqliteStore::open(&url).await {
                Err(StoreError::Unavailable(message)) => {
                    assert!(message.contains("URL parameter"), "{message}")
                }
                Err(other) => panic!("{parameter}: {other:?}"),
                Ok(_) => panic!("{parameter} was accepted"),
            }
        }
    }

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
