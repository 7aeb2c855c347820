//! One demo app, three frameworks: `/` lists stored files with an upload form, `POST /upload`
//! stores files, `POST /upload-image` stores images only, and the storage is served under a
//! prefix (`/media`). Each framework's version uses only its adapter crate; every HTTP decision
//! comes from `storage-http`, so all three answer alike (the `http-matrix` tests prove it).

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use http::header::{CONTENT_TYPE, LOCATION};
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use storage_core::{media_url, Error, Result, Storage, StorageExt};
use storage_http::{
    error_response, plain_text, ImagePolicy, ResponseBody, ServeConfig, Upload, UploadPolicy,
};

/// Which web framework serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framework {
    /// axum (the default).
    Axum,
    /// actix-web.
    Actix,
    /// rocket.
    Rocket,
}

impl Framework {
    /// All three.
    pub const ALL: [Self; 3] = [Self::Axum, Self::Actix, Self::Rocket];
}

impl std::str::FromStr for Framework {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "axum" => Ok(Self::Axum),
            "actix" | "actix-web" => Ok(Self::Actix),
            "rocket" => Ok(Self::Rocket),
            other => Err(format!(
                "unknown framework '{other}': axum, actix or rocket"
            )),
        }
    }
}

impl fmt::Display for Framework {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Axum => "axum",
            Self::Actix => "actix",
            Self::Rocket => "rocket",
        })
    }
}

/// What the demo server does.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServerOptions {
    /// Where to listen (port 0 picks a free port).
    pub addr: SocketAddr,
    /// Where stored files are served (`/media`).
    pub prefix: String,
    /// `POST /upload`.
    pub upload: UploadPolicy,
    /// `POST /upload-image`.
    pub image_upload: UploadPolicy,
    /// How files are served.
    pub serve: ServeConfig,
}

impl ServerOptions {
    /// Serve on `addr` under `/media`, uploads up to 100 MiB.
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            prefix: "/media".to_owned(),
            upload: UploadPolicy::new(),
            image_upload: UploadPolicy::new().images(ImagePolicy::new()),
            serve: ServeConfig::new(),
        }
    }

    /// Sets the prefix files are served under.
    #[must_use]
    pub fn prefix(mut self, prefix: &str) -> Self {
        self.prefix = format!("/{}", prefix.trim_matches('/'));
        self
    }

    /// Sets how files are served (a URL signer for private files, the app's access check, ...).
    #[must_use]
    pub fn serve_config(mut self, config: ServeConfig) -> Self {
        self.serve = config;
        self
    }

    /// Sets the upload policy; the image route gets the same, images only.
    #[must_use]
    pub fn upload_policy(mut self, policy: UploadPolicy) -> Self {
        self.image_upload = policy.clone().images(ImagePolicy::new());
        self.upload = policy;
        self
    }
}

/// A server started by [`start`].
pub struct RunningServer {
    addr: SocketAddr,
    stop: Box<dyn FnOnce() + Send>,
    task: tokio::task::JoinHandle<()>,
}

impl fmt::Debug for RunningServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunningServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl RunningServer {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, lets requests in flight finish, and waits for the server to end.
    pub async fn stop(self) {
        (self.stop)();
        let _ = self.task.await;
    }
}

/// Starts the demo app on `framework`; returns once it accepts connections.
pub async fn start(
    framework: Framework,
    storage: Arc<dyn Storage>,
    options: ServerOptions,
) -> Result<RunningServer> {
    let app = App {
        storage,
        options: Arc::new(options),
    };
    match framework {
        Framework::Axum => axum_app::start(app).await,
        Framework::Actix => actix_app::start(app),
        Framework::Rocket => rocket_app::start(app).await,
    }
}

#[derive(Clone)]
struct App {
    storage: Arc<dyn Storage>,
    options: Arc<ServerOptions>,
}

fn io_error(what: &str, e: impl Into<storage_core::BoxError>) -> Error {
    Error::backend("server", what.to_owned(), e)
}

/// The answer to an upload: names, one per line; a browser form gets sent back to the page.
fn upload_answer(result: Result<Upload>, headers: &HeaderMap) -> Response<ResponseBody> {
    let upload = match result {
        Ok(upload) => upload,
        Err(e) => return error_response(&e),
    };
    let wants_html = headers
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"));
    let names: String = upload
        .files
        .iter()
        .map(|f| format!("{}\n", f.meta.name))
        .collect();
    if !wants_html {
        return plain_text(StatusCode::OK, names);
    }
    let mut response = plain_text(StatusCode::SEE_OTHER, String::new());
    response
        .headers_mut()
        .insert(LOCATION, HeaderValue::from_static("/"));
    response
}

/// Most files the index page lists.
const INDEX_LIMIT: usize = 1000;

