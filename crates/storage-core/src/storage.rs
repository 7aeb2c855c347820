//! The [`Storage`] contract backends implement, and the [`StorageExt`] conveniences every
//! storage gets for free.

use std::fmt;
use std::ops::Range;

use async_trait::async_trait;
use bytes::Bytes;

use crate::error::{Error, Result};
use crate::meta::{ByteRange, Capabilities, FileMeta, Listing, Visibility};
use crate::name::Name;
use crate::naming::{generate_filename, with_type_extension, NameCandidates, UploadTo};
use crate::stream::{collect_bytes, ByteStream, IntoContent};

/// What a write stores besides the bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PutOptions {
    /// The media type to record.
    pub content_type: Option<String>,
    /// Public or private.
    pub visibility: Visibility,
}

impl PutOptions {
    /// Defaults: no content type, public.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the content type.
    #[must_use]
    pub fn content_type(mut self, content_type: impl Into<String>) -> Self {
        self.content_type = Some(content_type.into());
        self
    }

    /// Sets the visibility.
    #[must_use]
    pub fn visibility(mut self, visibility: Visibility) -> Self {
        self.visibility = visibility;
        self
    }
}

/// A file opened for reading: the metadata of the very version being read, the byte offsets the
/// stream covers, and the stream.
pub struct OpenedFile {
    /// Metadata of the version the stream reads, even if the name is overwritten meanwhile.
    pub meta: FileMeta,
    /// The byte offsets in the file that `stream` yields.
    pub range: Range<u64>,
    /// The bytes.
    pub stream: ByteStream,
}

impl fmt::Debug for OpenedFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenedFile")
            .field("meta", &self.meta)
            .field("range", &self.range)
            .finish_non_exhaustive()
    }
}

/// The storage contract: the few operations a backend must provide.
///
/// Names arrive as [`Name`]s, already validated; name generation, collision retries,
/// `upload_to` and `max_length` happen in [`StorageExt::save`] before a backend is called, so
/// every backend behaves the same. Use it as `Arc<dyn Storage>`.
///
/// Rules every backend keeps (the `storage-conformance` suite checks them):
/// - a write becomes visible only when complete: a reader sees the old file or the new one, and
///   a write whose content stream fails stores nothing;
/// - `put_new` never replaces a file, even when two writers race for one name;
/// - `remove` of a missing name succeeds (and returns `false`);
/// - `listdir` of a missing directory is empty.
#[async_trait]
pub trait Storage: Send + Sync + fmt::Debug {
    /// A short name for messages: `"filesystem"`, `"memory"`, `"sqlite"`, ...
    fn backend_name(&self) -> &'static str;

    /// What this backend can and cannot do.
    fn capabilities(&self) -> Capabilities;

    /// Create-only write: stores `content` under `names.current()`, and while that name is taken,
    /// under [`NameCandidates::next_after_collision`]. The content is consumed once; a backend
    /// stages it and then publishes it under the first free name. With
    /// [`NameCandidates::exact`] a taken name is [`Error::AlreadyExists`].
    async fn put_new(
        &self,
        names: &mut NameCandidates,
        content: ByteStream,
        options: &PutOptions,
    ) -> Result<FileMeta>;

    /// Write that replaces any file under `name` in one step.
    async fn put_overwrite(
        &self,
        name: &Name,
        content: ByteStream,
        options: &PutOptions,
    ) -> Result<FileMeta>;

    /// Opens a file for reading, the whole of it or `range` (see [`ByteRange::resolve`]).
    async fn open(&self, name: &Name, range: Option<ByteRange>) -> Result<OpenedFile>;

    /// The file's metadata, or [`Error::NotFound`].
    async fn metadata(&self, name: &Name) -> Result<FileMeta>;

    /// Deletes a file; `Ok(false)` when there was none. Callers use [`StorageExt::delete`],
    /// which takes the name as text like `exists` and `size`.
    async fn remove(&self, name: &Name) -> Result<bool>;

    /// Directories and files directly under `dir` (`None` is the root), sorted.
    async fn listdir(&self, dir: Option<&Name>) -> Result<Listing>;

    /// A URL where the file can be fetched: plain for a public file; for a private one, signed
    /// and valid for `valid_for` (the signer's default when `None`), or
    /// [`Error::NotSupported`] when the storage has no [`UrlSigner`](crate::UrlSigner).
    async fn url(&self, name: &Name, valid_for: Option<std::time::Duration>) -> Result<String>;

    /// The visibility of files saved without one ([`SaveOptions::visibility`] unset). Private
    /// unless the backend is configured otherwise or cannot keep private files.
    fn default_visibility(&self) -> Visibility {
        Visibility::Private
    }
}

