//! [`LegacyStorage`]: a whole file in one row, in the tables Django apps already use, so a Rust
//! service and a Django app can share their files while a team moves from one to the other.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use sha2::{Digest, Sha256, Sha512};
use storage_core::naming::NameCandidates;
use storage_core::{
    guess_content_type, ByteRange, ByteStream, Capabilities, Error, FileMeta, Listing, Name,
    OpenedFile, PutOptions, Result, Storage, Visibility,
};

use crate::dialect::{is_identifier, is_unique_violation};
use crate::legacy_sql::{Columns, FoundRow, LegacyDialect, LegacySql, NewRow, SLICE};
use crate::pool::DbPool;
use crate::storage::{list_by_name_ranges, time_of, DatabaseOptions};

/// The name column of django-binary-database-files is `varchar(255)`.
const DJANGO_NAME_LENGTH: usize = 255;

/// Which single-row table a [`LegacyStorage`] reads and writes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LegacyLayout {
    /// django-binary-database-files' `binary_database_files_file` (`id`, `name`, `size`,
    /// `content`, `created_datetime`, `content_hash`), with `content_hash` computed exactly as
    /// that package computes it.
    BinaryDatabaseFiles,
    /// A table of your own with name, blob and (optionally) size columns, as the old
    /// django-storages `DatabaseStorage` was configured (`db_table`, `fname_column`,
    /// `blob_column`, `size_column`).
    Table(TableLayout),
}

/// The table and columns of [`LegacyLayout::Table`]. Only plain identifiers (letters, digits,
/// `_`; `schema.table` for the table) are accepted: they are quoted into the SQL, and every value
/// is bound as a parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TableLayout {
    /// The table (`db_table`).
    pub table: String,
    /// The column holding the name (`fname_column`); it must be unique (primary key or unique
    /// index), which [`LegacyStorage::connect`] checks.
    pub name_column: String,
    /// The column holding the bytes (`blob_column`).
    pub blob_column: String,
    /// The column holding the size, written on save (`size_column`).
    pub size_column: Option<String>,
}

impl TableLayout {
    /// A layout with name and blob columns; add a size column with [`Self::size_column`].
    pub fn new(table: &str, name_column: &str, blob_column: &str) -> Result<Self> {
        let layout = Self {
            table: checked(table, true)?,
            name_column: checked(name_column, false)?,
            blob_column: checked(blob_column, false)?,
            size_column: None,
        };
        if layout.name_column == layout.blob_column {
            return Err(Error::BadRequest {
                reason: "the name and blob columns must differ".to_owned(),
            });
        }
        Ok(layout)
    }

    /// Sets the size column.
    pub fn size_column(mut self, column: &str) -> Result<Self> {
        self.size_column = Some(checked(column, false)?);
        Ok(self)
    }
}

fn checked(identifier: &str, dotted: bool) -> Result<String> {
    if is_identifier(identifier) && (dotted || !identifier.contains('.')) {
        Ok(identifier.to_owned())
    } else {
        Err(Error::BadRequest {
            reason: format!("'{identifier}' is not a plain SQL identifier"),
        })
    }
}

impl LegacyLayout {
    /// The storage URL query parameters that choose a layout; the others go to the driver.
    pub const PARAMS: [&'static str; 5] = [
        "layout",
        "table",
        "name_column",
        "blob_column",
        "size_column",
    ];

