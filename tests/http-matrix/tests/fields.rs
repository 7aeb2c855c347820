//! An avatar upload through a model field on axum, actix-web and rocket, over real loopback
//! HTTP and one SQLite database that holds both the app's `users` rows and the files: the
//! handler checks who is asking and finds the row before the body is read
//! ([`UploadForm`](storage_axum::UploadForm) stores nothing on its own), then one
//! `avatar.attach(..)` validates and stores the picture under the field's rules and
//! `finish(..)` commits or rolls back with the row update.

// Test code: an out-of-range index is a test failure.
#![allow(clippy::indexing_slicing, clippy::print_stderr)]
#![allow(missing_docs)] // diesel::table! items

use std::sync::Arc;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use storage_core::{Error, IncomingFile, Result, StorageExt, UploadTo, Visibility};
use storage_diesel::{DatabaseOptions, FileRef, ImageField, SqliteStorage};

diesel::table! {
    users (id) {
        id -> Integer,
        name -> Text,
        avatar -> Text,
    }
}

/// What the app's own code can fail with: the storage's error or the database's.
#[derive(Debug)]
enum AppError {
    Storage(Error),
    Db(diesel::result::Error),
}

impl From<Error> for AppError {
    fn from(e: Error) -> Self {
        Self::Storage(e)
    }
}

impl From<diesel::result::Error> for AppError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Db(e)
    }
}

impl AppError {
    fn answer(&self) -> (u16, String) {
        match self {
            Self::Storage(e) => (storage_http::status_for(e).as_u16(), e.to_string()),
            Self::Db(diesel::result::Error::NotFound) => (404, "no such user".to_owned()),
            Self::Db(e) => (500, format!("database: {e}")),
        }
    }
}

/// The app: the storage (which is also the app's database) and the avatar field.
struct Avatars {
    storage: SqliteStorage,
    avatar: ImageField,
}

impl Avatars {
    async fn new(url: &str) -> Result<Self> {
        let options = DatabaseOptions::new()
            .migrate_on_connect(true)
            .default_visibility(Visibility::Public);
        let storage = SqliteStorage::connect(url, options).await?;
        storage
            .run(|conn| {
                conn.batch_execute(
                    "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL,
                                         avatar TEXT NOT NULL DEFAULT '');
                     INSERT INTO users (id, name) VALUES (1, 'ada'), (2, 'frozen');
                     -- The app refuses to change a frozen account's row: the update fails
                     -- after the upload was stored, which must then be rolled back.
                     CREATE TRIGGER frozen BEFORE UPDATE OF avatar ON users
                     WHEN OLD.name = 'frozen'
                     BEGIN SELECT RAISE(ABORT, 'frozen account'); END;",
                )
                .map_err(|e| Error::backend("test", "schema", e))
            })
            .await?;
        let shared = Arc::new(storage.clone());
        let avatar = ImageField::new("users", "avatar", shared.clone())?
            .upload_to(UploadTo::template("avatars"))
            .max_size(64, 64)
            .delete_replaced(shared);
        Ok(Self { storage, avatar })
    }

    /// The handler, the same on every framework: who asks, which row, then one attach.
    async fn put_avatar<F: IncomingFile>(
        &self,
        user: i32,
        asking: Option<String>,
        form: F,
    ) -> (u16, String) {
        if asking != Some(user.to_string()) {
            return (403, "not your avatar".to_owned());
        }
        match self.attach(user, form).await {
            Ok(name) => (200, name),
            Err(e) => e.answer(),
        }
    }

    async fn attach<F: IncomingFile>(
        &self,
        user: i32,
        form: F,
    ) -> std::result::Result<String, AppError> {
        let current: FileRef = self
            .storage
            .run(move |c| {
                let avatar = users::table.find(user).select(users::avatar).first(c)?;
                Ok::<_, AppError>(avatar)
            })
            .await?;
        let change = self.avatar.attach(&current, form).await?;
        let value = change.value();
        let updated = self
            .storage
            .run(move |c| {
                let rows = diesel::update(users::table.find(user))
                    .set(users::avatar.eq(&value))
                    .execute(c)?;
                Ok::<_, AppError>(rows)
            })
            .await;
        change.finish(updated).await?;
        current_name(&self.storage, user).await
    }
}

async fn current_name(storage: &SqliteStorage, user: i32) -> std::result::Result<String, AppError> {
    storage
        .run(move |c| {
            let avatar: FileRef = users::table.find(user).select(users::avatar).first(c)?;
            Ok::<_, AppError>(avatar.as_str().to_owned())
        })
        .await
}

/// A server for one framework, stopped by [`Running::stop`].
struct Running {
    base: String,
    stop: Box<dyn FnOnce() + Send>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    async fn stop(self) {
        (self.stop)();
        let _ = tokio::time::timeout(std::time::Duration::from_secs(10), self.task).await;
    }
}

