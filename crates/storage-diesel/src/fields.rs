//! Model fields: a file column on a diesel model, as Django's `FileField` and `ImageField`. A
//! row holds a [`FileRef`] (the stored name, a text column); the field, declared once, knows the
//! storage, `upload_to`, the image rule and what happens to a replaced file.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use std::sync::Arc;
//! use storage_core::{InMemoryStorage, Storage, UploadTo};
//! use storage_diesel::{FileRef, ImageField};
//!
//! let storage: Arc<dyn Storage> = Arc::new(InMemoryStorage::new());
//! let photo = ImageField::new("cars", "photo", storage)?.upload_to(UploadTo::template("cars"));
//! let row = FileRef::empty(); // what the car's row holds now
//!
//! // A PNG the client called a page: checked, stored under its real extension.
//! let png = storage_conformance::png_header(640, 480);
//! let change = photo.attach(&row, ("chevy.html", png)).await?;
//! assert_eq!(change.value().name(), Some("cars/chevy.png"));
//! // ... save the row with change.value(), then:
//! change.finish(Ok::<(), storage_core::Error>(())).await?;
//! # Ok::<(), storage_core::Error>(()) }).unwrap();
//! ```
//!
//! `attach` takes any [`IncomingFile`]: content with a name, or an upload form an HTTP
//! adapter extracted (`storage_axum::UploadForm` and its actix and rocket twins), which is read
//! only then. The guide `docs/fields.md` walks through Django's `Car.photo` and an avatar upload
//! on each framework; `examples/avatars` is a whole app.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use diesel::backend::Backend;
use diesel::deserialize::{self, FromSql, FromSqlRow};
use diesel::expression::AsExpression;
use diesel::serialize::{self, Output, ToSql};
use diesel::sql_types::{Nullable, Text};
use storage_core::{
    peek_image, ByteRange, Destination, Error, FileMeta, ImagePolicy, ImageSize, IncomingFile,
    IntoContent, Name, OpenedFile, Received, Result, SaveOptions, Storage, StorageExt, UploadTo,
    Visibility,
};

use crate::references::{ColumnRef, ReferenceSource};

/// Django's default `max_length` of a `FileField`.
pub const DEFAULT_MAX_LENGTH: usize = 100;

/// The value of a file column: the stored name, or nothing (an empty string, as Django stores
/// a blank `FileField`).
///
/// It maps to a text column (`Text` or `Nullable<Text>`) in `Queryable`, `Selectable`,
/// `Insertable` and `AsChangeset` structs. NULL reads as empty; empty is written as `''`. Use
/// [`FileField::file`] to reach the file it names.
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, AsExpression, FromSqlRow)]
#[diesel(sql_type = Text)]
pub struct FileRef(String);

impl FileRef {
    /// A reference to the stored name `name` (as returned by a save). Nothing is checked here:
    /// the name is validated when the file is reached.
    pub fn new(name: impl Into<String>) -> Self {
        Self(name.into())
    }

    /// No file.
    pub fn empty() -> Self {
        Self::default()
    }

    /// The stored name, `None` when the field is empty.
    pub fn name(&self) -> Option<&str> {
        (!self.0.is_empty()).then_some(self.0.as_str())
    }

    /// True when no file is referenced.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The column's text (`""` when empty).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for FileRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FileRef({:?})", self.0)
    }
}

impl fmt::Display for FileRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<Name> for FileRef {
    fn from(name: Name) -> Self {
        Self(name.as_str().to_owned())
    }
}

impl From<&Name> for FileRef {
    fn from(name: &Name) -> Self {
        Self(name.as_str().to_owned())
    }
}

impl<DB> ToSql<Text, DB> for FileRef
where
    DB: Backend,
    str: ToSql<Text, DB>,
{
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, DB>) -> serialize::Result {
        self.0.as_str().to_sql(out)
    }
}

