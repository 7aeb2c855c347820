//! [`FileSystemStorage`]: files under a directory on the local disk, Django's
//! `FileSystemStorage` with atomic writes.

use std::fs::{self, File, OpenOptions};
use std::io::{self, ErrorKind, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::error::{Error, Result};
use crate::meta::{ByteRange, Capabilities, ContentHasher, FileMeta, Listing, Visibility};
use crate::name::Name;
use crate::naming::NameCandidates;
use crate::storage::{guess_content_type, OpenedFile, PutOptions, Storage};
use crate::stream::{reader_stream, ByteStream, DEFAULT_CHUNK_SIZE};
use crate::url::url_under_base;

/// The directory under the location where writes are staged before they get their real name.
/// It is never listed, and no stored name may start with it.
pub const STAGING_DIR: &str = ".dbfiles-staging";

/// True when `name` lies under [`STAGING_DIR`], where backends that stage writes keep uploads
/// in flight.
pub fn is_staging_name(name: &Name) -> bool {
    name.parts().next() == Some(STAGING_DIR)
}

/// [`Error::InvalidName`] for a name under [`STAGING_DIR`]: such a name is never stored, so a
/// staged upload can never be mistaken for a file.
pub fn refuse_staging_name(name: &Name) -> Result<()> {
    if is_staging_name(name) {
        return Err(Error::InvalidName {
            name: name.to_string(),
            reason: format!("'{STAGING_DIR}' is reserved for uploads in flight"),
        });
    }
    Ok(())
}

const BACKEND: &str = "filesystem";

/// How often a create-only write retries when a concurrent delete removed the directory it was
/// publishing into.
const MAX_VANISHED_DIR_RETRIES: u32 = 8;

/// Files under a directory on the local disk.
///
/// Writes go to a staging file under [`STAGING_DIR`], are synced, then take their real name in
/// one step: an exclusive hard link for create-only writes (so two writers racing for one name
/// never both win) and a rename for overwrites. A crash mid-write leaves nothing under a real
/// name, only a staging file that [`remove_stale_uploads`](Self::remove_stale_uploads) clears.
/// Deleting a file removes the directories it leaves empty, so directories exist exactly while
/// they hold files, as in the database backends.
///
/// The filesystem keeps no checksum, content type or visibility: `metadata` has no `sha256`
/// (writes return it), the type is guessed from the name, and private files are refused with
/// [`Error::NotSupported`]. The ETag is built from the inode, modification time and size,
/// which is strong here because content is only ever replaced by renaming a new file in.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use storage_core::{FileSystemStorage, Storage, StorageExt};
/// let dir = tempfile::tempdir().unwrap();
/// let storage = FileSystemStorage::new(dir.path())?.with_base_url(Some("/media/"));
/// let meta = storage.save("my photo.jpg", "...").await?;
/// assert_eq!(meta.name.as_str(), "my_photo.jpg");
/// assert_eq!(storage.url(&meta.name, None).await?, "/media/my_photo.jpg");
/// # Ok::<(), storage_core::Error>(()) }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct FileSystemStorage {
    location: PathBuf,
    base_url: Option<String>,
    file_mode: Option<u32>,
    dir_mode: Option<u32>,
    sync: bool,
}

impl FileSystemStorage {
    /// A storage rooted at `location` (made absolute; created on first write), with URLs under
    /// `/media/`, the OS's default permissions, and writes synced to disk before they are
    /// published.
    pub fn new(location: impl AsRef<Path>) -> Result<Self> {
        let location = std::path::absolute(location.as_ref())
            .map_err(|e| Error::backend(BACKEND, "cannot resolve the storage location", e))?;
        Ok(Self {
            location,
            base_url: Some("/media/".to_owned()),
            file_mode: None,
            dir_mode: None,
            sync: true,
        })
    }

    /// Sets the base URL (a missing trailing slash is added); `None` makes `url()` fail with
    /// [`Error::NotSupported`], as Django raises when `base_url` is unset.
    #[must_use]
    pub fn with_base_url(mut self, base_url: Option<&str>) -> Self {
        self.base_url = base_url.map(str::to_owned);
        self
    }

    /// Permission bits for new files, applied exactly (not masked by the umask), like Django's
    /// `FILE_UPLOAD_PERMISSIONS`. Unix only; ignored elsewhere.
    #[must_use]
    pub fn with_file_permissions(mut self, mode: u32) -> Self {
        self.file_mode = Some(mode);
        self
    }

