//! Run with: cargo run -p profile-pics-actix
//!
//! Django's profile-pictures tutorial on actix-web: open <http://127.0.0.1:8000>, upload a
//! picture (images only, up to 4096x4096 pixels and 5 MiB, stored as
//! `profile_pics/<uuid>.<ext>`), see it listed as a thumbnail with its size, delete it, or
//! upload it as private: its thumbnail is then a signed URL that expires in 5 minutes, and the
//! bare URL answers 403.
//!
//! The pictures go to SQLite (`profile_pics.db`);
//! `STORAGE_URL=postgres://user@host/db cargo run -p profile-pics-actix --features postgres` puts
//! them in PostgreSQL instead. `ADDR` and `SECRET` (signs private links) are read too. There is
//! no login: anyone who opens the page sees and may delete every picture (see
//! `examples/profile-pics`). The rules and pages are shared with the axum and rocket versions;
//! what is here is only actix-web.

// An example program says where it listens.
#![allow(clippy::print_stdout)]

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use profile_pics::{notice_from_query, Pictures, Settings};
use storage_actix::{into_actix, UploadRejected, UploadTarget, Uploaded};
use storage_core::Visibility;

async fn page(pictures: web::Data<Pictures>, request: HttpRequest) -> HttpResponse {
    let notice = notice_from_query(Some(request.query_string()));
    into_actix(pictures.page(notice.as_deref()).await)
}

/// Both upload routes: the resource's `UploadTarget` (app data) decides public or private.
async fn upload(upload: Result<Uploaded, UploadRejected>) -> HttpResponse {
    let upload = upload.map(|Uploaded(u)| u).map_err(|UploadRejected(e)| e);
    into_actix(Pictures::uploaded(upload))
}

#[derive(serde::Deserialize)]
struct DeleteForm {
    name: String,
}

async fn delete(pictures: web::Data<Pictures>, form: web::Form<DeleteForm>) -> HttpResponse {
    into_actix(pictures.delete(&form.name).await)
}

#[actix_web::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let settings = Settings::from_env()?;
    let pictures = Pictures::connect(&settings).await?;
    let factory = pictures.clone();
    let server = HttpServer::new(move || {
        let pictures = factory.clone();
        let uploads = |visibility| {
            web::Data::new(UploadTarget::new(
                pictures.storage(),
                Pictures::upload_policy(visibility),
            ))
        };
        App::new()
            .app_data(web::Data::new(pictures.clone()))
            .route("/", web::get().to(page))
            .route("/delete", web::post().to(delete))
            .service(
                web::resource("/pictures")
                    .app_data(uploads(Visibility::Public))
                    .route(web::post().to(upload)),
            )
            .service(
                web::resource("/private-pictures")
                    .app_data(uploads(Visibility::Private))
                    .route(web::post().to(upload)),
            )
            .service(
                web::scope(profile_pics::MEDIA).configure(storage_actix::configure_with(
                    pictures.storage(),
                    pictures.serve_config(),
                )),
            )
    })
    .bind(settings.addr)?;
    if let Some(addr) = server.addrs().first() {
        println!(
            "profile pictures on http://{addr} (storage {}); Ctrl-C stops",
            storage_diesel::redact_url(&settings.storage_url)
        );
    }
    server.run().await?;
    Ok(())
}
