//! Stored files in axum: serve a [`Storage`] under a prefix in one line, receive uploads with an
//! extractor, answer with a stored file from any handler. Every HTTP decision is made by
//! `storage-http`; this crate only carries it out.
//!
//! ```
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use axum::{routing::post, Router};
//! use storage_axum::{Uploaded, UploadTarget};
//! use storage_core::{InMemoryStorage, Storage};
//! use storage_http::UploadPolicy;
//!
//! let storage: Arc<dyn Storage> = Arc::new(InMemoryStorage::new());
//! let uploads = UploadTarget::new(storage.clone(), UploadPolicy::new().max_file_size(10 << 20));
//! let app: Router = Router::new()
//!     .nest_service("/media", storage_axum::router(storage))   // GET/HEAD /media/<name>
//!     .route("/upload", post(|Uploaded(upload): Uploaded| async move {
//!         upload.files.iter().map(|f| f.meta.name.to_string()).collect::<Vec<_>>().join("\n")
//!     }))
//!     .with_state(uploads);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! # drop((app, listener)); Ok(()) }
//! ```
//!
//! Turn `TCP_NODELAY` on when serving (axum leaves it off, and small responses then wait about
//! 40 ms for delayed ACKs):
//! `axum::serve(axum::serve::ListenerExt::tap_io(listener, |tcp| { let _ = tcp.set_nodelay(true); }), app)`.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{FromRef, FromRequest, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use storage_core::{Destination, IncomingFile, Received, Storage};
use storage_http::{
    error_response, receive_file, serve_path, ResponseBody, ServeConfig, Upload, UploadPolicy,
};

/// An answer from `storage-http` as an axum response.
#[derive(Debug)]
pub struct StorageResponse(pub http::Response<ResponseBody>);

impl IntoResponse for StorageResponse {
    fn into_response(self) -> Response {
        let (parts, body) = self.0.into_parts();
        Response::from_parts(parts, Body::from_stream(body.into_stream()))
    }
}

#[derive(Clone)]
struct Served {
    storage: Arc<dyn Storage>,
    config: Arc<ServeConfig>,
}

/// A router that serves every file of `storage` (GET and HEAD; other methods get 405), for
/// `Router::nest_service("/media", storage_axum::router(storage))`.
pub fn router(storage: Arc<dyn Storage>) -> Router {
    router_with(storage, ServeConfig::default())
}

/// [`router`] with a [`ServeConfig`].
pub fn router_with(storage: Arc<dyn Storage>, config: ServeConfig) -> Router {
    Router::new().fallback(serve_request).with_state(Served {
        storage,
        config: Arc::new(config),
    })
}

async fn serve_request(
    State(served): State<Served>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> StorageResponse {
    StorageResponse(
        serve_path(
            served.storage.as_ref(),
            uri.path(),
            uri.query(),
            &method,
            &headers,
            &served.config,
        )
        .await,
    )
}

/// Answers with the file stored under `name`, with every rule of `storage-http` (ranges,
/// validators, safe headers), for handlers that decide access themselves.
pub async fn serve_file(
    storage: &dyn Storage,
    name: &str,
    query: Option<&str>,
    method: &Method,
    headers: &HeaderMap,
    config: &ServeConfig,
) -> StorageResponse {
    StorageResponse(storage_http::serve(storage, name, query, method, headers, config).await)
}

pub use storage_http::UploadTarget;

/// Extractor: the request's multipart file fields, streamed into storage (no temporary file),
/// with the policy's limits. A refused upload (413, 415, 400) stores nothing.
#[derive(Debug)]
pub struct Uploaded(pub Upload);

impl<S> FromRequest<S> for Uploaded
where
    S: Send + Sync,
    UploadTarget: FromRef<S>,
{
    type Rejection = UploadRejected;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let target = UploadTarget::from_ref(state);
        let content_type = request
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let body = request.into_body().into_data_stream();
        target
            .save_multipart(&content_type, body)
            .await
            .map(Uploaded)
            .map_err(UploadRejected)
    }
}

/// Why an upload was refused. As a response it carries the status and text `storage-http`
/// maps the error to, like the other adapters; take `Result<Uploaded, UploadRejected>` in a
/// handler to answer a refusal your own way (a page that says why, say).
#[derive(Debug)]
pub struct UploadRejected(pub storage_core::Error);

impl IntoResponse for UploadRejected {
    fn into_response(self) -> Response {
        StorageResponse(error_response(&self.0)).into_response()
    }
}

impl From<storage_core::Error> for UploadRejected {
    fn from(error: storage_core::Error) -> Self {
        Self(error)
    }
}

/// Extractor: a multipart upload whose body is not read yet. Nothing is stored when the
/// handler starts, so its own checks (who is asking, which row) run first; the file is then
/// streamed straight into storage by a model field (`avatar.attach(&user.avatar, form)`) or any
/// [`Destination`] (`form.store(&destination)`), under the destination's rules and the request
/// limits of an [`UploadPolicy`] (the defaults, or [`with_policy`](Self::with_policy)).
///
/// As a body extractor it comes last among the handler's arguments, after the extractors that
/// decide whether the request may upload at all.
///
/// ```
/// use std::sync::Arc;
/// use axum::{routing::post, Router};
/// use storage_axum::{UploadForm, UploadRejected};
/// use storage_core::{Destination, InMemoryStorage, IncomingFile, Storage};
///
/// async fn upload(form: UploadForm) -> Result<String, UploadRejected> {
///     let storage: Arc<dyn Storage> = Arc::new(InMemoryStorage::new());
///     let received = form.store(&Destination::new(storage)).await?;
///     Ok(received.meta.name.to_string())
/// }
/// let app: Router = Router::new().route("/upload", post(upload));
/// # drop(app);
/// ```
#[derive(Debug)]
pub struct UploadForm {
    content_type: String,
    body: Body,
    policy: Arc<UploadPolicy>,
}

impl UploadForm {
    /// Reads the body under `policy`'s request limits (size, parts, slow bodies, which field,
    /// accepted types) instead of the defaults; naming and image rules come from the
    /// destination.
    #[must_use]
    pub fn with_policy(mut self, policy: impl Into<Arc<UploadPolicy>>) -> Self {
        self.policy = policy.into();
        self
    }
}

impl<S: Send + Sync> FromRequest<S> for UploadForm {
    type Rejection = std::convert::Infallible;

    async fn from_request(request: Request, _: &S) -> Result<Self, Self::Rejection> {
        let content_type = request
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        Ok(Self {
            content_type,
            body: request.into_body(),
            policy: Arc::new(UploadPolicy::default()),
        })
    }
}

impl IncomingFile for UploadForm {
    async fn store(self, destination: &Destination) -> storage_core::Result<Received> {
        let body = self.body.into_data_stream();
        receive_file(&self.content_type, body, &self.policy, destination).await
    }
}
