//! The read-only rusqlite connections that the hot reads run on, on the calling thread (see the
//! module doc of `embedded` for why that is sound), and the blocking thread a read moves to when
//! SQLite answers it busy.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::Semaphore;

use rusqlite::{Connection, ErrorCode, OpenFlags, Row};

use super::BUSY_TIMEOUT;
use crate::store::StoreError;

/// Idle connections kept for the next reads, beyond one per core. A read on the calling thread
/// never yields, so no more run at once than there are async worker threads (one per core by
/// default) and the blocking reads; more are opened when none is free, and closed when given
/// back to a full set.
const KEPT_BEYOND_CORES: usize = 4;

/// Reads on blocking threads at once (busy retries, whole-table lists). While another process
/// holds the database, every hot read comes here: without a bound each would hold a thread, a
/// connection and its file handles for up to the busy timeout.
const BLOCKING_READS: usize = 8;

/// A query on one connection: `key` is the name or id it looks up. A function, not a closure, so
/// that it can move to a blocking thread without being boxed.
pub(super) type Query<T> = fn(&Connection, &str) -> Result<T, ReadError>;

/// What a read on a reader connection can meet: SQLite's own answer (busy, I/O, ...), which
/// decides whether to wait, or a row that does not make a record.
pub(super) enum ReadError {
    Sqlite(rusqlite::Error),
    Store(StoreError),
}

impl From<rusqlite::Error> for ReadError {
    fn from(err: rusqlite::Error) -> Self {
        Self::Sqlite(err)
    }
}

impl From<StoreError> for ReadError {
    fn from(err: StoreError) -> Self {
        Self::Store(err)
    }
}

impl From<ReadError> for StoreError {
    fn from(err: ReadError) -> Self {
        match err {
            ReadError::Sqlite(err) => StoreError::Unavailable(err.to_string()),
            ReadError::Store(err) => err,
        }
    }
}

/// SQLITE_BUSY (another connection holds a lock this read needs: in WAL mode only recovery or an
/// exclusive locking mode) or SQLITE_LOCKED (a shared cache's table lock).
fn is_busy(err: &ReadError) -> bool {
    matches!(
        err,
        ReadError::Sqlite(err)
            if matches!(
                err.sqlite_error_code(),
                Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
            )
    )
}

pub(super) struct Readers {
    path: PathBuf,
    /// An in-memory database, which other connections reach only through SQLite's shared cache:
    /// there a read waits for a writer's table lock (unlock notification, not the busy timeout),
    /// so every read runs on a blocking thread.
    in_memory: bool,
    /// The lock is held only to take or give back a connection, never across a query.
    idle: Mutex<Vec<Connection>>,
    /// How many idle connections are kept.
    kept: usize,
    /// Permits for reads on blocking threads ([`BLOCKING_READS`]).
    blocking: Arc<Semaphore>,
    /// Set by [`Readers::close`]: no connection is opened or kept after it, so that the
    /// writer, closing last, is the only connection left and checkpoints the WAL.
    closed: AtomicBool,
}

impl Readers {
    /// Readers of the database that the writer has opened and migrated at `path`. One is opened
    /// here, so that a database the readers cannot open fails the store's opening.
    pub(super) fn open(path: &Path, in_memory: bool) -> Result<Arc<Self>, StoreError> {
        let readers = Self {
            path: path.to_owned(),
            in_memory,
            idle: Mutex::new(Vec::new()),
            kept: std::thread::available_parallelism().map_or(1, usize::from) + KEPT_BEYOND_CORES,
            blocking: Arc::new(Semaphore::new(BLOCKING_READS)),
            closed: AtomicBool::new(false),
        };
        // Opening alone reads nothing: one statement reads the schema, so that a database the
        // readers cannot read fails the store's opening.
        let first = readers
            .connect()
            .and_then(|conn| {
                conn.query_row("SELECT count(*) FROM sqlite_schema", [], |_| Ok(()))?;
                Ok(conn)
            })
            .map_err(|err| StoreError::Unavailable(format!("opening a reader: {err}")))?;
        readers.give_back(first);
        Ok(Arc::new(readers))
    }

    /// Opens a connection: read-only, without SQLite's per-connection mutex (one thread uses it
    /// at a time), `query_only` as a second guard, and no busy timeout, so that a read on the
    /// calling thread never sleeps in SQLite's busy handler.
    fn connect(&self) -> rusqlite::Result<Connection> {
        let access = if self.in_memory {
            // The writer's shared cache, as sqlx opens it; a connection that could write, which
            // `query_only` keeps from doing so.
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_MEMORY
                | OpenFlags::SQLITE_OPEN_SHARED_CACHE
        } else {
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_PRIVATE_CACHE
        };
        // `SQLITE_OPEN_URI` as sqlx opens it, so that both read a `file:` name alike.
        let flags = access | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
        let conn = Connection::open_with_flags(&self.path, flags)?;
        conn.busy_timeout(Duration::ZERO)?;
        conn.pragma_update(None, "query_only", true)?;
        Ok(conn)
    }

