//! [`OpendalStorage`]: the storage contract over an OpenDAL operator.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt};
use opendal::{ErrorKind, Operator};
use storage_core::naming::NameCandidates;
use storage_core::{
    empty_stream, guess_content_type, is_staging_name, refuse_staging_name, url_under_base,
    ByteRange, ByteStream, Capabilities, ContentHasher, Error, FileMeta, Listing, Name, OpenedFile,
    PutOptions, Result, Storage, Visibility, STAGING_DIR,
};

use crate::replay::Recording;

/// The user-metadata key that keeps a file's visibility on object stores (letters only: Azure
/// takes C# identifiers, and some proxies drop headers with underscores).
pub const VISIBILITY_KEY: &str = "dbfilesvisibility";

/// Presigned URLs are valid this long unless `url()` is given a duration.
pub const DEFAULT_PRESIGN_EXPIRY: Duration = Duration::from_secs(3600);

/// Part size of streamed writes (S3 multipart parts, buffered file-server writes).
pub const DEFAULT_WRITE_CHUNK: usize = 8 * 1024 * 1024;

/// Parts in flight at once per write; with [`DEFAULT_WRITE_CHUNK`], about 16 MiB per upload
/// (plus the part being filled).
pub const DEFAULT_WRITE_CONCURRENCY: usize = 2;

/// The largest file a service that takes a file in one request (WebDAV through OpenDAL) is
/// given by default: the whole file is held in memory while it is sent.
pub const DEFAULT_ONE_SHOT_LIMIT: u64 = 64 * 1024 * 1024;

/// The user-metadata key of the upload a file came from: a create-only write whose answer was
/// lost and whose retry found the name taken recognises its own file by it.
pub(crate) const UPLOAD_KEY: &str = "dbfilesupload";

/// How long (in 10 ms rounds) an overwrite on a file server waits for a create-only write of
/// this process on the same name to finish publishing.
const CLAIM_WAIT_ROUNDS: u32 = 3000;

/// How many times a read is restarted when the file changed between its metadata and its bytes.
const MAX_OPEN_ATTEMPTS: u32 = 8;

/// How a finished write gets its name.
#[derive(Debug, Clone)]
enum Publish {
    /// Object stores: a write is visible only once complete, and create-only writes use the
    /// service's conditional write (`If-None-Match: *`).
    Conditional,
    /// File servers with a rename (SFTP, WebDAV): stage under [`STAGING_DIR`], then rename.
    Rename,
    /// FTP: stage under [`STAGING_DIR`], then rename on an FTP connection of our own (OpenDAL's
    /// FTP service has no rename).
    #[cfg(feature = "ftp")]
    Ftp(crate::ftp::FtpLogin),
}

/// A storage over an [OpenDAL](opendal) operator: S3 and S3-compatible stores, Azure Blob,
/// Google Cloud Storage, SFTP, FTP, WebDAV (each behind its cargo feature), and OpenDAL's
/// in-memory service.
///
/// Usually opened from a storage URL with [`connect_url`](crate::connect_url). The naming,
/// collision and `upload_to` rules are the core's, as for every backend; what differs by
/// service is said by [`Storage::capabilities`]:
///
/// | | S3, Azure Blob, GCS | SFTP, WebDAV, FTP |
/// |---|---|---|
/// | a write becomes visible | when complete (multipart for large files) | by a rename from [`STAGING_DIR`] once complete |
/// | create-only write | the service's conditional write: atomic across processes | checked, then renamed: atomic within one process only |
/// | private files | kept in user metadata, URLs presigned | not supported |
/// | content type | stored | guessed from the name |
/// | ETag | the service's | size and modification time |
///
/// Content streams through: a write holds about [`DEFAULT_WRITE_CHUNK`] ×
/// [`DEFAULT_WRITE_CONCURRENCY`] bytes, a read one network buffer. A create-only write on an
/// object store also keeps a copy of what it sends (in memory up to 8 MiB, then in a temporary
/// file), so that when another process takes the name first the content is sent again under the
/// next free name rather than lost.
#[derive(Debug, Clone)]
pub struct OpendalStorage {
    op: Operator,
    backend: &'static str,
    publish: Publish,
    user_metadata: bool,
    stored_content_type: bool,
    public_base_url: Option<String>,
    default_visibility: Visibility,
    presign_expiry: Duration,
    write_chunk: usize,
    write_concurrency: usize,
    max_file_size: Option<u64>,
    claims: Arc<Claims>,
}

/// Names this process is writing right now: a second writer here moves on to another name at
/// once instead of racing the first at the service.
#[derive(Debug, Default)]
struct Claims(Mutex<HashSet<String>>);

struct Claim<'a> {
    claims: &'a Claims,
    name: String,
}

impl Claims {
    fn try_claim(&self, name: &str) -> Option<Claim<'_>> {
        let mut held = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        held.insert(name.to_owned()).then(|| Claim {
            claims: self,
            name: name.to_owned(),
        })
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        let mut held = self.claims.0.lock().unwrap_or_else(PoisonError::into_inner);
        held.remove(&self.name);
    }
}

/// What a finished write knows.
struct Written {
    sha256: [u8; 32],
    size: u64,
    etag: Option<String>,
    modified: Option<SystemTime>,
}

enum WriteError {
    /// A create-only write found the name taken.
    Taken,
    Failed(Error),
}