impl<DB> FromSql<Text, DB> for FileRef
where
    DB: Backend,
    String: FromSql<Text, DB>,
{
    fn from_sql(bytes: DB::RawValue<'_>) -> deserialize::Result<Self> {
        String::from_sql(bytes).map(Self)
    }

    fn from_nullable_sql(bytes: Option<DB::RawValue<'_>>) -> deserialize::Result<Self> {
        match bytes {
            Some(bytes) => <Self as FromSql<Text, DB>>::from_sql(bytes),
            None => Ok(Self::empty()),
        }
    }
}

impl<DB> FromSql<Nullable<Text>, DB> for FileRef
where
    DB: Backend,
    String: FromSql<Text, DB>,
{
    fn from_sql(bytes: DB::RawValue<'_>) -> deserialize::Result<Self> {
        <Self as FromSql<Text, DB>>::from_sql(bytes)
    }

    fn from_nullable_sql(bytes: Option<DB::RawValue<'_>>) -> deserialize::Result<Self> {
        <Self as FromSql<Text, DB>>::from_nullable_sql(bytes)
    }
}

/// Django's callable `upload_to(instance, filename)`.
type InstanceUploadTo<M> = Arc<dyn Fn(&M, &str) -> String + Send + Sync>;

/// How a field names a new file.
enum Naming<M: ?Sized> {
    /// The [`SaveOptions`]' `upload_to` (a strftime directory or a function of the file name).
    Options,
    /// A function of the model instance and the file name, as Django's callable `upload_to`.
    Instance(InstanceUploadTo<M>),
}

impl<M: ?Sized> Clone for Naming<M> {
    fn clone(&self) -> Self {
        match self {
            Self::Options => Self::Options,
            Self::Instance(f) => Self::Instance(Arc::clone(f)),
        }
    }
}

/// A file column of a model, declared once: which storage keeps its files, how new files are
/// named (`upload_to`), their `max_length`, and what happens to a replaced file. Django's
/// `FileField`. `M` is the model type an instance-aware `upload_to` reads (`()` when none does).
///
/// The field itself holds no file: a row holds a [`FileRef`], and [`FileField::file`] binds the
/// two into a [`FieldFile`] with Django's operations (url, size, open, delete).
pub struct FileField<M: ?Sized = ()> {
    column: ColumnRef,
    storage: Arc<dyn Storage>,
    naming: Naming<M>,
    options: SaveOptions,
    delete_replaced: Option<Arc<dyn ReferenceSource>>,
    image: Option<ImagePolicy>,
    max_bytes: Option<u64>,
}

impl<M: ?Sized> Clone for FileField<M> {
    fn clone(&self) -> Self {
        Self {
            column: self.column.clone(),
            storage: Arc::clone(&self.storage),
            naming: self.naming.clone(),
            options: self.options.clone(),
            delete_replaced: self.delete_replaced.clone(),
            image: self.image,
            max_bytes: self.max_bytes,
        }
    }
}

impl<M: ?Sized> fmt::Debug for FileField<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileField")
            .field("column", &self.column)
            .field("storage", &self.storage.backend_name())
            .field("upload_to", &self.options.upload_to)
            .field("max_length", &self.options.max_length)
            .field("delete_replaced", &self.delete_replaced.is_some())
            .field("image", &self.image.is_some())
            .field("max_bytes", &self.max_bytes)
            .finish()
    }
}

impl FileField {
    /// The field of column `table.column`, keeping its files in `storage`. `table` and
    /// `column` must be plain identifiers; the column name is the field name errors use.
    /// Defaults as Django's: no `upload_to`, `max_length` 100, replaced files kept. For names
    /// made from the model instance, go on with [`upload_to_with`](Self::upload_to_with).
    pub fn new(table: &str, column: &str, storage: Arc<dyn Storage>) -> Result<Self> {
        Ok(Self {
            column: ColumnRef::new(table, column)?,
            storage,
            naming: Naming::Options,
            options: SaveOptions::new()
                .upload_to(UploadTo::template(""))
                .max_length(DEFAULT_MAX_LENGTH),
            delete_replaced: None,
            image: None,
            max_bytes: None,
        })
    }

