//! Stored files in actix-web: serve a [`Storage`] under a scope in one line, receive uploads with
//! an extractor, answer with a stored file from any handler. Every HTTP decision is made by
//! `storage-http`; this crate only carries it out.
//!
//! ```
//! use std::sync::Arc;
//! use actix_web::{web, App, HttpResponse};
//! use storage_actix::{Uploaded, UploadTarget};
//! use storage_core::{InMemoryStorage, Storage};
//! use storage_http::UploadPolicy;
//!
//! let storage: Arc<dyn Storage> = Arc::new(InMemoryStorage::new());
//! let uploads = UploadTarget::new(storage.clone(), UploadPolicy::new().max_file_size(10 << 20));
//! let app = App::new()
//!     .service(web::scope("/media").configure(storage_actix::configure(storage)))  // GET/HEAD /media/<name>
//!     .app_data(web::Data::new(uploads))
//!     .route("/upload", web::post().to(|Uploaded(upload): Uploaded| async move {
//!         HttpResponse::Ok().body(upload.files.len().to_string())
//!     }));
//! # drop(app);
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use actix_web::body::SizedStream;
use actix_web::dev::Payload;
use actix_web::http::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use actix_web::http::{Method as ActixMethod, StatusCode};
use actix_web::{web, FromRequest, HttpRequest, HttpResponse};
use storage_core::{Destination, Error, IncomingFile, Received, Storage};
use storage_http::{
    error_response, receive_file_local, serve_path, ResponseBody, ServeConfig, Upload, UploadPolicy,
};

/// Converts a `storage-http` answer into an actix response.
pub fn into_actix(response: http::Response<ResponseBody>) -> HttpResponse {
    let (parts, body) = response.into_parts();
    let status =
        StatusCode::from_u16(parts.status.as_u16()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut builder = HttpResponse::build(status);
    // The body's size becomes Content-Length; for HEAD the decision's length is kept and no
    // bytes are sent.
    let length = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    for (name, value) in &parts.headers {
        if name == http::header::CONTENT_LENGTH {
            continue;
        }
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_str().as_bytes()),
            HeaderValue::from_bytes(value.as_bytes()),
        ) {
            builder.append_header((name, value));
        }
    }
    if status == StatusCode::NOT_MODIFIED || length.is_none() {
        return builder.finish();
    }
    let length = length.unwrap_or(0);
    builder.body(SizedStream::new(length, body.into_stream()))
}

/// The request's headers as an `http::HeaderMap`, for `storage-http` calls.
pub fn request_headers(request: &HttpRequest) -> http::HeaderMap {
    let mut headers = http::HeaderMap::new();
    for (name, value) in request.headers() {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(name.as_str().as_bytes()),
            http::HeaderValue::from_bytes(value.as_bytes()),
        ) {
            headers.append(name, value);
        }
    }
    headers
}

fn query_of(request: &HttpRequest) -> Option<&str> {
    Some(request.query_string()).filter(|q| !q.is_empty())
}

fn method_of(method: &ActixMethod) -> http::Method {
    http::Method::from_bytes(method.as_str().as_bytes()).unwrap_or(http::Method::GET)
}

struct Served {
    storage: Arc<dyn Storage>,
    config: ServeConfig,
}

/// Serves every file of `storage` below the scope it is configured into (GET and HEAD; other
/// methods get 405): `web::scope("/media").configure(storage_actix::configure(storage))`.
pub fn configure(storage: Arc<dyn Storage>) -> impl FnOnce(&mut web::ServiceConfig) {
    configure_with(storage, ServeConfig::default())
}

/// [`configure`] with a [`ServeConfig`].
pub fn configure_with(
    storage: Arc<dyn Storage>,
    config: ServeConfig,
) -> impl FnOnce(&mut web::ServiceConfig) {
    let served = web::Data::new(Served { storage, config });
    move |cfg: &mut web::ServiceConfig| {
        cfg.app_data(served).default_service(web::to(serve_request));
    }
}

/// The request path below the scope this service is mounted in, still percent-encoded.
///
/// actix-web's match info holds the path decoded already (but for `%2F`, `%25` and `+`), with
/// bytes that are not UTF-8 replaced by U+FFFD, so a bad path would look up a harmless literal
/// name instead of being refused like on axum and rocket. The decoding never adds or removes a
/// `/`, so the scope's part of the path spans as many slashes in the raw path as in the decoded
/// one; what follows is handed to `storage-http`, which decodes it once.
fn raw_path_below_scope(request: &HttpRequest) -> &str {
    let raw = request.uri().path();
    let info = request.match_info();
    let decoded = info.as_str();
    let rest = info.unprocessed();
    if rest.is_empty() {
        return "";
    }
    let scope = decoded
        .len()
        .checked_sub(rest.len())
        .and_then(|end| decoded.get(..end))
        .unwrap_or_default();
    let slashes = scope.matches('/').count();
    raw.match_indices('/')
        .nth(slashes)
        .and_then(|(start, _)| raw.get(start..))
        .unwrap_or_default()
}

