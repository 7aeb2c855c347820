//! Stored files in rocket: a fairing serves a [`Storage`] under a prefix in one line, a data guard
//! receives uploads, a responder answers with a stored file from any handler. Every HTTP decision
//! is made by `storage-http`; this crate only carries it out.
//!
//! ```
//! use std::sync::Arc;
//! use rocket::{post, routes};
//! use storage_core::{Error, InMemoryStorage, Storage};
//! use storage_http::UploadPolicy;
//! use storage_rocket::{StorageFairing, Uploaded, UploadRejected};
//!
//! #[post("/upload", data = "<upload>")]
//! fn upload(upload: Result<Uploaded, Error>) -> Result<String, UploadRejected> {
//!     let Uploaded(upload) = upload.map_err(UploadRejected)?;
//!     Ok(upload.files.len().to_string())
//! }
//!
//! let storage: Arc<dyn Storage> = Arc::new(InMemoryStorage::new());
//! let rocket = rocket::build()
//!     .attach(StorageFairing::new("/media", storage).uploads(UploadPolicy::new()))  // GET/HEAD /media/<name>
//!     .mount("/", routes![upload]);
//! # drop(rocket);
//! ```

use std::sync::Arc;

use futures::TryStreamExt;
use rocket::data::{Data, FromData, Outcome as DataOutcome, ToByteUnit};
use rocket::fairing::{self, Fairing, Info, Kind};
use rocket::http::{Method, Status};
use rocket::request::Request;
use rocket::response::{self, Responder, Response};
use rocket::route::{Handler, Outcome, Route};
use rocket::{Build, Rocket};
use storage_core::{Destination, Error, IncomingFile, Received, Storage};
use storage_http::{
    error_response, receive_file_local, serve_path, ResponseBody, ServeConfig, Upload, UploadPolicy,
};

/// An answer from `storage-http` as a rocket response.
#[derive(Debug)]
pub struct StorageResponse(pub http::Response<ResponseBody>);

impl<'r> Responder<'r, 'static> for StorageResponse {
    fn respond_to(self, _: &'r Request<'_>) -> response::Result<'static> {
        let (parts, body) = self.0.into_parts();
        let mut builder = Response::build();
        builder.status(Status::new(parts.status.as_u16()));
        let length = parts
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
        for (name, value) in &parts.headers {
            if name == http::header::CONTENT_LENGTH {
                continue;
            }
            if let Ok(value) = value.to_str() {
                builder.raw_header_adjoin(name.as_str().to_owned(), value.to_owned());
            }
        }
        if let Some(length) = length {
            builder.sized_body(length, KnownLength::new(body, length));
            // Rocket reads bodies 4 KiB at a time by default; storage chunks are far larger.
            builder.max_chunk_size(storage_core::DEFAULT_CHUNK_SIZE);
        }
        Ok(builder.finalize())
    }
}

type BodyReader = tokio_util::io::StreamReader<
    futures::stream::MapErr<storage_core::ByteStream, fn(Error) -> std::io::Error>,
    bytes::Bytes,
>;

/// A body stream of known length. Rocket asks sized bodies to be seekable so it can measure
/// them; the length is given, so seeking only ever reports it.
struct KnownLength {
    reader: BodyReader,
    length: u64,
    seek_to_end: bool,
}

impl KnownLength {
    fn new(body: ResponseBody, length: usize) -> Self {
        let to_io: fn(Error) -> std::io::Error = std::io::Error::other;
        Self {
            reader: tokio_util::io::StreamReader::new(body.into_stream().map_err(to_io)),
            length: length as u64,
            seek_to_end: false,
        }
    }
}

impl tokio::io::AsyncRead for KnownLength {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.reader).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncSeek for KnownLength {
    fn start_seek(
        mut self: std::pin::Pin<&mut Self>,
        position: std::io::SeekFrom,
    ) -> std::io::Result<()> {
        self.seek_to_end = matches!(position, std::io::SeekFrom::End(0));
        Ok(())
    }

