//! Files on their way in: where a file goes and under which rules ([`Destination`]), and what
//! can be stored there ([`IncomingFile`]: content with a name, or a form upload an HTTP adapter
//! has extracted but not yet read). A model field is a destination; an adapter's upload form is
//! an incoming file; so a handler stores an upload through the field in one call, after its own
//! checks have run.

use std::future::Future;
use std::sync::Arc;

use futures::StreamExt;

use crate::error::{Error, Result};
use crate::files::{ContentFile, UploadedFile};
use crate::image::{peek_image, ImagePolicy, ImageSize};
use crate::meta::FileMeta;
use crate::storage::{SaveOptions, Storage, StorageExt};
use crate::stream::{ByteStream, IntoContent};

/// Where an incoming file is stored and the rules it must pass: the storage, how it is named
/// ([`SaveOptions`]: `upload_to`, `max_length`, visibility), and optionally an image rule and a
/// largest size. A model field (`storage-diesel`'s `FileField`) gives one per save; an upload
/// form (`storage-http`) stores into one.
///
/// With an image rule, the bytes must be a raster image whose size can be read, the stored type
/// is the one the bytes show, and the stored name carries that type's extension whatever the
/// client called the file ([`with_type_extension`](crate::naming::with_type_extension)): a PNG sent as `me.html` is stored as
/// `me.png`.
#[derive(Clone)]
#[non_exhaustive]
pub struct Destination {
    /// The storage files go to.
    pub storage: Arc<dyn Storage>,
    /// How files are named and stored.
    pub save: SaveOptions,
    /// Only images within this rule, when set.
    pub image: Option<ImagePolicy>,
    /// Largest file in bytes, when set.
    pub max_bytes: Option<u64>,
    /// What refusals name, such as `the 'avatar' field`.
    pub label: Option<String>,
}

impl std::fmt::Debug for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Destination")
            .field("storage", &self.storage.backend_name())
            .field("save", &self.save)
            .field("image", &self.image)
            .field("max_bytes", &self.max_bytes)
            .field("label", &self.label)
            .finish()
    }
}

impl Destination {
    /// Files go to `storage` with Django's default naming, any content, any size.
    pub fn new(storage: Arc<dyn Storage>) -> Self {
        Self {
            storage,
            save: SaveOptions::default(),
            image: None,
            max_bytes: None,
            label: None,
        }
    }

    /// How files are named and stored.
    #[must_use]
    pub fn save_options(mut self, options: SaveOptions) -> Self {
        self.save = options;
        self
    }

    /// Only images within `policy`.
    #[must_use]
    pub fn image(mut self, policy: ImagePolicy) -> Self {
        self.image = Some(policy);
        self
    }

    /// Files of at most `bytes` bytes; a larger one is [`Error::TooLarge`] and nothing is stored.
    #[must_use]
    pub fn max_bytes(mut self, bytes: u64) -> Self {
        self.max_bytes = Some(bytes);
        self
    }

    /// What refusals name, such as `the 'avatar' field`.
    #[must_use]
    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    /// `error` with this destination's label in front of a refusal's reason, so a form with
    /// several files says which one was refused.
    pub fn explain(&self, error: Error) -> Error {
        match (error, &self.label) {
            (Error::UnsupportedType { reason }, Some(label)) => Error::UnsupportedType {
                reason: format!("{label}: {reason}"),
            },
            (other, _) => other,
        }
    }

    /// Stores `content`, named after `filename` by the [`SaveOptions`]: a bad name is refused
    /// before any content is read; with an image rule, content that is no image (or too large
    /// an image) is refused before anything is stored, and the stored name takes the image's
    /// real extension; past [`max_bytes`](Self::max_bytes) the write fails and stores nothing.
    pub async fn save<C>(&self, filename: &str, content: C) -> Result<Received>
    where
        C: IntoContent + Send,
    {
        self.save.generate_name(filename)?;
        let mut content = content.into_content();
        let mut options = self.save.clone();
        let mut image = None;
        if let Some(policy) = &self.image {
            let (probe, peeked) = peek_image(content).await?;
            content = peeked;
            let size = policy
                .check(probe.as_ref(), filename)
                .map_err(|e| self.explain(e))?;
            if let Some(info) = probe {
                // The bytes say what it is, whatever the name claims: so do type and name.
                options.type_extension = Some(info.content_type.clone());
                options.content_type = Some(info.content_type);
            }
            image = Some(size);
        }
        if let Some(limit) = self.max_bytes {
            content.stream = at_most(content.stream, limit);
        }
        let meta = self.storage.save_with(filename, content, &options).await?;
        let received = Received::new(meta, filename);
        Ok(match image {
            Some(size) => received.with_image(size),
            None => received,
        })
    }
}

/// `stream`, ended with [`Error::TooLarge`] once it passes `limit` bytes: a backend that sees the
/// error stores nothing.
fn at_most(stream: ByteStream, limit: u64) -> ByteStream {
    let mut seen = 0u64;
    Box::pin(stream.map(move |chunk| {
        let chunk = chunk?;
        seen = seen.saturating_add(chunk.len() as u64);
        if seen > limit {
            Err(Error::TooLarge { limit })
        } else {
            Ok(chunk)
        }
    }))
}