    /// Reads `layout=...` and its parameters from a storage URL's query pairs:
    /// `layout=binary-database-files`, or
    /// `layout=table&table=T&name_column=N&blob_column=B[&size_column=S]`. `None` without a
    /// `layout` parameter.
    pub fn from_params<'a>(
        params: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Option<Self>> {
        let mut layout = None;
        let (mut table, mut name, mut blob, mut size) = (None, None, None, None);
        for (key, value) in params {
            match key {
                "layout" => layout = Some(value),
                "table" => table = Some(value),
                "name_column" => name = Some(value),
                "blob_column" => blob = Some(value),
                "size_column" => size = Some(value),
                _ => {}
            }
        }
        let bad = |reason: &str| Error::BadRequest {
            reason: reason.to_owned(),
        };
        match layout {
            None if table.is_some() || name.is_some() || blob.is_some() || size.is_some() => {
                Err(bad("table and column parameters need layout=table"))
            }
            None | Some("chunked") => Ok(None),
            Some("binary-database-files") => Ok(Some(Self::BinaryDatabaseFiles)),
            Some("table") => {
                let (Some(table), Some(name), Some(blob)) = (table, name, blob) else {
                    return Err(bad(
                        "layout=table needs table, name_column and blob_column parameters",
                    ));
                };
                let mut layout = TableLayout::new(table, name, blob)?;
                if let Some(size) = size {
                    layout = layout.size_column(size)?;
                }
                Ok(Some(Self::Table(layout)))
            }
            Some(other) => Err(bad(&format!(
                "unknown layout '{other}' (expected chunked, binary-database-files or table)"
            ))),
        }
    }

    fn columns(&self, quote: char) -> Columns {
        let q = |ident: &str| {
            ident
                .split('.')
                .map(|part| format!("{quote}{part}{quote}"))
                .collect::<Vec<_>>()
                .join(".")
        };
        match self {
            Self::BinaryDatabaseFiles => Columns {
                table: q("binary_database_files_file"),
                name: q("name"),
                blob: q("content"),
                size: Some(q("size")),
                django: true,
            },
            Self::Table(t) => Columns {
                table: q(&t.table),
                name: q(&t.name_column),
                blob: q(&t.blob_column),
                size: t.size_column.as_deref().map(q),
                django: false,
            },
        }
    }

    fn table_label(&self) -> &str {
        match self {
            Self::BinaryDatabaseFiles => "binary_database_files_file",
            Self::Table(t) => &t.table,
        }
    }
}

/// django-binary-database-files' content hash with its default settings
/// (`DB_FILES_DEFAULT_ENFORCE_ENCODING = True`, encoding `ascii`, errors `ignore`): SHA-512 of the
/// content with every byte from 0x80 up dropped, as 128 hex digits. Decoding ASCII with
/// `ignore` drops exactly those bytes, whatever the read size, so the package's hash of a file on
/// disk (`get_file_hash`) and of the column (`get_text_hash`) agree with this one.
#[derive(Debug, Clone, Default)]
pub struct DjangoContentHasher {
    hasher: Sha512,
}

impl DjangoContentHasher {
    /// A new hasher.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        if bytes.is_ascii() {
            self.hasher.update(bytes);
        } else {
            let ascii: Vec<u8> = bytes.iter().copied().filter(u8::is_ascii).collect();
            self.hasher.update(&ascii);
        }
    }

    /// The hash as lower-case hex.
    pub fn finish(self) -> String {
        hex::encode(self.hasher.finalize())
    }

    /// The hash of `bytes`.
    pub fn of(bytes: &[u8]) -> String {
        let mut hasher = Self::new();
        hasher.update(bytes);
        hasher.finish()
    }
}

/// Files in a single-row table: see [`LegacyLayout`]. Use the aliases
/// [`SqliteLegacyStorage`](crate::SqliteLegacyStorage),
/// [`PgLegacyStorage`](crate::PgLegacyStorage) and
/// [`MysqlLegacyStorage`](crate::MysqlLegacyStorage), or a storage URL with `?layout=...`.
///
/// A file is one row, so a save holds the whole file in memory (up to
/// [`DatabaseOptions::single_row_max_size`]) and the database holds it in one value. Reads
/// stream: the first megabyte comes with the metadata, the rest in 1 MiB `substring` slices of
/// the blob, and a range read fetches only its bytes. These layouts have no visibility column,
/// so every file is public. The SHA-256 (for the ETag) is computed by the database on each
/// metadata lookup, one pass over the blob; the chunked layout stores it instead.
#[allow(private_bounds)]
pub struct LegacyStorage<C: LegacyDialect> {
    inner: Arc<Inner<C>>,
}