async fn serve_request(request: HttpRequest, served: web::Data<Served>) -> HttpResponse {
    let path = raw_path_below_scope(&request);
    let response = serve_path(
        served.storage.as_ref(),
        path,
        query_of(&request),
        &method_of(request.method()),
        &request_headers(&request),
        &served.config,
    )
    .await;
    into_actix(response)
}

/// Answers with the file stored under `name`, with every rule of `storage-http`, for handlers
/// that decide access themselves.
pub async fn serve_file(
    storage: &dyn Storage,
    name: &str,
    request: &HttpRequest,
    config: &ServeConfig,
) -> HttpResponse {
    let response = storage_http::serve(
        storage,
        name,
        query_of(request),
        &method_of(request.method()),
        &request_headers(request),
        config,
    )
    .await;
    into_actix(response)
}

pub use storage_http::UploadTarget;

/// Extractor: the request's multipart file fields, streamed into storage (no temporary file),
/// with the policy's limits. A refused upload (413, 415, 400) stores nothing.
#[derive(Debug)]
pub struct Uploaded(pub Upload);

/// Why an upload was refused, answered with the status `storage-http` maps it to.
#[derive(Debug)]
pub struct UploadRejected(pub Error);

impl std::fmt::Display for UploadRejected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl actix_web::ResponseError for UploadRejected {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(storage_http::status_for(&self.0).as_u16())
            .unwrap_or(StatusCode::BAD_REQUEST)
    }

    fn error_response(&self) -> HttpResponse {
        into_actix(error_response(&self.0))
    }
}

impl FromRequest for Uploaded {
    type Error = UploadRejected;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(request: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let target = request.app_data::<web::Data<UploadTarget>>().cloned();
        let content_type = request
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let payload = payload.take();
        Box::pin(async move {
            let Some(target) = target else {
                return Err(UploadRejected(Error::NotSupported {
                    backend: "actix",
                    operation: "uploads without an UploadTarget in app_data".to_owned(),
                }));
            };
            // The payload is tied to this thread.
            target
                .save_multipart_local(&content_type, payload)
                .await
                .map(Uploaded)
                .map_err(UploadRejected)
        })
    }
}

impl From<Error> for UploadRejected {
    fn from(error: Error) -> Self {
        Self(error)
    }
}

/// Extractor: a multipart upload whose body is not read yet. Nothing is stored when the
/// handler starts, so its own checks (who is asking, which row) run first; the file is then
/// streamed straight into storage by a model field (`avatar.attach(&user.avatar, form)`) or any
/// [`Destination`] (`form.store(&destination)`), under the destination's rules and the request
/// limits of an [`UploadPolicy`] (the defaults, or [`with_policy`](Self::with_policy)).
///
/// ```
/// use std::sync::Arc;
/// use actix_web::{web, App, HttpResponse};
/// use storage_actix::{UploadForm, UploadRejected};
/// use storage_core::{Destination, InMemoryStorage, IncomingFile, Storage};
///
/// async fn upload(form: UploadForm) -> Result<HttpResponse, UploadRejected> {
///     let storage: Arc<dyn Storage> = Arc::new(InMemoryStorage::new());
///     let received = form.store(&Destination::new(storage)).await?;
///     Ok(HttpResponse::Ok().body(received.meta.name.to_string()))
/// }
/// let app = App::new().route("/upload", web::post().to(upload));
/// # drop(app);
/// ```
pub struct UploadForm {
    content_type: String,
    payload: Payload,
    policy: Arc<UploadPolicy>,
}

impl std::fmt::Debug for UploadForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UploadForm")
            .field("content_type", &self.content_type)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
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

impl FromRequest for UploadForm {
    type Error = actix_web::Error;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(request: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let content_type = request
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        std::future::ready(Ok(Self {
            content_type,
            payload: payload.take(),
            policy: Arc::new(UploadPolicy::default()),
        }))
    }
}

impl IncomingFile for UploadForm {
    async fn store(self, destination: &Destination) -> storage_core::Result<Received> {
        // The payload is tied to this thread.
        receive_file_local(&self.content_type, self.payload, &self.policy, destination).await
    }
}