/// The page at `/`: the stored files as links, and an upload form.
async fn index_page(app: &App) -> Response<ResponseBody> {
    let names = match app.storage.walk_names(INDEX_LIMIT).await {
        Ok(mut names) => {
            names.truncate(INDEX_LIMIT);
            names
        }
        Err(e) => return error_response(&e),
    };
    let mut items = String::new();
    for name in &names {
        // Private files get a signed link when the server has a signer.
        let href = match app.storage.metadata(name).await {
            Ok(meta) => storage_core::file_url(
                "server",
                Some(&app.options.prefix),
                app.options.serve.signer.as_ref(),
                &meta,
                None,
            )
            .unwrap_or_else(|_| media_url(&app.options.prefix, name.as_str())),
            Err(_) => media_url(&app.options.prefix, name.as_str()),
        };
        items.push_str(&format!(
            "<li><a href=\"{}\">{}</a></li>\n",
            html_escape::encode_double_quoted_attribute(&href),
            html_escape::encode_text(name.as_str())
        ));
    }
    if items.is_empty() {
        items.push_str("<li><em>nothing stored yet</em></li>\n");
    }
    let page = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>dbfiles</title>\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"></head>\n<body>\n\
         <h1>dbfiles</h1>\n<form method=\"post\" action=\"/upload\" enctype=\"multipart/form-data\">\
         <input type=\"file\" name=\"file\" multiple required> <button type=\"submit\">Upload</button></form>\n\
         <h2>Stored files</h2>\n<ul>\n{items}</ul>\n</body></html>\n"
    );
    let mut response = plain_text(StatusCode::OK, page);
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
}

/// A free loopback port when 0 was asked for (rocket 0.5 cannot report the port it bound).
fn concrete_addr(addr: SocketAddr) -> Result<SocketAddr> {
    if addr.port() != 0 {
        return Ok(addr);
    }
    let probe = std::net::TcpListener::bind(addr).map_err(|e| io_error("cannot bind", e))?;
    probe.local_addr().map_err(|e| io_error("cannot bind", e))
}

mod axum_app {
    use super::{index_page, io_error, upload_answer, App, RunningServer};
    use axum::extract::State;
    use axum::http::HeaderMap;
    use axum::routing::{get, post};
    use axum::Router;
    use storage_axum::{StorageResponse, UploadTarget, Uploaded};
    use storage_core::Result;

    async fn index(State(app): State<App>) -> StorageResponse {
        StorageResponse(index_page(&app).await)
    }

    async fn upload(headers: HeaderMap, Uploaded(upload): Uploaded) -> StorageResponse {
        StorageResponse(upload_answer(Ok(upload), &headers))
    }

    pub(super) async fn start(app: App) -> Result<RunningServer> {
        let options = app.options.clone();
        let uploads = Router::new()
            .route("/upload", post(upload))
            .with_state(UploadTarget::new(
                app.storage.clone(),
                options.upload.clone(),
            ));
        let images = Router::new()
            .route("/upload-image", post(upload))
            .with_state(UploadTarget::new(
                app.storage.clone(),
                options.image_upload.clone(),
            ));
        let router = Router::new()
            .route("/", get(index))
            .with_state(app.clone())
            .merge(uploads)
            .merge(images)
            .nest_service(
                &options.prefix,
                storage_axum::router_with(app.storage.clone(), options.serve.clone()),
            );
        let listener = tokio::net::TcpListener::bind(options.addr)
            .await
            .map_err(|e| io_error("cannot bind", e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| io_error("cannot bind", e))?;
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        // TCP_NODELAY: without it small responses wait ~40 ms for delayed ACKs.
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    let _ = stop_rx.await;
                })
                .await;
        });
        Ok(RunningServer {
            addr,
            stop: Box::new(move || {
                let _ = stop_tx.send(());
            }),
            task,
        })
    }
}

mod actix_app {
    use super::{index_page, io_error, upload_answer, App, RunningServer};
    use actix_web::{web, HttpRequest, HttpResponse};
    use storage_actix::{into_actix, UploadTarget, Uploaded};
    use storage_core::Result;

    async fn index(app: web::Data<App>) -> HttpResponse {
        into_actix(index_page(&app).await)
    }

    async fn upload(request: HttpRequest, Uploaded(upload): Uploaded) -> HttpResponse {
        into_actix(upload_answer(
            Ok(upload),
            &storage_actix::request_headers(&request),
        ))
    }

    pub(super) fn start(app: App) -> Result<RunningServer> {
        let options = app.options.clone();
        let factory_app = app;
        let server = actix_web::HttpServer::new(move || {
            let app = factory_app.clone();
            let options = app.options.clone();
            actix_web::App::new()
                .app_data(web::Data::new(app.clone()))
                .service(
                    web::scope(&options.prefix).configure(storage_actix::configure_with(
                        app.storage.clone(),
                        options.serve.clone(),
                    )),
                )
                .route("/", web::get().to(index))
                .service(
                    web::resource("/upload")
                        .app_data(web::Data::new(UploadTarget::new(
                            app.storage.clone(),
                            options.upload.clone(),
                        )))
                        .route(web::post().to(upload)),
                )
                .service(
                    web::resource("/upload-image")
                        .app_data(web::Data::new(UploadTarget::new(
                            app.storage.clone(),
                            options.image_upload.clone(),
                        )))
                        .route(web::post().to(upload)),
                )
        })
        .workers(2)
        .disable_signals()
        .bind(options.addr)
        .map_err(|e| io_error("cannot bind", e))?;
        let addr = server.addrs().first().copied().unwrap_or(options.addr);
        let server = server.run();
        let handle = server.handle();
        let task = tokio::spawn(async move {
            let _ = server.await;
        });
        Ok(RunningServer {
            addr,
            stop: Box::new(move || drop(tokio::spawn(handle.stop(true)))),
            task,
        })
    }
}