    fn poll_complete(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<u64>> {
        std::task::Poll::Ready(Ok(if self.seek_to_end { self.length } else { 0 }))
    }
}

/// The request's headers as an `http::HeaderMap`, for `storage-http` calls.
pub fn request_headers(request: &Request<'_>) -> http::HeaderMap {
    let mut headers = http::HeaderMap::new();
    for header in request.headers().iter() {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(header.name().as_str().as_bytes()),
            http::HeaderValue::from_str(header.value()),
        ) {
            headers.append(name, value);
        }
    }
    headers
}

fn method_of(method: Method) -> http::Method {
    http::Method::from_bytes(method.as_str().as_bytes()).unwrap_or(http::Method::GET)
}

#[derive(Clone)]
struct ServeHandler {
    prefix: String,
    storage: Arc<dyn Storage>,
    config: Arc<ServeConfig>,
}

#[rocket::async_trait]
impl Handler for ServeHandler {
    async fn handle<'r>(&self, request: &'r Request<'_>, _data: Data<'r>) -> Outcome<'r> {
        let path = request.uri().path();
        let below = path
            .as_str()
            .strip_prefix(self.prefix.as_str())
            .unwrap_or_default();
        let response = serve_path(
            self.storage.as_ref(),
            below,
            request.uri().query().map(|q| q.as_str()),
            &method_of(request.method()),
            &request_headers(request),
            &self.config,
        )
        .await;
        Outcome::from(request, StorageResponse(response))
    }
}

/// Mounts routes that serve every file of a storage under a prefix (GET and HEAD; other methods
/// get 405), and, with [`uploads`](Self::uploads), manages the [`UploadTarget`] the [`Uploaded`]
/// data guard needs.
#[derive(Clone)]
pub struct StorageFairing {
    prefix: String,
    storage: Arc<dyn Storage>,
    config: ServeConfig,
    uploads: Option<UploadPolicy>,
}

impl StorageFairing {
    /// Serves `storage` under `prefix` (`/media`).
    pub fn new(prefix: &str, storage: Arc<dyn Storage>) -> Self {
        Self {
            prefix: format!("/{}", prefix.trim_matches('/')),
            storage,
            config: ServeConfig::default(),
            uploads: None,
        }
    }

    /// Sets the [`ServeConfig`].
    #[must_use]
    pub fn config(mut self, config: ServeConfig) -> Self {
        self.config = config;
        self
    }

    /// Accept uploads into the same storage under `policy` (see [`Uploaded`]).
    #[must_use]
    pub fn uploads(mut self, policy: UploadPolicy) -> Self {
        self.uploads = Some(policy);
        self
    }
}

#[rocket::async_trait]
impl Fairing for StorageFairing {
    fn info(&self) -> Info {
        Info {
            name: "storage",
            kind: Kind::Ignite,
        }
    }

    async fn on_ignite(&self, rocket: Rocket<Build>) -> fairing::Result {
        let handler = ServeHandler {
            prefix: if self.prefix == "/" {
                String::new()
            } else {
                self.prefix.clone()
            },
            storage: Arc::clone(&self.storage),
            config: Arc::new(self.config.clone()),
        };
        let routes: Vec<Route> = [
            Method::Get,
            Method::Head,
            Method::Post,
            Method::Put,
            Method::Delete,
            Method::Patch,
        ]
        .into_iter()
        .map(|method| Route::new(method, "/<path..>", handler.clone()))
        .collect();
        let mut rocket = rocket.mount(self.prefix.as_str(), routes);
        if let Some(policy) = &self.uploads {
            rocket = rocket.manage(UploadTarget::new(Arc::clone(&self.storage), policy.clone()));
        }
        Ok(rocket)
    }
}

/// Answers with the file stored under `name`, with every rule of `storage-http`, for handlers
/// that decide access themselves.
pub async fn serve_file(
    storage: &dyn Storage,
    name: &str,
    request: &Request<'_>,
    config: &ServeConfig,
) -> StorageResponse {
    StorageResponse(
        storage_http::serve(
            storage,
            name,
            request.uri().query().map(|q| q.as_str()),
            &method_of(request.method()),
            &request_headers(request),
            config,
        )
        .await,
    )
}

pub use storage_http::UploadTarget;