struct Inner<C: LegacyDialect> {
    db: Arc<DbPool<C>>,
    layout: LegacyLayout,
    sql: LegacySql,
    options: DatabaseOptions,
    max_file_size: u64,
    _conn: PhantomData<fn() -> C>,
}

impl<C: LegacyDialect> Clone for LegacyStorage<C> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<C: LegacyDialect> fmt::Debug for LegacyStorage<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LegacyStorage")
            .field("database", &self.inner.db.label())
            .field("layout", &self.inner.layout)
            .finish_non_exhaustive()
    }
}

fn db_error<C: LegacyDialect>(e: diesel::result::Error, what: &str) -> Error {
    Error::backend(C::BACKEND, format!("{what} failed"), e)
}

/// A file read into memory for its one-row insert.
struct Collected {
    content: Bytes,
    sha256: [u8; 32],
    /// `None` for empty content: the package stores NULL then (it hashes only truthy content).
    django_hash: Option<String>,
}

#[allow(private_bounds)]
impl<C: LegacyDialect> LegacyStorage<C> {
    /// Connects to `url` and checks the table: it must exist (unless `migrate_on_connect`
    /// creates it) and its name column must be unique, so two writers racing for one name can
    /// never both win.
    pub async fn connect(
        url: &str,
        layout: LegacyLayout,
        options: DatabaseOptions,
    ) -> Result<Self> {
        let db = DbPool::<C>::connect(url, options.pool_size, options.connect_timeout).await?;
        let sql = LegacySql::new(&C::FLAVOR, &layout.columns(C::FLAVOR.quote));
        let limit = db
            .run("connect", |conn| {
                conn.legacy_statement_limit()
                    .map_err(|e| db_error::<C>(e, "reading the server's limits"))
            })
            .await?;
        // A statement carries the blob plus a little SQL and the other values.
        let max_file_size = match limit {
            Some(limit) => options
                .single_row_max_size
                .min(limit.saturating_sub(64 * 1024)),
            None => options.single_row_max_size,
        };
        let storage = Self {
            inner: Arc::new(Inner {
                db,
                layout,
                sql,
                options,
                max_file_size,
                _conn: PhantomData,
            }),
        };
        if storage.inner.options.migrate_on_connect {
            storage.migrate().await?;
        }
        storage.check_table().await?;
        Ok(storage)
    }

    /// Creates the table if it is missing: django-binary-database-files' table exactly as its
    /// migration `0001_initial` creates it (as Django's `sqlmigrate` prints it for this
    /// database), or, for a table layout, a table with the name as primary key. An existing
    /// table is never altered. Returns what was created.
    ///
    /// If a Django app will manage the table later, run its `migrate --fake-initial`.
    pub async fn migrate(&self) -> Result<Vec<String>> {
        let inner = Arc::clone(&self.inner);
        self.inner
            .db
            .run("migrate", move |conn| {
                if conn.legacy_table_exists(&inner.sql) {
                    return Ok(Vec::new());
                }
                let ddl = match inner.layout {
                    LegacyLayout::BinaryDatabaseFiles => C::DJANGO_DDL.to_owned(),
                    LegacyLayout::Table(_) => format!("{};", inner.sql.create_table),
                };
                conn.legacy_execute(&ddl)
                    .map_err(|e| db_error::<C>(e, "creating the table"))?;
                Ok(vec![inner.layout.table_label().to_owned()])
            })
            .await
    }