    /// Permission bits for new directories, like Django's `FILE_UPLOAD_DIRECTORY_PERMISSIONS`.
    #[must_use]
    pub fn with_directory_permissions(mut self, mode: u32) -> Self {
        self.dir_mode = Some(mode);
        self
    }

    /// Whether writes are synced to disk before they are published (default `true`). Turning it
    /// off is faster and still never shows half a file to a reader, but a power cut may leave an
    /// empty file under a real name.
    #[must_use]
    pub fn with_sync(mut self, sync: bool) -> Self {
        self.sync = sync;
        self
    }

    /// The absolute root directory.
    pub fn location(&self) -> &Path {
        &self.location
    }

    /// The local path of `name`, Django's `Storage.path`.
    pub fn path(&self, name: &Name) -> Result<PathBuf> {
        refuse_staging_name(name)?;
        Ok(name
            .parts()
            .fold(self.location.clone(), |path, part| path.join(part)))
    }

    /// Removes staging files older than `older_than`, left by writes that were interrupted by a
    /// crash. Returns how many were removed.
    pub async fn remove_stale_uploads(&self, older_than: Duration) -> Result<usize> {
        let staging = self.location.join(STAGING_DIR);
        blocking(move || {
            let entries = match fs::read_dir(&staging) {
                Ok(entries) => entries,
                Err(e) if e.kind() == ErrorKind::NotFound => return Ok(0),
                Err(e) => return Err(io_error(e, STAGING_DIR, "cannot list staging files")),
            };
            let cutoff = SystemTime::now()
                .checked_sub(older_than)
                .unwrap_or(UNIX_EPOCH);
            let mut removed = 0;
            for entry in entries.flatten() {
                let stale = entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .is_ok_and(|modified| modified < cutoff);
                if stale && fs::remove_file(entry.path()).is_ok() {
                    removed += 1;
                }
            }
            Ok(removed)
        })
        .await
    }

    /// Streams `content` into a new staging file, hashing it; on any failure the staging file is
    /// removed and nothing is published.
    async fn stage(&self, content: ByteStream) -> Result<Staged> {
        let staging = self.location.join(STAGING_DIR);
        let (file_mode, dir_mode, location) =
            (self.file_mode, self.dir_mode, self.location.clone());
        let (path, file) = blocking(move || {
            create_dirs(&location, &staging, dir_mode)?;
            create_staging_file(&staging, file_mode)
        })
        .await?;
        let mut staged = Staged {
            path: Some(path),
            sha256: [0; 32],
            size: 0,
        };
        let mut file = tokio::fs::File::from_std(file);
        let mut hasher = ContentHasher::new();
        let mut content = content;
        while let Some(chunk) = content.next().await {
            let chunk = chunk?;
            hasher.update(&chunk);
            file.write_all(&chunk)
                .await
                .map_err(|e| io_error(e, STAGING_DIR, "write failed"))?;
        }
        file.flush()
            .await
            .map_err(|e| io_error(e, STAGING_DIR, "write failed"))?;
        if self.sync {
            file.sync_all()
                .await
                .map_err(|e| io_error(e, STAGING_DIR, "sync failed"))?;
        }
        drop(file);
        (staged.sha256, staged.size) = hasher.finish();
        Ok(staged)
    }

    fn meta_from(&self, name: &Name, metadata: &fs::Metadata) -> FileMeta {
        let modified = metadata.modified().unwrap_or(UNIX_EPOCH);
        let created = metadata.created().unwrap_or(modified);
        let nanos = modified
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let etag = format!("\"{:x}-{nanos:x}-{:x}\"", inode(metadata), metadata.len());
        FileMeta::without_checksum(name.clone(), metadata.len(), etag, modified)
            .with_created(created)
            .with_content_type(guess_content_type(name.as_str()))
    }

    fn refuse_private(options: &PutOptions) -> Result<()> {
        if options.visibility == Visibility::Private {
            return Err(Error::NotSupported {
                backend: BACKEND,
                operation: "private files".to_owned(),
            });
        }
        Ok(())
    }

