//! One demo app, three frameworks: `/` lists stored files with an upload form, `POST /upload`
//! stores files, `POST /upload-image` stores images only, and the storage is served under a
//! prefix (`/media`). Each framework's version uses only its adapter crate; every HTTP decision
//! comes from `storage-http`, so all three answer alike (the `http-matrix` tests prove it).

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use http::header::LOCATION;
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use storage_core::{media_url, Error, FileMeta, Result, Storage, StorageExt};
use storage_http::{
    error_response, html_page, human_size, plain_text, refusal_message, status_for, ImagePolicy,
    ResponseBody, ServeConfig, Upload, UploadPolicy,
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
    /// How long a client has to send a request's line and headers (10 s; zero turns it off).
    /// Also how long an idle kept-alive connection stays open. On axum every request's headers
    /// are timed; actix-web times only a connection's first request (a later one, once begun, is
    /// not timed); rocket 0.5 has no such setting.
    pub header_timeout: Duration,
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
            header_timeout: Duration::from_secs(10),
        }
    }

    /// Sets how long a client has to send a request's line and headers.
    #[must_use]
    pub fn header_timeout(mut self, timeout: Duration) -> Self {
        self.header_timeout = timeout;
        self
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

/// Whether the client asked for a page (a browser's form post) rather than text.
fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"))
}

/// The answer to an upload: names, one per line; a browser form gets sent back to the page. A
/// refused upload is told why in words (the limit in MiB, what is accepted): as a page for a
/// browser's form post, as one line of text otherwise (the page's script shows it).
fn upload_answer(result: Result<Upload>, headers: &HeaderMap) -> Response<ResponseBody> {
    let upload = match result {
        Ok(upload) => upload,
        Err(e) => {
            let status = status_for(&e);
            let message = format!("Upload refused: {}.", refusal_message(&e));
            if !wants_html(headers) {
                return plain_text(status, format!("{message}\n"));
            }
            return html_page(
                status,
                format!(
                    "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
                     <title>Upload refused</title></head>\n<body>\n<h1>Upload refused</h1>\n\
                     <p role=\"alert\">{}</p>\n<p>Nothing was stored. <a href=\"/\">Back to the \
                     files</a></p>\n</body></html>\n",
                    html_escape::encode_text(&message)
                ),
            );
        }
    };
    let names: String = upload
        .files
        .iter()
        .map(|f| format!("{}\n", f.meta.name))
        .collect();
    if !wants_html(headers) {
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

/// Metadata lookups the index page has under way at once.
const INDEX_LOOKUPS: usize = 8;

/// How long a stopping axum or actix-web server lets requests under way finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// The page's look: one small stylesheet, no external resources.
const PAGE_STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:52rem;margin:2rem auto;\
padding:0 1rem;color:#222}.files{list-style:none;padding:0}.files li{display:flex;\
align-items:center;gap:.75rem;padding:.4rem 0;border-bottom:1px solid #eee}.thumb,.icon{width:64px;\
height:64px;border-radius:4px;background:#f3f3f3}.thumb{object-fit:cover}.icon{display:flex;\
align-items:center;justify-content:center;font-size:.7rem;color:#666}.name{flex:1;\
word-break:break-all}.note{color:#666;font-size:.9rem}#message{padding:.6rem .8rem;\
border-radius:4px}#message.error{background:#fde8e8;color:#8a1c1c}#message.ok{background:#e8f6ec;\
color:#1c5e2e}#progress{width:100%}";

/// The page's script: the form is sent with a progress bar, a refusal is shown in words, and
/// the list is refreshed in place. Without script the form posts as a plain form.
const PAGE_SCRIPT: &str = r#"(() => {
  const form = document.getElementById('upload');
  const button = form.querySelector('button');
  const box = document.getElementById('progress-box');
  const bar = document.getElementById('progress');
  const text = document.getElementById('progress-text');
  const message = document.getElementById('message');
  const human = (n) => {
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
    return i === 0 ? `${n} B` : `${n.toFixed(1)} ${units[i]}`;
  };
  const say = (kind, words) => {
    message.className = kind;
    message.textContent = words;
    message.hidden = false;
  };
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const xhr = new XMLHttpRequest();
    xhr.open('POST', form.action);
    xhr.setRequestHeader('Accept', 'text/plain');
    xhr.upload.addEventListener('progress', (e) => {
      if (!e.lengthComputable) return;
      const percent = Math.floor((e.loaded * 100) / e.total);
      bar.value = percent;
      text.textContent = `${percent}% of ${human(e.total)}`;
    });
    const done = () => { button.disabled = false; };
    xhr.addEventListener('load', async () => {
      done();
      if (xhr.status < 200 || xhr.status >= 300) {
        box.hidden = true;
        say('error', xhr.responseText.trim() || `Upload refused (${xhr.status}).`);
        return;
      }
      const names = xhr.responseText.trim().split('\n').filter(Boolean);
      form.reset();
      say('ok', `Stored ${names.join(', ')}.`);
      try {
        const page = await fetch('/', { headers: { Accept: 'text/html' } });
        const fresh = new DOMParser().parseFromString(await page.text(), 'text/html');
        const list = fresh.getElementById('files');
        if (!page.ok || !list) throw new Error(`the list answered ${page.status}`);
        document.getElementById('files').replaceWith(list);
      } catch (e) {
        say('ok', `Stored ${names.join(', ')}. Reload the page to see the list (${e.message}).`);
      }
    });
    xhr.addEventListener('error', () => {
      done();
      box.hidden = true;
      say('error', 'The upload broke off before the server answered; reload the page to see what was stored.');
    });
    message.hidden = true;
    bar.value = 0;
    text.textContent = '';
    box.hidden = false;
    button.disabled = true;
    xhr.send(new FormData(form));
  });
})();"#;

