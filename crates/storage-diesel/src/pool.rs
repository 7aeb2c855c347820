//! The connection pool both layouts share: r2d2 over diesel, every call on tokio's blocking pool.

use std::sync::Arc;
use std::time::Duration;

use diesel::r2d2::{ConnectionManager, CustomizeConnection, Pool};
use storage_core::{Error, Result};

use crate::dialect::Dialect;
use crate::url::DatabaseUrl;

/// A pool and the name of its database (without credentials) for messages.
pub(crate) struct DbPool<C: Dialect> {
    pool: Pool<ConnectionManager<C>>,
    label: String,
}

#[derive(Debug)]
struct Configure;

impl<C: Dialect> CustomizeConnection<C, diesel::r2d2::Error> for Configure {
    fn on_acquire(&self, conn: &mut C) -> std::result::Result<(), diesel::r2d2::Error> {
        conn.configure().map_err(diesel::r2d2::Error::QueryError)
    }
}

impl<C: Dialect> DbPool<C> {
    /// Connects to `url`, checking that the database answers. An unreachable database is an
    /// [`Error::Backend`] that names the database but never the password.
    pub(crate) async fn connect(
        url: &str,
        pool_size: u32,
        connect_timeout: Duration,
    ) -> Result<Arc<Self>> {
        let parsed = DatabaseUrl::parse(url)?;
        let label = parsed.label();
        if let DatabaseUrl::Sqlite(path) = &parsed {
            // SQLite creates the file but not its directory; say so at once rather than after
            // the connection timeout.
            let parent = std::path::Path::new(path)
                .parent()
                .filter(|p| !p.as_os_str().is_empty());
            if parent.is_some_and(|dir| !dir.is_dir()) {
                return Err(Error::Backend {
                    backend: C::BACKEND,
                    message: format!("cannot connect to {label}: its directory does not exist"),
                    source: None,
                });
            }
        }
        let connection_string = parsed.connection_string();
        let pool_label = label.clone();
        let pool = tokio::task::spawn_blocking(move || {
            // No idle minimum: r2d2 would keep opening connections on its own threads, and a
            // process exiting while libpq is mid-connect can crash in libpq's exit handlers.
            // Connections open on demand; one is opened here to check the database answers.
            let pool = Pool::builder()
                .max_size(pool_size.max(1))
                .min_idle(Some(0))
                .connection_timeout(connect_timeout)
                .connection_customizer(Box::new(Configure))
                .build_unchecked(ConnectionManager::<C>::new(connection_string));
            pool.get().map_err(|e| {
                Error::backend(C::BACKEND, format!("cannot connect to {pool_label}"), e)
            })?;
            Ok(pool)
        })
        .await
        .map_err(|e| Error::backend(C::BACKEND, "connect task failed", e))??;
        Ok(Arc::new(Self { pool, label }))
    }

    /// The database, without credentials (`postgres database 'app' at db:5432`).
    pub(crate) fn label(&self) -> &str {
        &self.label
    }

    /// Runs `work` with a pooled connection on tokio's blocking pool, never on a runtime worker.
    pub(crate) async fn run<T, F>(self: &Arc<Self>, what: &'static str, work: F) -> Result<T>
    where
        F: FnOnce(&mut C) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        self.run_as(what, work).await
    }

    /// [`DbPool::run`] for work with an error type of its own (the app's), which takes ours.
    pub(crate) async fn run_as<T, E, F>(
        self: &Arc<Self>,
        what: &'static str,
        work: F,
    ) -> std::result::Result<T, E>
    where
        F: FnOnce(&mut C) -> std::result::Result<T, E> + Send + 'static,
        E: From<Error> + Send + 'static,
        T: Send + 'static,
    {
        let this = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let mut conn = this.pool.get().map_err(|e| {
                Error::backend(
                    C::BACKEND,
                    format!("cannot connect to {} ({what})", this.label),
                    e,
                )
            })?;
            work(&mut conn)
        })
        .await
        .map_err(|e| Error::backend(C::BACKEND, format!("{what} task failed"), e))?
    }

    /// The pool itself (a clone: the same connections, configured by [`prepare_connection`]).
    pub(crate) fn pool(&self) -> Pool<ConnectionManager<C>> {
        self.pool.clone()
    }
}

/// The per-connection setup every pooled connection gets, for a connection opened elsewhere.
pub(crate) fn prepare_connection<C: Dialect>(conn: &mut C) -> Result<()> {
    conn.configure()
        .map_err(|e| Error::backend(C::BACKEND, "preparing the connection failed", e))
}

/// The app's ways to its tables in the storage's database (`run`, `pool`,
/// `prepare_connection`), for a storage whose `inner.db` is its [`DbPool`].
macro_rules! app_connection {
    ($storage:ident, $bound:path) => {
        #[allow(private_bounds)]
        impl<C: $bound> $storage<C> {
            /// Runs `work`, the app's own diesel code, with a connection from this storage's
            /// pool, on tokio's blocking pool (diesel blocks; the runtime's workers must not).
            ///
            /// Use it for the app's tables when the app shares the storage's database, above
            /// all on SQLite: the connection is set up as the storage's own are (busy timeout,
            /// WAL, foreign keys; see [`Self::prepare_connection`]), so the app's writes wait
            /// their turn beside uploads instead of failing with "database is locked". Failing
            /// to get a connection comes back through `E::from(storage_core::Error)`.
            ///
            /// `work` gets `&mut C` (`&mut SqliteConnection`, `&mut PgConnection`, ...) rather
            /// than the pool's `PooledConnection`: it is the type the app's diesel code is
            /// written for, so the same functions run here, on a connection of
            /// [`Self::pool`], and on one the app opened itself, and a closure may name its
            /// argument's type. The pooled wrapper would add nothing: the connection goes back
            /// to the pool when `work` returns.
            ///
            /// On SQLite, write in `conn.immediate_transaction(..)`, not
            /// `conn.transaction(..)`: a deferred transaction that reads and then writes fails
            /// at once with "database is locked" if another connection wrote in between,
            /// whatever the busy timeout.
            pub async fn run<T, E, F>(&self, work: F) -> std::result::Result<T, E>
            where
                F: FnOnce(&mut C) -> std::result::Result<T, E> + Send + 'static,
                E: From<storage_core::Error> + Send + 'static,
                T: Send + 'static,
            {
                self.inner.db.run_as("app work", work).await
            }

            /// The storage's connection pool (a clone: the same pool, its connections set up
            /// as [`Self::run`] says), for an app that manages its connections itself or hands
            /// a pool to other code. Get connections with `pool.get()` off the async runtime
            /// (in `spawn_blocking`), as `run` does.
            pub fn pool(&self) -> diesel::r2d2::Pool<diesel::r2d2::ConnectionManager<C>> {
                self.inner.db.pool()
            }

            /// Sets up a connection the app opened itself (`SqliteConnection::establish`) as
            /// the storage's own are. On SQLite: `busy_timeout` (10 s), `journal_mode = WAL`,
            /// `synchronous = NORMAL`, `foreign_keys = ON` and the SQL functions the storage
            /// registers; on PostgreSQL and MySQL nothing today.
            ///
            /// Call it on every connection the app opens to a SQLite database it shares with
            /// the storage. Without a busy timeout the app's writes fail with "database is
            /// locked" whenever an upload holds the write lock, and an app that writes again at
            /// once can keep the lock from the storage's waiting connections past their
            /// timeout, so uploads fail too.
            pub fn prepare_connection(conn: &mut C) -> storage_core::Result<()> {
                $crate::pool::prepare_connection(conn)
            }
        }
    };
}
pub(crate) use app_connection;
