//! [`InMemoryStorage`]: the reference backend, for tests and prototypes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;

use crate::error::{Error, Result};
use crate::meta::{ByteRange, Capabilities, ContentHasher, FileMeta, Listing, Visibility};
use crate::name::Name;
use crate::naming::NameCandidates;
use crate::signing::UrlSigner;
use crate::storage::{OpenedFile, PutOptions, Storage};
use crate::stream::{chunked_stream, ByteStream, DEFAULT_CHUNK_SIZE};
use crate::url::file_url;

/// Files kept in a map in memory: the reference implementation of [`Storage`], with every
/// capability. Content is gone when the value is dropped.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use storage_core::{InMemoryStorage, StorageExt};
/// let storage = InMemoryStorage::new();
/// let first = storage.save("report.pdf", "v1").await?;
/// let second = storage.save("report.pdf", "v2").await?;
/// assert_eq!(first.name.as_str(), "report.pdf");
/// assert_ne!(second.name, first.name); // report_XXXXXXX.pdf
/// # Ok::<(), storage_core::Error>(()) }).unwrap();
/// ```
#[derive(Debug)]
pub struct InMemoryStorage {
    files: Mutex<BTreeMap<Name, Stored>>,
    base_url: Option<String>,
    signer: Option<UrlSigner>,
    default_visibility: Visibility,
}

#[derive(Debug, Clone)]
struct Stored {
    meta: FileMeta,
    content: Bytes,
}

impl Default for InMemoryStorage {
    fn default() -> Self {
        Self::new()
    }
}

const BACKEND: &str = "memory";

impl InMemoryStorage {
    /// An empty storage whose URLs start with `/media/`.
    pub fn new() -> Self {
        Self {
            files: Mutex::new(BTreeMap::new()),
            base_url: Some("/media/".to_owned()),
            signer: None,
            default_visibility: Visibility::Private,
        }
    }

    /// Signs URLs of private files with `signer`.
    #[must_use]
    pub fn with_url_signer(mut self, signer: UrlSigner) -> Self {
        self.signer = Some(signer);
        self
    }

    /// The visibility of files saved without one (default private).
    #[must_use]
    pub fn with_default_visibility(mut self, visibility: Visibility) -> Self {
        self.default_visibility = visibility;
        self
    }

    /// Sets the base URL; `None` makes `url()` fail with [`Error::NotSupported`].
    #[must_use]
    pub fn with_base_url(mut self, base_url: Option<&str>) -> Self {
        self.base_url = base_url.map(str::to_owned);
        self
    }

    /// How many files are stored.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True when nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    // A panic while holding the lock cannot leave the map half-updated (every update is one
    // insert or remove), so a poisoned lock is still safe to use.
    fn lock(&self) -> MutexGuard<'_, BTreeMap<Name, Stored>> {
        self.files.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn receive(content: ByteStream) -> Result<(Bytes, [u8; 32])> {
        let mut content = content;
        let mut buf = BytesMut::new();
        let mut hasher = ContentHasher::new();
        while let Some(chunk) = content.next().await {
            let chunk = chunk?;
            hasher.update(&chunk);
            buf.extend_from_slice(&chunk);
        }
        let (sha256, _) = hasher.finish();
        Ok((buf.freeze(), sha256))
    }

    fn stored(name: &Name, content: Bytes, sha256: [u8; 32], options: &PutOptions) -> Stored {
        let meta = FileMeta::new(
            name.clone(),
            content.len() as u64,
            sha256,
            SystemTime::now(),
        )
        .with_content_type(options.content_type.clone())
        .with_visibility(options.visibility);
        Stored { meta, content }
    }
}

#[async_trait]
impl Storage for InMemoryStorage {
    fn backend_name(&self) -> &'static str {
        BACKEND
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
        let (content, sha256) = Self::receive(content).await?;
        let mut files = self.lock();
        while files.contains_key(names.current()) {
            names.next_after_collision()?;
        }
        let stored = Self::stored(names.current(), content, sha256, options);
        let meta = stored.meta.clone();
        files.insert(names.current().clone(), stored);
        Ok(meta)
    }

    async fn put_overwrite(
        &self,
        name: &Name,
        content: ByteStream,
        options: &PutOptions,
    ) -> Result<FileMeta> {
        let (content, sha256) = Self::receive(content).await?;
        let mut files = self.lock();
        let mut stored = Self::stored(name, content, sha256, options);
        if let Some(old) = files.get(name) {
            stored.meta.created = old.meta.created;
        }
        let meta = stored.meta.clone();
        files.insert(name.clone(), stored);
        Ok(meta)
    }

    async fn open(&self, name: &Name, range: Option<ByteRange>) -> Result<OpenedFile> {
        let stored = self
            .lock()
            .get(name)
            .cloned()
            .ok_or_else(|| Error::NotFound {
                name: name.to_string(),
            })?;
        let range = range
            .unwrap_or(ByteRange::From(0))
            .resolve(stored.meta.size)?;
        let (start, end) = (usize_of(range.start)?, usize_of(range.end)?);
        let slice = stored.content.slice(start..end);
        Ok(OpenedFile {
            meta: stored.meta,
            range,
            stream: chunked_stream(slice, DEFAULT_CHUNK_SIZE),
        })
    }

    async fn metadata(&self, name: &Name) -> Result<FileMeta> {
        self.lock()
            .get(name)
            .map(|stored| stored.meta.clone())
            .ok_or_else(|| Error::NotFound {
                name: name.to_string(),
            })
    }

    async fn remove(&self, name: &Name) -> Result<bool> {
        Ok(self.lock().remove(name).is_some())
    }

    async fn listdir(&self, dir: Option<&Name>) -> Result<Listing> {
        let prefix = dir.map(|d| format!("{d}/")).unwrap_or_default();
        let mut dirs = BTreeSet::new();
        let mut files = Vec::new();
        for name in self.lock().keys() {
            let Some(rest) = name.as_str().strip_prefix(&prefix) else {
                continue;
            };
            match rest.split_once('/') {
                Some((sub, _)) => {
                    dirs.insert(sub.to_owned());
                }
                None => files.push(rest.to_owned()),
            }
        }
        Ok(Listing {
            dirs: dirs.into_iter().collect(),
            files,
        })
    }

    fn default_visibility(&self) -> Visibility {
        self.default_visibility
    }

    async fn url(&self, name: &Name, valid_for: Option<std::time::Duration>) -> Result<String> {
        let meta = self.metadata(name).await?;
        file_url(
            BACKEND,
            self.base_url.as_deref(),
            self.signer.as_ref(),
            &meta,
            valid_for,
        )
    }
}

fn usize_of(offset: u64) -> Result<usize> {
    usize::try_from(offset).map_err(|e| Error::backend(BACKEND, "offset does not fit in memory", e))
}
