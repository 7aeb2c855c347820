//! Which table columns hold stored names, and the files no row references any more.
//!
//! A model's file field keeps a name in a column; the storage keeps the bytes. A file whose name
//! no referencing column holds is an orphan: left by a replaced or deleted row, or by an upload
//! whose row was never saved. [`OrphanCleanup`] finds and deletes them, never a file that a
//! declared column holds.

use std::collections::{BTreeSet, HashSet};
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use storage_core::{Error, FileMeta, Name, Result, Storage, StorageExt};

use crate::dialect::{is_identifier, Dialect};
use crate::pool::DbPool;

/// One column that holds stored names: `cars.photo`, or `schema.table.column`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ColumnRef {
    table: String,
    column: String,
}

impl ColumnRef {
    /// The column `column` of `table` (`table` or `schema.table`). Both must be plain
    /// identifiers (letters, digits, `_`): they are quoted into SQL, never taken as SQL.
    pub fn new(table: impl Into<String>, column: impl Into<String>) -> Result<Self> {
        let (table, column) = (table.into(), column.into());
        if !is_identifier(&table) || !is_identifier(&column) || column.contains('.') {
            return Err(Error::BadRequest {
                reason: format!("'{table}.{column}' is not TABLE.COLUMN with plain identifiers"),
            });
        }
        Ok(Self { table, column })
    }

    /// The table, possibly `schema.table`.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// The column.
    pub fn column(&self) -> &str {
        &self.column
    }
}

impl FromStr for ColumnRef {
    type Err = Error;

    /// Parses `TABLE.COLUMN` or `SCHEMA.TABLE.COLUMN`.
    fn from_str(text: &str) -> Result<Self> {
        let (table, column) = text.rsplit_once('.').ok_or_else(|| Error::BadRequest {
            reason: format!("'{text}' is not TABLE.COLUMN"),
        })?;
        Self::new(table, column)
    }
}

impl fmt::Display for ColumnRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.table, self.column)
    }
}

/// A set of referencing columns.
///
/// ```
/// use storage_diesel::FileReferences;
/// let references = FileReferences::parse(["cars.photo", "dealers.logo"])?;
/// assert_eq!(references.to_string(), "cars.photo, dealers.logo");
/// # Ok::<(), storage_core::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileReferences {
    columns: BTreeSet<ColumnRef>,
}

impl FileReferences {
    /// No columns.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses each `TABLE.COLUMN`.
    pub fn parse<I, S>(columns: I) -> Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut references = Self::new();
        for column in columns {
            references.insert(column.as_ref().parse()?);
        }
        Ok(references)
    }

    /// Adds a column (a field's [`crate::FileField::column`], say).
    #[must_use]
    pub fn with(mut self, column: ColumnRef) -> Self {
        self.insert(column);
        self
    }

    /// Adds a column.
    pub fn insert(&mut self, column: ColumnRef) {
        self.columns.insert(column);
    }

    /// Adds every column of `other`.
    pub fn extend(&mut self, other: &FileReferences) {
        self.columns.extend(other.columns.iter().cloned());
    }

    /// The columns, sorted.
    pub fn iter(&self) -> impl Iterator<Item = &ColumnRef> {
        self.columns.iter()
    }

    /// True when there are no columns.
    pub fn is_empty(&self) -> bool {
        self.columns.is_empty()
    }

    /// How many columns.
    pub fn len(&self) -> usize {
        self.columns.len()
    }
}

impl FromIterator<ColumnRef> for FileReferences {
    fn from_iter<T: IntoIterator<Item = ColumnRef>>(iter: T) -> Self {
        Self {
            columns: iter.into_iter().collect(),
        }
    }
}

impl fmt::Display for FileReferences {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, column) in self.columns.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{column}")?;
        }
        Ok(())
    }
}

/// The database the referencing rows live in (the app's database). Every database storage is
/// one, so is an [`AnyStorage`](crate::AnyStorage) connected to a database URL.
///
/// Declarations are kept in the database (table `storage_references`, created on first
/// declaration), so `dbfiles cleanup` honours the columns the app declared without being told.
#[async_trait]
pub trait ReferenceSource: Send + Sync + fmt::Debug {
    /// Every name the columns hold.
    async fn referenced_names(&self, references: &FileReferences) -> Result<HashSet<String>>;

    /// Whether any of the columns holds `name`.
    async fn is_referenced(&self, references: &FileReferences, name: &str) -> Result<bool>;

    /// The columns declared in this database.
    async fn declared_references(&self) -> Result<FileReferences>;

    /// Records the columns (idempotent; other declarations stay).
    async fn declare_references(&self, references: &FileReferences) -> Result<()>;

    /// Removes these declarations; how many were there.
    async fn forget_references(&self, references: &FileReferences) -> Result<usize>;
}