    async fn sync_dir(&self, dir: PathBuf) {
        if self.sync {
            // Durability of the new directory entry; the write itself already succeeded.
            let _ = blocking(move || {
                File::open(&dir)
                    .and_then(|d| d.sync_all())
                    .map_err(|e| io_error(e, "", "sync"))
            })
            .await;
        }
    }
}

/// A staging file, removed when dropped unless its path was taken for publishing.
struct Staged {
    path: Option<PathBuf>,
    sha256: [u8; 32],
    size: u64,
}

impl Drop for Staged {
    fn drop(&mut self) {
        if let Some(path) = self.path.take() {
            let _ = fs::remove_file(path);
        }
    }
}

#[async_trait]
impl Storage for FileSystemStorage {
    fn backend_name(&self) -> &'static str {
        BACKEND
    }

    fn capabilities(&self) -> Capabilities {
        let mut caps = Capabilities::full();
        caps.stored_checksum = false;
        caps.stored_content_type = false;
        caps.private_files = false;
        caps
    }

    async fn put_new(
        &self,
        names: &mut NameCandidates,
        content: ByteStream,
        options: &PutOptions,
    ) -> Result<FileMeta> {
        Self::refuse_private(options)?;
        self.path(names.current())?;
        let staged = self.stage(content).await?;
        let source = staged.path.clone().unwrap_or_default();
        let mut vanished = 0;
        loop {
            let name = names.current().clone();
            let target = self.path(&name)?;
            let (location, dir_mode, source) =
                (self.location.clone(), self.dir_mode, source.clone());
            let attempt = blocking(move || {
                if let Some(parent) = target.parent() {
                    create_dirs(&location, parent, dir_mode)?;
                }
                Ok(fs::hard_link(&source, &target).map(|()| target))
            })
            .await?;
            match attempt {
                Ok(target) => {
                    let (sha256, size) = (staged.sha256, staged.size);
                    blocking(move || {
                        drop(staged);
                        Ok(())
                    })
                    .await?;
                    if let Some(parent) = target.parent() {
                        self.sync_dir(parent.to_owned()).await;
                    }
                    return self.published(&name, &target, sha256, size, options).await;
                }
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                    names.next_after_collision()?;
                }
                // A concurrent delete pruned the directory between creating it and linking.
                Err(e)
                    if e.kind() == ErrorKind::NotFound && vanished < MAX_VANISHED_DIR_RETRIES =>
                {
                    vanished += 1;
                }
                Err(e) => return Err(io_error(e, name.as_str(), "cannot publish the file")),
            }
        }
    }

    async fn put_overwrite(
        &self,
        name: &Name,
        content: ByteStream,
        options: &PutOptions,
    ) -> Result<FileMeta> {
        Self::refuse_private(options)?;
        let target = self.path(name)?;
        let mut staged = self.stage(content).await?;
        let source = staged.path.take().unwrap_or_default();
        let (location, dir_mode, dest) = (self.location.clone(), self.dir_mode, target.clone());
        let owned_name = name.to_string();
        let renamed = blocking(move || {
            let result = (|| {
                let mut vanished = 0;
                let renamed = loop {
                    if let Some(parent) = dest.parent() {
                        create_dirs(&location, parent, dir_mode)?;
                    }
                    match fs::rename(&source, &dest) {
                        // A concurrent delete pruned the directory between creating it and renaming.
                        Err(e)
                            if e.kind() == ErrorKind::NotFound
                                && vanished < MAX_VANISHED_DIR_RETRIES
                                && source.exists() =>
                        {
                            vanished += 1;
                        }
                        other => break other,
                    }
                };
                renamed.map_err(|e| match e.kind() {
                    ErrorKind::IsADirectory | ErrorKind::DirectoryNotEmpty => Error::InvalidName {
                        name: owned_name.clone(),
                        reason: "a directory has this name".to_owned(),
                    },
                    _ => io_error(e, &owned_name, "cannot publish the file"),
                })
            })();
            if result.is_err() {
                let _ = fs::remove_file(&source);
            }
            result
        })
        .await;
        renamed?;
        if let Some(parent) = target.parent() {
            self.sync_dir(parent.to_owned()).await;
        }
        self.published(name, &target, staged.sha256, staged.size, options)
            .await
    }

    async fn open(&self, name: &Name, range: Option<ByteRange>) -> Result<OpenedFile> {
        let path = self.path(name)?;
        let owned = name.clone();
        let (file, metadata, range) = blocking(move || {
            let mut file =
                File::open(&path).map_err(|e| io_error(e, owned.as_str(), "cannot open"))?;
            let metadata = file
                .metadata()
                .map_err(|e| io_error(e, owned.as_str(), "cannot stat"))?;
            if !metadata.is_file() {
                return Err(not_found(&owned));
            }
            let range = range
                .unwrap_or(ByteRange::From(0))
                .resolve(metadata.len())?;
            file.seek(SeekFrom::Start(range.start))
                .map_err(|e| io_error(e, owned.as_str(), "cannot seek"))?;
            Ok((file, metadata, range))
        })
        .await?;
        let meta = self.meta_from(name, &metadata);
        let reader = tokio::fs::File::from_std(file).take(range.end - range.start);
        Ok(OpenedFile {
            meta,
            range,
            stream: reader_stream(reader, DEFAULT_CHUNK_SIZE, BACKEND),
        })
    }

    async fn metadata(&self, name: &Name) -> Result<FileMeta> {
        let path = self.path(name)?;
        let owned = name.clone();
        let metadata = blocking(move || {
            let metadata =
                fs::metadata(&path).map_err(|e| io_error(e, owned.as_str(), "cannot stat"))?;
            if metadata.is_file() {
                Ok(metadata)
            } else {
                Err(not_found(&owned))
            }
        })
        .await?;
        Ok(self.meta_from(name, &metadata))
    }

    async fn remove(&self, name: &Name) -> Result<bool> {
        let path = self.path(name)?;
        let location = self.location.clone();
        let owned = name.to_string();
        blocking(move || {
            match fs::symlink_metadata(&path) {
                Ok(m) if m.is_dir() => return Ok(false),
                Err(e) if e.kind() == ErrorKind::NotFound => return Ok(false),
                _ => {}
            }
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => {
                    return Ok(false)
                }
                Err(e) => return Err(io_error(e, &owned, "cannot delete")),
            }
            // Remove the directories this delete left empty; stop at the first that is not.
            let mut dir = path.parent();
            while let Some(d) = dir {
                if d == location || !d.starts_with(&location) || fs::remove_dir(d).is_err() {
                    break;
                }
                dir = d.parent();
            }
            Ok(true)
        })
        .await
    }

    async fn listdir(&self, dir: Option<&Name>) -> Result<Listing> {
        let location = self.location.clone();
        let dir = dir.cloned();
        blocking(move || {
            let read = read_listing(&location, dir.as_ref())?;
            let mut listing = Listing {
                dirs: read.dirs.into_iter().map(|(name, _)| name).collect(),
                files: read.files,
            };
            listing.dirs.sort();
            listing.files.sort();
            Ok(listing)
        })
        .await
    }

    fn default_visibility(&self) -> Visibility {
        Visibility::Public
    }

    async fn url(&self, name: &Name, _valid_for: Option<Duration>) -> Result<String> {
        url_under_base(BACKEND, self.base_url.as_deref(), name)
    }
}