    /// Where this field stores a new file, with its rules; see [`destination_for`](Self::destination_for).
    pub fn destination(&self) -> Destination {
        self.destination_for(&())
    }

    /// Stores `content` under a name made from `filename` by the core's rules (`upload_to`,
    /// Django's valid names, a free alternative when taken, `max_length`) and returns the value
    /// to put in the row. An image field refuses content that is not an image, storing
    /// nothing, and stores an image under its real type's extension. Django's
    /// `instance.photo.save(filename, content, save=False)`.
    pub async fn save<C>(&self, filename: &str, content: C) -> Result<SavedFile>
    where
        C: IntoContent + Send,
    {
        self.save_for(&(), filename, content).await
    }

    /// Stores a new file for a row that holds `current`, as [`save`](Self::save), and returns
    /// the change to commit once the row holding the new value is saved; see
    /// [`replace_for`](Self::replace_for).
    pub async fn replace<C>(
        &self,
        current: &FileRef,
        filename: &str,
        content: C,
    ) -> Result<FileChange>
    where
        C: IntoContent + Send,
    {
        self.replace_for(&(), current, filename, content).await
    }

    /// Stores `file` (an upload form an adapter extracted, or content with a name) for a row
    /// that holds `current`, under this field's rules, and returns the change to finish once
    /// the row is saved: ActiveStorage's `attach`. See [`attach_for`](Self::attach_for).
    pub async fn attach<F: IncomingFile>(&self, current: &FileRef, file: F) -> Result<FileChange> {
        self.attach_for(&(), current, file).await
    }
}

impl<M: ?Sized> FileField<M> {
    /// Names new files with `upload_to`: a strftime directory (`UploadTo::template("cars/%Y/")`)
    /// or a function of the file name.
    #[must_use]
    pub fn upload_to(mut self, upload_to: UploadTo) -> Self {
        self.options.upload_to = Some(upload_to);
        self.naming = Naming::Options;
        self
    }

    /// Names new files with a function of the model instance and the file name, as Django's
    /// callable `upload_to(instance, filename)`. The result is checked and cleaned as any name.
    /// The field then saves for an instance: [`save_for`](Self::save_for),
    /// [`replace_for`](Self::replace_for), [`attach_for`](Self::attach_for).
    ///
    /// `FileField::new("cars", "photo", storage)?.upload_to_with(|car: &NewCar, name| format!("cars/{}/{name}", car.make))`
    #[must_use]
    pub fn upload_to_with<N: ?Sized>(
        self,
        f: impl Fn(&N, &str) -> String + Send + Sync + 'static,
    ) -> FileField<N> {
        FileField {
            column: self.column,
            storage: self.storage,
            naming: Naming::Instance(Arc::new(f)),
            options: self.options,
            delete_replaced: self.delete_replaced,
            image: self.image,
            max_bytes: self.max_bytes,
        }
    }

    /// Longest stored name (default 100, Django's); a longer name is shortened as Django does.
    #[must_use]
    pub fn max_length(mut self, max_length: usize) -> Self {
        self.options.max_length = Some(max_length);
        self
    }

    /// Refuses files larger than `bytes` ([`Error::TooLarge`]; nothing is stored), from an upload
    /// or from bytes alike.
    #[must_use]
    pub fn max_bytes(mut self, bytes: u64) -> Self {
        self.max_bytes = Some(bytes);
        self
    }

    /// Saves new files public or private (default: the storage's default).
    #[must_use]
    pub fn visibility(mut self, visibility: Visibility) -> Self {
        self.options.visibility = Some(visibility);
        self
    }

