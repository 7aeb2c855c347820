//! The connection pool both layouts share: r2d2 over diesel, every call on tokio's blocking pool.

use std::sync::Arc;
use std::time::Duration;

use diesel::r2d2::{ConnectionManager, CustomizeConnection, Pool, PooledConnection};
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
        F: FnOnce(&mut PooledConnection<ConnectionManager<C>>) -> Result<T> + Send + 'static,
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
}