fn io(what: &'static str, e: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::backend("test", what, e)
}

async fn start_axum(app: Arc<Avatars>) -> Result<Running> {
    use axum::extract::{Path, State};
    use axum::http::HeaderMap;
    use storage_axum::UploadForm;

    async fn put(
        State(app): State<Arc<Avatars>>,
        Path(user): Path<i32>,
        headers: HeaderMap,
        form: UploadForm,
    ) -> (axum::http::StatusCode, String) {
        let asking = headers
            .get("x-user")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let (status, body) = app.put_avatar(user, asking, form).await;
        let status = axum::http::StatusCode::from_u16(status)
            .unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR);
        (status, body)
    }

    let router = axum::Router::new()
        .route("/users/{user}/avatar", axum::routing::post(put))
        .with_state(app);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| io("bind", e))?;
    let base = format!(
        "http://{}",
        listener.local_addr().map_err(|e| io("addr", e))?
    );
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router)
            .with_graceful_shutdown(async {
                let _ = rx.await;
            })
            .await;
    });
    Ok(Running {
        base,
        stop: Box::new(move || {
            let _ = tx.send(());
        }),
        task,
    })
}

async fn start_actix(app: Arc<Avatars>) -> Result<Running> {
    use actix_web::{web, HttpRequest, HttpResponse};
    use storage_actix::UploadForm;

    async fn put(
        request: HttpRequest,
        app: web::Data<Arc<Avatars>>,
        user: web::Path<i32>,
        form: UploadForm,
    ) -> HttpResponse {
        let asking = request
            .headers()
            .get("x-user")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let (status, body) = app.put_avatar(user.into_inner(), asking, form).await;
        let status = actix_web::http::StatusCode::from_u16(status)
            .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR);
        HttpResponse::build(status).body(body)
    }

    let data = web::Data::new(app);
    let server = actix_web::HttpServer::new(move || {
        actix_web::App::new()
            .app_data(data.clone())
            .route("/users/{user}/avatar", web::post().to(put))
    })
    .workers(1)
    .disable_signals()
    .bind(("127.0.0.1", 0))
    .map_err(|e| io("bind", e))?;
    let addr = server
        .addrs()
        .first()
        .copied()
        .ok_or_else(|| io("addr", std::io::Error::other("no address")))?;
    let server = server.run();
    let handle = server.handle();
    let task = tokio::spawn(async move {
        let _ = server.await;
    });
    Ok(Running {
        base: format!("http://{addr}"),
        stop: Box::new(move || drop(tokio::spawn(handle.stop(true)))),
        task,
    })
}

mod rocket_app {
    use std::sync::Arc;

    use rocket::request::{FromRequest, Outcome, Request};
    use rocket::{post, State};
    use storage_rocket::UploadForm;

    use super::Avatars;

    /// The `X-User` header: the app's stand-in for its own authentication.
    pub(super) struct Asking(Option<String>);

    #[rocket::async_trait]
    impl<'r> FromRequest<'r> for Asking {
        type Error = std::convert::Infallible;

        async fn from_request(request: &'r Request<'_>) -> Outcome<Self, Self::Error> {
            Outcome::Success(Asking(
                request.headers().get_one("x-user").map(str::to_owned),
            ))
        }
    }

    #[post("/users/<user>/avatar", data = "<form>")]
    pub(super) async fn put(
        app: &State<Arc<Avatars>>,
        user: i32,
        asking: Asking,
        form: UploadForm<'_>,
    ) -> (rocket::http::Status, String) {
        let (status, body) = app.put_avatar(user, asking.0, form).await;
        (rocket::http::Status::new(status), body)
    }
}

async fn start_rocket(app: Arc<Avatars>) -> Result<Running> {
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| io("bind", e))?;
        probe.local_addr().map_err(|e| io("addr", e))?.port()
    };
    let figment = rocket::Config::figment()
        .merge(("address", "127.0.0.1"))
        .merge(("port", port))
        .merge(("log_level", "off"))
        .merge(("shutdown.ctrlc", false))
        .merge(("shutdown.grace", 1))
        .merge(("shutdown.mercy", 1));
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<()>();
    let ready_tx = std::sync::Mutex::new(Some(ready_tx));
    let ignited = rocket::custom(figment)
        .manage(app)
        .mount("/", rocket::routes![rocket_app::put])
        .attach(rocket::fairing::AdHoc::on_liftoff("ready", move |_| {
            let tx = ready_tx.lock().ok().and_then(|mut slot| slot.take());
            Box::pin(async move {
                if let Some(tx) = tx {
                    let _ = tx.send(());
                }
            })
        }))
        .ignite()
        .await
        .map_err(|e| io("ignite", std::io::Error::other(e.to_string())))?;
    let shutdown = ignited.shutdown();
    let task = tokio::spawn(async move {
        let _ = ignited.launch().await;
    });
    ready_rx
        .await
        .map_err(|_| io("liftoff", std::io::Error::other("rocket did not start")))?;
    Ok(Running {
        base: format!("http://127.0.0.1:{port}"),
        stop: Box::new(move || shutdown.notify()),
        task,
    })
}