    /// Opt-in: when a [`FileChange`] from [`replace`](Self::replace) is committed, the old file
    /// is deleted, unless a row of `rows` still references it (this column, or any column
    /// declared there). Without this, replaced files are kept, as Django keeps them.
    #[must_use]
    pub fn delete_replaced(mut self, rows: Arc<dyn ReferenceSource>) -> Self {
        self.delete_replaced = Some(rows);
        self
    }

    /// This field as an image field ([`ImageField`]): Django's `ImageField(upload_to=...)` is
    /// `FileField::new(..)?.upload_to(..).image()`.
    pub fn image(self) -> ImageField<M> {
        ImageField::from(self)
    }

    /// The column this field's values live in.
    pub fn column(&self) -> &ColumnRef {
        &self.column
    }

    /// The field's name in messages: its column.
    pub fn name(&self) -> &str {
        self.column.column()
    }

    /// The storage that keeps this field's files.
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    /// Binds a row's value to this field: Django's `instance.photo`.
    pub fn file<'a>(&'a self, value: &'a FileRef) -> FieldFile<'a> {
        FieldFile {
            field: self.name(),
            storage: &*self.storage,
            value,
        }
    }

    /// Where this field stores a new file for `instance`: its storage, naming (`upload_to`,
    /// `max_length`, visibility), image rule and size limit, for an upload form or any
    /// [`IncomingFile`]. With [`upload_to_with`](Self::upload_to_with) the file's name is known
    /// only when the file comes, so the destination keeps a copy of the instance to name it
    /// then.
    pub fn destination_for(&self, instance: &M) -> Destination
    where
        M: Clone + Send + Sync + 'static,
    {
        let upload_to = match &self.naming {
            Naming::Options => None,
            Naming::Instance(f) => {
                let (f, instance) = (Arc::clone(f), instance.clone());
                Some(UploadTo::func(move |filename| f(&instance, filename)))
            }
        };
        self.destination_with(upload_to)
    }

    /// The destination for a file whose name is already known: the instance is read now.
    fn destination_named(&self, instance: &M, filename: &str) -> Destination {
        let upload_to = match &self.naming {
            Naming::Options => None,
            Naming::Instance(f) => {
                let joined = f(instance, filename);
                Some(UploadTo::func(move |_| joined.clone()))
            }
        };
        self.destination_with(upload_to)
    }

    fn destination_with(&self, upload_to: Option<UploadTo>) -> Destination {
        let mut options = self.options.clone();
        if let Some(upload_to) = upload_to {
            options.upload_to = Some(upload_to);
        }
        let mut destination = Destination::new(Arc::clone(&self.storage))
            .save_options(options)
            .label(format!("the '{}' field", self.name()));
        if let Some(policy) = self.image {
            destination = destination.image(policy);
        }
        if let Some(bytes) = self.max_bytes {
            destination = destination.max_bytes(bytes);
        }
        destination
    }

    /// The change that puts `received` where `current` was.
    fn change(&self, current: &FileRef, received: Received) -> FileChange {
        FileChange {
            storage: Arc::clone(&self.storage),
            column: self.column.clone(),
            rows: self.delete_replaced.clone(),
            old: current.clone(),
            new: Some(SavedFile::from(received)),
        }
    }

    /// [`FileField::save`] for a field whose names depend on the model instance
    /// ([`upload_to_with`](Self::upload_to_with)).
    pub async fn save_for<C>(&self, instance: &M, filename: &str, content: C) -> Result<SavedFile>
    where
        C: IntoContent + Send,
    {
        let destination = self.destination_named(instance, filename);
        let received = (filename, content).store(&destination).await?;
        Ok(SavedFile::from(received))
    }

