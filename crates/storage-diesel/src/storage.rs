//! [`DieselStorage`]: the chunked database backend over an r2d2 pool.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::{StreamExt, TryStreamExt};
use storage_core::naming::NameCandidates;
use storage_core::{
    ByteRange, ByteStream, Capabilities, ContentHasher, Error, FileMeta, Listing, Name, OpenedFile,
    PutOptions, Result, Storage, UrlPolicy, UrlSigner, UrlStyle, Visibility,
};

use crate::dialect::{Dialect, FileRow, Publish, Published};
use crate::pool::DbPool;

/// How a [`DieselStorage`] connects and stores.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DatabaseOptions {
    /// Most connections the pool opens (default 10).
    pub pool_size: u32,
    /// Bytes per chunk for new files (default 1 MiB). Reads and writes hold about one chunk.
    pub chunk_size: usize,
    /// How long to wait for a connection before failing (default 10 s).
    pub connect_timeout: Duration,
    /// Base of the URLs `url()` returns (default `/media/`); `None` makes `url()` unsupported.
    pub base_url: Option<String>,
    /// Run pending migrations when connecting (default `false`: call
    /// [`DieselStorage::migrate`] yourself, for example from a deploy step).
    pub migrate_on_connect: bool,
    /// How many chunks one read query fetches at most (default 4).
    pub read_batch_chunks: usize,
    /// The visibility of files saved without one (default private).
    pub default_visibility: Visibility,
    /// Signs the URLs of private files.
    pub url_signer: Option<UrlSigner>,
    /// Route (the default: `base_url` + name) or media URL (for a disk mirror behind nginx or a
    /// CDN) for public files.
    pub url_style: UrlStyle,
    /// Put before relative URLs, such as `https://files.example.com`.
    pub absolute_base_url: Option<String>,
    /// The largest file a single-row layout ([`LegacyStorage`](crate::LegacyStorage)) saves
    /// (default 64 MiB): such a save holds the file in memory, and the database takes it as one
    /// value. The chunked layout has no such limit.
    pub single_row_max_size: u64,
}

impl Default for DatabaseOptions {
    fn default() -> Self {
        Self {
            pool_size: 10,
            chunk_size: 1 << 20,
            connect_timeout: Duration::from_secs(10),
            base_url: Some("/media/".to_owned()),
            migrate_on_connect: false,
            read_batch_chunks: 4,
            default_visibility: Visibility::Private,
            url_signer: None,
            url_style: UrlStyle::Route,
            absolute_base_url: None,
            single_row_max_size: 64 << 20,
        }
    }
}

impl DatabaseOptions {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the pool size.
    #[must_use]
    pub fn pool_size(mut self, pool_size: u32) -> Self {
        self.pool_size = pool_size.max(1);
        self
    }

    /// Sets the chunk size in bytes (at least 1 KiB, at most 16 MiB).
    #[must_use]
    pub fn chunk_size(mut self, chunk_size: usize) -> Self {
        self.chunk_size = chunk_size.clamp(1024, 16 << 20);
        self
    }

    /// Sets the connection timeout.
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets the base URL.
    #[must_use]
    pub fn base_url(mut self, base_url: Option<&str>) -> Self {
        self.base_url = base_url.map(str::to_owned);
        self
    }

    /// Sets the visibility of files saved without one.
    #[must_use]
    pub fn default_visibility(mut self, visibility: Visibility) -> Self {
        self.default_visibility = visibility;
        self
    }

    /// Signs the URLs of private files with `signer`.
    #[must_use]
    pub fn url_signer(mut self, signer: UrlSigner) -> Self {
        self.url_signer = Some(signer);
        self
    }

    /// Sets the largest file a single-row layout saves.
    #[must_use]
    pub fn single_row_max_size(mut self, bytes: u64) -> Self {
        self.single_row_max_size = bytes;
        self
    }

    /// Sets the URL style.
    #[must_use]
    pub fn url_style(mut self, style: UrlStyle) -> Self {
        self.url_style = style;
        self
    }

    /// Sets the absolute base put before relative URLs.
    #[must_use]
    pub fn absolute_base_url(mut self, base: Option<&str>) -> Self {
        self.absolute_base_url = base.map(str::to_owned);
        self
    }

