//! [`MirroredStorage`]: stored files exported under a media root, so nginx or a CDN can serve
//! them (django-binary-database-files' `DB_FILES_AUTO_EXPORT_DB_TO_FS`).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures::TryStreamExt;
use tokio::io::AsyncWriteExt;

use crate::error::{Error, Result};
use crate::meta::{Capabilities, FileMeta, Listing, Visibility};
use crate::name::Name;
use crate::naming::NameCandidates;
use crate::storage::{OpenedFile, PutOptions, Storage};
use crate::stream::ByteStream;
use crate::ByteRange;

const BACKEND: &str = "mirror";

/// Wraps a storage and keeps a copy of every public file under a media root: written on save,
/// refreshed on read when the stored checksum no longer matches the copy's, removed on delete.
/// Private files are never exported (and an export is removed when a file becomes private).
///
/// Beside each copy, `NAME.hash` holds the checksum it was written from, as
/// django-binary-database-files does: the package's `content_hash` where the backend keeps one
/// (so that package's `is_fresh` and ours agree on a shared media root), the SHA-256 otherwise.
///
/// The mirror is a cache: the storage stays the truth. A failed export never fails the save
/// or read that caused it; it is counted ([`MirroredStorage::failures`]) and retried on the next
/// read.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use storage_core::{InMemoryStorage, MirroredStorage, StorageExt, Visibility};
///
/// let media_root = tempfile::tempdir().unwrap();
/// let public = InMemoryStorage::new().with_default_visibility(Visibility::Public);
/// let storage = MirroredStorage::new(public, media_root.path())?;
/// storage.save("logos/site.svg", "<svg/>").await?;
/// assert_eq!(std::fs::read(media_root.path().join("logos/site.svg")).unwrap(), b"<svg/>");
/// # Ok::<(), storage_core::Error>(()) }).unwrap();
/// ```
pub struct MirroredStorage<S> {
    inner: S,
    root: PathBuf,
    failures: Arc<Failures>,
}

#[derive(Debug, Default)]
struct Failures {
    count: AtomicU64,
    last: Mutex<Option<String>>,
}

impl<S> std::fmt::Debug for MirroredStorage<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MirroredStorage")
            .field("media_root", &self.root)
            .finish_non_exhaustive()
    }
}

impl<S: Clone> Clone for MirroredStorage<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            root: self.root.clone(),
            failures: Arc::clone(&self.failures),
        }
    }
}

impl<S: Storage> MirroredStorage<S> {
    /// Mirrors `inner` under `media_root`, which must be an existing directory. An empty path
    /// is refused: an empty `MEDIA_ROOT` once made django-binary-database-files write and serve
    /// files relative to the project's source tree.
    pub fn new(inner: S, media_root: impl AsRef<Path>) -> Result<Self> {
        let given = media_root.as_ref();
        let refuse = |reason: &str| Error::BadRequest {
            reason: format!("media root {reason}"),
        };
        if given.as_os_str().is_empty() {
            return Err(refuse("is empty; give the directory to export files into"));
        }
        let root = std::fs::canonicalize(given)
            .map_err(|_| refuse(&format!("'{}' does not exist", given.display())))?;
        if !root.is_dir() {
            return Err(refuse(&format!("'{}' is not a directory", given.display())));
        }
        if root.parent().is_none() {
            return Err(refuse("is the filesystem root"));
        }
        Ok(Self {
            inner,
            root,
            failures: Arc::new(Failures::default()),
        })
    }

    /// The wrapped storage.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// The media root (canonical).
    pub fn media_root(&self) -> &Path {
        &self.root
    }

    /// True for a name that would share its disk path with another file's checksum
    /// (`photo.jpg.hash` is where `photo.jpg`'s checksum lives, and `photo.jpg.hash/x` would
    /// need it to be a directory): any part ending in `.hash`, in any case, since a media root
    /// on macOS or Windows ignores case. Such names are refused by this storage and never
    /// exported, so neither file can overwrite the other.
    pub fn is_checksum_name(name: &Name) -> bool {
        name.parts().any(|part| {
            part.len() >= 5
                && part
                    .get(part.len() - 5..)
                    .is_some_and(|end| end.eq_ignore_ascii_case(".hash"))
        })
    }