    /// Stores a new file for a row of `instance` that holds `current`, and returns the change
    /// to commit once the row holding the new value is saved. The old file is never touched
    /// before [`FileChange::commit`], and only deleted then when the field opts in with
    /// [`delete_replaced`](Self::delete_replaced).
    pub async fn replace_for<C>(
        &self,
        instance: &M,
        current: &FileRef,
        filename: &str,
        content: C,
    ) -> Result<FileChange>
    where
        C: IntoContent + Send,
    {
        let destination = self.destination_named(instance, filename);
        let received = (filename, content).store(&destination).await?;
        Ok(self.change(current, received))
    }

    /// Stores `file` for a row of `instance` that holds `current`: an upload form the adapter
    /// extracted (`storage_axum::UploadForm`, ...) is read only now, after the handler's own
    /// checks, and streamed straight into storage under this field's rules (`upload_to`, image
    /// check and real extension, size limit); content with a name works too. Returns the change
    /// to [`finish`](FileChange::finish) with the row update: the new file is removed if the
    /// row cannot be saved, the old one (with [`delete_replaced`](Self::delete_replaced)) once
    /// it is. An upload's name is known only once it is read, so the instance is cloned into
    /// the naming rule: hence `M: Clone + Send + Sync + 'static` here and not on
    /// [`save_for`](Self::save_for) or [`replace_for`](Self::replace_for).
    pub async fn attach_for<F: IncomingFile>(
        &self,
        instance: &M,
        current: &FileRef,
        file: F,
    ) -> Result<FileChange>
    where
        M: Clone + Send + Sync + 'static,
    {
        let received = file.store(&self.destination_for(instance)).await?;
        Ok(self.change(current, received))
    }

    /// Empties a row's field: the returned change holds the empty value to save in the row,
    /// and its [`commit`](FileChange::commit) deletes the old file, Django's `photo.delete()`
    /// done in the safe order. With [`delete_replaced`](Self::delete_replaced) the file is
    /// kept while a row still references it.
    pub fn clear(&self, current: &FileRef) -> FileChange {
        FileChange {
            storage: Arc::clone(&self.storage),
            column: self.column.clone(),
            rows: self.delete_replaced.clone(),
            old: current.clone(),
            new: None,
        }
    }
}

/// What a field's save stored.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SavedFile {
    /// The value to put in the row.
    pub value: FileRef,
    /// The stored file.
    pub meta: FileMeta,
    /// Width and height, for an image field.
    pub image: Option<ImageSize>,
    /// The name the file came with (an upload's is the client's, cut to a safe basename); the
    /// stored name is in `meta` and `value`.
    pub client_filename: String,
    /// The text fields of the form the file came in, in order (empty for a save of bytes).
    pub fields: Vec<(String, String)>,
}

impl From<Received> for SavedFile {
    fn from(received: Received) -> Self {
        Self {
            value: FileRef::from(&received.meta.name),
            meta: received.meta,
            image: received.image,
            client_filename: received.client_filename,
            fields: received.fields,
        }
    }
}

/// A row's value bound to its field: Django's `FieldFile` (`car.photo`). Every operation on an
/// empty value is [`Error::EmptyField`] ("the 'photo' field has no file").
#[derive(Clone, Copy)]
pub struct FieldFile<'a> {
    field: &'a str,
    storage: &'a dyn Storage,
    value: &'a FileRef,
}

impl fmt::Debug for FieldFile<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FieldFile")
            .field("field", &self.field)
            .field("name", &self.value.name())
            .finish()
    }
}