/// How [`StorageExt::save_with`] names and stores a file. The defaults follow Django's
/// `FileField`: the last part of the name is cleaned with
/// [`get_valid_name`](crate::naming::get_valid_name), a taken name gets a random suffix.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct SaveOptions {
    /// Directory template or naming function applied first.
    pub upload_to: Option<UploadTo>,
    /// Longest name in characters; longer names are shortened, as Django does.
    pub max_length: Option<usize>,
    /// Replace a file of the same name (Django 5.1's `allow_overwrite`) instead of picking
    /// another name.
    pub overwrite: bool,
    /// Take the name as given (still validated) instead of cleaning it, as Django's
    /// `Storage.save` does.
    pub keep_name: bool,
    /// The media type to record; otherwise the content's own, otherwise guessed from the name.
    pub content_type: Option<String>,
    /// Public or private; unset, the storage's [`Storage::default_visibility`].
    pub visibility: Option<Visibility>,
    /// A media type the stored name's extension must say (set when the bytes were checked to
    /// be of it): the generated name gets it by
    /// [`with_type_extension`](crate::naming::with_type_extension), after `upload_to`, so a PNG
    /// sent as `me.html` is stored as `me.png` whatever the naming rule made of it.
    pub type_extension: Option<String>,
}

impl SaveOptions {
    /// Django's defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `upload_to`.
    #[must_use]
    pub fn upload_to(mut self, upload_to: UploadTo) -> Self {
        self.upload_to = Some(upload_to);
        self
    }

    /// Sets `max_length`.
    #[must_use]
    pub fn max_length(mut self, max_length: usize) -> Self {
        self.max_length = Some(max_length);
        self
    }

    /// Replace a file of the same name.
    #[must_use]
    pub fn overwrite(mut self, overwrite: bool) -> Self {
        self.overwrite = overwrite;
        self
    }

    /// Keep the name as given instead of cleaning it.
    #[must_use]
    pub fn keep_name(mut self, keep_name: bool) -> Self {
        self.keep_name = keep_name;
        self
    }

    /// Sets the content type.
    #[must_use]
    pub fn content_type(mut self, content_type: impl Into<String>) -> Self {
        self.content_type = Some(content_type.into());
        self
    }

    /// Sets the visibility.
    #[must_use]
    pub fn visibility(mut self, visibility: Visibility) -> Self {
        self.visibility = Some(visibility);
        self
    }

    /// Names take the extension of `content_type` (see [`Self::type_extension`]).
    #[must_use]
    pub fn type_extension(mut self, content_type: impl Into<String>) -> Self {
        self.type_extension = Some(content_type.into());
        self
    }

    /// The name a save with these options starts from, before collisions: `upload_to`, then
    /// cleaning (unless `keep_name`), then the type's extension when one is set, then
    /// validation.
    pub fn generate_name(&self, name: &str) -> Result<Name> {
        let generated = match (&self.upload_to, self.keep_name) {
            (Some(upload_to), _) => upload_to.generate_filename(name),
            (None, false) => generate_filename(name),
            (None, true) => Name::new(name),
        }?;
        match &self.type_extension {
            Some(content_type) => Name::new(with_type_extension(generated.as_str(), content_type)),
            None => Ok(generated),
        }
    }
}

/// A media type guessed from the name's extension.
pub fn guess_content_type(name: &str) -> Option<String> {
    mime_guess::from_path(name)
        .first()
        .map(|mime| mime.to_string())
}

/// A shared storage is a storage: `Arc<dyn Storage>` can be wrapped (for example in a
/// [`MirroredStorage`](crate::MirroredStorage)) like a concrete one.
#[async_trait]
impl<S: Storage + ?Sized> Storage for std::sync::Arc<S> {
    fn backend_name(&self) -> &'static str {
        (**self).backend_name()
    }

    fn capabilities(&self) -> Capabilities {
        (**self).capabilities()
    }

    async fn put_new(
        &self,
        names: &mut NameCandidates,
        content: ByteStream,
        options: &PutOptions,
    ) -> Result<FileMeta> {
        (**self).put_new(names, content, options).await
    }

    async fn put_overwrite(
        &self,
        name: &Name,
        content: ByteStream,
        options: &PutOptions,
    ) -> Result<FileMeta> {
        (**self).put_overwrite(name, content, options).await
    }

    async fn open(&self, name: &Name, range: Option<ByteRange>) -> Result<OpenedFile> {
        (**self).open(name, range).await
    }

    async fn metadata(&self, name: &Name) -> Result<FileMeta> {
        (**self).metadata(name).await
    }

    async fn remove(&self, name: &Name) -> Result<bool> {
        (**self).remove(name).await
    }

    async fn listdir(&self, dir: Option<&Name>) -> Result<Listing> {
        (**self).listdir(dir).await
    }

    async fn url(&self, name: &Name, valid_for: Option<std::time::Duration>) -> Result<String> {
        (**self).url(name, valid_for).await
    }

    fn default_visibility(&self) -> Visibility {
        (**self).default_visibility()
    }
}