/// The static name of a service, for messages and [`Storage::backend_name`].
fn backend_of(scheme: &str) -> &'static str {
    match scheme {
        "s3" => "s3",
        "azblob" => "azblob",
        "gcs" => "gcs",
        "sftp" => "sftp",
        "ftp" => "ftp",
        "webdav" => "webdav",
        "memory" => "memory",
        _ => "opendal",
    }
}

/// Services whose writes become visible only when complete.
fn writes_are_atomic(backend: &str) -> bool {
    matches!(backend, "s3" | "azblob" | "gcs" | "memory")
}

/// Services whose `stat` returns the user metadata a write sets.
fn keeps_user_metadata(backend: &str) -> bool {
    matches!(backend, "s3" | "azblob" | "gcs")
}

fn not_found(name: &str) -> Error {
    Error::NotFound {
        name: name.to_owned(),
    }
}

impl OpendalStorage {
    /// A storage over `op`. Object stores (S3, Azure Blob, GCS) and OpenDAL's memory service
    /// publish with conditional writes; other services need a rename (SFTP, WebDAV). An FTP
    /// operator needs its login for the rename: open FTP with [`connect_url`](crate::connect_url).
    pub fn new(op: Operator) -> Result<Self> {
        let info = op.info();
        let scheme = info.scheme().to_string();
        let backend = backend_of(&scheme);
        let caps = info.capability();
        let publish = if writes_are_atomic(backend) && caps.write_with_if_not_exists {
            Publish::Conditional
        } else if caps.rename && backend != "ftp" {
            Publish::Rename
        } else {
            return Err(Error::NotSupported {
                backend,
                operation: format!(
                    "a storage over OpenDAL's '{scheme}' service without an atomic way to \
                     publish a write (conditional write or rename){}",
                    if backend == "ftp" {
                        "; open FTP with storage_opendal::connect_url"
                    } else {
                        ""
                    }
                ),
            });
        };
        let user_metadata = keeps_user_metadata(backend) && caps.write_with_user_metadata;
        Ok(Self {
            op,
            backend,
            publish,
            user_metadata,
            stored_content_type: caps.write_with_content_type,
            public_base_url: None,
            default_visibility: if user_metadata {
                Visibility::Private
            } else {
                Visibility::Public
            },
            presign_expiry: DEFAULT_PRESIGN_EXPIRY,
            write_chunk: DEFAULT_WRITE_CHUNK,
            write_concurrency: DEFAULT_WRITE_CONCURRENCY,
            max_file_size: (!caps.write_can_multi).then_some(DEFAULT_ONE_SHOT_LIMIT),
            claims: Arc::default(),
        })
    }

    #[cfg(feature = "ftp")]
    pub(crate) fn ftp(op: Operator, login: crate::ftp::FtpLogin) -> Self {
        Self {
            op,
            backend: "ftp",
            publish: Publish::Ftp(login),
            user_metadata: false,
            stored_content_type: false,
            public_base_url: None,
            default_visibility: Visibility::Public,
            presign_expiry: DEFAULT_PRESIGN_EXPIRY,
            write_chunk: DEFAULT_WRITE_CHUNK,
            write_concurrency: 1,
            max_file_size: None,
            claims: Arc::default(),
        }
    }

    /// Where public files are fetched: the bucket's public URL, or a custom domain in front of
    /// it (django-storages' `custom_domain`), such as `https://cdn.example.com/media/`. Names
    /// are percent-encoded after it. `None`: `url()` of a public file is
    /// [`Error::NotSupported`].
    #[must_use]
    pub fn with_public_base_url(mut self, base_url: Option<&str>) -> Self {
        self.public_base_url = base_url.map(str::to_owned);
        self
    }

    /// The visibility of files saved without one: private by default where private files are
    /// supported (their URLs are presigned), public elsewhere.
    #[must_use]
    pub fn with_default_visibility(mut self, visibility: Visibility) -> Self {
        if self.user_metadata {
            self.default_visibility = visibility;
        }
        self
    }

    /// How long presigned URLs are valid when `url()` is not given a duration.
    #[must_use]
    pub fn with_presign_expiry(mut self, expiry: Duration) -> Self {
        self.presign_expiry = expiry;
        self
    }

    /// Part size and parts in flight of streamed writes (S3's minimum part is 5 MiB).
    #[must_use]
    pub fn with_write_chunk(mut self, chunk: usize, concurrency: usize) -> Self {
        self.write_chunk = chunk.max(1);
        self.write_concurrency = concurrency.max(1);
        self
    }

    /// The largest file this storage accepts; a larger one is [`Error::TooLarge`] and stores
    /// nothing. Services that take a file in one request (WebDAV) hold it in memory while
    /// sending, so they have a limit ([`DEFAULT_ONE_SHOT_LIMIT`] unless set here).
    #[must_use]
    pub fn with_max_file_size(mut self, limit: Option<u64>) -> Self {
        let one_shot = !self.op.info().capability().write_can_multi && self.backend != "ftp";
        self.max_file_size = match limit {
            None if one_shot => Some(DEFAULT_ONE_SHOT_LIMIT),
            other => other,
        };
        self
    }

    /// The OpenDAL operator underneath.
    pub fn operator(&self) -> &Operator {
        &self.op
    }