impl FieldFile<'_> {
    /// The stored name, `None` when the field is empty.
    pub fn name(&self) -> Option<&str> {
        self.value.name()
    }

    /// True when the field holds a name (the file itself may still be missing: see
    /// [`exists`](Self::exists)).
    pub fn is_set(&self) -> bool {
        !self.value.is_empty()
    }

    fn stored_name(&self) -> Result<Name> {
        match self.value.name() {
            Some(name) => Name::new(name),
            None => Err(Error::EmptyField {
                field: self.field.to_owned(),
            }),
        }
    }

    /// The URL to fetch the file from (signed and expiring for a private file).
    pub async fn url(&self) -> Result<String> {
        self.storage.url(&self.stored_name()?, None).await
    }

    /// The URL, valid for `valid_for` when it is signed.
    pub async fn url_valid_for(&self, valid_for: Duration) -> Result<String> {
        self.storage
            .url(&self.stored_name()?, Some(valid_for))
            .await
    }

    /// Size in bytes.
    pub async fn size(&self) -> Result<u64> {
        Ok(self.metadata().await?.size)
    }

    /// Everything the storage records about the file.
    pub async fn metadata(&self) -> Result<FileMeta> {
        self.storage.metadata(&self.stored_name()?).await
    }

    /// Opens the file as a stream.
    pub async fn open(&self) -> Result<OpenedFile> {
        self.storage.open(&self.stored_name()?, None).await
    }

    /// Opens part of the file.
    pub async fn open_range(&self, range: ByteRange) -> Result<OpenedFile> {
        self.storage.open(&self.stored_name()?, Some(range)).await
    }

    /// The whole file in memory (small files; stream large ones with [`open`](Self::open)).
    pub async fn read_to_bytes(&self) -> Result<bytes::Bytes> {
        self.storage
            .read_to_bytes(self.stored_name()?.as_str())
            .await
    }

    /// Whether the named file is stored; `false` for an empty field.
    pub async fn exists(&self) -> Result<bool> {
        match self.value.name() {
            Some(name) => self.storage.exists(name).await,
            None => Ok(false),
        }
    }

    /// Width and height read from the stored file's header (Django's `photo.width` without a
    /// `width_field`). Not an image is [`Error::UnsupportedType`].
    pub async fn image_size(&self) -> Result<ImageSize> {
        let opened = self.open().await?;
        let (probe, _) = peek_image(storage_core::Content::from_stream(opened.stream)).await?;
        probe
            .map(|info| info.size)
            .ok_or_else(|| Error::UnsupportedType {
                reason: format!("the '{}' field's file is not an image", self.field),
            })
    }

    /// Deletes the stored file now; `false` when it was already gone. The row still holds the
    /// name: prefer [`FileField::clear`], which deletes only after the row is saved.
    pub async fn delete(&self) -> Result<bool> {
        self.storage.delete(&self.stored_name()?).await
    }
}

/// A new value for a row's file column, with the file it replaces. Save the row with
/// [`value`](Self::value), then [`commit`](Self::commit); if the row could not be saved,
/// [`rollback`](Self::rollback). Dropped without either, both files stay (a new file no row
/// references is found later by [`OrphanCleanup`](crate::OrphanCleanup)).
#[must_use = "commit() once the row is saved, rollback() if it is not"]
pub struct FileChange {
    storage: Arc<dyn Storage>,
    column: ColumnRef,
    rows: Option<Arc<dyn ReferenceSource>>,
    old: FileRef,
    new: Option<SavedFile>,
}

impl fmt::Debug for FileChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileChange")
            .field("column", &self.column)
            .field("old", &self.old)
            .field("new", &self.value())
            .finish_non_exhaustive()
    }
}

/// What [`FileChange::commit`] did with the old file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OldFile {
    /// There was none, or it is the same name as the new value.
    None,
    /// Kept: the field does not delete replaced files.
    Kept,
    /// Kept: a row still references it (the new row was not saved, or another row shares it).
    StillReferenced,
    /// Deleted.
    Deleted,
}

impl FileChange {
    /// The value the row should hold now (empty after a [`FileField::clear`]).
    pub fn value(&self) -> FileRef {
        self.new
            .as_ref()
            .map(|saved| saved.value.clone())
            .unwrap_or_default()
    }

    /// The value the row held before.
    pub fn old(&self) -> &FileRef {
        &self.old
    }

    /// The new file, when one was saved.
    pub fn saved(&self) -> Option<&SavedFile> {
        self.new.as_ref()
    }