    fn take(&self) -> Result<Connection, ReadError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(StoreError::Unavailable("the store is closed".to_owned()).into());
        }
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        match idle {
            Some(conn) => Ok(conn),
            None => Ok(self.connect()?),
        }
    }

    fn give_back(&self, conn: Connection) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        // Checked under the lock that `close` empties the set under: a connection given back
        // after it is dropped here, not kept.
        if idle.len() < self.kept && !self.closed.load(Ordering::Acquire) {
            idle.push(conn);
        }
    }

    /// Closes the idle connections and refuses new reads; a read still under way closes its
    /// own connection when it ends.
    pub(super) fn close(&self) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        self.closed.store(true, Ordering::Release);
        idle.clear();
    }

    /// Closes the idle connections, as [`Readers::close`] does, but goes on reading: for a test
    /// that needs every connection of the store closed for a moment.
    #[cfg(test)]
    pub(super) fn close_idle(&self) {
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    /// Runs `query` for `key` on the calling thread; if SQLite answers busy, or the database is
    /// in memory, on a blocking thread instead, where it may wait for the lock.
    pub(super) async fn read<T: Send + 'static>(
        self: &Arc<Self>,
        key: &str,
        query: Query<T>,
    ) -> Result<T, StoreError> {
        if !self.in_memory {
            match self.read_here(key, query, Duration::ZERO) {
                Err(err) if is_busy(&err) => {}
                done => return done.map_err(StoreError::from),
            }
        }
        self.read_blocking(key, query).await
    }

    /// Runs `query` for `key` on a blocking thread, waiting up to the store's busy timeout for
    /// a lock: for reads whose answer may be long (whole tables), and for those that found the
    /// database busy.
    pub(super) async fn read_blocking<T: Send + 'static>(
        self: &Arc<Self>,
        key: &str,
        query: Query<T>,
    ) -> Result<T, StoreError> {
        let permit = tokio::time::timeout(BUSY_TIMEOUT, Arc::clone(&self.blocking).acquire_owned())
            .await
            .map_err(|_| StoreError::Unavailable("the database stays busy".to_owned()))?
            .map_err(|_| StoreError::Unavailable("the store is closed".to_owned()))?;
        let (readers, key) = (Arc::clone(self), key.to_owned());
        // The permit goes with the thread, so that a caller going away does not free it while
        // the read still holds a connection.
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            readers.read_here(&key, query, BUSY_TIMEOUT)
        })
        .await
        .map_err(|err| StoreError::Unavailable(format!("a read task failed: {err}")))?
        .map_err(StoreError::from)
    }

    /// Runs `query` on an idle connection (or a new one) with `busy_timeout`, then gives the
    /// connection back with none.
    fn read_here<T>(
        &self,
        key: &str,
        query: Query<T>,
        busy_timeout: Duration,
    ) -> Result<T, ReadError> {
        let conn = self.take()?;
        if busy_timeout.is_zero() {
            let done = query(&conn, key);
            self.give_back(conn);
            return done;
        }
        let done = conn
            .busy_timeout(busy_timeout)
            .map_err(ReadError::from)
            .and_then(|()| query(&conn, key));
        // A connection that keeps its timeout would sleep on the calling thread later: it is
        // closed instead.
        if conn.busy_timeout(Duration::ZERO).is_ok() {
            self.give_back(conn);
        }
        done
    }
}

/// The one row that `sql` finds for `?1 = key`, made into a record by `convert`, or `None`.
/// The statement is reset before this returns, so the connection holds no read snapshot between
/// reads and the next one sees every commit before it.
pub(super) fn optional_row<T>(
    conn: &Connection,
    sql: &str,
    key: &str,
    convert: impl FnOnce(&Row<'_>) -> Result<T, StoreError>,
) -> Result<Option<T>, ReadError> {
    let mut statement = conn.prepare_cached(sql)?;
    let mut rows = statement.query([key])?;
    let found = match rows.next()? {
        Some(row) => Some(convert(row)?),
        None => None,
    };
    Ok(found)
}

/// Every row that `sql` finds, made into records by `convert`.
pub(super) fn all_rows<T>(
    conn: &Connection,
    sql: &str,
    convert: impl Fn(&Row<'_>) -> Result<T, StoreError>,
) -> Result<Vec<T>, ReadError> {
    let mut statement = conn.prepare_cached(sql)?;
    let mut rows = statement.query([])?;
    let mut found = Vec::new();
    while let Some(row) = rows.next()? {
        found.push(convert(row)?);
    }
    Ok(found)
}