fn db_error<C: Dialect>(e: diesel::result::Error, what: &str) -> Error {
    Error::backend(C::BACKEND, what.to_owned(), e)
}

/// The [`ReferenceSource`] operations on a pool, shared by every database storage. Each is one
/// trip to the blocking pool with one connection, however many columns it reads.
pub(crate) async fn referenced_names_in<C: Dialect>(
    db: &Arc<DbPool<C>>,
    references: &FileReferences,
) -> Result<HashSet<String>> {
    let references = references.clone();
    db.run("references", move |conn| {
        let mut names = HashSet::new();
        for reference in references.iter() {
            let values = conn
                .column_values(reference.table(), reference.column())
                .map_err(|e| db_error::<C>(e, &format!("reading {reference}")))?;
            names.extend(values);
        }
        Ok(names)
    })
    .await
}

pub(crate) async fn is_referenced_in<C: Dialect>(
    db: &Arc<DbPool<C>>,
    references: &FileReferences,
    name: &str,
) -> Result<bool> {
    let (references, name) = (references.clone(), name.to_owned());
    db.run("references", move |conn| {
        for reference in references.iter() {
            if conn
                .holds_value(reference.table(), reference.column(), &name)
                .map_err(|e| db_error::<C>(e, &format!("reading {reference}")))?
            {
                return Ok(true);
            }
        }
        Ok(false)
    })
    .await
}

pub(crate) async fn declared_in<C: Dialect>(db: &Arc<DbPool<C>>) -> Result<FileReferences> {
    let rows = db
        .run("references", |conn| {
            conn.declared_references()
                .map_err(|e| db_error::<C>(e, "reading storage_references"))
        })
        .await?;
    rows.into_iter()
        .map(|(table, column)| ColumnRef::new(table, column))
        .collect()
}

pub(crate) async fn declare_in<C: Dialect>(
    db: &Arc<DbPool<C>>,
    references: &FileReferences,
) -> Result<()> {
    let references = references.clone();
    db.run("references", move |conn| {
        for reference in references.iter() {
            conn.declare_reference(reference.table(), reference.column())
                .map_err(|e| db_error::<C>(e, "writing storage_references"))?;
        }
        Ok(())
    })
    .await
}

pub(crate) async fn forget_in<C: Dialect>(
    db: &Arc<DbPool<C>>,
    references: &FileReferences,
) -> Result<usize> {
    let references = references.clone();
    db.run("references", move |conn| {
        let mut removed = 0;
        for reference in references.iter() {
            removed += conn
                .forget_reference(reference.table(), reference.column())
                .map_err(|e| db_error::<C>(e, "writing storage_references"))?;
        }
        Ok(removed)
    })
    .await
}

/// Implements [`ReferenceSource`] for a storage whose `inner.db` is its pool.
macro_rules! reference_source {
    ($storage:ident, $bound:path) => {
        #[async_trait::async_trait]
        impl<C: $bound> $crate::ReferenceSource for $storage<C> {
            async fn referenced_names(
                &self,
                references: &$crate::FileReferences,
            ) -> storage_core::Result<std::collections::HashSet<String>> {
                $crate::references::referenced_names_in(&self.inner.db, references).await
            }

            async fn is_referenced(
                &self,
                references: &$crate::FileReferences,
                name: &str,
            ) -> storage_core::Result<bool> {
                $crate::references::is_referenced_in(&self.inner.db, references, name).await
            }

            async fn declared_references(&self) -> storage_core::Result<$crate::FileReferences> {
                $crate::references::declared_in(&self.inner.db).await
            }

            async fn declare_references(
                &self,
                references: &$crate::FileReferences,
            ) -> storage_core::Result<()> {
                $crate::references::declare_in(&self.inner.db, references).await
            }

            async fn forget_references(
                &self,
                references: &$crate::FileReferences,
            ) -> storage_core::Result<usize> {
                $crate::references::forget_in(&self.inner.db, references).await
            }
        }
    };
}
pub(crate) use reference_source;

/// Most files one cleanup walks.
const MAX_FILES: usize = 10_000_000;

/// What [`OrphanCleanup::delete_all`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CleanupReport {
    /// Orphans deleted.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Candidates kept because a row came to reference them, or they changed, meanwhile.
    pub kept: u64,
}

