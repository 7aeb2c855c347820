//! [`connect_url`]: any storage from one URL string, for the CLI, examples and configuration.

use std::sync::Arc;
use std::time::Duration;

use storage_core::{Error, FileSystemStorage, InMemoryStorage, Result, Storage};

use crate::storage::{DatabaseOptions, SweepReport};
use crate::url::DatabaseUrl;

/// The storage URL used when none is given: a SQLite file in the working directory.
pub const DEFAULT_STORAGE_URL: &str = "sqlite://media.db";

/// A storage opened from a URL, keeping its concrete type for maintenance calls.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum AnyStorage {
    /// `sqlite://PATH`
    #[cfg(feature = "sqlite")]
    Sqlite(crate::SqliteStorage),
    /// `postgres://...`
    #[cfg(feature = "postgres")]
    Postgres(crate::PgStorage),
    /// `mysql://...` (MariaDB too)
    #[cfg(feature = "mysql")]
    Mysql(crate::MysqlStorage),
    /// `file://DIR`
    FileSystem(FileSystemStorage),
    /// `memory:`
    Memory(Arc<InMemoryStorage>),
}

/// Opens the storage a URL names: `sqlite://PATH` (default `sqlite://media.db`),
/// `postgres://...`, `mysql://...`, `file://DIR`, `memory:`. Database URLs need their cargo
/// feature; a URL for a backend that was not built in is a clear error.
pub async fn connect_url(url: &str, options: DatabaseOptions) -> Result<AnyStorage> {
    if url == "memory:" || url == "memory://" {
        return Ok(AnyStorage::Memory(Arc::new(
            InMemoryStorage::new().with_base_url(options.base_url.as_deref()),
        )));
    }
    if let Some(dir) = url.strip_prefix("file://") {
        if dir.is_empty() {
            return Err(not_built("file://", "a directory"));
        }
        return Ok(AnyStorage::FileSystem(
            FileSystemStorage::new(dir)?.with_base_url(options.base_url.as_deref()),
        ));
    }
    match DatabaseUrl::parse(url)? {
        #[cfg(feature = "sqlite")]
        DatabaseUrl::Sqlite(_) => Ok(AnyStorage::Sqlite(
            crate::SqliteStorage::connect(url, options).await?,
        )),
        #[cfg(feature = "postgres")]
        DatabaseUrl::Postgres(_) => Ok(AnyStorage::Postgres(
            crate::PgStorage::connect(url, options).await?,
        )),
        #[cfg(feature = "mysql")]
        DatabaseUrl::Mysql(_) => Ok(AnyStorage::Mysql(
            crate::MysqlStorage::connect(url, options).await?,
        )),
        #[allow(unreachable_patterns)]
        other => Err(not_built(
            match other {
                DatabaseUrl::Sqlite(_) => "sqlite",
                DatabaseUrl::Postgres(_) => "postgres",
                DatabaseUrl::Mysql(_) => "mysql",
            },
            "its cargo feature",
        )),
    }
}

fn not_built(backend: &'static str, needs: &str) -> Error {
    Error::NotSupported {
        backend,
        operation: format!("this storage URL needs {needs}"),
    }
}

impl AnyStorage {
    /// The storage as a trait object.
    pub fn storage(&self) -> Arc<dyn Storage> {
        match self {
            #[cfg(feature = "sqlite")]
            Self::Sqlite(s) => Arc::new(s.clone()),
            #[cfg(feature = "postgres")]
            Self::Postgres(s) => Arc::new(s.clone()),
            #[cfg(feature = "mysql")]
            Self::Mysql(s) => Arc::new(s.clone()),
            Self::FileSystem(s) => Arc::new(s.clone()),
            Self::Memory(s) => Arc::clone(s) as Arc<dyn Storage>,
        }
    }

    /// Runs pending migrations on a database; nothing to do for the other backends.
    pub async fn migrate(&self) -> Result<Vec<String>> {
        match self {
            #[cfg(feature = "sqlite")]
            Self::Sqlite(s) => s.migrate().await,
            #[cfg(feature = "postgres")]
            Self::Postgres(s) => s.migrate().await,
            #[cfg(feature = "mysql")]
            Self::Mysql(s) => s.migrate().await,
            Self::FileSystem(_) | Self::Memory(_) => Ok(Vec::new()),
        }
    }

    /// Every stored name the given `TABLE.COLUMN` references hold (see
    /// [`DieselStorage::referenced_names`](crate::DieselStorage::referenced_names)); only
    /// database storages have tables to look in.
    pub async fn referenced_names(
        &self,
        references: &[String],
    ) -> Result<std::collections::HashSet<String>> {
        match self {
            #[cfg(feature = "sqlite")]
            Self::Sqlite(s) => s.referenced_names(references).await,
            #[cfg(feature = "postgres")]
            Self::Postgres(s) => s.referenced_names(references).await,
            #[cfg(feature = "mysql")]
            Self::Mysql(s) => s.referenced_names(references).await,
            Self::FileSystem(_) | Self::Memory(_) => Err(Error::NotSupported {
                backend: "storage",
                operation: "references outside a database".to_owned(),
            }),
        }
    }

    /// Sweeps abandoned uploads and retired versions on a database, stale staging files on the
    /// filesystem.
    pub async fn sweep(
        &self,
        pending_older_than: Duration,
        retired_older_than: Duration,
    ) -> Result<SweepReport> {
        match self {
            #[cfg(feature = "sqlite")]
            Self::Sqlite(s) => s.sweep(pending_older_than, retired_older_than).await,
            #[cfg(feature = "postgres")]
            Self::Postgres(s) => s.sweep(pending_older_than, retired_older_than).await,
            #[cfg(feature = "mysql")]
            Self::Mysql(s) => s.sweep(pending_older_than, retired_older_than).await,
            Self::FileSystem(s) => Ok(SweepReport {
                files: s.remove_stale_uploads(pending_older_than).await? as u64,
            }),
            Self::Memory(_) => Ok(SweepReport::default()),
        }
    }
}