mod rocket_app {
    use super::{concrete_addr, index_page, io_error, upload_answer, App, RunningServer};
    use rocket::data::{Data, FromData, Outcome as DataOutcome};
    use rocket::fairing::AdHoc;
    use rocket::http::Status;
    use rocket::request::{FromRequest, Outcome, Request};
    use rocket::{get, post, routes, State};
    use storage_core::{Error, Result};
    use storage_http::Upload;
    use storage_rocket::{receive_upload, StorageFairing, StorageResponse, UploadTarget, Uploaded};

    /// The request headers, for the upload answer.
    struct Headers(http::HeaderMap);

    #[rocket::async_trait]
    impl<'r> FromRequest<'r> for Headers {
        type Error = std::convert::Infallible;

        async fn from_request(request: &'r Request<'_>) -> Outcome<Self, Self::Error> {
            Outcome::Success(Headers(storage_rocket::request_headers(request)))
        }
    }

    /// The image route's own policy.
    struct ImageTarget(UploadTarget);

    /// Uploads under [`ImageTarget`].
    struct ImageUploaded(Upload);

    #[rocket::async_trait]
    impl<'r> FromData<'r> for ImageUploaded {
        type Error = Error;

        async fn from_data(request: &'r Request<'_>, data: Data<'r>) -> DataOutcome<'r, Self> {
            let Some(ImageTarget(target)) = request.rocket().state::<ImageTarget>() else {
                return DataOutcome::Error((
                    Status::InternalServerError,
                    Error::NotSupported {
                        backend: "rocket",
                        operation: "image uploads".to_owned(),
                    },
                ));
            };
            match receive_upload(target, request, data).await {
                Ok(upload) => DataOutcome::Success(ImageUploaded(upload)),
                Err(e) => {
                    DataOutcome::Error((Status::new(storage_http::status_for(&e).as_u16()), e))
                }
            }
        }
    }

    #[get("/")]
    async fn index(app: &State<App>) -> StorageResponse {
        StorageResponse(index_page(app).await)
    }

    #[post("/upload", data = "<upload>")]
    fn upload(headers: Headers, upload: std::result::Result<Uploaded, Error>) -> StorageResponse {
        let Headers(headers) = headers;
        StorageResponse(upload_answer(upload.map(|Uploaded(u)| u), &headers))
    }

    #[post("/upload-image", data = "<upload>")]
    fn upload_image(
        headers: Headers,
        upload: std::result::Result<ImageUploaded, Error>,
    ) -> StorageResponse {
        let Headers(headers) = headers;
        StorageResponse(upload_answer(upload.map(|ImageUploaded(u)| u), &headers))
    }

    pub(super) async fn start(app: App) -> Result<RunningServer> {
        let options = app.options.clone();
        let addr = concrete_addr(options.addr)?;
        let figment = rocket::Config::figment()
            .merge(("address", addr.ip()))
            .merge(("port", addr.port()))
            .merge(("log_level", "off"))
            .merge(("cli_colors", false))
            .merge(("shutdown.ctrlc", false))
            .merge(("shutdown.grace", 1))
            .merge(("shutdown.mercy", 1));
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<()>();
        let ready_tx = std::sync::Mutex::new(Some(ready_tx));
        let rocket = rocket::custom(figment)
            .attach(
                StorageFairing::new(&options.prefix, app.storage.clone())
                    .config(options.serve.clone())
                    .uploads(options.upload.clone()),
            )
            .manage(ImageTarget(UploadTarget::new(
                app.storage.clone(),
                options.image_upload.clone(),
            )))
            .manage(app)
            .mount("/", routes![index, upload, upload_image])
            .attach(AdHoc::on_liftoff("ready", move |_| {
                let tx = ready_tx.lock().ok().and_then(|mut slot| slot.take());
                Box::pin(async move {
                    if let Some(tx) = tx {
                        let _ = tx.send(());
                    }
                })
            }));
        let ignited = rocket.ignite().await.map_err(|e| {
            io_error(
                "rocket failed to start",
                std::io::Error::other(e.to_string()),
            )
        })?;
        let shutdown = ignited.shutdown();
        let task = tokio::spawn(async move {
            let _ = ignited.launch().await;
        });
        ready_rx
            .await
            .map_err(|_| io_error("rocket did not start", std::io::Error::other("no liftoff")))?;
        Ok(RunningServer {
            addr,
            stop: Box::new(move || shutdown.notify()),
            task,
        })
    }
}