    /// The URL policy these options describe.
    pub fn url_policy(&self) -> UrlPolicy {
        let mut policy = UrlPolicy::new(self.base_url.as_deref());
        policy.style = self.url_style.clone();
        policy.absolute_base = self.absolute_base_url.clone();
        policy.signer = self.url_signer.clone();
        policy
    }

    /// Runs migrations when connecting.
    #[must_use]
    pub fn migrate_on_connect(mut self, migrate: bool) -> Self {
        self.migrate_on_connect = migrate;
        self
    }
}

/// What [`DieselStorage::sweep`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// File rows removed (abandoned uploads and retired versions).
    pub files: u64,
}

/// Files kept in a database, chunked: see the crate docs. Use the aliases
/// [`SqliteStorage`](crate::SqliteStorage), [`PgStorage`](crate::PgStorage) and
/// [`MysqlStorage`](crate::MysqlStorage).
// `Dialect` is private on purpose: the connection types are diesel's three, implemented here.
#[allow(private_bounds)]
pub struct DieselStorage<C: Dialect> {
    inner: Arc<Inner<C>>,
}

struct Inner<C: Dialect> {
    db: Arc<DbPool<C>>,
    options: DatabaseOptions,
    _conn: PhantomData<fn() -> C>,
}

impl<C: Dialect> Clone for DieselStorage<C> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<C: Dialect> fmt::Debug for DieselStorage<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DieselStorage")
            .field("database", &self.inner.db.label())
            .field("chunk_size", &self.inner.options.chunk_size)
            .finish_non_exhaustive()
    }
}

/// Microseconds since the Unix epoch.
pub(crate) fn now_micros() -> i64 {
    micros_of(SystemTime::now())
}