    async fn check_table(&self) -> Result<()> {
        let inner = Arc::clone(&self.inner);
        self.inner
            .db
            .run("check", move |conn| {
                let table = inner.layout.table_label();
                if !conn.legacy_table_exists(&inner.sql) {
                    return Err(Error::Backend {
                        backend: C::BACKEND,
                        message: format!(
                            "table '{table}' not found in {} (run `dbfiles migrate` or the Django app's migrations)",
                            inner.db.label()
                        ),
                        source: None,
                    });
                }
                if matches!(inner.layout, LegacyLayout::Table(_)) {
                    let probe = format!(".dbfiles-unique-probe-{:016x}", rand::random::<u64>());
                    let row = inner.new_row(&probe, b"", None);
                    let unique = conn.legacy_name_is_unique(&inner.sql, &row).map_err(|e| {
                        db_error::<C>(e, &format!("writing a test row into table '{table}'"))
                    })?;
                    if !unique {
                        return Err(Error::Backend {
                            backend: C::BACKEND,
                            message: format!(
                                "the name column of table '{table}' is not unique: add a primary key or unique index on it, or two writers could store one name twice"
                            ),
                            source: None,
                        });
                    }
                }
                Ok(())
            })
            .await
    }

    /// The layout.
    pub fn layout(&self) -> &LegacyLayout {
        &self.inner.layout
    }

    /// The largest file this storage saves (the configured limit, lowered to what the server
    /// accepts in one statement, such as MySQL's `max_allowed_packet`).
    pub fn max_file_size(&self) -> u64 {
        self.inner.max_file_size
    }

    /// The database, without credentials.
    pub fn database_label(&self) -> &str {
        self.inner.db.label()
    }

    async fn collect(&self, mut content: ByteStream) -> Result<Collected> {
        let limit = self.inner.max_file_size;
        let mut buffer = BytesMut::new();
        let mut sha = Sha256::new();
        let mut django = DjangoContentHasher::new();
        while let Some(piece) = content.next().await {
            let piece = piece?;
            if buffer.len() as u64 + piece.len() as u64 > limit {
                return Err(Error::TooLarge { limit });
            }
            sha.update(&piece);
            django.update(&piece);
            buffer.extend_from_slice(&piece);
        }
        let empty = buffer.is_empty();
        Ok(Collected {
            content: buffer.freeze(),
            sha256: sha.finalize().into(),
            django_hash: (!empty).then(|| django.finish()),
        })
    }

    fn check_put(&self, name: &Name, options: &PutOptions) -> Result<()> {
        if options.visibility == Visibility::Private {
            return Err(Error::NotSupported {
                backend: C::BACKEND,
                operation: format!(
                    "private files in the single-row table '{}' (it has no visibility column)",
                    self.inner.layout.table_label()
                ),
            });
        }
        self.check_name(name)
    }

    fn check_name(&self, name: &Name) -> Result<()> {
        if let Some(limit) = self.name_limit() {
            if name.char_len() > limit {
                return Err(Error::InvalidName {
                    name: name.to_string(),
                    reason: format!("longer than the table's {limit} characters"),
                });
            }
        }
        Ok(())
    }

    fn name_limit(&self) -> Option<usize> {
        match self.inner.layout {
            LegacyLayout::BinaryDatabaseFiles => Some(DJANGO_NAME_LENGTH),
            LegacyLayout::Table(_) => None,
        }
    }

    fn meta(&self, name: Name, found: &FoundRow) -> FileMeta {
        let modified = found.created.map_or_else(SystemTime::now, time_of);
        let size = u64::try_from(found.size).unwrap_or(0);
        let sha256 = found.sha256.as_deref().and_then(|digits| {
            let mut out = [0u8; 32];
            hex::decode_to_slice(digits, &mut out).ok().map(|()| out)
        });
        let content_type = guess_content_type(name.as_str());
        let meta = match sha256 {
            Some(sha256) => FileMeta::new(name, size, sha256, modified),
            // Only a NULL blob has no checksum; it reads as empty.
            None => FileMeta::new(name, size, Sha256::digest(b"").into(), modified),
        };
        meta.with_content_type(content_type)
            .with_django_content_hash(found.content_hash.clone())
    }