/// One file of the index page: a thumbnail for an image, its name, size and a download link.
fn index_item(href: &str, name: &str, meta: Option<&storage_core::FileMeta>) -> String {
    let href = html_escape::encode_double_quoted_attribute(href);
    let shown = html_escape::encode_text(name);
    let basename = name.rsplit('/').next().unwrap_or(name);
    let is_image = meta
        .and_then(|m| m.content_type.as_deref())
        .is_some_and(|t| t.starts_with("image/"));
    let preview = if is_image {
        format!(
            "<img class=\"thumb\" src=\"{href}\" alt=\"{}\" loading=\"lazy\">",
            html_escape::encode_double_quoted_attribute(name)
        )
    } else {
        "<span class=\"icon\">file</span>".to_owned()
    };
    let size = meta.map(|m| human_size(m.size)).unwrap_or_default();
    format!(
        "<li data-name=\"{}\"><a href=\"{href}\">{preview}</a><a class=\"name\" \
         href=\"{href}\">{shown}</a><span class=\"note\">{size}</span><a class=\"download\" \
         href=\"{href}\" download=\"{}\">download</a></li>\n",
        html_escape::encode_double_quoted_attribute(name),
        html_escape::encode_double_quoted_attribute(basename),
    )
}

/// The page at `/`: the stored files (images as thumbnails) and an upload form with a progress
/// bar.
async fn index_page(app: &App) -> Response<ResponseBody> {
    let names = match app.storage.walk_names(INDEX_LIMIT).await {
        Ok(mut names) => {
            names.truncate(INDEX_LIMIT);
            names
        }
        Err(e) => return error_response(&e),
    };
    // A few metadata lookups at a time: on a database each is a round trip (1000 one after
    // another took ~450 ms on PostgreSQL); the order of the names is kept.
    let metas: Vec<Option<FileMeta>> = futures::stream::iter(names.clone())
        .map(|name| {
            let storage = Arc::clone(&app.storage);
            async move { storage.metadata(&name).await.ok() }
        })
        .buffered(INDEX_LOOKUPS)
        .collect()
        .await;
    let mut items = String::new();
    for (name, meta) in names.iter().zip(metas) {
        // Private files get a signed link when the server has a signer.
        let href = meta
            .as_ref()
            .and_then(|meta| {
                storage_core::file_url(
                    "server",
                    Some(&app.options.prefix),
                    app.options.serve.signer.as_ref(),
                    meta,
                    None,
                )
                .ok()
            })
            .unwrap_or_else(|| media_url(&app.options.prefix, name.as_str()));
        items.push_str(&index_item(&href, name.as_str(), meta.as_ref()));
    }
    if items.is_empty() {
        items.push_str("<li><em>nothing stored yet</em></li>\n");
    }
    let limit = human_size(app.options.upload.max_file_size);
    html_page(
        StatusCode::OK,
        format!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>dbfiles</title>\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <style>{PAGE_STYLE}</style></head>\n<body>\n<h1>dbfiles</h1>\n\
             <form id=\"upload\" method=\"post\" action=\"/upload\" enctype=\"multipart/form-data\">\
             <input type=\"file\" name=\"file\" multiple required> <button type=\"submit\">Upload\
             </button> <span class=\"note\">up to {limit} a file</span></form>\n\
             <p id=\"progress-box\" hidden><progress id=\"progress\" max=\"100\" value=\"0\">\
             </progress><span id=\"progress-text\" class=\"note\"></span></p>\n\
             <p id=\"message\" role=\"alert\" hidden></p>\n\
             <h2>Stored files</h2>\n<ul id=\"files\" class=\"files\">\n{items}</ul>\n\
             <script>{PAGE_SCRIPT}</script>\n</body></html>\n"
        ),
    )
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
    use super::{index_page, io_error, upload_answer, App, RunningServer, SHUTDOWN_GRACE};
    use axum::extract::State;
    use axum::http::HeaderMap;
    use axum::routing::{get, post};
    use axum::Router;
    use hyper::server::conn::http1;
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::server::graceful::GracefulShutdown;
    use hyper_util::service::TowerToHyperService;
    use std::io::ErrorKind;
    use std::time::Duration;
    use storage_axum::{StorageResponse, UploadRejected, UploadTarget, Uploaded};
    use storage_core::Result;
    use tokio::net::TcpListener;
    use tokio::task::JoinSet;

    async fn index(State(app): State<App>) -> StorageResponse {
        StorageResponse(index_page(&app).await)
    }

    async fn upload(
        headers: HeaderMap,
        upload: Result<Uploaded, UploadRejected>,
    ) -> StorageResponse {
        let upload = upload.map(|Uploaded(u)| u).map_err(|UploadRejected(e)| e);
        StorageResponse(upload_answer(upload, &headers))
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
        let task = tokio::spawn(serve(listener, router, options.header_timeout, stop_rx));
        Ok(RunningServer {
            addr,
            stop: Box::new(move || {
                let _ = stop_tx.send(());
            }),
            task,
        })
    }

    /// `axum::serve` with a header timeout: it runs hyper without a timer, so a client sending
    /// its headers a byte at a time kept a connection for ever. The same loop on hyper-util, with
    /// hyper's `header_read_timeout` (the connection is closed when it passes).
    async fn serve(
        listener: TcpListener,
        router: Router,
        header_timeout: Duration,
        mut stop: tokio::sync::oneshot::Receiver<()>,
    ) {
        let mut http = http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(Some(header_timeout).filter(|t| !t.is_zero()));
        let connections = GracefulShutdown::new();
        let mut tasks = JoinSet::new();
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                _ = &mut stop => break,
            };
            // Finished connection tasks are let go as we go.
            while tasks.try_join_next().is_some() {}
            let tcp = match accepted {
                Ok((tcp, _)) => tcp,
                // One client's trouble: the next accept is fine.
                Err(e) if is_connection_error(&e) => continue,
                // Out of file descriptors and the like: wait rather than spin (as axum::serve),
                // still listening for the stop.
                Err(_) => {
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                        _ = &mut stop => break,
                    }
                }
            };
            // TCP_NODELAY: without it small responses wait ~40 ms for delayed ACKs.
            let _ = tcp.set_nodelay(true);
            let service = TowerToHyperService::new(router.clone());
            let connection = http.serve_connection(TokioIo::new(tcp), service);
            let connection = connections.watch(connection);
            tasks.spawn(async move {
                let _ = connection.await;
            });
        }
        drop(listener);
        // Requests under way get to finish, for a while; then their connections are dropped.
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, connections.shutdown()).await;
        tasks.shutdown().await;
    }

    /// Accept errors that concern one connection only (as in axum::serve).
    fn is_connection_error(e: &std::io::Error) -> bool {
        matches!(
            e.kind(),
            ErrorKind::ConnectionRefused
                | ErrorKind::ConnectionAborted
                | ErrorKind::ConnectionReset
        )
    }
}

