//! [`connect_url`]: any storage from one URL string, for the CLI, examples and configuration.

use std::sync::Arc;
use std::time::Duration;

use storage_core::{
    ByteRange, ByteStream, Capabilities, Error, FileMeta, FileSystemStorage, InMemoryStorage,
    Listing, Name, NameCandidates, OpenedFile, PutOptions, Result, Storage, Visibility,
};

use crate::legacy::LegacyLayout;
use crate::references::{FileReferences, ReferenceSource};
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
    /// `sqlite://PATH?layout=...`
    #[cfg(feature = "sqlite")]
    SqliteLegacy(crate::SqliteLegacyStorage),
    /// `postgres://...?layout=...`
    #[cfg(feature = "postgres")]
    PostgresLegacy(crate::PgLegacyStorage),
    /// `mysql://...?layout=...`
    #[cfg(feature = "mysql")]
    MysqlLegacy(crate::MysqlLegacyStorage),
    /// `file://DIR`
    FileSystem(FileSystemStorage),
    /// `memory:`
    Memory(Arc<InMemoryStorage>),
    /// `s3://...`, `sftp://...`, `ftp://...`, `webdav://...`, `azblob://...`, `gcs://...`
    /// (feature `opendal`, through the service features `s3`, `sftp`, ...)
    #[cfg(feature = "opendal")]
    Remote(Box<storage_opendal::OpendalStorage>),
}

/// Schemes of the remote storages of `storage-opendal`.
const REMOTE_SCHEMES: &[&str] = &["s3", "sftp", "ftp", "webdav", "webdavs", "azblob", "gcs"];

/// Splits the layout parameters off a database URL: the URL the driver gets and the layout.
fn split_layout(url: &str) -> Result<(String, Option<LegacyLayout>)> {
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_owned(), None));
    };
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let ours = pairs
        .iter()
        .filter(|(k, _)| LegacyLayout::PARAMS.contains(&k.as_str()))
        .map(|(k, v)| (k.as_str(), v.as_str()));
    let layout = LegacyLayout::from_params(ours)?;
    let sqlite = base.starts_with("sqlite:");
    let rest: Vec<&str> = query
        .split('&')
        .filter(|pair| {
            let key = pair.split('=').next().unwrap_or_default();
            !LegacyLayout::PARAMS.contains(&key)
        })
        .collect();
    if sqlite {
        if let Some(unknown) = rest.iter().find(|p| !p.is_empty()) {
            return Err(Error::BadRequest {
                reason: format!(
                    "unknown parameter '{}' in a sqlite storage URL",
                    unknown.split('=').next().unwrap_or_default()
                ),
            });
        }
    }
    let rest = rest.join("&");
    let driver_url = if rest.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{rest}")
    };
    Ok((driver_url, layout))
}

