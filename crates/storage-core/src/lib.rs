//! The storage contract of `dbfiles`: Django's storage API for Rust web apps.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use std::sync::Arc;
//! use storage_core::{InMemoryStorage, SaveOptions, Storage, StorageExt, UploadTo, UrlSigner};
//!
//! let signer = UrlSigner::new("a secret from your configuration");
//! let storage: Arc<dyn Storage> = Arc::new(InMemoryStorage::new().with_url_signer(signer));
//! let saved = storage.save("john's portrait in 2004.jpg", b"...jpeg bytes...").await?;
//! assert_eq!(saved.name.as_str(), "johns_portrait_in_2004.jpg");
//!
//! // A taken name gets Django's random suffix before all extensions.
//! let again = storage.save("john's portrait in 2004.jpg", b"other bytes").await?;
//! assert!(again.name.as_str().starts_with("johns_portrait_in_2004_"));
//!
//! // upload_to as a strftime template or a function, as in a Django FileField.
//! let options = SaveOptions::new().upload_to(UploadTo::template("photos/%Y/"));
//! let dated = storage.save_with("cat.png", b"png", &options).await?;
//! assert!(dated.name.as_str().starts_with("photos/20"));
//!
//! assert_eq!(storage.read_to_bytes(dated.name.as_str()).await?.as_ref(), b"png");
//! // Files are private unless said otherwise: their URLs are signed and expire.
//! let url = storage.url(&saved.name, None).await?;
//! assert!(url.starts_with("/media/johns_portrait_in_2004.jpg?expires="));
//! # Ok::<(), storage_core::Error>(()) }).unwrap();
//! ```
//!
//! - [`Storage`] is what a backend implements; [`StorageExt`] adds `save`, `read_to_bytes`,
//!   `exists`, `size` and `copy` to every storage.
//! - [`Name`] is a validated name: every backend method takes one, so path safety is decided
//!   here, once. [`naming`] holds Django's naming rules.
//! - [`FileSystemStorage`] and [`InMemoryStorage`] are the two backends of this crate; the
//!   database backends live in `storage-diesel`.
//! - Crates used for solved problems: `sha2` (checksums), `percent-encoding` (URLs),
//!   `mime_guess` (content types), `chrono` (strftime in `upload_to`), `html-escape` (entities
//!   in client file names), `unicode-properties` (Python's character classes), `rand` and
//!   `uuid` (names), `tempfile` (upload spill files), `infer` and `imagesize` (recognising an
//!   image and its size from its header, [`probe_image`]).

mod error;
mod files;
mod fs;
mod image;
mod incoming;
mod memory;
mod meta;
mod mirror;
mod name;
pub mod naming;
mod signing;
mod storage;
mod stream;
mod url;

pub use error::{BoxError, Error, Result};
pub use files::{ContentFile, UploadedFile};
pub use fs::{is_staging_name, refuse_staging_name, FileSystemStorage, STAGING_DIR};
pub use image::{peek_image, probe_image, ImageInfo, ImagePolicy, ImageSize, IMAGE_SNIFF_BYTES};
pub use incoming::{Destination, IncomingFile, Received};
pub use memory::InMemoryStorage;
pub use meta::{
    etag_from_sha256, ByteRange, Capabilities, ContentHasher, FileMeta, Listing, Visibility,
};
pub use mirror::MirroredStorage;
pub use name::{Name, MAX_NAME_BYTES};
pub use naming::{NameCandidates, UploadTo};
pub use signing::{SignatureError, UrlSigner};
pub use storage::{guess_content_type, OpenedFile, PutOptions, SaveOptions, Storage, StorageExt};
pub use stream::{
    bytes_stream, chunked_stream, collect_bytes, empty_stream, reader_stream, ByteStream, Content,
    IntoContent, DEFAULT_CHUNK_SIZE,
};
pub use url::{file_url, media_url, redact_url, url_under_base, UrlPolicy, UrlStyle};