/// Data guard: the request's multipart file fields, streamed into storage (no temporary file),
/// with the policy's limits. A refused upload stores nothing; take `Result<Uploaded, Error>` and
/// answer the error with [`UploadRejected`] to send the same status and text as the other
/// adapters.
#[derive(Debug)]
pub struct Uploaded(pub Upload);

/// A refused upload as a response with the status `storage-http` maps it to.
#[derive(Debug)]
pub struct UploadRejected(pub Error);

impl<'r> Responder<'r, 'static> for UploadRejected {
    fn respond_to(self, request: &'r Request<'_>) -> response::Result<'static> {
        StorageResponse(error_response(&self.0)).respond_to(request)
    }
}

/// Streams a multipart request body into `target`'s storage under its policy: what the
/// [`Uploaded`] guard does, for a handler that picks its target at run time. For a second
/// upload policy on a route, use [`UploadTargetFor`] and [`UploadedFor`] instead.
pub async fn receive_upload(
    target: &UploadTarget,
    request: &Request<'_>,
    data: Data<'_>,
) -> Result<Upload, Error> {
    let content_type = request
        .headers()
        .get_one("content-type")
        .unwrap_or_default()
        .to_owned();
    // One byte past the limit so an over-limit body is seen as such, not cut to size.
    let limit = target.policy.max_request_size.saturating_add(1).bytes();
    let reader = tokio_util::io::ReaderStream::new(data.open(limit));
    target.save_multipart_local(&content_type, reader).await
}

#[rocket::async_trait]
impl<'r> FromData<'r> for Uploaded {
    type Error = Error;

    async fn from_data(request: &'r Request<'_>, data: Data<'r>) -> DataOutcome<'r, Self> {
        let target = request.rocket().state::<UploadTarget>();
        let missing = || "uploads without StorageFairing::uploads".to_owned();
        upload_outcome(target, missing, request, data, Uploaded).await
    }
}

/// The data guards' one path: stream the body into `target`, or say which state is missing.
async fn upload_outcome<'r, T>(
    target: Option<&UploadTarget>,
    missing: impl FnOnce() -> String,
    request: &'r Request<'_>,
    data: Data<'r>,
    wrap: impl FnOnce(Upload) -> T,
) -> DataOutcome<'r, T, Error> {
    let Some(target) = target else {
        let e = Error::NotSupported {
            backend: "rocket",
            operation: missing(),
        };
        return DataOutcome::Error((Status::InternalServerError, e));
    };
    match receive_upload(target, request, data).await {
        Ok(upload) => DataOutcome::Success(wrap(upload)),
        Err(e) => DataOutcome::Error((Status::new(storage_http::status_for(&e).as_u16()), e)),
    }
}

/// A second (third, ...) upload policy in one app: rocket keeps one state per type, so each
/// route's target is told apart by a marker type `K` of the app's own. Manage
/// `UploadTargetFor::<Private>::new(target)` and take [`UploadedFor<Private>`] in the route.
///
/// ```
/// use std::sync::Arc;
/// use rocket::{post, routes};
/// use storage_core::{Error, InMemoryStorage, Storage, Visibility, SaveOptions};
/// use storage_http::UploadPolicy;
/// use storage_rocket::{UploadTarget, UploadTargetFor, UploadedFor};
///
/// /// The private uploads' route.
/// struct Private;
///
/// #[post("/private", data = "<upload>")]
/// fn private(upload: Result<UploadedFor<Private>, Error>) -> String {
///     upload.map_or_else(|e| e.to_string(), |u| u.into_inner().files.len().to_string())
/// }
///
/// let storage: Arc<dyn Storage> = Arc::new(InMemoryStorage::new());
/// let policy = UploadPolicy::new().save_options(SaveOptions::new().visibility(Visibility::Private));
/// let rocket = rocket::build()
///     .manage(UploadTargetFor::<Private>::new(UploadTarget::new(storage, policy)))
///     .mount("/", routes![private]);
/// # drop(rocket);
/// ```
pub struct UploadTargetFor<K> {
    target: UploadTarget,
    route: std::marker::PhantomData<fn() -> K>,
}

impl<K> UploadTargetFor<K> {
    /// The target of the routes that take [`UploadedFor<K>`].
    pub fn new(target: UploadTarget) -> Self {
        Self {
            target,
            route: std::marker::PhantomData,
        }
    }
}