/// Opens the storage a URL names: `sqlite://PATH` (default `sqlite://media.db`),
/// `postgres://...`, `mysql://...`, `file://DIR`, `memory:`. Database URLs need their cargo
/// feature; a URL for a backend that was not built in is a clear error.
///
/// A database URL may choose a single-row layout shared with a Django app:
/// `?layout=binary-database-files` or
/// `?layout=table&table=T&name_column=N&blob_column=B[&size_column=S]` (see
/// [`LegacyLayout`]). Other query parameters go to the driver (`sslmode`, ...).
///
/// Remote storages (`s3://BUCKET/PREFIX?endpoint=...&region=...`, `sftp://user@host:port/dir`,
/// `ftp://`, `webdav://`, `azblob://`, `gcs://`) open through `storage-opendal` with the
/// features of the same names; their options come from the URL (see
/// `storage_opendal::connect_url`), not from `options`.
pub async fn connect_url(url: &str, options: DatabaseOptions) -> Result<AnyStorage> {
    if let Some((scheme, _)) = url
        .split_once("://")
        .filter(|(scheme, _)| REMOTE_SCHEMES.contains(scheme))
    {
        return connect_remote(url, scheme).await;
    }
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
    let (url, layout) = split_layout(url)?;
    let url = url.as_str();
    if let Some(layout) = layout {
        return connect_legacy(url, layout, options).await;
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

#[cfg(feature = "opendal")]
async fn connect_remote(url: &str, _scheme: &str) -> Result<AnyStorage> {
    Ok(AnyStorage::Remote(Box::new(
        storage_opendal::connect_url(url).await?,
    )))
}

#[cfg(not(feature = "opendal"))]
async fn connect_remote(_url: &str, scheme: &str) -> Result<AnyStorage> {
    let feature = if scheme == "webdavs" {
        "webdav"
    } else {
        scheme
    };
    Err(not_built(
        "remote",
        &format!("the '{feature}' cargo feature"),
    ))
}

async fn connect_legacy(
    url: &str,
    layout: LegacyLayout,
    options: DatabaseOptions,
) -> Result<AnyStorage> {
    match DatabaseUrl::parse(url)? {
        #[cfg(feature = "sqlite")]
        DatabaseUrl::Sqlite(_) => Ok(AnyStorage::SqliteLegacy(
            crate::SqliteLegacyStorage::connect(url, layout, options).await?,
        )),
        #[cfg(feature = "postgres")]
        DatabaseUrl::Postgres(_) => Ok(AnyStorage::PostgresLegacy(
            crate::PgLegacyStorage::connect(url, layout, options).await?,
        )),
        #[cfg(feature = "mysql")]
        DatabaseUrl::Mysql(_) => Ok(AnyStorage::MysqlLegacy(
            crate::MysqlLegacyStorage::connect(url, layout, options).await?,
        )),
        #[allow(unreachable_patterns)]
        _ => Err(not_built("database", "its cargo feature")),
    }
}

fn not_built(backend: &'static str, needs: &str) -> Error {
    Error::NotSupported {
        backend,
        operation: format!("this storage URL needs {needs}"),
    }
}

impl AnyStorage {
    /// The storage this URL opened, borrowed.
    fn as_dyn(&self) -> &dyn Storage {
        match self {
            #[cfg(feature = "sqlite")]
            Self::Sqlite(s) => s,
            #[cfg(feature = "postgres")]
            Self::Postgres(s) => s,
            #[cfg(feature = "mysql")]
            Self::Mysql(s) => s,
            #[cfg(feature = "sqlite")]
            Self::SqliteLegacy(s) => s,
            #[cfg(feature = "postgres")]
            Self::PostgresLegacy(s) => s,
            #[cfg(feature = "mysql")]
            Self::MysqlLegacy(s) => s,
            Self::FileSystem(s) => s,
            Self::Memory(s) => s.as_ref(),
            #[cfg(feature = "opendal")]
            Self::Remote(s) => s.as_ref(),
        }
    }

    /// The storage as a trait object. An `Arc<AnyStorage>` is one too, and a
    /// [`ReferenceSource`] as well: `Arc::new(connect_url(..).await?)` serves both a router and
    /// a field's [`delete_replaced`](crate::FileField::delete_replaced).
    pub fn storage(&self) -> Arc<dyn Storage> {
        match self {
            #[cfg(feature = "sqlite")]
            Self::Sqlite(s) => Arc::new(s.clone()),
            #[cfg(feature = "postgres")]
            Self::Postgres(s) => Arc::new(s.clone()),
            #[cfg(feature = "mysql")]
            Self::Mysql(s) => Arc::new(s.clone()),
            #[cfg(feature = "sqlite")]
            Self::SqliteLegacy(s) => Arc::new(s.clone()),
            #[cfg(feature = "postgres")]
            Self::PostgresLegacy(s) => Arc::new(s.clone()),
            #[cfg(feature = "mysql")]
            Self::MysqlLegacy(s) => Arc::new(s.clone()),
            Self::FileSystem(s) => Arc::new(s.clone()),
            Self::Memory(s) => Arc::clone(s) as Arc<dyn Storage>,
            #[cfg(feature = "opendal")]
            Self::Remote(s) => Arc::new(s.as_ref().clone()),
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
            #[cfg(feature = "sqlite")]
            Self::SqliteLegacy(s) => s.migrate().await,
            #[cfg(feature = "postgres")]
            Self::PostgresLegacy(s) => s.migrate().await,
            #[cfg(feature = "mysql")]
            Self::MysqlLegacy(s) => s.migrate().await,
            Self::FileSystem(_) | Self::Memory(_) => Ok(Vec::new()),
            #[cfg(feature = "opendal")]
            Self::Remote(_) => Ok(Vec::new()),
        }
    }

    /// The database whose rows reference stored files: this storage's own database; a
    /// filesystem or memory storage has none ([`Error::NotSupported`]).
    pub fn reference_source(&self) -> Result<&dyn ReferenceSource> {
        match self {
            #[cfg(feature = "sqlite")]
            Self::Sqlite(s) => Ok(s),
            #[cfg(feature = "postgres")]
            Self::Postgres(s) => Ok(s),
            #[cfg(feature = "mysql")]
            Self::Mysql(s) => Ok(s),
            #[cfg(feature = "sqlite")]
            Self::SqliteLegacy(s) => Ok(s),
            #[cfg(feature = "postgres")]
            Self::PostgresLegacy(s) => Ok(s),
            #[cfg(feature = "mysql")]
            Self::MysqlLegacy(s) => Ok(s),
            Self::FileSystem(_) | Self::Memory(_) => Err(Error::NotSupported {
                backend: "storage",
                operation: "referencing rows outside a database".to_owned(),
            }),
            #[cfg(feature = "opendal")]
            Self::Remote(_) => Err(Error::NotSupported {
                backend: "storage",
                operation: "referencing rows outside a database (give the app's database)"
                    .to_owned(),
            }),
        }
    }

    /// Sweeps abandoned uploads and retired versions on a database, stale staging files on the
    /// filesystem and on remote file servers.
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
            #[cfg(feature = "opendal")]
            Self::Remote(s) => Ok(SweepReport {
                files: s.remove_stale_uploads(pending_older_than).await? as u64,
            }),
            // Single-row layouts write in one statement: nothing is ever left half-written.
            Self::Memory(_) => Ok(SweepReport::default()),
            #[cfg(feature = "sqlite")]
            Self::SqliteLegacy(_) => Ok(SweepReport::default()),
            #[cfg(feature = "postgres")]
            Self::PostgresLegacy(_) => Ok(SweepReport::default()),
            #[cfg(feature = "mysql")]
            Self::MysqlLegacy(_) => Ok(SweepReport::default()),
        }
    }
}