    async fn find(&self, name: &Name, with_head: bool) -> Result<FoundRow> {
        self.check_name(name)?;
        let inner = Arc::clone(&self.inner);
        let owned = name.to_string();
        self.inner
            .db
            .run("open", move |conn| {
                conn.legacy_find(&inner.sql, with_head, &owned)
                    .map_err(|e| db_error::<C>(e, "open"))
            })
            .await?
            .ok_or_else(|| Error::NotFound {
                name: name.to_string(),
            })
    }

    /// Streams `range` of the row: slices after the first, each checked to be of the row the
    /// metadata came from (same id where the table has one); a full read is checked against the
    /// SHA-256 at the end, so a file replaced mid-read fails instead of mixing two versions.
    fn slices(
        &self,
        name: &Name,
        found: FoundRow,
        range: std::ops::Range<u64>,
        expected: Option<[u8; 32]>,
    ) -> ByteStream {
        if range.is_empty() {
            return storage_core::empty_stream();
        }
        let slice = u64::try_from(SLICE).unwrap_or(1 << 20);
        let head = found.head.map(Bytes::from);
        let storage = self.clone();
        let (owned, id) = (name.to_string(), found.id);
        let verify = expected.filter(|_| range.start == 0 && range.end == found.size as u64);
        let end = range.end;
        let state = (range.start, head, Sha256::new());
        let stream = futures::stream::try_unfold(state, move |(at, head, mut hasher)| {
            let (storage, owned) = (storage.clone(), owned.clone());
            async move {
                if at >= end {
                    if let Some(expected) = verify {
                        if <[u8; 32]>::from(hasher.finalize()) != expected {
                            return Err(changed_while_read::<C>());
                        }
                    }
                    return Ok(None);
                }
                let want = (end - at).min(slice);
                let data = match head.filter(|h| at == 0 && h.len() as u64 >= want) {
                    Some(head) => head.slice(..usize::try_from(want).unwrap_or(0)),
                    None => {
                        let inner = Arc::clone(&storage.inner);
                        let (from, len) = (
                            i64::try_from(at + 1).unwrap_or(i64::MAX),
                            i64::try_from(want).unwrap_or(0),
                        );
                        let data = storage
                            .inner
                            .db
                            .run("read", move |conn| {
                                conn.legacy_slice(&inner.sql, &owned, id, from, len)
                                    .map_err(|e| db_error::<C>(e, "read"))
                            })
                            .await?
                            .ok_or_else(changed_while_read::<C>)?;
                        Bytes::from(data)
                    }
                };
                if data.len() as u64 != want {
                    return Err(changed_while_read::<C>());
                }
                hasher.update(&data);
                Ok(Some((data, (at + want, None, hasher))))
            }
        });
        Box::pin(stream)
    }

    async fn insert_first_free(
        &self,
        names: &mut NameCandidates,
        collected: &Collected,
    ) -> Result<Name> {
        // Bounded by the candidates: each round moves on to the next or returns.
        loop {
            let name = names.current().clone();
            self.check_name(&name)?;
            let inner = Arc::clone(&self.inner);
            let (owned, content, hash) = (
                name.to_string(),
                collected.content.clone(),
                collected.django_hash.clone(),
            );
            let stored = self
                .inner
                .db
                .run("save", move |conn| {
                    // A cheap look first, so a taken name does not cost sending the content.
                    let taken = conn
                        .legacy_count(&inner.sql, &owned)
                        .map_err(|e| db_error::<C>(e, "save"))?
                        > 0;
                    if taken {
                        return Ok(false);
                    }
                    let row = inner.new_row(&owned, &content, hash.as_deref());
                    match conn.legacy_insert(&inner.sql, &row) {
                        Ok(_) => Ok(true),
                        Err(e) if is_unique_violation(&e) => Ok(false),
                        Err(e) => Err(db_error::<C>(e, "save")),
                    }
                })
                .await?;
            if stored {
                return Ok(name);
            }
            names.next_after_collision()?;
        }
    }
}