/// Posts `data` as the form's only file, named `filename`, for `user`, as `asking`.
async fn post(
    client: &reqwest::Client,
    base: &str,
    user: i32,
    asking: Option<&str>,
    filename: &str,
    data: &[u8],
) -> Result<(u16, String)> {
    let boundary = "fields-boundary-41c2";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"avatar\"; filename=\"{filename}\"\r\nContent-Type: text/html\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(data);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let mut request = client
        .post(format!("{base}/users/{user}/avatar"))
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(body);
    if let Some(asking) = asking {
        request = request.header("x-user", asking);
    }
    let response = request.send().await.map_err(|e| io("post", e))?;
    let status = response.status().as_u16();
    let text = response.text().await.map_err(|e| io("body", e))?;
    Ok((status, text))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_avatar_goes_from_upload_to_row_in_one_call_on_every_framework() -> Result<()> {
    let client = reqwest::Client::new();
    for framework in ["axum", "actix", "rocket"] {
        let dir = tempfile::tempdir().map_err(|e| io("tempdir", e))?;
        let url = format!("sqlite://{}/app.db", dir.path().display());
        let app = Arc::new(Avatars::new(&url).await?);
        let server = match framework {
            "axum" => start_axum(app.clone()).await?,
            "actix" => start_actix(app.clone()).await?,
            _ => start_rocket(app.clone()).await?,
        };
        let base = server.base.clone();
        let files = || async { app.storage.walk_names(100).await };
        let png = storage_conformance::png_with_html(16, 16);

        // The app's checks come first: a stranger's upload is refused with nothing stored.
        let answer = post(&client, &base, 1, Some("2"), "me.html", &png).await?;
        assert_eq!(answer.0, 403, "{framework}: {answer:?}");
        let answer = post(&client, &base, 7, Some("7"), "me.html", &png).await?;
        assert_eq!(answer.0, 404, "{framework}: no row, no upload: {answer:?}");
        assert!(
            files().await?.is_empty(),
            "{framework}: stored before the checks"
        );

        // A PNG named as a page is stored under its real type, and the row holds it.
        let answer = post(&client, &base, 1, Some("1"), "me.html", &png).await?;
        assert_eq!(answer, (200, "avatars/me.png".to_owned()), "{framework}");
        assert_eq!(
            app.storage.read_to_bytes("avatars/me.png").await?.as_ref(),
            png.as_slice(),
            "{framework}"
        );
        assert_eq!(
            current_name(&app.storage, 1).await.ok().as_deref(),
            Some("avatars/me.png")
        );

        // A new picture replaces the old one: the row moves, the old file goes.
        let second = storage_conformance::png_header(8, 8);
        let answer = post(&client, &base, 1, Some("1"), "second.gif", &second).await?;
        assert_eq!(
            answer,
            (200, "avatars/second.png".to_owned()),
            "{framework}"
        );
        assert_eq!(files().await?.len(), 1, "{framework}: {:?}", files().await?);
        assert!(!app.storage.exists("avatars/me.png").await?, "{framework}");

        // The field's rules refuse without touching row or files: not an image, too large.
        let answer = post(&client, &base, 1, Some("1"), "notes.png", b"plain text").await?;
        assert_eq!(answer.0, 415, "{framework}: {answer:?}");
        assert!(
            answer.1.contains("the 'avatar' field"),
            "{framework}: {}",
            answer.1
        );
        let big = storage_conformance::png_header(65, 8);
        let answer = post(&client, &base, 1, Some("1"), "big.png", &big).await?;
        assert_eq!(answer.0, 415, "{framework}: {answer:?}");
        assert_eq!(
            current_name(&app.storage, 1).await.ok().as_deref(),
            Some("avatars/second.png")
        );

        // The row update fails after the file was stored: the new file is rolled back.
        let answer = post(&client, &base, 2, Some("2"), "frozen.png", &second).await?;
        assert_eq!(answer.0, 500, "{framework}: {answer:?}");
        assert!(
            answer.1.contains("frozen account"),
            "{framework}: {answer:?}"
        );
        assert_eq!(
            files()
                .await?
                .iter()
                .map(|n| n.to_string())
                .collect::<Vec<_>>(),
            vec!["avatars/second.png".to_owned()],
            "{framework}: the failed row left a file"
        );
        server.stop().await;
    }
    Ok(())
}