impl FileSystemStorage {
    /// Every entry under the location that listings pass over, with the reason a person should
    /// hear: a name that is not UTF-8 or not a name as it stands (a backslash, a control
    /// character, too long), an entry that cannot be read (a dangling link). The staging
    /// directory and links back up the tree are passed over without a word. For an import from
    /// a directory (`dbfiles load`) to say what it could not take instead of looking complete.
    pub async fn unlistable_entries(&self) -> Result<Vec<(PathBuf, String)>> {
        let location = self.location.clone();
        blocking(move || {
            let mut refused = Vec::new();
            let mut pending: Vec<Option<Name>> = vec![None];
            // Bounded: names grow with depth and stop at MAX_NAME_BYTES, and links back up
            // the walk are not followed.
            while let Some(dir) = pending.pop() {
                match read_listing(&location, dir.as_ref()) {
                    Ok(read) => {
                        refused.extend(read.refused);
                        pending.extend(read.dirs.into_iter().map(|(_, name)| Some(name)));
                    }
                    // An unreadable directory is named, and the walk goes on.
                    Err(e) => {
                        let path =
                            dir.map_or_else(|| location.clone(), |d| location.join(d.as_str()));
                        refused.push((path, format!("cannot be read: {e}")));
                    }
                }
            }
            refused.sort();
            Ok(refused)
        })
        .await
    }