/// What an [`IncomingFile`] stored.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Received {
    /// The stored file; its `name` is the name actually used.
    pub meta: FileMeta,
    /// Width and height, when the destination takes only images.
    pub image: Option<ImageSize>,
    /// The name the file came with (for an upload, the client's, cut to a safe basename).
    pub client_filename: String,
    /// Text fields sent with the file (a form's other inputs), in the order they came; empty
    /// when the content did not come from a form.
    pub fields: Vec<(String, String)>,
}

impl Received {
    /// What a store made of a file that came as `client_filename`.
    pub fn new(meta: FileMeta, client_filename: impl Into<String>) -> Self {
        Self {
            meta,
            image: None,
            client_filename: client_filename.into(),
            fields: Vec::new(),
        }
    }

    /// With the image's size.
    #[must_use]
    pub fn with_image(mut self, size: ImageSize) -> Self {
        self.image = Some(size);
        self
    }

    /// With the text fields sent beside the file.
    #[must_use]
    pub fn with_fields(mut self, fields: Vec<(String, String)>) -> Self {
        self.fields = fields;
        self
    }
}

/// A file that can be stored at a [`Destination`]: content with a name (`("notes.txt",
/// bytes)`, a [`ContentFile`] with a name, an [`UploadedFile`]), or an upload form that an HTTP
/// adapter extracted without reading its body yet (`storage_axum::UploadForm` and its actix
/// and rocket twins), which streams the file straight into the destination under the request
/// limits.
///
/// The future is `Send` whenever the file's own data is, so an axum or rocket handler stays
/// `Send` and an actix handler may hold actix's thread-bound payload. That holds where the
/// file's type is known (a handler, a function called with a concrete form): code generic over
/// `F: IncomingFile` cannot promise it, so it cannot hand the future to `tokio::spawn`.
pub trait IncomingFile {
    /// Stores the file at `destination`, under its rules.
    fn store(self, destination: &Destination) -> impl Future<Output = Result<Received>>;
}

impl<N, C> IncomingFile for (N, C)
where
    N: AsRef<str>,
    C: IntoContent + Send,
{
    async fn store(self, destination: &Destination) -> Result<Received> {
        let (name, content) = self;
        destination.save(name.as_ref(), content).await
    }
}

/// The file's name is required: a [`ContentFile`] without one is [`Error::InvalidName`].
impl IncomingFile for ContentFile {
    async fn store(self, destination: &Destination) -> Result<Received> {
        let name = self.name().map(str::to_owned).ok_or_else(unnamed)?;
        destination.save(&name, self).await
    }
}

/// The file's name is required: an upload without one is [`Error::InvalidName`].
impl IncomingFile for UploadedFile {
    async fn store(self, destination: &Destination) -> Result<Received> {
        let name = self.name().map(str::to_owned).ok_or_else(unnamed)?;
        destination.save(&name, self).await
    }
}

fn unnamed() -> Error {
    Error::InvalidName {
        name: String::new(),
        reason: "the file has no name to store it under".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::ImagePolicy;
    use crate::memory::InMemoryStorage;
    use crate::naming::UploadTo;

    fn avatars() -> (Arc<dyn Storage>, Destination) {
        let storage: Arc<dyn Storage> = Arc::new(InMemoryStorage::new());
        let destination = Destination::new(storage.clone())
            .save_options(SaveOptions::new().upload_to(UploadTo::template("avatars")))
            .image(ImagePolicy::new().max_size(100, 100))
            .label("the 'avatar' field");
        (storage, destination)
    }

    #[tokio::test]
    async fn an_image_is_stored_under_its_own_extension() -> Result<()> {
        let (storage, avatars) = avatars();
        let png = storage_conformance::png_with_html(3, 2);
        let received = ("me.html", png.clone()).store(&avatars).await?;
        assert_eq!(received.meta.name.as_str(), "avatars/me.png");
        assert_eq!(received.meta.content_type.as_deref(), Some("image/png"));
        assert_eq!(received.client_filename, "me.html");
        assert_eq!(
            received.image,
            Some(ImageSize {
                width: 3,
                height: 2
            })
        );
        assert_eq!(
            storage.read_to_bytes("avatars/me.png").await?.as_ref(),
            &png[..]
        );
        assert!(!storage.exists("avatars/me.html").await?);
        Ok(())
    }

    #[tokio::test]
    async fn refusals_store_nothing_and_say_where() -> Result<()> {
        let (storage, avatars) = avatars();
        let text = ("notes.png", &b"not a picture"[..]).store(&avatars).await;
        assert!(
            matches!(&text, Err(Error::UnsupportedType { reason })
                if reason == "the 'avatar' field: 'notes.png' is not an image"),
            "{text:?}"
        );
        let huge = ("big.png", storage_conformance::png_header(101, 5))
            .store(&avatars)
            .await;
        assert!(
            matches!(huge, Err(Error::UnsupportedType { .. })),
            "{huge:?}"
        );

        let small = Destination::new(storage.clone()).max_bytes(10);
        let long = ("long.txt", vec![b'x'; 11]).store(&small).await;
        assert!(
            matches!(long, Err(Error::TooLarge { limit: 10 })),
            "{long:?}"
        );
        let fits = ("short.txt", vec![b'x'; 10]).store(&small).await?;
        assert_eq!(fits.meta.size, 10);

        let unnamed = ContentFile::new("x").store(&small).await;
        assert!(
            matches!(unnamed, Err(Error::InvalidName { .. })),
            "{unnamed:?}"
        );
        assert_eq!(storage.walk_names(10).await?, vec![fits.meta.name]);
        Ok(())
    }
}
