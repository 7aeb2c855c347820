//! Run with: cargo run -p profile-pics-axum
//!
//! Django's profile-pictures tutorial on axum: open <http://127.0.0.1:8000>, upload a picture
//! (images only, up to 4096x4096 pixels and 5 MiB, stored as `profile_pics/<uuid>.<ext>`), see
//! it listed as a thumbnail with its size, delete it, or upload it as private: its thumbnail is
//! then a signed URL that expires in 5 minutes, and the bare URL answers 403.
//!
//! The pictures go to SQLite (`profile_pics.db`);
//! `STORAGE_URL=postgres://user@host/db cargo run -p profile-pics-axum --features postgres` puts
//! them in PostgreSQL instead. `ADDR` and `SECRET` (signs private links) are read too. There is
//! no login: anyone who opens the page sees and may delete every picture (see
//! `examples/profile-pics`). The rules and pages are shared with the actix and rocket versions;
//! what is here is only axum.

// An example program says where it listens.
#![allow(clippy::print_stdout)]

use axum::extract::{RawQuery, State};
use axum::routing::{get, post};
use axum::{Form, Router};
use profile_pics::{notice_from_query, Pictures, Settings};
use storage_axum::{StorageResponse, UploadRejected, UploadTarget, Uploaded};
use storage_core::Visibility;

async fn page(State(pictures): State<Pictures>, RawQuery(query): RawQuery) -> StorageResponse {
    let notice = notice_from_query(query.as_deref());
    StorageResponse(pictures.page(notice.as_deref()).await)
}

/// Both upload routes: the route's `UploadTarget` (state) decides public or private.
async fn upload(upload: Result<Uploaded, UploadRejected>) -> StorageResponse {
    let upload = upload.map(|Uploaded(u)| u).map_err(|UploadRejected(e)| e);
    StorageResponse(Pictures::uploaded(upload))
}

#[derive(serde::Deserialize)]
struct DeleteForm {
    name: String,
}

async fn delete(State(pictures): State<Pictures>, Form(form): Form<DeleteForm>) -> StorageResponse {
    StorageResponse(pictures.delete(&form.name).await)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let settings = Settings::from_env()?;
    let pictures = Pictures::connect(&settings).await?;
    let uploads =
        |visibility| UploadTarget::new(pictures.storage(), Pictures::upload_policy(visibility));
    let app = Router::new()
        .route("/", get(page))
        .route("/delete", post(delete))
        .with_state(pictures.clone())
        .route(
            "/pictures",
            post(upload).with_state(uploads(Visibility::Public)),
        )
        .route(
            "/private-pictures",
            post(upload).with_state(uploads(Visibility::Private)),
        )
        .nest_service(
            profile_pics::MEDIA,
            storage_axum::router_with(pictures.storage(), pictures.serve_config()),
        );
    let listener = tokio::net::TcpListener::bind(settings.addr).await?;
    println!(
        "profile pictures on http://{} (storage {}); Ctrl-C stops",
        listener.local_addr()?,
        storage_diesel::redact_url(&settings.storage_url)
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