/// Finds and deletes the files of a storage that no referencing column holds.
///
/// The columns are the ones declared in the reference source (see
/// [`ReferenceSource::declare_references`]) plus any given here; with none at all it refuses to
/// run, since every file would look like an orphan. A file modified within the last
/// `older_than` (one hour by default) is never an orphan: its row may not be saved yet. Just
/// before a delete the file's columns are asked again, so a row saved meanwhile keeps it.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use std::time::Duration;
/// use storage_core::StorageExt;
/// use storage_diesel::{DatabaseOptions, FileReferences, OrphanCleanup, ReferenceSource, SqliteStorage};
///
/// let dir = tempfile::tempdir().unwrap();
/// let url = format!("sqlite://{}/app.db", dir.path().display());
/// let storage = SqliteStorage::connect(&url, DatabaseOptions::new().migrate_on_connect(true)).await?;
/// storage.declare_references(&FileReferences::parse(["cars.photo"])?).await?;
/// # use diesel::connection::SimpleConnection;
/// # let mut conn = <diesel::SqliteConnection as diesel::Connection>::establish(
/// #     &format!("{}/app.db", dir.path().display())).unwrap();
/// # conn.batch_execute("CREATE TABLE cars (id INTEGER PRIMARY KEY, photo TEXT NOT NULL)").unwrap();
/// let kept = storage.save("cars/chevy.jpg", b"...").await?;
/// # conn.batch_execute("INSERT INTO cars (photo) VALUES ('cars/chevy.jpg')").unwrap();
/// let lost = storage.save("cars/never-saved-row.jpg", b"...").await?;
///
/// let cleanup = OrphanCleanup::new(&storage, &storage, &FileReferences::new()).await?
///     .older_than(Duration::ZERO);
/// let orphans = cleanup.find().await?;
/// assert_eq!(orphans.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(), [lost.name.as_str()]);
/// assert_eq!(cleanup.delete_all().await?.files, 1);
/// assert!(storage.exists(kept.name.as_str()).await?);
/// # Ok::<(), storage_core::Error>(()) }).unwrap();
/// ```
pub struct OrphanCleanup<'a> {
    storage: &'a dyn Storage,
    source: &'a dyn ReferenceSource,
    references: FileReferences,
    older_than: Duration,
}

impl fmt::Debug for OrphanCleanup<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OrphanCleanup")
            .field("references", &self.references)
            .field("older_than", &self.older_than)
            .finish_non_exhaustive()
    }
}

impl<'a> OrphanCleanup<'a> {
    /// A cleanup of `storage` against the rows of `source`: the columns declared there plus
    /// `extra`. No column at all is [`Error::BadRequest`].
    pub async fn new(
        storage: &'a dyn Storage,
        source: &'a dyn ReferenceSource,
        extra: &FileReferences,
    ) -> Result<Self> {
        let mut references = source.declared_references().await?;
        references.extend(extra);
        if references.is_empty() {
            return Err(Error::BadRequest {
                reason: "no referencing column is declared or given: every file would look \
                         unreferenced"
                    .to_owned(),
            });
        }
        Ok(Self {
            storage,
            source,
            references,
            older_than: Duration::from_secs(3600),
        })
    }

    /// Files modified more recently than this are left alone (default one hour).
    #[must_use]
    pub fn older_than(mut self, age: Duration) -> Self {
        self.older_than = age;
        self
    }

    /// The columns consulted.
    pub fn references(&self) -> &FileReferences {
        &self.references
    }

    fn old_enough(&self, meta: &FileMeta) -> bool {
        SystemTime::now()
            .duration_since(meta.modified)
            .is_ok_and(|age| age >= self.older_than)
    }

    /// The orphans, sorted by name.
    pub async fn find(&self) -> Result<Vec<FileMeta>> {
        let referenced = self.source.referenced_names(&self.references).await?;
        let mut orphans = Vec::new();
        for name in self.storage.all_names(MAX_FILES).await? {
            if referenced.contains(name.as_str()) {
                continue;
            }
            match self.storage.metadata(&name).await {
                Ok(meta) if self.old_enough(&meta) => orphans.push(meta),
                Ok(_) | Err(Error::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(orphans)
    }

    /// Deletes one orphan [`find`](Self::find) returned, unless a row references it now or it
    /// changed since (then `false`).
    pub async fn delete(&self, orphan: &FileMeta) -> Result<bool> {
        let name: &Name = &orphan.name;
        let now = match self.storage.metadata(name).await {
            Ok(meta) => meta,
            Err(Error::NotFound { .. }) => return Ok(false),
            Err(e) => return Err(e),
        };
        if now.modified != orphan.modified || !self.old_enough(&now) {
            return Ok(false);
        }
        if self
            .source
            .is_referenced(&self.references, name.as_str())
            .await?
        {
            return Ok(false);
        }
        self.storage.delete(name).await
    }

    /// Finds and deletes every orphan.
    pub async fn delete_all(&self) -> Result<CleanupReport> {
        let mut report = CleanupReport::default();
        for orphan in self.find().await? {
            if self.delete(&orphan).await? {
                report.files += 1;
                report.bytes += orphan.size;
            } else {
                report.kept += 1;
            }
        }
        Ok(report)
    }
}