mod actix_app {
    use super::{index_page, io_error, upload_answer, App, RunningServer, SHUTDOWN_GRACE};
    use actix_web::{web, HttpRequest, HttpResponse};
    use storage_actix::{into_actix, UploadRejected, UploadTarget, Uploaded};
    use storage_core::Result;

    async fn index(app: web::Data<App>) -> HttpResponse {
        into_actix(index_page(&app).await)
    }

    async fn upload(
        request: HttpRequest,
        upload: Result<Uploaded, UploadRejected>,
    ) -> HttpResponse {
        let upload = upload.map(|Uploaded(u)| u).map_err(|UploadRejected(e)| e);
        into_actix(upload_answer(
            upload,
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
        // The first request's headers (actix-web times only those); zero turns it off.
        .client_request_timeout(options.header_timeout)
        .shutdown_timeout(SHUTDOWN_GRACE.as_secs())
        .disable_signals()
        .bind(options.addr)
        .map_err(|e| io_error("cannot bind", e))?;
        // An idle kept-alive connection is closed after the same time, as on axum.
        let server = if options.header_timeout.is_zero() {
            server
        } else {
            server.keep_alive(options.header_timeout)
        };
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
    use rocket::fairing::AdHoc;
    use rocket::request::{FromRequest, Outcome, Request};
    use rocket::{get, post, routes, State};
    use storage_core::{Error, Result};
    use storage_rocket::{
        StorageFairing, StorageResponse, UploadTarget, UploadTargetFor, Uploaded, UploadedFor,
    };

    /// The request headers, for the upload answer.
    struct Headers(http::HeaderMap);

    #[rocket::async_trait]
    impl<'r> FromRequest<'r> for Headers {
        type Error = std::convert::Infallible;

        async fn from_request(request: &'r Request<'_>) -> Outcome<Self, Self::Error> {
            Outcome::Success(Headers(storage_rocket::request_headers(request)))
        }
    }

    /// The image route's marker: its own upload policy.
    struct ImageRoute;

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
        upload: std::result::Result<UploadedFor<ImageRoute>, Error>,
    ) -> StorageResponse {
        let Headers(headers) = headers;
        StorageResponse(upload_answer(upload.map(UploadedFor::into_inner), &headers))
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
            .manage(UploadTargetFor::<ImageRoute>::new(UploadTarget::new(
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