/// The storage the URL opened, so one `Arc<AnyStorage>` is the storage for routes, uploads and
/// fields, and the [`ReferenceSource`] for replaced-file deletion and cleanup.
#[async_trait::async_trait]
impl Storage for AnyStorage {
    fn backend_name(&self) -> &'static str {
        self.as_dyn().backend_name()
    }

    fn capabilities(&self) -> Capabilities {
        self.as_dyn().capabilities()
    }

    async fn put_new(
        &self,
        names: &mut NameCandidates,
        content: ByteStream,
        options: &PutOptions,
    ) -> Result<FileMeta> {
        self.as_dyn().put_new(names, content, options).await
    }

    async fn put_overwrite(
        &self,
        name: &Name,
        content: ByteStream,
        options: &PutOptions,
    ) -> Result<FileMeta> {
        self.as_dyn().put_overwrite(name, content, options).await
    }

    async fn open(&self, name: &Name, range: Option<ByteRange>) -> Result<OpenedFile> {
        self.as_dyn().open(name, range).await
    }

    async fn metadata(&self, name: &Name) -> Result<FileMeta> {
        self.as_dyn().metadata(name).await
    }

    async fn remove(&self, name: &Name) -> Result<bool> {
        self.as_dyn().remove(name).await
    }

    async fn listdir(&self, dir: Option<&Name>) -> Result<Listing> {
        self.as_dyn().listdir(dir).await
    }

    async fn url(&self, name: &Name, valid_for: Option<Duration>) -> Result<String> {
        self.as_dyn().url(name, valid_for).await
    }

    fn default_visibility(&self) -> Visibility {
        self.as_dyn().default_visibility()
    }
}

#[async_trait::async_trait]
impl ReferenceSource for AnyStorage {
    async fn referenced_names(
        &self,
        references: &FileReferences,
    ) -> Result<std::collections::HashSet<String>> {
        self.reference_source()?.referenced_names(references).await
    }

    async fn is_referenced(&self, references: &FileReferences, name: &str) -> Result<bool> {
        self.reference_source()?
            .is_referenced(references, name)
            .await
    }

    async fn declared_references(&self) -> Result<FileReferences> {
        self.reference_source()?.declared_references().await
    }

    async fn declare_references(&self, references: &FileReferences) -> Result<()> {
        self.reference_source()?
            .declare_references(references)
            .await
    }

    async fn forget_references(&self, references: &FileReferences) -> Result<usize> {
        self.reference_source()?.forget_references(references).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The schemes sent to storage-opendal are the ones it opens (written twice because the
    /// dependency is optional).
    #[cfg(feature = "opendal")]
    #[test]
    fn remote_schemes_match_storage_opendal() {
        assert_eq!(REMOTE_SCHEMES, storage_opendal::SCHEMES);
    }

    #[test]
    fn layout_parameters_are_split_off() -> Result<()> {
        assert_eq!(
            split_layout("postgres://u@h/db?sslmode=disable&layout=binary-database-files")?,
            (
                "postgres://u@h/db?sslmode=disable".to_owned(),
                Some(LegacyLayout::BinaryDatabaseFiles)
            )
        );
        assert_eq!(
            split_layout("sqlite://media.db")?,
            ("sqlite://media.db".to_owned(), None)
        );
        let (url, layout) = split_layout(
            "mysql://root@127.0.0.1/test?layout=table&table=files&name_column=fname&blob_column=data",
        )?;
        assert_eq!(url, "mysql://root@127.0.0.1/test");
        assert!(matches!(layout, Some(LegacyLayout::Table(_))));
        assert!(matches!(
            split_layout("sqlite://media.db?sslmode=x"),
            Err(Error::BadRequest { .. })
        ));
        Ok(())
    }
}