impl<K> std::fmt::Debug for UploadTargetFor<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("UploadTargetFor")
            .field(&self.target)
            .finish()
    }
}

/// Data guard: [`Uploaded`] under the managed [`UploadTargetFor<K>`] instead of the fairing's
/// [`UploadTarget`].
pub struct UploadedFor<K> {
    upload: Upload,
    route: std::marker::PhantomData<fn() -> K>,
}

impl<K> UploadedFor<K> {
    /// What the request stored.
    pub fn into_inner(self) -> Upload {
        self.upload
    }
}

impl<K> std::fmt::Debug for UploadedFor<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("UploadedFor").field(&self.upload).finish()
    }
}

#[rocket::async_trait]
impl<'r, K: 'static> FromData<'r> for UploadedFor<K> {
    type Error = Error;

    async fn from_data(request: &'r Request<'_>, data: Data<'r>) -> DataOutcome<'r, Self> {
        let target = request.rocket().state::<UploadTargetFor<K>>();
        let missing = || {
            format!(
                "uploads without a managed UploadTargetFor<{}>",
                std::any::type_name::<K>()
            )
        };
        let wrap = |upload| UploadedFor {
            upload,
            route: std::marker::PhantomData,
        };
        upload_outcome(target.map(|t| &t.target), missing, request, data, wrap).await
    }
}

impl From<Error> for UploadRejected {
    fn from(error: Error) -> Self {
        Self(error)
    }
}

/// Data guard: a multipart upload whose body is not read yet. Rocket runs request guards before
/// the data guard and nothing is stored when the handler starts, so the app's checks (who is
/// asking, which row) come first; the file is then streamed straight into storage by a model
/// field (`avatar.attach(&user.avatar, form)`) or any [`Destination`]
/// (`form.store(&destination)`), under the destination's rules and the request limits of an
/// [`UploadPolicy`] (the defaults, or [`with_policy`](Self::with_policy)).
///
/// ```
/// use std::sync::Arc;
/// use rocket::{post, routes};
/// use storage_core::{Destination, InMemoryStorage, IncomingFile, Storage};
/// use storage_rocket::{UploadForm, UploadRejected};
///
/// #[post("/upload", data = "<form>")]
/// async fn upload(form: UploadForm<'_>) -> Result<String, UploadRejected> {
///     let storage: Arc<dyn Storage> = Arc::new(InMemoryStorage::new());
///     let received = form.store(&Destination::new(storage)).await?;
///     Ok(received.meta.name.to_string())
/// }
/// let rocket = rocket::build().mount("/", routes![upload]);
/// # drop(rocket);
/// ```
pub struct UploadForm<'r> {
    content_type: String,
    data: Data<'r>,
    policy: Arc<UploadPolicy>,
}

impl std::fmt::Debug for UploadForm<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UploadForm")
            .field("content_type", &self.content_type)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl UploadForm<'_> {
    /// Reads the body under `policy`'s request limits (size, parts, slow bodies, which field,
    /// accepted types) instead of the defaults; naming and image rules come from the
    /// destination.
    #[must_use]
    pub fn with_policy(mut self, policy: impl Into<Arc<UploadPolicy>>) -> Self {
        self.policy = policy.into();
        self
    }
}

#[rocket::async_trait]
impl<'r> FromData<'r> for UploadForm<'r> {
    type Error = std::convert::Infallible;

    async fn from_data(request: &'r Request<'_>, data: Data<'r>) -> DataOutcome<'r, Self> {
        let content_type = request
            .headers()
            .get_one("content-type")
            .unwrap_or_default()
            .to_owned();
        DataOutcome::Success(Self {
            content_type,
            data,
            policy: Arc::new(UploadPolicy::default()),
        })
    }
}

impl IncomingFile for UploadForm<'_> {
    async fn store(self, destination: &Destination) -> storage_core::Result<Received> {
        // One byte past the limit so an over-limit body is seen as such, not cut to size.
        let limit = self.policy.max_request_size.saturating_add(1).bytes();
        let reader = tokio_util::io::ReaderStream::new(self.data.open(limit));
        receive_file_local(&self.content_type, reader, &self.policy, destination).await
    }
}