/// Conveniences every [`Storage`] has: Django's `save` with its naming rules, and small helpers.
#[async_trait]
pub trait StorageExt: Storage {
    /// Saves `content` under a name derived from `name` with Django's default rules and returns
    /// the stored file's metadata; its `name` is the name actually used.
    async fn save<C>(&self, name: &str, content: C) -> Result<FileMeta>
    where
        C: IntoContent + Send + 'async_trait,
    {
        self.save_with(name, content, &SaveOptions::default()).await
    }

    /// Saves with explicit [`SaveOptions`]. The name is validated and generated before the
    /// backend is touched; a refused name stores nothing.
    async fn save_with<C>(&self, name: &str, content: C, options: &SaveOptions) -> Result<FileMeta>
    where
        C: IntoContent + Send + 'async_trait,
    {
        let first = options.generate_name(name)?;
        // The backend's own limit (a varchar column) shortens names as `max_length` does.
        let max_length = match (options.max_length, self.capabilities().max_name_length) {
            (Some(asked), Some(limit)) => Some(asked.min(limit)),
            (asked, limit) => asked.or(limit),
        };
        let mut candidates = NameCandidates::available(first, max_length, options.overwrite)?;
        let content = content.into_content();
        let content_type = options
            .content_type
            .clone()
            .or(content.content_type)
            .or_else(|| guess_content_type(candidates.current().as_str()));
        let put = PutOptions {
            content_type,
            visibility: options
                .visibility
                .unwrap_or_else(|| self.default_visibility()),
        };
        if options.overwrite {
            self.put_overwrite(candidates.current(), content.stream, &put)
                .await
        } else {
            self.put_new(&mut candidates, content.stream, &put).await
        }
    }

    /// The whole file in memory. For small files; stream large ones with [`Storage::open`].
    async fn read_to_bytes<N>(&self, name: N) -> Result<Bytes>
    where
        N: AsRef<str> + Send + 'async_trait,
    {
        let opened = self.open(&Name::new(name.as_ref())?, None).await?;
        collect_bytes(opened.stream).await
    }

    /// True when a file is stored under `name`.
    async fn exists<N>(&self, name: N) -> Result<bool>
    where
        N: AsRef<str> + Send + 'async_trait,
    {
        match self.metadata(&Name::new(name.as_ref())?).await {
            Ok(_) => Ok(true),
            Err(Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The file's size in bytes.
    async fn size<N>(&self, name: N) -> Result<u64>
    where
        N: AsRef<str> + Send + 'async_trait,
    {
        Ok(self.metadata(&Name::new(name.as_ref())?).await?.size)
    }

    /// Deletes the file stored under `name`; `Ok(false)` when there was none (deleting twice is
    /// fine). Django's `Storage.delete`.
    async fn delete<N>(&self, name: N) -> Result<bool>
    where
        N: AsRef<str> + Send + 'async_trait,
    {
        self.remove(&Name::new(name.as_ref())?).await
    }

    /// Stored names, sorted, walking [`Storage::listdir`] from the root; the walk stops once
    /// more than `limit` names are found, so a result longer than `limit` means there are more.
    async fn walk_names(&self, limit: usize) -> Result<Vec<Name>> {
        let mut names = Vec::new();
        let mut pending: Vec<Option<Name>> = vec![None];
        while let Some(dir) = pending.pop() {
            if names.len() > limit {
                break;
            }
            let listing = self.listdir(dir.as_ref()).await?;
            // An entry no name reaches as it stands (left by another tool: `a\\b` would read
            // as `a/b`, another file) is not ours, whichever backend listed it; callers that
            // import from a directory, like `dbfiles load`, report such entries themselves.
            let here = dir.as_ref();
            names.extend(listing.files.iter().filter_map(|f| Name::listed(here, f)));
            pending.extend(
                listing
                    .dirs
                    .iter()
                    .filter_map(|d| Name::listed(here, d))
                    .map(Some),
            );
        }
        names.sort();
        Ok(names)
    }

    /// Every stored name, sorted. More than `limit` names is [`Error::TooLarge`], never a
    /// silently partial list.
    async fn all_names(&self, limit: usize) -> Result<Vec<Name>> {
        let names = self.walk_names(limit).await?;
        if names.len() > limit {
            return Err(Error::TooLarge {
                limit: limit as u64,
            });
        }
        Ok(names)
    }

    /// Copies `from` to the new name `to` (create-only: a taken `to` is
    /// [`Error::AlreadyExists`]), streaming, keeping type and visibility.
    async fn copy(&self, from: &str, to: &str) -> Result<FileMeta> {
        let to = Name::new(to)?;
        let opened = self.open(&Name::new(from)?, None).await?;
        let put = PutOptions {
            content_type: opened.meta.content_type.clone(),
            visibility: opened.meta.visibility,
        };
        self.put_new(&mut NameCandidates::exact(to), opened.stream, &put)
            .await
    }
}

impl<S: Storage + ?Sized> StorageExt for S {}