    fn refuse_checksum_name(name: &Name) -> Result<()> {
        if Self::is_checksum_name(name) {
            return Err(Error::invalid(
                name.as_str(),
                "a name with a part ending in '.hash' would share the disk mirror's path for another file's checksum",
            ));
        }
        Ok(())
    }

    /// Where a name's copy lives, and its `.hash` file.
    pub fn paths(&self, name: &Name) -> (PathBuf, PathBuf) {
        let file = self.root.join(name.as_str());
        let mut hash = file.clone().into_os_string();
        hash.push(".hash");
        (file, PathBuf::from(hash))
    }

    /// How many exports failed since this mirror was made.
    pub fn failures(&self) -> u64 {
        self.failures.count.load(Ordering::Relaxed)
    }

    /// The last export failure, if any.
    pub fn last_failure(&self) -> Option<String> {
        self.failures.last.lock().ok().and_then(|last| last.clone())
    }

    /// The checksum written to `NAME.hash` for this version.
    pub fn checksum_of(meta: &FileMeta) -> String {
        meta.django_content_hash
            .clone()
            .or_else(|| meta.sha256_hex())
            .unwrap_or_else(|| meta.etag.trim_matches('"').to_owned())
    }

    /// True when the copy on disk is of this version: the file has its size and `NAME.hash`
    /// holds its checksum.
    pub async fn is_fresh(&self, meta: &FileMeta) -> bool {
        let (file, hash) = self.paths(&meta.name);
        let size_ok = tokio::fs::symlink_metadata(&file)
            .await
            .is_ok_and(|m| m.is_file() && m.len() == meta.size);
        size_ok
            && tokio::fs::read_to_string(&hash)
                .await
                .is_ok_and(|stored| stored.trim() == Self::checksum_of(meta))
    }

    /// Exports `name` unless its copy is fresh (or it is private, in which case any copy is
    /// removed). Returns true when it wrote.
    pub async fn export(&self, name: &Name) -> Result<bool> {
        let meta = self.inner.metadata(name).await?;
        self.export_version(&meta).await
    }

    async fn export_version(&self, meta: &FileMeta) -> Result<bool> {
        // Stored before the mirror was there: served by the app, never written over a checksum.
        if Self::is_checksum_name(&meta.name) {
            return Ok(false);
        }
        if meta.visibility == Visibility::Private {
            self.remove_copy(&meta.name).await?;
            return Ok(false);
        }
        if self.is_fresh(meta).await {
            return Ok(false);
        }
        let opened = self.inner.open(&meta.name, None).await?;
        let (file, hash) = self.paths(&meta.name);
        let parent = self.safe_parent(&file).await?;
        write_atomically(&parent, &file, opened.stream).await?;
        let checksum = Self::checksum_of(&opened.meta);
        let bytes: ByteStream = crate::bytes_stream(checksum.into_bytes());
        write_atomically(&parent, &hash, bytes).await?;
        Ok(true)
    }

    /// Creates the parent directories and checks that, symlinks resolved, they are still under
    /// the media root.
    async fn safe_parent(&self, file: &Path) -> Result<PathBuf> {
        let parent = file.parent().ok_or_else(|| Error::SuspiciousPath {
            name: file.display().to_string(),
            reason: "no parent directory".to_owned(),
        })?;
        tokio::fs::create_dir_all(parent)
            .await
            .map_err(|e| Error::backend(BACKEND, "cannot create the mirror directory", e))?;
        let real = tokio::fs::canonicalize(parent)
            .await
            .map_err(|e| Error::backend(BACKEND, "cannot resolve the mirror directory", e))?;
        if !real.starts_with(&self.root) {
            return Err(Error::SuspiciousPath {
                name: file.display().to_string(),
                reason: "a symbolic link leads outside the media root".to_owned(),
            });
        }
        Ok(real)
    }