impl<C: LegacyDialect> Inner<C> {
    fn new_row<'a>(&self, name: &'a str, content: &'a [u8], hash: Option<&'a str>) -> NewRow<'a> {
        NewRow {
            name,
            content,
            size: i64::try_from(content.len()).unwrap_or(i64::MAX),
            content_hash: hash,
            django: matches!(self.layout, LegacyLayout::BinaryDatabaseFiles),
            with_size: matches!(&self.layout, LegacyLayout::Table(t) if t.size_column.is_some()),
        }
    }
}

fn changed_while_read<C: LegacyDialect>() -> Error {
    Error::backend(
        C::BACKEND,
        "the file was replaced or deleted while being read",
        std::io::Error::from(std::io::ErrorKind::UnexpectedEof),
    )
}

#[async_trait]
impl<C: LegacyDialect> Storage for LegacyStorage<C> {
    fn backend_name(&self) -> &'static str {
        C::BACKEND
    }

    fn capabilities(&self) -> Capabilities {
        let mut caps = Capabilities::full();
        caps.stored_content_type = false;
        caps.private_files = false;
        caps.max_name_length = self.name_limit();
        caps.max_file_size = Some(self.inner.max_file_size);
        caps
    }

    async fn put_new(
        &self,
        names: &mut NameCandidates,
        content: ByteStream,
        options: &PutOptions,
    ) -> Result<FileMeta> {
        self.check_put(names.current(), options)?;
        let collected = self.collect(content).await?;
        let name = self.insert_first_free(names, &collected).await?;
        Ok(self.saved_meta(name, &collected, options))
    }

    async fn put_overwrite(
        &self,
        name: &Name,
        content: ByteStream,
        options: &PutOptions,
    ) -> Result<FileMeta> {
        self.check_put(name, options)?;
        let collected = self.collect(content).await?;
        let inner = Arc::clone(&self.inner);
        let (owned, data, hash) = (
            name.to_string(),
            collected.content.clone(),
            collected.django_hash.clone(),
        );
        // Bounded: each retry means another writer created the name between our delete and
        // insert.
        for _ in 0..16 {
            let (inner, owned, data, hash) = (
                Arc::clone(&inner),
                owned.clone(),
                data.clone(),
                hash.clone(),
            );
            let replaced = self
                .inner
                .db
                .run("save", move |conn| {
                    let row = inner.new_row(&owned, &data, hash.as_deref());
                    match conn.legacy_replace(&inner.sql, &row) {
                        Ok(_) => Ok(true),
                        Err(e) if is_unique_violation(&e) => Ok(false),
                        Err(e) => Err(db_error::<C>(e, "save")),
                    }
                })
                .await?;
            if replaced {
                return Ok(self.saved_meta(name.clone(), &collected, options));
            }
        }
        Err(Error::AlreadyExists {
            name: name.to_string(),
        })
    }

    async fn open(&self, name: &Name, range: Option<ByteRange>) -> Result<OpenedFile> {
        let from_start = match range {
            None => true,
            Some(ByteRange::Bounded { start, .. } | ByteRange::From(start)) => start == 0,
            Some(ByteRange::Suffix(_)) => false,
        };
        let found = self.find(name, from_start).await?;
        let meta = self.meta(name.clone(), &found);
        let range = range.unwrap_or(ByteRange::From(0)).resolve(meta.size)?;
        let stream = self.slices(name, found, range.clone(), meta.sha256);
        Ok(OpenedFile {
            meta,
            range,
            stream,
        })
    }

    async fn metadata(&self, name: &Name) -> Result<FileMeta> {
        let found = self.find(name, false).await?;
        Ok(self.meta(name.clone(), &found))
    }

    async fn remove(&self, name: &Name) -> Result<bool> {
        if self.check_name(name).is_err() {
            return Ok(false);
        }
        let inner = Arc::clone(&self.inner);
        let owned = name.to_string();
        let deleted = self
            .inner
            .db
            .run("delete", move |conn| {
                conn.legacy_delete(&inner.sql, &owned)
                    .map_err(|e| db_error::<C>(e, "delete"))
            })
            .await?;
        Ok(deleted > 0)
    }

    async fn listdir(&self, dir: Option<&Name>) -> Result<Listing> {
        list_by_name_ranges(dir, |from, inclusive, upper| {
            let inner = Arc::clone(&self.inner);
            async move {
                self.inner
                    .db
                    .run("listdir", move |conn| {
                        conn.legacy_names(&inner.sql, &from, inclusive, upper.as_deref())
                            .map_err(|e| db_error::<C>(e, "listdir"))
                    })
                    .await
            }
        })
        .await
    }

    fn default_visibility(&self) -> Visibility {
        Visibility::Public
    }

    async fn url(&self, name: &Name, valid_for: Option<Duration>) -> Result<String> {
        let meta = self.metadata(name).await?;
        self.inner
            .options
            .url_policy()
            .url(C::BACKEND, &meta, valid_for)
    }
}