    /// Call once the row holding [`value`](Self::value) is saved. The old file is deleted when
    /// the change is a [`FileField::clear`] or the field opted in with
    /// [`FileField::delete_replaced`], and then only if no referencing row holds it any more.
    pub async fn commit(self) -> Result<OldFile> {
        let Some(old) = self.old.name() else {
            return Ok(OldFile::None);
        };
        if self.new.as_ref().is_some_and(|n| n.value.as_str() == old) {
            return Ok(OldFile::None);
        }
        let old = Name::new(old)?;
        match (&self.rows, &self.new) {
            (None, Some(_)) => return Ok(OldFile::Kept),
            (None, None) => {}
            (Some(rows), _) => {
                let mut references = rows.declared_references().await?;
                references.insert(self.column.clone());
                if rows.is_referenced(&references, old.as_str()).await? {
                    return Ok(OldFile::StillReferenced);
                }
            }
        }
        self.storage.delete(&old).await?;
        Ok(OldFile::Deleted)
    }

    /// Call when the row could not be saved: deletes the new file (no row references it), keeps
    /// the old one.
    pub async fn rollback(self) -> Result<()> {
        if let Some(saved) = &self.new {
            self.storage.delete(&saved.meta.name).await?;
        }
        Ok(())
    }

    /// Ends the change with the outcome of the row update: [`commit`](Self::commit) when the
    /// row was saved, [`rollback`](Self::rollback) when it was not. Gives back the update's
    /// own result, so a handler is `change.finish(update_row(change.value())).await?`.
    ///
    /// Once the row is saved the change has happened, and `finish` says so: if deleting the
    /// old file fails then, the old file stays, held by no row, for orphan cleanup
    /// ([`OrphanCleanup`](crate::OrphanCleanup), `dbfiles cleanup`) to remove; call
    /// [`commit`](Self::commit) yourself to see that error. A failed update is returned as it
    /// was, even when removing the new file failed too (no row holds that one either).
    pub async fn finish<T, E>(self, row: std::result::Result<T, E>) -> std::result::Result<T, E> {
        match row {
            Ok(saved) => {
                let _ = self.commit().await;
                Ok(saved)
            }
            Err(e) => {
                let _ = self.rollback().await;
                Err(e)
            }
        }
    }
}

/// An image column: a [`FileField`] that accepts only content whose bytes are a raster image
/// whose size can be read (PNG, JPEG, GIF, WebP, ...), and reports the width and height of what
/// it stores. Django's `ImageField`. Everything else is the [`FileField`] it derefs to.
pub struct ImageField<M: ?Sized = ()> {
    field: FileField<M>,
}

impl<M: ?Sized> Clone for ImageField<M> {
    fn clone(&self) -> Self {
        Self {
            field: self.field.clone(),
        }
    }
}

impl<M: ?Sized> fmt::Debug for ImageField<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ImageField").field(&self.field).finish()
    }
}

impl<M: ?Sized> Deref for ImageField<M> {
    type Target = FileField<M>;

    fn deref(&self) -> &FileField<M> {
        &self.field
    }
}

impl<M: ?Sized> From<FileField<M>> for ImageField<M> {
    /// Makes a file field an image field.
    fn from(mut field: FileField<M>) -> Self {
        field.image.get_or_insert_with(ImagePolicy::default);
        Self { field }
    }
}