    async fn published(
        &self,
        name: &Name,
        target: &Path,
        sha256: [u8; 32],
        size: u64,
        options: &PutOptions,
    ) -> Result<FileMeta> {
        let target = target.to_owned();
        let owned = name.clone();
        let metadata = blocking(move || {
            fs::metadata(&target).map_err(|e| io_error(e, owned.as_str(), "cannot stat"))
        })
        .await?;
        let mut meta = self.meta_from(name, &metadata);
        meta.sha256 = Some(sha256);
        meta.size = size;
        meta.content_type = options.content_type.clone().or(meta.content_type);
        Ok(meta)
    }
}

/// Runs blocking filesystem work off the async runtime's worker threads.
/// One directory as listings see it.
#[derive(Default)]
struct ReadListing {
    /// Subdirectories: the entry, and its name.
    dirs: Vec<(String, Name)>,
    files: Vec<String>,
    /// Entries passed over, with the reason.
    refused: Vec<(PathBuf, String)>,
}

/// Reads the directory `dir` below `location` as every listing does: names that are not UTF-8
/// or not names as they stand ([`Name::is_listable`]) are refused, the staging directory is
/// left out, links are followed except back up the walk, and a dangling link is refused.
fn read_listing(location: &Path, dir: Option<&Name>) -> Result<ReadListing> {
    let shown = dir.map_or_else(String::new, ToString::to_string);
    // The directories the walk went through to get here: the root, then one per part.
    let mut steps = vec![location.to_path_buf()];
    for part in dir.map(Name::parts).into_iter().flatten() {
        let next = steps.last().map(|last| last.join(part));
        steps.extend(next);
    }
    let path = steps
        .last()
        .cloned()
        .unwrap_or_else(|| location.to_path_buf());
    let entries = match fs::read_dir(&path) {
        Ok(entries) => entries,
        Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => {
            return Ok(ReadListing::default())
        }
        Err(e) => return Err(io_error(e, &shown, "cannot list")),
    };
    // Where the walk's directories really are, for telling a link back up the walk apart;
    // worked out at the first link to a directory.
    let mut real_steps: Option<Vec<PathBuf>> = None;
    let mut read = ReadListing::default();
    for entry in entries {
        let entry = entry.map_err(|e| io_error(e, &shown, "cannot list"))?;
        let entry_path = entry.path();
        let Ok(file_name) = entry.file_name().into_string() else {
            read.refused
                .push((entry_path, "the name is not UTF-8".to_owned()));
            continue;
        };
        if dir.is_none() && file_name == STAGING_DIR {
            continue;
        }
        // Not a name as it stands (a backslash reads as `/`, so it would stand for another
        // file): not a name this storage could have written.
        let Some(name) = Name::listed(dir, &file_name) else {
            let full = dir.map_or_else(|| file_name.clone(), |d| format!("{d}/{file_name}"));
            let reason = match Name::new(&full) {
                Err(e) => e.to_string(),
                Ok(_) => "the name holds a backslash".to_owned(),
            };
            read.refused.push((entry_path, reason));
            continue;
        };
        match fs::metadata(&entry_path) {
            Ok(m) if m.is_dir() => {
                // A link to a directory the walk went through to get here, or one above it
                // (`ln -s . again`, `a/l -> ../b` with `b/l -> ../a`), would be walked for
                // ever, each file listed once per round: not listed. Other links to
                // directories are followed, like Django's storage does.
                if entry.file_type().is_ok_and(|t| t.is_symlink()) {
                    let real = real_steps.get_or_insert_with(|| {
                        steps
                            .iter()
                            .filter_map(|p| fs::canonicalize(p).ok())
                            .collect()
                    });
                    let back_up = fs::canonicalize(&entry_path)
                        .is_ok_and(|target| real.iter().any(|s| s.starts_with(&target)));
                    if back_up {
                        continue;
                    }
                }
                read.dirs.push((file_name, name));
            }
            Ok(_) => read.files.push(file_name),
            // Removed meanwhile, or a dangling link.
            Err(e) => read.refused.push((
                entry_path,
                format!("cannot be read (a dangling link?): {e}"),
            )),
        }
    }
    Ok(read)
}

async fn blocking<T, F>(work: F) -> Result<T>
where
    F: FnOnce() -> Result<T> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Error::backend(BACKEND, "filesystem task failed", e))?
}

