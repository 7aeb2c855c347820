//! Run with: cargo run -p profile-pics-rocket
//!
//! Django's profile-pictures tutorial on rocket: open <http://127.0.0.1:8000>, upload a picture
//! (images only, up to 4096x4096 pixels and 5 MiB, stored as `profile_pics/<uuid>.<ext>`), see
//! it listed as a thumbnail with its size, delete it, or upload it as private: its thumbnail is
//! then a signed URL that expires in 5 minutes, and the bare URL answers 403.
//!
//! The pictures go to SQLite (`profile_pics.db`);
//! `STORAGE_URL=postgres://user@host/db cargo run -p profile-pics-rocket --features postgres` puts
//! them in PostgreSQL instead. `ADDR` and `SECRET` (signs private links) are read too. There is
//! no login: anyone who opens the page sees and may delete every picture (see
//! `examples/profile-pics`). The rules and pages are shared with the axum and actix versions;
//! what is here is only rocket.

// An example program says where it listens.
#![allow(clippy::print_stdout)]

use profile_pics::{Pictures, Settings};
use rocket::form::Form;
use rocket::{get, post, routes, FromForm, State};
use storage_core::{Error, Visibility};
use storage_rocket::{
    StorageFairing, StorageResponse, UploadTarget, UploadTargetFor, Uploaded, UploadedFor,
};

#[get("/?<notice>")]
async fn page(pictures: &State<Pictures>, notice: Option<&str>) -> StorageResponse {
    StorageResponse(pictures.page(notice).await)
}

#[post("/pictures", data = "<upload>")]
fn upload(upload: Result<Uploaded, Error>) -> StorageResponse {
    StorageResponse(Pictures::uploaded(upload.map(|Uploaded(u)| u)))
}

/// The private pictures' route, which has an upload policy of its own.
struct Private;

#[post("/private-pictures", data = "<upload>")]
fn upload_private(upload: Result<UploadedFor<Private>, Error>) -> StorageResponse {
    StorageResponse(Pictures::uploaded(upload.map(UploadedFor::into_inner)))
}

#[derive(FromForm)]
struct DeleteForm<'r> {
    name: &'r str,
}

#[post("/delete", data = "<form>")]
async fn delete(pictures: &State<Pictures>, form: Form<DeleteForm<'_>>) -> StorageResponse {
    StorageResponse(pictures.delete(form.name).await)
}

#[rocket::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let settings = Settings::from_env()?;
    let pictures = Pictures::connect(&settings).await?;
    let figment = rocket::Config::figment()
        .merge(("address", settings.addr.ip()))
        .merge(("port", settings.addr.port()));
    let private = UploadTarget::new(
        pictures.storage(),
        Pictures::upload_policy(Visibility::Private),
    );
    let rocket = rocket::custom(figment)
        .attach(
            StorageFairing::new(profile_pics::MEDIA, pictures.storage())
                .config(pictures.serve_config())
                .uploads(Pictures::upload_policy(Visibility::Public)),
        )
        .manage(UploadTargetFor::<Private>::new(private))
        .manage(pictures)
        .mount("/", routes![page, upload, upload_private, delete])
        .ignite()
        .await?;
    println!(
        "profile pictures on http://{} (storage {}); Ctrl-C stops",
        settings.addr,
        storage_diesel::redact_url(&settings.storage_url)
    );
    rocket.launch().await?;
    Ok(())
}