/// The [`FileField`] settings, on an [`ImageField`].
macro_rules! image_field_settings {
    ($($(#[$doc:meta])* $method:ident($($arg:ident: $ty:ty),*);)*) => {
        impl<M: ?Sized> ImageField<M> {
            $(
                $(#[$doc])*
                #[must_use]
                pub fn $method(self, $($arg: $ty),*) -> Self {
                    Self { field: self.field.$method($($arg),*) }
                }
            )*
        }
    };
}

image_field_settings! {
    /// See [`FileField::upload_to`].
    upload_to(upload_to: UploadTo);
    /// See [`FileField::max_length`].
    max_length(max_length: usize);
    /// See [`FileField::visibility`].
    visibility(visibility: Visibility);
    /// See [`FileField::delete_replaced`].
    delete_replaced(rows: Arc<dyn ReferenceSource>);
}

impl ImageField {
    /// The image field of column `table.column`; see [`FileField::new`].
    pub fn new(table: &str, column: &str, storage: Arc<dyn Storage>) -> Result<Self> {
        FileField::new(table, column, storage).map(Self::from)
    }

    /// Checks that `content` is an image, stores it as [`FileField::save`] does (under the
    /// extension of its real type) and returns the value with the image's size. Not an image is
    /// [`Error::UnsupportedType`], nothing stored.
    pub async fn save<C>(&self, filename: &str, content: C) -> Result<SavedImage>
    where
        C: IntoContent + Send,
    {
        self.save_for(&(), filename, content).await
    }
}

impl<M: ?Sized> ImageField<M> {
    /// Refuses images wider or taller than this.
    #[must_use]
    pub fn max_size(mut self, width: u32, height: u32) -> Self {
        self.field.image = Some(ImagePolicy::new().max_size(width, height));
        self
    }

    /// Refuses files larger than `bytes`; see [`FileField::max_bytes`].
    #[must_use]
    pub fn max_bytes(self, bytes: u64) -> Self {
        Self {
            field: self.field.max_bytes(bytes),
        }
    }

    /// See [`FileField::upload_to_with`].
    #[must_use]
    pub fn upload_to_with<N: ?Sized>(
        self,
        f: impl Fn(&N, &str) -> String + Send + Sync + 'static,
    ) -> ImageField<N> {
        ImageField {
            field: self.field.upload_to_with(f),
        }
    }

    /// [`ImageField::save`] for a field whose names depend on the model instance.
    pub async fn save_for<C>(&self, instance: &M, filename: &str, content: C) -> Result<SavedImage>
    where
        C: IntoContent + Send,
    {
        let saved = self.field.save_for(instance, filename, content).await?;
        let size = saved.image.ok_or_else(|| Error::UnsupportedType {
            reason: format!("'{filename}' is not an image"),
        })?;
        Ok(SavedImage {
            value: saved.value,
            meta: saved.meta,
            width: size.width,
            height: size.height,
        })
    }
}

/// What an image field's save stored.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SavedImage {
    /// The value to put in the row.
    pub value: FileRef,
    /// The stored file.
    pub meta: FileMeta,
    /// Pixels across.
    pub width: u32,
    /// Pixels down.
    pub height: u32,
}

impl SavedImage {
    /// The width and height as assignments to the app's own columns (Django's `width_field` and
    /// `height_field`), for `insert_into(..).values(..)` or `update(..).set(..)`:
    /// `saved.dimensions(cars::photo_width, cars::photo_height)`. The columns may be
    /// `Integer` or `Nullable<Integer>`; a size past `i32::MAX` is stored as `i32::MAX`.
    pub fn dimensions<W, H>(
        &self,
        width_column: W,
        height_column: H,
    ) -> (diesel::dsl::Eq<W, i32>, diesel::dsl::Eq<H, i32>)
    where
        W: diesel::ExpressionMethods,
        H: diesel::ExpressionMethods,
        W::SqlType: diesel::sql_types::SqlType,
        H::SqlType: diesel::sql_types::SqlType,
        i32: AsExpression<W::SqlType> + AsExpression<H::SqlType>,
    {
        let clamp = |n: u32| i32::try_from(n).unwrap_or(i32::MAX);
        (
            width_column.eq(clamp(self.width)),
            height_column.eq(clamp(self.height)),
        )
    }

    /// The size.
    pub fn size(&self) -> ImageSize {
        ImageSize {
            width: self.width,
            height: self.height,
        }
    }
}