fn micros_of(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

pub(crate) fn time_of(micros: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_micros(u64::try_from(micros).unwrap_or(0))
}

/// A new file id: milliseconds since the epoch in the high bits, 20 random bits below, so ids
/// grow over time (friendly to B-tree indexes) and two servers almost never pick the same one
/// (the primary key catches it when they do, and the insert is retried).
fn new_file_id() -> i64 {
    let millis = now_micros() / 1000;
    (millis << 20) | i64::from(rand::random::<u32>() & 0xF_FFFF)
}

#[allow(private_bounds)]
impl<C: Dialect> DieselStorage<C>
where
    C: diesel::r2d2::R2D2Connection,
{
    /// Connects a pool to `url` (checking that the database answers) and, if asked, runs
    /// migrations. An unreachable database is an [`Error::Backend`] that names the database but
    /// never the password.
    pub async fn connect(url: &str, options: DatabaseOptions) -> Result<Self> {
        let db = DbPool::connect(url, options.pool_size, options.connect_timeout).await?;
        let storage = Self {
            inner: Arc::new(Inner {
                db,
                options,
                _conn: PhantomData,
            }),
        };
        if storage.inner.options.migrate_on_connect {
            storage.migrate().await?;
        }
        Ok(storage)
    }

    /// Runs the embedded migrations that have not run yet; returns their versions.
    ///
    /// The storage records its versions in a table of its own, `storage_schema_migrations`, so
    /// an app that shares the database keeps diesel's `__diesel_schema_migrations` to itself
    /// (its `diesel migration revert` and `redo` meet only its own versions). A database
    /// migrated by an older storage has the storage's versions in diesel's table: they are moved
    /// to ours first, in a transaction, and the app's rows stay. Such adopted versions are not
    /// returned: they were applied before.
    ///
    /// Two processes may migrate at once: one waits for the other (SQLite: an immediate
    /// transaction; PostgreSQL: an advisory lock, in one transaction with the migrations;
    /// MySQL/MariaDB: `GET_LOCK`), then finds the versions recorded.
    pub async fn migrate(&self) -> Result<Vec<String>> {
        self.with_conn("migrate", |conn| {
            conn.migrate()
                .map_err(|e| Error::backend(C::BACKEND, "migration failed", e))
        })
        .await
    }

    /// Removes uploads abandoned for longer than `pending_older_than` (a crash or a dropped
    /// connection mid-upload) and overwritten or deleted versions retired for longer than
    /// `retired_older_than` (the grace period that lets downloads in flight finish), with their
    /// chunks.
    pub async fn sweep(
        &self,
        pending_older_than: Duration,
        retired_older_than: Duration,
    ) -> Result<SweepReport> {
        let now = now_micros();
        let age =
            |d: Duration| now.saturating_sub(i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
        let (pending_before, retired_before) = (age(pending_older_than), age(retired_older_than));
        let mut report = SweepReport::default();
        // Bounded: each round removes up to 100 rows or stops.
        for _ in 0..10_000 {
            let ids = self
                .with_conn("sweep", move |conn| {
                    conn.sweepable(pending_before, retired_before, 100)
                        .map_err(|e| db_error::<C>(e, "sweep"))
                })
                .await?;
            if ids.is_empty() {
                break;
            }
            for id in ids {
                let removed = self
                    .with_conn("sweep", move |conn| {
                        conn.discard(id).map_err(|e| db_error::<C>(e, "sweep"))
                    })
                    .await?;
                report.files += removed as u64;
            }
        }
        Ok(report)
    }

    /// The database this storage talks to, without credentials (`postgres database 'app' at
    /// db:5432`).
    pub fn database_label(&self) -> &str {
        self.inner.db.label()
    }

    /// Runs `work` with a pooled connection on tokio's blocking pool.
    async fn with_conn<T, F>(&self, what: &'static str, work: F) -> Result<T>
    where
        F: FnOnce(&mut C) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        self.inner.db.run(what, work).await
    }

    /// Inserts a pending row and streams `content` into chunks; returns the row id and what to
    /// publish. On failure the row and its chunks are removed.
    async fn upload(&self, content: ByteStream, options: &PutOptions) -> Result<(i64, Published)> {
        let chunk_size = self.inner.options.chunk_size;
        let chunk_size_i32 = i32::try_from(chunk_size).unwrap_or(i32::MAX);
        let visibility = visibility_code(options.visibility);
        let mut id = new_file_id();
        for attempt in 0.. {
            let now = now_micros();
            let inserted = self
                .with_conn("insert", move |conn| {
                    match conn.insert_pending(id, chunk_size_i32, visibility, now) {
                        Ok(_) => Ok(true),
                        Err(diesel::result::Error::DatabaseError(
                            diesel::result::DatabaseErrorKind::UniqueViolation,
                            _,
                        )) if attempt < 5 => Ok(false),
                        Err(e) => Err(db_error::<C>(e, "insert")),
                    }
                })
                .await?;
            if inserted {
                break;
            }
            id = new_file_id();
        }
        match self.write_chunks(id, content, chunk_size).await {
            Ok((sha256, size)) => Ok((
                id,
                Published {
                    size: i64::try_from(size).unwrap_or(i64::MAX),
                    sha256: hex_of(&sha256),
                    content_type: options.content_type.clone(),
                    visibility,
                    now: now_micros(),
                },
            )),
            Err(e) => {
                self.discard(id).await;
                Err(e)
            }
        }
    }

    /// Cuts the stream into chunks and inserts them, one insert in flight while the next chunk
    /// is received and hashed, so the database and the network work at the same time. Holds at
    /// most two chunks.
    async fn write_chunks(
        &self,
        id: i64,
        mut content: ByteStream,
        chunk_size: usize,
    ) -> Result<([u8; 32], u64)> {
        let mut hasher = ContentHasher::new();
        let mut buffer = BytesMut::with_capacity(chunk_size);
        let mut seq: i32 = 0;
        let mut in_flight: Option<tokio::task::JoinHandle<Result<()>>> = None;
        let result: Result<()> = async {
            while let Some(piece) = content.next().await {
                let mut piece = piece?;
                hasher.update(&piece);
                while !piece.is_empty() {
                    let take = (chunk_size - buffer.len()).min(piece.len());
                    buffer.extend_from_slice(&piece.split_to(take));
                    if buffer.len() == chunk_size {
                        let full = buffer.split().freeze();
                        finish(in_flight.take()).await?;
                        in_flight = Some(self.spawn_insert(id, seq, full));
                        seq = seq.checked_add(1).ok_or(Error::TooLarge {
                            limit: chunk_size as u64 * i32::MAX as u64,
                        })?;
                    }
                }
            }
            finish(in_flight.take()).await?;
            if !buffer.is_empty() {
                self.insert_chunk(id, seq, buffer.split().freeze()).await?;
            }
            Ok(())
        }
        .await;
        // Never leave an insert running behind an error: the caller discards the row next.
        let settled = finish(in_flight.take()).await;
        result.and(settled)?;
        Ok(hasher.finish())
    }

    fn spawn_insert(&self, id: i64, seq: i32, data: Bytes) -> tokio::task::JoinHandle<Result<()>> {
        let storage = self.clone();
        tokio::spawn(async move { storage.insert_chunk(id, seq, data).await })
    }

    async fn insert_chunk(&self, id: i64, seq: i32, data: Bytes) -> Result<()> {
        self.with_conn("write", move |conn| {
            conn.insert_chunk(id, seq, &data)
                .map(drop)
                .map_err(|e| db_error::<C>(e, "write"))
        })
        .await
    }

    /// Best effort: a row left behind is swept later.
    async fn discard(&self, id: i64) {
        let _ = self
            .with_conn("discard", move |conn| {
                conn.discard(id).map_err(|e| db_error::<C>(e, "discard"))
            })
            .await;
    }

    fn meta_of(&self, row: &FileRow) -> Result<FileMeta> {
        let name = Name::new(row.name.as_deref().unwrap_or_default())?;
        let sha256 = row.sha256.as_deref().and_then(sha256_of);
        let size = u64::try_from(row.size).unwrap_or(0);
        let meta = match sha256 {
            Some(sha256) => FileMeta::new(name, size, sha256, time_of(row.modified_at)),
            None => FileMeta::without_checksum(
                name,
                size,
                format!("\"{:x}\"", row.id),
                time_of(row.modified_at),
            ),
        };
        Ok(meta
            .with_created(time_of(row.created_at))
            .with_content_type(row.content_type.clone())
            .with_visibility(if row.visibility == 1 {
                Visibility::Private
            } else {
                Visibility::Public
            }))
    }

    fn chunk_stream(
        &self,
        row: &FileRow,
        range: std::ops::Range<u64>,
        first_chunk: Option<Vec<u8>>,
    ) -> ByteStream {
        if range.is_empty() {
            return storage_core::empty_stream();
        }
        let chunk_size = u64::try_from(row.chunk_size.max(1)).unwrap_or(1);
        let first = range.start / chunk_size;
        let last = (range.end - 1) / chunk_size;
        let batch = i64::try_from(self.inner.options.read_batch_chunks.max(1)).unwrap_or(4);
        let storage = self.clone();
        let file_id = row.id;
        // The first chunk may have come with the metadata; use it instead of asking again.
        let prefetched: Vec<(i32, Vec<u8>)> = match first_chunk {
            Some(data) if first == 0 => vec![(0, data)],
            _ => Vec::new(),
        };
        let state = (first, prefetched);
        let batches = futures::stream::try_unfold(state, move |(next, mut ready)| {
            let storage = storage.clone();
            async move {
                if next > last {
                    return Ok(None);
                }
                if ready.is_empty() {
                    let (from, to) = (seq_of(next)?, seq_of(last)?);
                    ready = storage
                        .with_conn("read", move |conn| {
                            conn.chunks(file_id, from, to, batch)
                                .map_err(|e| db_error::<C>(e, "read"))
                        })
                        .await?;
                }
                let mut out = Vec::with_capacity(ready.len());
                let mut expected = next;
                for (seq, data) in ready.drain(..) {
                    if u64::try_from(seq).ok() != Some(expected) {
                        break;
                    }
                    let chunk_start = expected * chunk_size;
                    let from =
                        usize::try_from(range.start.saturating_sub(chunk_start)).unwrap_or(0);
                    let to = usize::try_from((range.end - chunk_start).min(data.len() as u64))
                        .unwrap_or(0);
                    let data = Bytes::from(data);
                    out.push(Ok(data.slice(from.min(to)..to)));
                    expected += 1;
                }
                if expected == next {
                    // The rows vanished: the version was swept while being read.
                    return Err(Error::backend(
                        C::BACKEND,
                        format!(
                            "file data missing at chunk {next}; it was removed while being read"
                        ),
                        std::io::Error::from(std::io::ErrorKind::UnexpectedEof),
                    ));
                }
                Ok(Some((futures::stream::iter(out), (expected, Vec::new()))))
            }
        });
        Box::pin(batches.try_flatten())
    }
}

async fn finish(insert: Option<tokio::task::JoinHandle<Result<()>>>) -> Result<()> {
    match insert {
        Some(handle) => handle
            .await
            .map_err(|e| Error::backend("database", "write task failed", e))?,
        None => Ok(()),
    }
}

fn seq_of(index: u64) -> Result<i32> {
    i32::try_from(index).map_err(|e| Error::backend("database", "chunk index out of range", e))
}

fn visibility_code(visibility: Visibility) -> i16 {
    match visibility {
        Visibility::Public => 0,
        Visibility::Private => 1,
    }
}

fn hex_of(bytes: &[u8; 32]) -> String {
    hex::encode(bytes)
}

fn sha256_of(digits: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(digits, &mut out).ok()?;
    Some(out)
}

/// Maps a diesel error; messages name the operation, never the query's values.
fn db_error<C: Dialect>(e: diesel::result::Error, what: &str) -> Error {
    Error::backend(C::BACKEND, format!("{what} failed"), e)
}

#[async_trait]
impl<C: Dialect> Storage for DieselStorage<C>
where
    C: diesel::r2d2::R2D2Connection,
{
    fn backend_name(&self) -> &'static str {
        C::BACKEND
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::full()
    }

    async fn put_new(
        &self,
        names: &mut NameCandidates,
        content: ByteStream,
        options: &PutOptions,
    ) -> Result<FileMeta> {
        let (id, published) = self.upload(content, options).await?;
        loop {
            let name = names.current().clone();
            let (owned, p) = (name.to_string(), published.clone());
            let outcome = self
                .with_conn("publish", move |conn| {
                    conn.publish_new(id, &owned, &p)
                        .map_err(|e| db_error::<C>(e, "publish"))
                })
                .await;
            match outcome {
                Ok(Publish::Done { created_at }) => {
                    return Ok(self.published_meta(name, &published, created_at))
                }
                Ok(Publish::NameTaken) => {
                    if let Err(e) = names.next_after_collision() {
                        self.discard(id).await;
                        return Err(e);
                    }
                }
                Ok(Publish::UploadGone) => return Err(upload_gone::<C>()),
                Err(e) => {
                    self.discard(id).await;
                    return Err(e);
                }
            }
        }
    }

    async fn put_overwrite(
        &self,
        name: &Name,
        content: ByteStream,
        options: &PutOptions,
    ) -> Result<FileMeta> {
        let (id, published) = self.upload(content, options).await?;
        // Bounded: each retry means another writer replaced the name between our read and write.
        for _ in 0..16 {
            let (owned, p) = (name.to_string(), published.clone());
            let outcome = self
                .with_conn("publish", move |conn| {
                    conn.publish_overwrite(id, &owned, &p)
                        .map_err(|e| db_error::<C>(e, "publish"))
                })
                .await;
            match outcome {
                Ok(Publish::Done { created_at }) => {
                    return Ok(self.published_meta(name.clone(), &published, created_at));
                }
                Ok(Publish::NameTaken) => {}
                Ok(Publish::UploadGone) => return Err(upload_gone::<C>()),
                Err(e) => {
                    self.discard(id).await;
                    return Err(e);
                }
            }
        }
        self.discard(id).await;
        Err(Error::AlreadyExists {
            name: name.to_string(),
        })
    }

    async fn open(&self, name: &Name, range: Option<ByteRange>) -> Result<OpenedFile> {
        // Reads from the start can take the first chunk with the metadata: one round trip for a
        // small file.
        let from_start = match range {
            None => true,
            Some(ByteRange::Bounded { start, .. } | ByteRange::From(start)) => start == 0,
            Some(ByteRange::Suffix(_)) => false,
        };
        let owned = name.to_string();
        let found = self
            .with_conn("open", move |conn| {
                if from_start {
                    conn.live_file_with_first_chunk(&owned)
                } else {
                    conn.live_file(&owned).map(|row| row.map(|row| (row, None)))
                }
                .map_err(|e| db_error::<C>(e, "open"))
            })
            .await?;
        let (row, first_chunk) = found.ok_or_else(|| Error::NotFound {
            name: name.to_string(),
        })?;
        let meta = self.meta_of(&row)?;
        let range = range.unwrap_or(ByteRange::From(0)).resolve(meta.size)?;
        let stream = self.chunk_stream(&row, range.clone(), first_chunk);
        Ok(OpenedFile {
            meta,
            range,
            stream,
        })
    }

    async fn metadata(&self, name: &Name) -> Result<FileMeta> {
        let owned = name.to_string();
        let row = self
            .with_conn("metadata", move |conn| {
                conn.live_file(&owned)
                    .map_err(|e| db_error::<C>(e, "metadata"))
            })
            .await?
            .ok_or_else(|| Error::NotFound {
                name: name.to_string(),
            })?;
        self.meta_of(&row)
    }

    async fn remove(&self, name: &Name) -> Result<bool> {
        let owned = name.to_string();
        let retired = self
            .with_conn("delete", move |conn| {
                conn.retire(&owned, now_micros())
                    .map_err(|e| db_error::<C>(e, "delete"))
            })
            .await?;
        Ok(retired > 0)
    }

    async fn listdir(&self, dir: Option<&Name>) -> Result<Listing> {
        list_by_name_ranges(dir, |from, inclusive, upper| async move {
            self.with_conn("listdir", move |conn| {
                conn.names_after(&from, inclusive, upper.as_deref(), 500)
                    .map_err(|e| db_error::<C>(e, "listdir"))
            })
            .await
        })
        .await
    }

    fn default_visibility(&self) -> Visibility {
        self.inner.options.default_visibility
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
impl<C: Dialect> DieselStorage<C>
where
    C: diesel::r2d2::R2D2Connection,
{
    fn published_meta(&self, name: Name, p: &Published, created_at: i64) -> FileMeta {
        let sha256 = sha256_of(&p.sha256).unwrap_or_default();
        FileMeta::new(
            name,
            u64::try_from(p.size).unwrap_or(0),
            sha256,
            time_of(p.now),
        )
        .with_created(time_of(created_at))
        .with_content_type(p.content_type.clone())
        .with_visibility(if p.visibility == 1 {
            Visibility::Private
        } else {
            Visibility::Public
        })
    }
}

fn upload_gone<C: Dialect>() -> Error {
    Error::backend(
        C::BACKEND,
        "the upload was swept before it could be published",
        std::io::Error::from(std::io::ErrorKind::TimedOut),
    )
}

/// `listdir` over any table of names that can list "up to 500 names from `from` (inclusive or
/// not), below `upper`, in byte order": the directory's subdirectories are skipped in one jump
/// each, so listing a directory costs one query per subdirectory plus one per 500 files.
pub(crate) async fn list_by_name_ranges<F, Fut>(dir: Option<&Name>, mut fetch: F) -> Result<Listing>
where
    F: FnMut(String, bool, Option<String>) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<String>>>,
{
    let prefix = dir.map(|d| format!("{d}/")).unwrap_or_default();
    // Names under `dir/` sort between `dir/` and `dir0` ('0' follows '/').
    let upper = dir.map(|d| format!("{d}0"));
    let mut listing = Listing::default();
    let (mut cursor, mut inclusive) = (prefix.clone(), true);
    // Bounded: every round lists at least one entry or ends.
    for _ in 0..1_000_000 {
        let names = fetch(cursor.clone(), inclusive, upper.clone()).await?;
        let Some(last) = names.last().cloned() else {
            break;
        };
        let mut jumped = false;
        for name in names {
            let Some(rest) = name.strip_prefix(&prefix) else {
                continue;
            };
            // Rows written by another program (Django's table, read in legacy mode) may hold
            // what no name can reach as it stands (`a//b`, `a\\b`): not listed.
            if let Some((sub, _)) = rest.split_once('/') {
                if Name::is_listable(dir, sub) {
                    listing.dirs.push(sub.to_owned());
                }
                // Skip the subdirectory's contents in one jump.
                cursor = format!("{prefix}{sub}0");
                inclusive = true;
                jumped = true;
                break;
            }
            if Name::is_listable(dir, rest) {
                listing.files.push(rest.to_owned());
            }
        }
        if !jumped {
            cursor = last;
            inclusive = false;
        }
    }
    Ok(listing)
}

crate::references::reference_source!(DieselStorage, Dialect);
crate::pool::app_connection!(DieselStorage, Dialect);
