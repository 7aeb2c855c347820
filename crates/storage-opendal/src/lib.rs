//! Django-style file storage on object stores and file servers, through
//! [OpenDAL](https://opendal.apache.org): S3 and S3-compatible stores (feature `s3`), SFTP
//! (`sftp`), FTP (`ftp`), WebDAV (`webdav`), Azure Blob (`azblob`) and Google Cloud Storage
//! (`gcs`). django-storages' role, with the core's naming rules and the conformance suite every
//! backend passes.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use storage_core::{Storage, StorageExt};
//! use storage_opendal::OpendalStorage;
//!
//! // Any OpenDAL operator; here its in-memory service. From a URL:
//! // storage_opendal::connect_url("s3://my-bucket/media?region=eu-west-1").await?
//! let op = opendal::Operator::new(opendal::services::Memory::default())
//!     .map_err(|e| storage_core::Error::backend("memory", "cannot build", e))?;
//! let storage = OpendalStorage::new(op)?
//!     .with_public_base_url(Some("https://cdn.example.com/media/"));
//!
//! let first = storage.save("reports/q1.pdf", "v1").await?;
//! let second = storage.save("reports/q1.pdf", "v2").await?; // create-only: another name
//! assert_ne!(first.name, second.name);
//! assert_eq!(storage.read_to_bytes(second.name.as_str()).await?.as_ref(), b"v2");
//! assert_eq!(
//!     storage.url(&first.name, None).await?,
//!     "https://cdn.example.com/media/reports/q1.pdf"
//! );
//! # Ok::<(), storage_core::Error>(()) }).unwrap();
//! ```
//!
//! - [`OpendalStorage`] is the backend; [`connect_url`] opens one from a storage URL
//!   (`s3://BUCKET/PREFIX?endpoint=...&region=...`, `sftp://user@host:port/dir`, `ftp://...`,
//!   `webdav://...`, `azblob://...`, `gcs://...`), as `dbfiles --storage` does.
//! - What each service can do is in [`Capabilities`](storage_core::Capabilities): object
//!   stores publish with conditional writes (create-only across processes) and keep private
//!   files (presigned URLs); file servers stage and rename.
//! - Crates used: `opendal` (every protocol), `suppaftp` (the FTP rename OpenDAL lacks),
//!   `tempfile` (the copy a create-only write keeps to resend under another name), `url`.

/// The remote-storage guide's code, compiled as doctests where its API lives.
#[cfg(all(doctest, feature = "s3"))]
#[doc = include_str!("../../../docs/remote.md")]
mod remote_guide {}

#[cfg(feature = "ftp")]
mod ftp;
mod replay;
mod storage;
mod url;

pub use crate::storage::{
    OpendalStorage, DEFAULT_ONE_SHOT_LIMIT, DEFAULT_PRESIGN_EXPIRY, DEFAULT_WRITE_CHUNK,
    DEFAULT_WRITE_CONCURRENCY, VISIBILITY_KEY,
};
pub use crate::url::{connect_url, is_remote_url, SCHEMES};
pub use opendal;