fn not_found(name: &Name) -> Error {
    Error::NotFound {
        name: name.to_string(),
    }
}

/// Maps an I/O error without leaking the local path: messages name the storage name only.
fn io_error(e: io::Error, name: &str, action: &str) -> Error {
    match e.kind() {
        ErrorKind::NotFound => Error::NotFound {
            name: name.to_owned(),
        },
        ErrorKind::PermissionDenied => Error::PermissionDenied {
            name: name.to_owned(),
        },
        ErrorKind::InvalidFilename => Error::InvalidName {
            name: name.to_owned(),
            reason: "too long for the filesystem".to_owned(),
        },
        // A parent is a file: nothing can be stored under it.
        ErrorKind::NotADirectory => Error::NotFound {
            name: name.to_owned(),
        },
        _ => Error::backend(BACKEND, format!("{action} '{name}'"), e),
    }
}

/// Creates `dir` and its missing parents under `location`, one at a time so each new directory
/// gets `mode`. A directory created concurrently by another writer is fine, and so is one that a
/// concurrent delete pruned meanwhile: creation starts again, a bounded number of times.
fn create_dirs(location: &Path, dir: &Path, mode: Option<u32>) -> Result<()> {
    let relative = dir.strip_prefix(location).unwrap_or(dir);
    let shown = relative.to_string_lossy();
    let mut attempts = 0;
    'again: loop {
        if dir.is_dir() {
            return Ok(());
        }
        attempts += 1;
        fs::create_dir_all(location)
            .map_err(|e| io_error(e, "", "cannot create the storage location"))?;
        let mut current = location.to_path_buf();
        for part in relative.components() {
            current.push(part);
            match make_dir(&current, mode) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::AlreadyExists => match fs::metadata(&current) {
                    Ok(m) if m.is_dir() => {}
                    Ok(_) => {
                        return Err(Error::InvalidName {
                            name: shown.into_owned(),
                            reason: "a parent directory is a file".to_owned(),
                        });
                    }
                    // Pruned between our mkdir and this look.
                    Err(_) if attempts < MAX_VANISHED_DIR_RETRIES => continue 'again,
                    Err(e) => return Err(io_error(e, &shown, "cannot create directory")),
                },
                Err(e)
                    if e.kind() == ErrorKind::NotFound && attempts < MAX_VANISHED_DIR_RETRIES =>
                {
                    continue 'again;
                }
                Err(e) => return Err(io_error(e, &shown, "cannot create directory")),
            }
        }
        return Ok(());
    }
}

#[cfg(unix)]
fn make_dir(path: &Path, mode: Option<u32>) -> io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    fs::DirBuilder::new()
        .mode(mode.unwrap_or(0o777))
        .create(path)?;
    if let Some(mode) = mode {
        fs::set_permissions(path, fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}

#[cfg(not(unix))]
fn make_dir(path: &Path, _mode: Option<u32>) -> io::Result<()> {
    fs::create_dir(path)
}

fn create_staging_file(staging: &Path, mode: Option<u32>) -> Result<(PathBuf, File)> {
    for _ in 0..16 {
        let path = staging.join(format!("{}.part", uuid::Uuid::new_v4().simple()));
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(mode.unwrap_or(0o666));
        }
        match options.open(&path) {
            Ok(file) => {
                set_exact_mode(&file, mode)
                    .map_err(|e| io_error(e, STAGING_DIR, "cannot set permissions"))?;
                return Ok((path, file));
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io_error(e, STAGING_DIR, "cannot create a staging file")),
        }
    }
    Err(Error::backend(
        BACKEND,
        "cannot create a staging file",
        io::Error::from(ErrorKind::AlreadyExists),
    ))
}

#[cfg(unix)]
fn set_exact_mode(file: &File, mode: Option<u32>) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    match mode {
        Some(mode) => file.set_permissions(fs::Permissions::from_mode(mode)),
        None => Ok(()),
    }
}

#[cfg(not(unix))]
fn set_exact_mode(_file: &File, _mode: Option<u32>) -> io::Result<()> {
    Ok(())
}

#[cfg(unix)]
fn inode(metadata: &fs::Metadata) -> u64 {
    use std::os::unix::fs::MetadataExt;
    metadata.ino()
}

#[cfg(not(unix))]
fn inode(_metadata: &fs::Metadata) -> u64 {
    0
}