#[allow(private_bounds)]
impl<C: LegacyDialect> LegacyStorage<C> {
    fn saved_meta(&self, name: Name, collected: &Collected, options: &PutOptions) -> FileMeta {
        FileMeta::new(
            name,
            collected.content.len() as u64,
            collected.sha256,
            SystemTime::now(),
        )
        .with_content_type(options.content_type.clone())
        .with_django_content_hash(
            matches!(self.inner.layout, LegacyLayout::BinaryDatabaseFiles)
                .then(|| collected.django_hash.clone())
                .flatten(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn django_hash_drops_high_bytes_like_the_package() {
        // hashlib.sha512(b"").hexdigest() and of b"abc": the package hashes the ASCII bytes.
        assert_eq!(
            DjangoContentHasher::of(b"\xff\xfe\x80"),
            DjangoContentHasher::of(b"")
        );
        assert_eq!(
            DjangoContentHasher::of("aé€b".as_bytes()),
            DjangoContentHasher::of(b"ab")
        );
        assert_eq!(
            DjangoContentHasher::of(b"abc"),
            "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a\
             2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"
        );
        let mut split = DjangoContentHasher::new();
        split.update(b"a\xc3");
        split.update(b"\xa9bc");
        assert_eq!(split.finish(), DjangoContentHasher::of(b"abc"));
    }

    #[test]
    fn layouts_from_url_parameters() -> Result<()> {
        assert_eq!(LegacyLayout::from_params([])?, None);
        assert_eq!(
            LegacyLayout::from_params([("layout", "binary-database-files")])?,
            Some(LegacyLayout::BinaryDatabaseFiles)
        );
        let table = LegacyLayout::from_params([
            ("layout", "table"),
            ("table", "app.files"),
            ("name_column", "filename"),
            ("blob_column", "data"),
            ("size_column", "size"),
        ])?;
        assert_eq!(
            table,
            Some(LegacyLayout::Table(
                TableLayout::new("app.files", "filename", "data")?.size_column("size")?
            ))
        );
        for bad in [
            vec![("layout", "table"), ("table", "files")],
            vec![("layout", "nope")],
            vec![("table", "files")],
            vec![
                ("layout", "table"),
                ("table", "files; DROP TABLE x"),
                ("name_column", "n"),
                ("blob_column", "b"),
            ],
            vec![
                ("layout", "table"),
                ("table", "files"),
                ("name_column", "n\""),
                ("blob_column", "b"),
            ],
        ] {
            let result = LegacyLayout::from_params(bad.clone());
            assert!(
                matches!(result, Err(Error::BadRequest { .. })),
                "{bad:?}: {result:?}"
            );
        }
        Ok(())
    }
}

crate::references::reference_source!(LegacyStorage, LegacyDialect);
crate::pool::app_connection!(LegacyStorage, LegacyDialect);