    /// Removes staged uploads older than `older_than`, left by writers that crashed before
    /// publishing (file servers only; an object store shows nothing of an unfinished upload,
    /// and its lifecycle rules abort stale multipart uploads). Returns how many were removed.
    pub async fn remove_stale_uploads(&self, older_than: Duration) -> Result<usize> {
        if matches!(self.publish, Publish::Conditional) {
            return Ok(0);
        }
        let staging = format!("{STAGING_DIR}/");
        let mut lister = match self.op.lister(&staging).await {
            Ok(lister) => lister,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(self.error(&e, STAGING_DIR, "cannot list staged uploads")),
        };
        let cutoff = SystemTime::now()
            .checked_sub(older_than)
            .unwrap_or(UNIX_EPOCH);
        let mut removed = 0;
        while let Some(entry) = lister
            .try_next()
            .await
            .map_err(|e| self.error(&e, STAGING_DIR, "cannot list staged uploads"))?
        {
            if !entry.metadata().is_file() {
                continue;
            }
            let path = entry.path().to_owned();
            let modified = match &self.publish {
                // FTP listings give minutes in the server's local time; MDTM gives UTC seconds.
                #[cfg(feature = "ftp")]
                Publish::Ftp(login) => login.stat(&path).await?.map(|(_, modified)| modified),
                // Listings may omit times; ask for the file's own.
                _ => match entry.metadata().last_modified() {
                    Some(t) => Some(SystemTime::from(t)),
                    None => match self.op.stat(&path).await {
                        Ok(md) => md.last_modified().map(SystemTime::from),
                        Err(e) if e.kind() == ErrorKind::NotFound => continue,
                        Err(e) => return Err(self.error(&e, &path, "cannot stat a staged upload")),
                    },
                },
            };
            if modified.is_some_and(|m| m < cutoff) {
                self.op
                    .delete(&path)
                    .await
                    .map_err(|e| self.error(&e, &path, "cannot remove a staged upload"))?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Our error for an OpenDAL error about `name`. Messages name the storage name, never an
    /// endpoint or a credential: the source keeps the OpenDAL error's kind and message but not
    /// its context, whose signed request URIs can carry credentials (an Azure SAS token).
    fn error(&self, e: &opendal::Error, name: &str, doing: &str) -> Error {
        match e.kind() {
            ErrorKind::NotFound | ErrorKind::NotADirectory | ErrorKind::IsADirectory => {
                not_found(name)
            }
            ErrorKind::AlreadyExists | ErrorKind::ConditionNotMatch => Error::AlreadyExists {
                name: name.to_owned(),
            },
            ErrorKind::PermissionDenied => Error::PermissionDenied {
                name: name.to_owned(),
            },
            ErrorKind::Unsupported => Error::NotSupported {
                backend: self.backend,
                operation: format!("{doing} ({})", e.message()),
            },
            _ => Error::backend(self.backend, format!("{doing} '{name}'"), sanitized(e)),
        }
    }

    fn write_error(&self, e: &opendal::Error, name: &str) -> WriteError {
        match e.kind() {
            // S3 answers a conditional write racing another on the same key with 409
            // ConditionalRequestConflict: the other may win, so this one moves on.
            ErrorKind::ConditionNotMatch | ErrorKind::AlreadyExists | ErrorKind::Conflict => {
                WriteError::Taken
            }
            _ => WriteError::Failed(self.error(e, name, "cannot write")),
        }
    }

    /// Metadata as the service reports it, and the service's own ETag for conditional reads.
    async fn stat(&self, name: &Name) -> Result<(FileMeta, Option<String>)> {
        if is_staging_name(name) {
            return Err(not_found(name.as_str()));
        }
        #[cfg(feature = "ftp")]
        if let Publish::Ftp(login) = &self.publish {
            let (size, modified) = login
                .stat(name.as_str())
                .await?
                .ok_or_else(|| not_found(name.as_str()))?;
            let meta = FileMeta::without_checksum(
                name.clone(),
                size,
                size_time_etag(size, modified),
                modified,
            )
            .with_content_type(guess_content_type(name.as_str()))
            .with_visibility(Visibility::Public);
            return Ok((meta, None));
        }
        let md = self
            .op
            .stat(name.as_str())
            .await
            .map_err(|e| self.error(&e, name.as_str(), "cannot read the metadata of"))?;
        if md.is_dir() {
            return Err(not_found(name.as_str()));
        }
        Ok(self.file_meta(name.clone(), &md))
    }

    fn file_meta(&self, name: Name, md: &opendal::Metadata) -> (FileMeta, Option<String>) {
        let size = md.content_length();
        let modified = md.last_modified().map_or(UNIX_EPOCH, SystemTime::from);
        let service_etag = md.etag().map(str::to_owned);
        let etag = service_etag
            .as_deref()
            .and_then(strong_etag)
            .unwrap_or_else(|| size_time_etag(size, modified));
        let visibility = match md
            .user_metadata()
            .and_then(|m| m.get(VISIBILITY_KEY).map(str::to_owned))
        {
            Some(v) if self.user_metadata && v == "private" => Visibility::Private,
            Some(v) if self.user_metadata && v == "public" => Visibility::Public,
            // Put there by another tool: the storage's default.
            _ => self.default_visibility(),
        };
        let content_type = md
            .content_type()
            .filter(|_| self.stored_content_type)
            .map(str::to_owned)
            .or_else(|| guess_content_type(name.as_str()));
        let meta = FileMeta::without_checksum(name, size, etag, modified)
            .with_content_type(content_type)
            .with_visibility(visibility);
        (meta, service_etag)
    }

    /// The metadata a write returns: the service's view of the file plus what the write saw.
    async fn written_meta(
        &self,
        name: Name,
        written: Written,
        options: &PutOptions,
    ) -> Result<FileMeta> {
        // The write's response carries the ETag a later stat will report; else ask.
        let mut meta = match written.etag.as_deref().and_then(strong_etag) {
            Some(etag) => FileMeta::without_checksum(
                name.clone(),
                written.size,
                etag,
                written.modified.unwrap_or_else(SystemTime::now),
            ),
            None => self.stat(&name).await?.0,
        };
        meta.size = written.size;
        meta.sha256 = Some(written.sha256);
        meta.visibility = options.visibility;
        meta.content_type = options
            .content_type
            .clone()
            .or_else(|| guess_content_type(name.as_str()));
        Ok(meta)
    }

    /// Streams `content` to `path`; with an `upload_id`, create-only. A failing content stream
    /// aborts the write and is returned as it is; nothing becomes visible under `path` (object
    /// stores) or the staged file is left for the caller to remove. When the write stops early
    /// (the name was taken), the rest of `content` is left unread for the caller.
    async fn write(
        &self,
        path: &str,
        content: &mut ByteStream,
        options: &PutOptions,
        upload_id: Option<&str>,
        mut recording: Option<&mut Recording>,
    ) -> Result<Written, WriteError> {
        // A service that takes a file in one request (WebDAV) gets it whole, up to
        // `max_file_size`; the others get parts.
        let chunk = if self.op.info().capability().write_can_multi {
            self.write_chunk
        } else {
            self.one_shot_limit()
        };
        let mut builder = self
            .op
            .writer_with(path)
            .chunk(chunk)
            .concurrent(self.write_concurrency);
        if upload_id.is_some() {
            builder = builder.if_not_exists(true);
        }
        if self.stored_content_type {
            if let Some(content_type) = &options.content_type {
                builder = builder.content_type(content_type);
            }
        }
        if self.user_metadata {
            let mut metadata = vec![(
                VISIBILITY_KEY.to_owned(),
                options.visibility.as_str().to_owned(),
            )];
            if let Some(id) = upload_id {
                metadata.push((UPLOAD_KEY.to_owned(), id.to_owned()));
            }
            builder = builder.user_metadata(metadata);
        }
        let mut writer = builder.await.map_err(|e| self.write_error(&e, path))?;
        let mut hasher = ContentHasher::new();
        while let Some(chunk) = content.next().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(e) => {
                    let _ = writer.abort().await;
                    return Err(WriteError::Failed(e));
                }
            };
            if chunk.is_empty() {
                continue;
            }
            hasher.update(&chunk);
            if let Some(recording) = recording.as_deref_mut() {
                if let Err(e) = recording.record(&chunk).await {
                    let _ = writer.abort().await;
                    return Err(WriteError::Failed(e));
                }
            }
            if let Err(e) = writer.write(chunk).await {
                let _ = writer.abort().await;
                return Err(self.write_error(&e, path));
            }
        }
        let md = match writer.close().await {
            Ok(md) => md,
            Err(e) => {
                // An S3 multipart upload refused at completion keeps its parts until aborted.
                let _ = writer.abort().await;
                return Err(self.write_error(&e, path));
            }
        };
        let (sha256, size) = hasher.finish();
        Ok(Written {
            sha256,
            size,
            etag: md.etag().map(str::to_owned),
            modified: md.last_modified().map(SystemTime::from),
        })
    }

    /// The most a one-request write holds in memory.
    fn one_shot_limit(&self) -> usize {
        usize::try_from(self.max_file_size.unwrap_or(DEFAULT_ONE_SHOT_LIMIT)).unwrap_or(usize::MAX)
    }

    /// `content`, failing with [`Error::TooLarge`] once it passes `max_file_size`.
    fn limited(&self, content: ByteStream) -> ByteStream {
        let Some(limit) = self.max_file_size else {
            return content;
        };
        let mut seen = 0u64;
        Box::pin(content.map(move |chunk| {
            let chunk = chunk?;
            seen += chunk.len() as u64;
            if seen > limit {
                return Err(Error::TooLarge { limit });
            }
            Ok(chunk)
        }))
    }

    async fn exists_raw(&self, name: &Name) -> Result<bool> {
        match self.stat(name).await {
            Ok(_) => Ok(true),
            Err(Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn check_visibility(&self, options: &PutOptions) -> Result<()> {
        if options.visibility == Visibility::Private && !self.user_metadata {
            return Err(Error::NotSupported {
                backend: self.backend,
                operation: "private files (this service keeps no per-file metadata)".to_owned(),
            });
        }
        Ok(())
    }

    /// Object stores: a conditional write under the first free name; when another process
    /// takes it first, the recorded content goes again under the next one.
    async fn put_new_conditional(
        &self,
        names: &mut NameCandidates,
        content: ByteStream,
        options: &PutOptions,
    ) -> Result<FileMeta> {
        let mut recording = Recording::default();
        let mut source = Some(self.limited(content));
        loop {
            let (name, _claim) = self.claim_free_name(names).await?;
            let upload_id = uuid::Uuid::new_v4().simple().to_string();
            let first = source.is_some();
            let mut stream = match source.take() {
                Some(stream) => stream,
                None => recording.replay().await?,
            };
            let record = if first { Some(&mut recording) } else { None };
            match self
                .write(
                    name.as_str(),
                    &mut stream,
                    options,
                    Some(&upload_id),
                    record,
                )
                .await
            {
                Ok(written) => return self.written_meta(name, written, options).await,
                Err(WriteError::Taken) => {
                    if first {
                        // Taken before the whole content was sent: the resend needs all of it.
                        drain_into(&mut stream, &mut recording).await?;
                    }
                    if self.is_our_upload(&name, &upload_id).await? {
                        // The write went through and only its answer was lost (a retried
                        // request found the file): it is ours.
                        let (mut meta, _) = self.stat(&name).await?;
                        meta.content_type = options.content_type.clone().or(meta.content_type);
                        return Ok(meta);
                    }
                    names.next_after_collision()?;
                }
                Err(WriteError::Failed(e)) => return Err(e),
            }
        }
    }

    /// True when the file under `name` was written by the upload `upload_id`.
    async fn is_our_upload(&self, name: &Name, upload_id: &str) -> Result<bool> {
        if !self.user_metadata {
            return Ok(false);
        }
        match self.op.stat(name.as_str()).await {
            Ok(md) => Ok(md
                .user_metadata()
                .and_then(|m| m.get(UPLOAD_KEY).map(|id| id == upload_id))
                .unwrap_or(false)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(self.error(&e, name.as_str(), "cannot read the metadata of")),
        }
    }

    /// File servers: the content goes to a staged name first.
    async fn stage(&self, content: ByteStream, options: &PutOptions) -> Result<(String, Written)> {
        let path = format!("{STAGING_DIR}/{}", uuid::Uuid::new_v4().simple());
        #[cfg(feature = "ftp")]
        if let Publish::Ftp(login) = &self.publish {
            let content = self.limited(content);
            return match login.upload(&path, content).await {
                Ok((sha256, size)) => Ok((
                    path,
                    Written {
                        sha256,
                        size,
                        etag: None,
                        modified: None,
                    },
                )),
                Err(e) => {
                    self.remove_staged(&path).await;
                    Err(e)
                }
            };
        }
        let mut content = self.limited(content);
        match self.write(&path, &mut content, options, None, None).await {
            Ok(mut written) => {
                // The rename may change what the service reports (WebDAV ETags name the
                // path): the published file's metadata is read after the rename.
                written.etag = None;
                Ok((path, written))
            }
            Err(e) => {
                self.remove_staged(&path).await;
                Err(match e {
                    WriteError::Taken => Error::AlreadyExists { name: path },
                    WriteError::Failed(e) => e,
                })
            }
        }
    }

    async fn remove_staged(&self, path: &str) {
        // Best effort: the sweep removes what is left.
        let _ = self.op.delete(path).await;
    }

    /// Gives the staged file its name, replacing a file already there.
    async fn rename(&self, staged: &str, name: &Name) -> Result<()> {
        match &self.publish {
            #[cfg(feature = "ftp")]
            Publish::Ftp(login) => login.rename(staged, name.as_str()).await,
            _ => match self.op.rename(staged, name.as_str()).await {
                Ok(()) => Ok(()),
                // A retried rename whose first try went through finds its source gone.
                Err(e)
                    if e.kind() == ErrorKind::NotFound
                        && !self.raw_exists(staged).await?
                        && self.exists_raw(name).await? =>
                {
                    Ok(())
                }
                Err(e) => Err(self.error(&e, name.as_str(), "cannot publish")),
            },
        }
    }

    /// True when something is stored at `path` (no name rules: staged files too).
    async fn raw_exists(&self, path: &str) -> Result<bool> {
        match self.op.stat(path).await {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(self.error(&e, path, "cannot read the metadata of")),
        }
    }

    /// File servers: the staged file takes the first free name. Within this process the claim
    /// makes check-and-rename atomic; across processes the check can race (the capability
    /// says so).
    async fn publish_new(&self, staged: &str, names: &mut NameCandidates) -> Result<Name> {
        let (name, _claim) = self.claim_free_name(names).await?;
        self.rename(staged, &name).await?;
        Ok(name)
    }

    /// The claim on `name`, waiting (a bounded time) for a writer of this process that holds
    /// it: file-server claims last a check and a rename.
    async fn claim_waiting(&self, name: &Name) -> Result<Claim<'_>> {
        for _ in 0..CLAIM_WAIT_ROUNDS {
            if let Some(claim) = self.claims.try_claim(name.as_str()) {
                return Ok(claim);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Err(Error::backend(
            self.backend,
            format!("'{name}' stayed busy with another write of this process"),
            std::io::Error::from(std::io::ErrorKind::TimedOut),
        ))
    }

    /// The first of `names` that no writer of this process is writing and the service does
    /// not hold (nor, on a file server, holds as a directory), claimed for the caller.
    async fn claim_free_name(&self, names: &mut NameCandidates) -> Result<(Name, Claim<'_>)> {
        loop {
            let name = names.current().clone();
            refuse_staging_name(&name)?;
            if let Some(claim) = self.claims.try_claim(name.as_str()) {
                let taken = self.exists_raw(&name).await?
                    || (!matches!(self.publish, Publish::Conditional)
                        && self.is_dir(&name).await?);
                if !taken {
                    return Ok((name, claim));
                }
            }
            names.next_after_collision()?;
        }
    }

    async fn is_dir(&self, name: &Name) -> Result<bool> {
        match self.op.stat(&format!("{name}/")).await {
            Ok(md) => Ok(md.is_dir()),
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::NotFound | ErrorKind::NotADirectory | ErrorKind::IsADirectory
                ) =>
            {
                Ok(false)
            }
            Err(e) => Err(self.error(&e, name.as_str(), "cannot read the metadata of")),
        }
    }

    /// True when `dir` (with its trailing slash) holds at least one file, at any depth.
    async fn holds_files(&self, dir: &str) -> Result<bool> {
        let mut lister = match self.op.lister_with(dir).recursive(true).await {
            Ok(lister) => lister,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(self.error(&e, dir, "cannot list")),
        };
        while let Some(entry) = lister
            .try_next()
            .await
            .map_err(|e| self.error(&e, dir, "cannot list"))?
        {
            if entry.metadata().is_file() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    async fn open_once(
        &self,
        name: &Name,
        range: Option<ByteRange>,
    ) -> Result<std::result::Result<OpenedFile, FileMeta>> {
        let (meta, service_etag) = self.stat(name).await?;
        let range = match range {
            Some(range) => range.resolve(meta.size)?,
            None => 0..meta.size,
        };
        if range.is_empty() {
            return Ok(Ok(OpenedFile {
                meta,
                range,
                stream: empty_stream(),
            }));
        }
        #[cfg(feature = "ftp")]
        if let Publish::Ftp(login) = &self.publish {
            let stream = login
                .read(name.as_str(), range.start, range.end - range.start)
                .await?;
            return Ok(Ok(OpenedFile {
                meta,
                range,
                stream,
            }));
        }
        let mut reader = self.op.reader_with(name.as_str());
        if let Some(etag) = service_etag
            .as_deref()
            .filter(|_| self.op.info().capability().read_with_if_match)
        {
            // The bytes of the version the metadata describes, or an error: never a mix.
            reader = reader.if_match(etag);
        }
        let reader = reader
            .await
            .map_err(|e| self.error(&e, name.as_str(), "cannot open"))?;
        let mut stream = match reader.into_bytes_stream(range.clone()).await {
            Ok(stream) => stream,
            Err(e) if e.kind() == ErrorKind::ConditionNotMatch => return Ok(Err(meta)),
            Err(e) => return Err(self.error(&e, name.as_str(), "cannot open")),
        };
        // The request goes out on the first poll: take the first chunk here, so a file replaced
        // or deleted since its metadata was read is seen now, not as a broken stream later.
        let first = match stream.next().await {
            None => None,
            Some(Ok(chunk)) => Some(chunk),
            Some(Err(e)) => {
                return match opendal_error(&e).map(opendal::Error::kind) {
                    Some(ErrorKind::ConditionNotMatch) => Ok(Err(meta)),
                    Some(ErrorKind::NotFound) => Err(not_found(name.as_str())),
                    _ => Err(stream_error(self.backend, &e, name.as_str())),
                }
            }
        };
        let backend = self.backend;
        let shown = name.to_string();
        let rest = stream.map_err(move |e| stream_error(backend, &e, &shown));
        let stream = futures::stream::iter(first.map(Ok)).chain(rest);
        Ok(Ok(OpenedFile {
            meta,
            range,
            stream: Box::pin(stream),
        }))
    }
}

/// An OpenDAL error without its context (request URIs, which may be signed).
fn sanitized(e: &opendal::Error) -> std::io::Error {
    std::io::Error::other(format!("{}: {}", e.kind(), e.message()))
}

/// The OpenDAL error inside an I/O error from one of its streams.
fn opendal_error(e: &std::io::Error) -> Option<&opendal::Error> {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<opendal::Error>())
}

/// An I/O error from an OpenDAL stream as a backend error, without the OpenDAL context.
fn stream_error(backend: &'static str, e: &std::io::Error, name: &str) -> Error {
    let source = match opendal_error(e) {
        Some(inner) => sanitized(inner),
        None => std::io::Error::new(e.kind(), e.to_string()),
    };
    Error::backend(backend, format!("cannot read '{name}'"), source)
}

/// Reads the rest of `stream` into `recording` (a create-only write stopped early: the resend
/// needs all of the content).
async fn drain_into(stream: &mut ByteStream, recording: &mut Recording) -> Result<()> {
    while let Some(chunk) = stream.next().await {
        recording.record(&chunk?).await?;
    }
    Ok(())
}

/// A service's ETag as a strong, quoted one; `None` for a weak or empty one.
fn strong_etag(tag: &str) -> Option<String> {
    if tag.starts_with("W/") || tag.is_empty() {
        None
    } else if tag.starts_with('"') {
        Some(tag.to_owned())
    } else {
        Some(format!("\"{tag}\""))
    }
}

/// An ETag from size and modification time, for services that give none (as nginx's).
fn size_time_etag(size: u64, modified: SystemTime) -> String {
    let nanos = modified
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("\"{size:x}-{nanos:x}\"")
}

#[async_trait]
impl Storage for OpendalStorage {
    fn backend_name(&self) -> &'static str {
        self.backend
    }

    fn capabilities(&self) -> Capabilities {
        let mut caps = Capabilities::full();
        caps.atomic_create = matches!(self.publish, Publish::Conditional);
        // A checksum would have to be known before the first byte is sent (user metadata is
        // set when a write starts); writes return it, `metadata` does not.
        caps.stored_checksum = false;
        caps.stored_content_type = self.stored_content_type;
        caps.private_files = self.user_metadata;
        caps.max_file_size = self.max_file_size;
        caps
    }

    async fn put_new(
        &self,
        names: &mut NameCandidates,
        content: ByteStream,
        options: &PutOptions,
    ) -> Result<FileMeta> {
        self.check_visibility(options)?;
        refuse_staging_name(names.current())?;
        if matches!(self.publish, Publish::Conditional) {
            return self.put_new_conditional(names, content, options).await;
        }
        let (staged, written) = self.stage(content, options).await?;
        match self.publish_new(&staged, names).await {
            Ok(name) => self.written_meta(name, written, options).await,
            Err(e) => {
                self.remove_staged(&staged).await;
                Err(e)
            }
        }
    }

    async fn put_overwrite(
        &self,
        name: &Name,
        content: ByteStream,
        options: &PutOptions,
    ) -> Result<FileMeta> {
        self.check_visibility(options)?;
        refuse_staging_name(name)?;
        if matches!(self.publish, Publish::Conditional) {
            let mut content = self.limited(content);
            let written = match self
                .write(name.as_str(), &mut content, options, None, None)
                .await
            {
                Ok(written) => written,
                Err(WriteError::Taken) => {
                    return Err(Error::AlreadyExists {
                        name: name.to_string(),
                    })
                }
                Err(WriteError::Failed(e)) => return Err(e),
            };
            return self.written_meta(name.clone(), written, options).await;
        }
        let (staged, written) = self.stage(content, options).await?;
        let published = async {
            // A create-only write of this process between its check and its rename would
            // otherwise be replaced: wait for it.
            let _claim = self.claim_waiting(name).await?;
            if self.is_dir(name).await? {
                // A rename over a directory would take the directory's files with it (WebDAV's
                // MOVE with Overwrite: T deletes the target first).
                return Err(Error::InvalidName {
                    name: name.to_string(),
                    reason: "a directory has this name".to_owned(),
                });
            }
            self.rename(&staged, name).await
        };
        if let Err(e) = published.await {
            self.remove_staged(&staged).await;
            return Err(e);
        }
        self.written_meta(name.clone(), written, options).await
    }

    async fn open(&self, name: &Name, range: Option<ByteRange>) -> Result<OpenedFile> {
        let mut attempts = 0;
        loop {
            attempts += 1;
            match self.open_once(name, range).await? {
                Ok(opened) => return Ok(opened),
                // Replaced between the metadata and the first byte: read the new version.
                Err(_) if attempts < MAX_OPEN_ATTEMPTS => {}
                Err(_) => {
                    return Err(Error::backend(
                        self.backend,
                        format!("'{name}' kept changing while it was opened"),
                        std::io::Error::other("the file changed during open"),
                    ))
                }
            }
        }
    }

    async fn metadata(&self, name: &Name) -> Result<FileMeta> {
        Ok(self.stat(name).await?.0)
    }

    async fn remove(&self, name: &Name) -> Result<bool> {
        if is_staging_name(name) {
            return Ok(false);
        }
        match self.stat(name).await {
            Ok(_) => {}
            Err(Error::NotFound { .. }) => return Ok(false),
            Err(e) => return Err(e),
        }
        self.op
            .delete(name.as_str())
            .await
            .map_err(|e| self.error(&e, name.as_str(), "cannot delete"))?;
        Ok(true)
    }

    async fn listdir(&self, dir: Option<&Name>) -> Result<Listing> {
        let prefix = match dir {
            Some(dir) if is_staging_name(dir) => return Ok(Listing::default()),
            Some(dir) => format!("{dir}/"),
            None => String::new(),
        };
        let path = if prefix.is_empty() { "/" } else { &prefix };
        if let Some(dir) = dir.filter(|_| !matches!(self.publish, Publish::Conditional)) {
            // A file server may answer a listing of a file with the file itself.
            if !self.is_dir(dir).await? {
                return Ok(Listing::default());
            }
        }
        let mut lister = match self.op.lister(path).await {
            Ok(lister) => lister,
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::NotFound | ErrorKind::NotADirectory | ErrorKind::IsADirectory
                ) =>
            {
                return Ok(Listing::default())
            }
            Err(e) => return Err(self.error(&e, path, "cannot list")),
        };
        let mut listing = Listing::default();
        loop {
            let entry = match lister.try_next().await {
                Ok(Some(entry)) => entry,
                Ok(None) => break,
                Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => {
                    return Ok(Listing::default())
                }
                Err(e) => return Err(self.error(&e, path, "cannot list")),
            };
            let full = entry.path().trim_start_matches('/');
            let Some(relative) = full.strip_prefix(prefix.as_str()) else {
                continue;
            };
            if relative.is_empty() {
                continue;
            }
            // An entry no name can reach as it stands (a backslash reads as `/`, control
            // characters, ...) is not listed: it would stand for another file.
            if let Some(sub) = relative.strip_suffix('/') {
                if !Name::is_listable(dir, sub) || (dir.is_none() && sub == STAGING_DIR) {
                    continue;
                }
                listing.dirs.push(sub.to_owned());
            } else if Name::is_listable(dir, relative) {
                listing.files.push(relative.to_owned());
            }
        }
        if !matches!(self.publish, Publish::Conditional) {
            // File servers keep directories a delete left empty; they hold no file, so they
            // are not listed (object stores have no empty directories).
            let mut kept = Vec::with_capacity(listing.dirs.len());
            for sub in listing.dirs {
                if self.holds_files(&format!("{prefix}{sub}/")).await? {
                    kept.push(sub);
                }
            }
            listing.dirs = kept;
        }
        listing.dirs.sort();
        listing.dirs.dedup();
        listing.files.sort();
        Ok(listing)
    }

    async fn url(&self, name: &Name, valid_for: Option<Duration>) -> Result<String> {
        refuse_staging_name(name)?;
        let visibility = if self.user_metadata {
            self.stat(name).await?.0.visibility
        } else {
            Visibility::Public
        };
        if visibility == Visibility::Public {
            return url_under_base(self.backend, self.public_base_url.as_deref(), name);
        }
        if self.backend == "azblob" {
            // OpenDAL presigns Azure URLs by appending the storage's own SAS token, which would
            // hand every holder of one link all of that token's rights.
            return Err(Error::NotSupported {
                backend: self.backend,
                operation: "presigned URLs for private Azure files (serve them through the \
                            app's signed route)"
                    .to_owned(),
            });
        }
        if !self.op.info().capability().presign_read {
            return Err(Error::NotSupported {
                backend: self.backend,
                operation: "presigned URLs for private files (configure credentials that can \
                            sign)"
                    .to_owned(),
            });
        }
        let request = self
            .op
            .presign_read(name.as_str(), valid_for.unwrap_or(self.presign_expiry))
            .await
            .map_err(|e| self.error(&e, name.as_str(), "cannot presign a URL for"))?;
        let url = request.uri().to_string();
        if !url.contains('?') {
            // Without signing credentials (anonymous access) OpenDAL returns the plain URL: a
            // private file must not get one.
            return Err(Error::NotSupported {
                backend: self.backend,
                operation: "presigned URLs without credentials that can sign".to_owned(),
            });
        }
        Ok(url)
    }

    fn default_visibility(&self) -> Visibility {
        self.default_visibility
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn memory() -> Result<OpendalStorage> {
        let op = Operator::new(opendal::services::Memory::default())
            .map_err(|e| Error::backend("memory", "cannot build", e))?;
        OpendalStorage::new(op)
    }

    #[tokio::test]
    async fn memory_service_passes_the_conformance_suite() -> Result<()> {
        let storage = memory()?.with_public_base_url(Some("https://files.example.com/m/"));
        let caps = storage.capabilities();
        assert!(caps.atomic_create && !caps.private_files && !caps.stored_checksum);
        // Every behaviour but `metadata_and_checksum`: OpenDAL's memory service keeps no
        // modification time. The real services run the whole suite (tests/services.rs).
        let storage: Arc<dyn Storage> = Arc::new(storage);
        storage_conformance::run_all_but(storage.as_ref(), &["metadata_and_checksum"]).await?;
        storage_conformance::racing_tasks_get_distinct_names(storage).await
    }

    /// Keys no name reaches as they stand are not listed (the same check runs against S3 in
    /// tests/services.rs).
    #[tokio::test]
    async fn keys_no_name_reaches_are_not_listed() -> Result<()> {
        use storage_core::{SaveOptions, StorageExt};
        let storage = memory()?;
        storage
            .save_with("odd/ok.txt", "ok", &SaveOptions::new().keep_name(true))
            .await?;
        for key in [
            "odd/back\\slash.txt",
            "odd/sub\\dir/inner.txt",
            "odd\\sneaky.txt",
        ] {
            let written = storage.operator().write(key, "not ours").await;
            written.map_err(|e| Error::backend("memory", "cannot write", e))?;
        }
        storage_conformance::lists_only_reachable_names(&storage, "odd").await
    }

    #[tokio::test]
    async fn staging_names_are_reserved() -> Result<()> {
        use storage_core::{SaveOptions, StorageExt};
        let storage = memory()?;
        let result = storage
            .save_with(
                &format!("{STAGING_DIR}/x.txt"),
                "x",
                &SaveOptions::new().keep_name(true),
            )
            .await;
        assert!(
            matches!(result, Err(Error::InvalidName { .. })),
            "{result:?}"
        );
        let staged = Name::new(format!("{STAGING_DIR}/x.txt"))?;
        assert!(!storage.delete(&staged).await?);
        assert!(matches!(
            storage.metadata(&staged).await,
            Err(Error::NotFound { .. })
        ));
        Ok(())
    }

    #[test]
    fn errors_keep_no_request_context() -> Result<()> {
        let storage = memory()?;
        let signed = opendal::Error::new(ErrorKind::Unexpected, "the service failed").with_context(
            "uri",
            "https://acct.blob.example/c/a.txt?sv=1&sig=SECRETSIG",
        );
        let e = storage.error(&signed, "a.txt", "cannot write");
        let mut shown = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(inner) = source {
            shown.push_str(&format!(" / {inner} / {inner:?}"));
            source = inner.source();
        }
        assert!(
            shown.contains("the service failed") && shown.contains("'a.txt'"),
            "{shown}"
        );
        assert!(
            !shown.contains("SECRETSIG") && !shown.contains("blob.example"),
            "{shown}"
        );
        let taken = opendal::Error::new(ErrorKind::ConditionNotMatch, "precondition failed");
        assert!(matches!(
            storage.error(&taken, "a.txt", "cannot write"),
            Error::AlreadyExists { .. }
        ));
        Ok(())
    }

    #[test]
    fn claims_are_exclusive_until_dropped() {
        let claims = Claims::default();
        let first = claims.try_claim("a.txt");
        assert!(first.is_some());
        assert!(claims.try_claim("a.txt").is_none());
        assert!(claims.try_claim("b.txt").is_some());
        drop(first);
        assert!(claims.try_claim("a.txt").is_some());
    }
}
