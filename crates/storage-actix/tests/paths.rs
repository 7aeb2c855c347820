//! Request paths reach `storage-http` percent-encoded as sent, below whatever scope the service
//! is mounted in, so each escape is decoded once and a path that is not UTF-8 is refused (as on
//! axum and rocket), however the scopes are spelled.

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{test, web, App};
use storage_core::{InMemoryStorage, SaveOptions, Storage, StorageExt, Visibility};

async fn storage() -> Arc<dyn Storage> {
    let storage: Arc<dyn Storage> =
        Arc::new(InMemoryStorage::new().with_default_visibility(Visibility::Public));
    let keep = SaveOptions::new().keep_name(true);
    for name in ["a b.txt", "docs/r.txt", "%25.txt", "x.txt", "café.txt"] {
        let saved = storage
            .save_with(name, name.as_bytes().to_vec(), &keep)
            .await
            .map(|meta| meta.name.as_str().to_owned());
        assert_eq!(saved.as_deref().ok(), Some(name), "{saved:?}");
    }
    storage
}

/// The status and body of a GET of `uri` on `app`.
macro_rules! get {
    ($app:expr, $uri:expr) => {{
        let request = test::TestRequest::get().uri($uri).to_request();
        let response = test::call_service(&$app, request).await;
        let status = response.status();
        let body = test::read_body(response).await;
        (status, String::from_utf8_lossy(&body).into_owned())
    }};
}

#[actix_web::test]
async fn escapes_are_decoded_once_below_any_scope() {
    let storage = storage().await;
    let app = test::init_service(
        App::new()
            .service(web::scope("/media").configure(storage_actix::configure(storage.clone())))
            .service(web::scope("/my files").service(
                web::scope("/inner").configure(storage_actix::configure(storage.clone())),
            )),
    )
    .await;
    let cases = [
        ("/media/a%20b.txt", StatusCode::OK, "a b.txt"),
        ("/media/docs%2Fr.txt", StatusCode::OK, "docs/r.txt"),
        ("/media/docs/r.txt", StatusCode::OK, "docs/r.txt"),
        ("/media/%2525.txt", StatusCode::OK, "%25.txt"),
        ("/media/caf%C3%A9.txt", StatusCode::OK, "café.txt"),
        ("/my%20files/inner/a%20b.txt", StatusCode::OK, "a b.txt"),
        (
            "/my%20files/inner/docs%2Fr.txt",
            StatusCode::OK,
            "docs/r.txt",
        ),
        // Not UTF-8: refused, not looked up as U+FFFD.
        (
            "/media/caf%e9.txt",
            StatusCode::BAD_REQUEST,
            "the path is not UTF-8",
        ),
        (
            "/my%20files/inner/%c0%ae%c0%ae%2fx.txt",
            StatusCode::BAD_REQUEST,
            "the path is not UTF-8",
        ),
        // Decoded once: an encoded escape is a literal name, not a traversal.
        (
            "/media/%252e%252e%252fx.txt",
            StatusCode::NOT_FOUND,
            "%2e%2e%2fx.txt",
        ),
        ("/media/..%2Fx.txt", StatusCode::BAD_REQUEST, "traversal"),
    ];
    for (uri, status, words) in cases {
        let (got, body) = get!(app, uri);
        assert_eq!(got, status, "{uri}: {body}");
        assert!(body.contains(words), "{uri}: {words:?} not in {body:?}");
    }
}

#[actix_web::test]
async fn mounted_at_the_root() {
    let storage = storage().await;
    let app = test::init_service(App::new().configure(storage_actix::configure(storage))).await;
    assert_eq!(get!(app, "/x.txt"), (StatusCode::OK, "x.txt".to_owned()));
    assert_eq!(
        get!(app, "/docs%2Fr.txt"),
        (StatusCode::OK, "docs/r.txt".to_owned())
    );
    assert_eq!(get!(app, "/caf%e9.txt").0, StatusCode::BAD_REQUEST);
}
