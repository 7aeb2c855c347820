//! Framework-neutral HTTP for stored files: every serving and upload decision, once, on `http`
//! types. The actix-web, axum and rocket adapters only carry these decisions out.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use http::{HeaderMap, Method, StatusCode};
//! use storage_core::{InMemoryStorage, StorageExt, Visibility};
//! use storage_http::{serve, ServeConfig};
//!
//! let storage = InMemoryStorage::new().with_default_visibility(Visibility::Public);
//! storage.save("docs/readme.txt", "0123456789").await?;
//! let mut request = HeaderMap::new();
//! request.insert("range", "bytes=2-4".parse().unwrap());
//! let response = serve(&storage, "docs/readme.txt", None, &Method::GET, &request, &ServeConfig::new()).await;
//! assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT);
//! assert_eq!(response.headers()["content-range"], "bytes 2-4/10");
//! let body = storage_core::collect_bytes(response.into_body().into_stream()).await?;
//! assert_eq!(body.as_ref(), b"234");
//! # Ok::<(), storage_core::Error>(()) }).unwrap();
//! ```
//!
//! - [`serve_decision`]: status and headers from a request and a file's metadata: GET and HEAD,
//!   preconditions in RFC 9110 order, single and multipart ranges, If-Range, safe
//!   `Content-Type`/`Content-Disposition`/`X-Content-Type-Options`, strong ETag, `Last-Modified`,
//!   `Cache-Control`.
//! - [`serve`]: the decision carried out against a [`Storage`](storage_core::Storage), reading
//!   only the ranges needed.
//! - [`status_for`] and [`error_response`]: one status per storage error.
//! - [`save_multipart`]: multipart uploads streamed into storage under an [`UploadPolicy`]
//!   (limits per file and per request, safe basenames, types checked against the sniffed bytes,
//!   images only with their size), all or nothing; [`receive_file`]: one file streamed into a
//!   [`Destination`] (a model field's rules), what the adapters' upload forms do. With an image
//!   or type rule, the stored name carries the extension of the type the bytes show.
//!
//! Crates used for solved problems: `headers` (conditional request headers and ETag
//! comparison), `http-range-header` (Range syntax), `httpdate` (HTTP dates), `percent-encoding`
//! (RFC 8187 file names), `multer` (multipart), `infer` (type sniffing); images are
//! recognised by `storage_core::probe_image` (`infer` and `imagesize`).

mod body;
mod headers;
mod ranges;
mod serve;
mod upload;

pub use crate::body::ResponseBody;
pub use crate::headers::{
    content_disposition, content_type_of, type_matches, DEFAULT_INLINE_TYPES,
};
pub use crate::ranges::{resolve_range, RangeRequest};
pub use crate::serve::{
    error_response, html_page, name_from_path, plain_text, serve, serve_decision, serve_path,
    status_for, AccessRequest, Authorize, BodyPlan, ServeConfig, ServeDecision,
};
pub use crate::upload::{
    human_size, receive_file, receive_file_local, refusal_message, save_multipart, upload_name,
    SavedUpload, Upload, UploadPolicy, UploadTarget, MAX_TEXT_FIELD, MAX_TEXT_TOTAL,
};
pub use storage_core::{Destination, ImagePolicy, ImageSize, IncomingFile, Received};