    async fn remove_copy(&self, name: &Name) -> Result<()> {
        if Self::is_checksum_name(name) {
            return Ok(()); // never exported; that path is another file's checksum
        }
        let (file, hash) = self.paths(name);
        for path in [file, hash] {
            // A directory of the same name is another name's parent: not this copy.
            if tokio::fs::symlink_metadata(&path)
                .await
                .map_or(true, |m| m.is_dir())
            {
                continue;
            }
            match tokio::fs::remove_file(&path).await {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::backend(BACKEND, "cannot remove a mirrored file", e)),
            }
        }
        Ok(())
    }

    fn record(&self, result: Result<bool>) {
        if let Err(e) = result {
            self.failures.count.fetch_add(1, Ordering::Relaxed);
            if let Ok(mut last) = self.failures.last.lock() {
                *last = Some(e.to_string());
            }
        }
    }
}

/// Streams into a hidden temporary file beside `target`, then renames it over `target`: a
/// reader of the media root never sees half a file, and a symlink at `target` is replaced, not
/// followed.
async fn write_atomically(dir: &Path, target: &Path, mut content: ByteStream) -> Result<()> {
    let file_name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = dir.join(format!(
        ".{file_name}.mirror-{:016x}",
        rand::random::<u64>()
    ));
    let io = |what: &'static str| move |e: std::io::Error| Error::backend(BACKEND, what, e);
    let result: Result<()> = async {
        let mut out = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)
            .await
            .map_err(io("cannot create a mirror file"))?;
        while let Some(chunk) = content.try_next().await? {
            out.write_all(&chunk)
                .await
                .map_err(io("cannot write a mirror file"))?;
        }
        out.flush()
            .await
            .map_err(io("cannot write a mirror file"))?;
        drop(out);
        tokio::fs::rename(&temp, dir.join(&file_name))
            .await
            .map_err(io("cannot publish a mirror file"))
    }
    .await;
    if result.is_err() {
        let _ = tokio::fs::remove_file(&temp).await;
    }
    result
}

#[async_trait]
impl<S: Storage> Storage for MirroredStorage<S> {
    fn backend_name(&self) -> &'static str {
        self.inner.backend_name()
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    async fn put_new(
        &self,
        names: &mut NameCandidates,
        content: ByteStream,
        options: &PutOptions,
    ) -> Result<FileMeta> {
        // Every alternative keeps the extension, so the first name decides.
        Self::refuse_checksum_name(names.current())?;
        let meta = self.inner.put_new(names, content, options).await?;
        let exported = self.export_version(&meta).await;
        self.record(exported);
        Ok(meta)
    }

    async fn put_overwrite(
        &self,
        name: &Name,
        content: ByteStream,
        options: &PutOptions,
    ) -> Result<FileMeta> {
        Self::refuse_checksum_name(name)?;
        let meta = self.inner.put_overwrite(name, content, options).await?;
        let exported = self.export_version(&meta).await;
        self.record(exported);
        Ok(meta)
    }

    async fn open(&self, name: &Name, range: Option<ByteRange>) -> Result<OpenedFile> {
        let opened = self.inner.open(name, range).await?;
        let exported = self.export_version(&opened.meta).await;
        self.record(exported);
        Ok(opened)
    }

    async fn metadata(&self, name: &Name) -> Result<FileMeta> {
        self.inner.metadata(name).await
    }

    async fn remove(&self, name: &Name) -> Result<bool> {
        let deleted = self.inner.remove(name).await?;
        let removed = self.remove_copy(name).await.map(|()| true);
        self.record(removed);
        Ok(deleted)
    }

    async fn listdir(&self, dir: Option<&Name>) -> Result<Listing> {
        self.inner.listdir(dir).await
    }

    async fn url(&self, name: &Name, valid_for: Option<Duration>) -> Result<String> {
        self.inner.url(name, valid_for).await
    }

    fn default_visibility(&self) -> Visibility {
        self.inner.default_visibility()
    }
}
