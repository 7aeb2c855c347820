//! The avatars app over real loopback HTTP on a SQLite file: who may upload, a picture named as
//! a page stored as what it is, signed URLs that stay put, replace, refuse, roll back, delete.

// Test code: an out-of-range index is a test failure.
#![allow(clippy::indexing_slicing)]

use avatars::{App, AppError, Profile};
use diesel::connection::SimpleConnection;
use storage_core::StorageExt;

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

struct Server {
    base: String,
    client: reqwest::Client,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    async fn start(app: App) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let router = avatars::router(app);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
        Ok(Self {
            base,
            client: reqwest::Client::new(),
            stop,
            task,
        })
    }

    async fn put_avatar(
        &self,
        user: Option<i32>,
        filename: &str,
        bytes: &[u8],
    ) -> Result<(u16, String), reqwest::Error> {
        let boundary = "avatars-test-0b9e";
        let mut body = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"avatar\"; filename=\"{filename}\"\r\nContent-Type: text/html\r\n\r\n"
        )
        .into_bytes();
        body.extend_from_slice(bytes);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let mut request = self
            .client
            .put(format!("{}/me/avatar", self.base))
            .header(
                "content-type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(body);
        if let Some(user) = user {
            request = request.header("x-user-id", user.to_string());
        }
        let response = request.send().await?;
        Ok((response.status().as_u16(), response.text().await?))
    }

    async fn profile(&self, id: i32) -> Result<Profile, reqwest::Error> {
        self.client
            .get(format!("{}/users/{id}", self.base))
            .send()
            .await?
            .json()
            .await
    }

    async fn get(&self, path: &str) -> Result<(u16, Vec<u8>), reqwest::Error> {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await?;
        Ok((response.status().as_u16(), response.bytes().await?.to_vec()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn avatars_from_upload_to_row() -> TestResult {
    let dir = tempfile::tempdir()?;
    let app = App::open(
        &format!("sqlite://{}/avatars.db", dir.path().display()),
        "test secret",
    )
    .await?;
    let storage = app.storage().clone();
    let server = Server::start(app).await?;
    for name in ["ada", "bob"] {
        let response = server
            .client
            .post(format!("{}/users", server.base))
            .json(&serde_json::json!({ "name": name }))
            .send()
            .await?;
        assert_eq!(response.status().as_u16(), 200);
    }
    let png = storage_conformance::png_with_html(32, 32);

    // Nobody asking, or no such user: refused before the body is read, nothing stored.
    assert_eq!(server.put_avatar(None, "me.html", &png).await?.0, 401);
    assert_eq!(server.put_avatar(Some(99), "me.html", &png).await?.0, 404);
    assert!(storage.walk_names(10).await?.is_empty());

    // A picture named as a page is stored as the PNG it is, and the row points at it.
    let (status, body) = server.put_avatar(Some(1), "me.html", &png).await?;
    assert_eq!(status, 200, "{body}");
    let ada: Profile = serde_json::from_str(&body)?;
    let url = ada.avatar.clone().ok_or("no avatar URL")?;
    let (path, query) = url.split_once('?').ok_or("the URL is not signed")?;
    assert!(
        path.starts_with("/media/avatars/") && path.ends_with(".png"),
        "{url}"
    );
    assert!(query.starts_with("expires="), "{url}");
    let (status, bytes) = server.get(&url).await?;
    assert_eq!((status, bytes.as_slice()), (200, png.as_slice()));
    assert_eq!(
        server.get(path).await?.0,
        403,
        "a private picture needs its signature"
    );
    // The same link on the next view, so the browser's cache keeps the picture (the hour may
    // turn between the two views, once in a long while: then the next one matches).
    let next = server.profile(1).await?.avatar;
    let next = if next.as_deref() == Some(url.as_str()) {
        next
    } else {
        server.profile(1).await?.avatar
    };
    assert_eq!(next, server.profile(1).await?.avatar);
    assert!(next.is_some());

    // A new picture replaces the old one, whose file goes.
    let second = storage_conformance::png_header(16, 16);
    let (status, body) = server.put_avatar(Some(1), "second.jpg", &second).await?;
    assert_eq!(status, 200, "{body}");
    let replaced: Profile = serde_json::from_str(&body)?;
    assert_ne!(replaced.avatar, ada.avatar);
    let names = storage.walk_names(10).await?;
    assert_eq!(names.len(), 1, "{names:?}");
    assert!(names[0].as_str().ends_with(".png"), "{names:?}");
    assert!(!storage.exists(path.trim_start_matches("/media/")).await?);

    // Not a picture, or too large a one: refused, the row and files untouched.
    let (status, body) = server
        .put_avatar(Some(1), "notes.png", b"plain text")
        .await?;
    assert_eq!(status, 415, "{body}");
    let huge = storage_conformance::png_header(2000, 10);
    assert_eq!(server.put_avatar(Some(1), "huge.png", &huge).await?.0, 415);
    assert_eq!(server.profile(1).await?.avatar, replaced.avatar);
    assert_eq!(storage.walk_names(10).await?, names);

    // The row update fails after the picture was stored: the picture is removed again.
    storage
        .run(|c| {
            c.batch_execute(
                "CREATE TRIGGER frozen BEFORE UPDATE OF avatar ON users WHEN OLD.name = 'bob'
                 BEGIN SELECT RAISE(ABORT, 'bob is frozen'); END;",
            )
            .map_err(AppError::Db)
        })
        .await?;
    let (status, body) = server.put_avatar(Some(2), "bob.png", &second).await?;
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("bob is frozen"), "{body}");
    assert_eq!(
        storage.walk_names(10).await?,
        names,
        "the failed row left a file"
    );
    assert_eq!(server.profile(2).await?.avatar, None);

    // Delete: the row is emptied, then the file goes.
    let response = server
        .client
        .delete(format!("{}/me/avatar", server.base))
        .header("x-user-id", "1")
        .send()
        .await?;
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(server.profile(1).await?.avatar, None);
    assert!(storage.walk_names(10).await?.is_empty());

    let _ = server.stop.send(());
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), server.task).await;
    Ok(())
}
