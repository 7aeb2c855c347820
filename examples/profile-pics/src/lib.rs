//! What the three profile-pictures examples share (`profile-pics-axum`, `profile-pics-actix`,
//! `profile-pics-rocket`): Django's tutorial case of a profile picture upload. The rules and
//! pages live here once; each example crate is only its framework's routes.
//!
//! - Uploads are images only (the bytes must be PNG, JPEG, GIF, WebP, ...), at most
//!   [`MAX_WIDTH`] x [`MAX_HEIGHT`] pixels and [`MAX_BYTES`], stored under `profile_pics/` with
//!   a random uuid name (the client's file name is never used, only its extension).
//! - The page lists the pictures as `<img>` thumbnails (the stored picture, shown small) with
//!   their width and height, each with a delete button; a private picture's thumbnail is a
//!   signed URL that expires, and its plain URL answers 403.
//! - There is no login: every visitor sees and may delete every picture, and the page hands
//!   out signed links to private ones. A real app puts these routes behind its login and CSRF
//!   check and signs a private picture's URL only for its owner; the signing and checking shown
//!   here stay the same.
//! - The storage is SQLite (`sqlite://profile_pics.db`) unless `STORAGE_URL` names another
//!   (`postgres://user@host/db` with the `postgres` feature, which links libpq), and files are
//!   served under `/media/`. Without `SECRET`, private links stop working when the app
//!   restarts and differ between app servers.
//!
//! ```
//! # async fn run() -> storage_core::Result<()> {
//! let settings = profile_pics::Settings {
//!     storage_url: "memory:".to_owned(),
//!     ..profile_pics::Settings::from_env()?
//! };
//! let pictures = profile_pics::Pictures::connect(&settings).await?;
//! let page = pictures.page(None).await;
//! assert_eq!(page.status(), 200);
//! # Ok(()) }
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(run()).unwrap();
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use http::header::LOCATION;
use http::{HeaderValue, Response, StatusCode};
use storage_core::{
    peek_image, ByteRange, Content, Error, ImagePolicy, Name, Result, SaveOptions, Storage,
    StorageExt, UploadTo, UrlSigner, Visibility, IMAGE_SNIFF_BYTES,
};
use storage_diesel::DatabaseOptions;
use storage_http::{
    html_page, human_size, plain_text, refusal_message, status_for, ResponseBody, ServeConfig,
    Upload, UploadPolicy,
};

#[cfg(feature = "tour")]
pub mod tour;

/// Where the pictures go, under the storage.
pub const FOLDER: &str = "profile_pics";
/// Largest picture file.
pub const MAX_BYTES: u64 = 5 << 20;
/// Widest picture accepted, in pixels.
pub const MAX_WIDTH: u32 = 4096;
/// Tallest picture accepted, in pixels.
pub const MAX_HEIGHT: u32 = 4096;
/// Where stored files are served.
pub const MEDIA: &str = "/media";
/// How long a private picture's signed URL works.
pub const PRIVATE_LINK_LIFETIME: Duration = Duration::from_secs(300);

/// What the app reads from its environment.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `ADDR`, default `127.0.0.1:8000` (port 0 picks a free one).
    pub addr: SocketAddr,
    /// `STORAGE_URL`, default `sqlite://profile_pics.db`.
    pub storage_url: String,
    /// `SECRET`, which signs private pictures' URLs; without it, a random one for this process
    /// (links then stop working when the app restarts).
    pub secret: Option<String>,
}

impl Settings {
    /// Reads `ADDR`, `STORAGE_URL` and `SECRET`.
    pub fn from_env() -> Result<Self> {
        let addr = std::env::var("ADDR").unwrap_or_else(|_| "127.0.0.1:8000".to_owned());
        let mut addr: SocketAddr = addr.parse().map_err(|_| Error::BadRequest {
            reason: format!("ADDR '{addr}' is not an address like 127.0.0.1:8000"),
        })?;
        if addr.port() == 0 {
            // A free port, chosen here: rocket 0.5 cannot say which port it picked.
            let probe = std::net::TcpListener::bind(addr)
                .map_err(|e| Error::backend("profile-pics", "cannot bind", e))?;
            addr = probe
                .local_addr()
                .map_err(|e| Error::backend("profile-pics", "cannot bind", e))?;
        }
        Ok(Self {
            addr,
            storage_url: std::env::var("STORAGE_URL")
                .unwrap_or_else(|_| "sqlite://profile_pics.db".to_owned()),
            secret: std::env::var("SECRET").ok().filter(|s| !s.is_empty()),
        })
    }
}

/// The app's state: the storage and the signer of private pictures' URLs.
#[derive(Debug, Clone)]
pub struct Pictures {
    storage: Arc<dyn Storage>,
    signer: UrlSigner,
}

impl Pictures {
    /// Opens the storage `settings` name and creates its tables if they are missing (a real
    /// deployment runs `dbfiles migrate` as a deploy step instead).
    pub async fn connect(settings: &Settings) -> Result<Self> {
        let signer = match &settings.secret {
            Some(secret) => UrlSigner::new(secret),
            None => UrlSigner::new(rand::random::<[u8; 32]>()),
        }
        .with_default_expiry(PRIVATE_LINK_LIFETIME);
        let options = DatabaseOptions::new()
            .base_url(Some(MEDIA))
            .url_signer(signer.clone());
        let storage = storage_diesel::connect_url(&settings.storage_url, options).await?;
        storage.migrate().await?;
        Ok(Self {
            storage: storage.storage(),
            signer,
        })
    }

    /// The storage, for the framework's file-serving route.
    pub fn storage(&self) -> Arc<dyn Storage> {
        self.storage.clone()
    }

    /// How `/media/` serves: private pictures only with a valid signature.
    pub fn serve_config(&self) -> ServeConfig {
        ServeConfig::new().signer(self.signer.clone())
    }

    /// The upload rules: images only, size and pixel limits, a uuid name under `profile_pics/`.
    pub fn upload_policy(visibility: Visibility) -> UploadPolicy {
        UploadPolicy::new()
            .field("picture")
            .max_files(1)
            .max_file_size(MAX_BYTES)
            .max_request_size(MAX_BYTES + (1 << 20)) // room for the form around the file
            .images(ImagePolicy::new().max_size(MAX_WIDTH, MAX_HEIGHT))
            .save_options(
                SaveOptions::new()
                    .upload_to(UploadTo::uuid(FOLDER))
                    .visibility(visibility),
            )
    }

    /// The answer to an upload: back to the page, which names the saved picture; a refused
    /// upload gets a page saying why (400, 413 or 415).
    pub fn uploaded(result: Result<Upload>) -> Response<ResponseBody> {
        match result {
            Ok(upload) => match upload.files.first() {
                Some(saved) => {
                    let size = saved
                        .image
                        .map(|s| format!(" ({}x{})", s.width, s.height))
                        .unwrap_or_default();
                    see_page(&format!("Saved {}{size}.", saved.meta.name))
                }
                None => refused(&Error::BadRequest {
                    reason: "the form held no picture".to_owned(),
                }),
            },
            Err(e) => refused(&e),
        }
    }

    /// Deletes the picture `name` (a form field), only under `profile_pics/`; back to the page.
    pub async fn delete(&self, name: &str) -> Response<ResponseBody> {
        let name = match Name::new(name) {
            Ok(name) if name.dir() == FOLDER => name,
            Ok(_) | Err(_) => {
                return failed(
                    StatusCode::BAD_REQUEST,
                    &format!("Not deleted: '{name}' is not a profile picture."),
                )
            }
        };
        match self.storage.delete(&name).await {
            Ok(true) => see_page(&format!("Deleted {name}.")),
            Ok(false) => see_page(&format!("{name} was already gone.")),
            Err(e) => unavailable(&e),
        }
    }

    /// The page: the upload form, a notice (what the last action did) and every picture.
    pub async fn page(&self, notice: Option<&str>) -> Response<ResponseBody> {
        let folder = match Name::new(FOLDER) {
            Ok(folder) => folder,
            Err(e) => return unavailable(&e),
        };
        let files = match self.storage.listdir(Some(&folder)).await {
            Ok(listing) => listing.files,
            Err(e) => return unavailable(&e),
        };
        // A few pictures at a time: each is a round trip to the database.
        let names: Vec<Name> = files
            .iter()
            .take(500)
            .filter_map(|file| Name::new(format!("{FOLDER}/{file}")).ok())
            .collect();
        let mut items: String = futures::stream::iter(names)
            .map(|name| async move { self.item(&name).await })
            .buffered(8)
            .collect::<Vec<String>>()
            .await
            .concat();
        if items.is_empty() {
            items.push_str("<li class=\"empty\">No pictures yet.</li>\n");
        }
        let notice = notice
            .map(|n| {
                format!(
                    "<p class=\"notice\" role=\"status\">{}</p>\n",
                    html_escape::encode_text(n)
                )
            })
            .unwrap_or_default();
        html(
            StatusCode::OK,
            &format!(
                "{notice}<form method=\"post\" action=\"/pictures\" enctype=\"multipart/form-data\">\n\
                 <input type=\"file\" name=\"picture\" accept=\"image/*\" required>\n\
                 <button type=\"submit\">Upload</button>\n\
                 <button type=\"submit\" formaction=\"/private-pictures\">Upload as private</button>\n\
                 <small>images up to {MAX_WIDTH}x{MAX_HEIGHT} pixels and {}</small>\n</form>\n\
                 <ul class=\"pictures\">\n{items}</ul>\n",
                human_size(MAX_BYTES)
            ),
        )
    }

    /// One picture: its thumbnail (a signed URL when private), size and a delete button.
    async fn item(&self, name: &Name) -> String {
        // One read gives the metadata and the header with the picture's size; deleted since
        // the listing: left out.
        let head = ByteRange::new(0, IMAGE_SNIFF_BYTES as u64);
        let Ok(opened) = self.storage.open(name, Some(head)).await else {
            return String::new();
        };
        let meta = opened.meta;
        // Signed when private; a picture whose link cannot be made is left out, never shown
        // by a plain link.
        let Ok(src) =
            storage_core::file_url("profile-pics", Some(MEDIA), Some(&self.signer), &meta, None)
        else {
            return String::new();
        };
        let probe = peek_image(Content::from_stream(opened.stream)).await;
        let pixels = match probe.ok().and_then(|(probe, _)| probe) {
            Some(info) => format!("{}x{}", info.size.width, info.size.height),
            None => "not an image".to_owned(),
        };
        let private = meta.visibility == Visibility::Private;
        let attr = |s: &str| html_escape::encode_double_quoted_attribute(s).into_owned();
        format!(
            "<li data-name=\"{name}\"><img src=\"{src}\" alt=\"{alt}\" width=\"96\" height=\"96\">\
             <span>{pixels}, {size}{badge}</span>\
             <form method=\"post\" action=\"/delete\"><input type=\"hidden\" name=\"name\" \
             value=\"{name}\"><button type=\"submit\">Delete</button></form></li>\n",
            name = attr(name.as_str()),
            src = attr(&src),
            alt = attr(&format!("profile picture {name}")),
            size = human_size(meta.size),
            badge = if private {
                format!(
                    ", private (this link works for {} minutes)",
                    PRIVATE_LINK_LIFETIME.as_secs() / 60
                )
            } else {
                String::new()
            },
        )
    }
}

/// A refused upload as a page that says why; nothing of the backend for a server fault.
fn refused(error: &Error) -> Response<ResponseBody> {
    failed(
        status_for(error),
        &format!("Not saved: {}.", refusal_message(error)),
    )
}

/// A page that says what went wrong, with a way back.
fn failed(status: StatusCode, words: &str) -> Response<ResponseBody> {
    html(
        status,
        &format!(
            "<p class=\"error\" role=\"alert\">{}</p>\n<p><a href=\"/\">Back to the \
             pictures</a></p>\n",
            html_escape::encode_text(words)
        ),
    )
}

/// A storage fault on a page that is not an upload: the status, no backend detail.
fn unavailable(error: &Error) -> Response<ResponseBody> {
    failed(
        status_for(error),
        "The pictures cannot be shown or changed right now; try again later.",
    )
}

/// 303 to the page, with a notice for it to show.
fn see_page(notice: &str) -> Response<ResponseBody> {
    let query: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("notice", notice)
        .finish();
    let mut response = plain_text(StatusCode::SEE_OTHER, String::new());
    if let Ok(location) = HeaderValue::from_str(&format!("/?{query}")) {
        response.headers_mut().insert(LOCATION, location);
    }
    response
}

/// The notice a page request carries in its query string (`?notice=...`).
pub fn notice_from_query(query: Option<&str>) -> Option<String> {
    url::form_urlencoded::parse(query?.as_bytes())
        .find(|(key, _)| key == "notice")
        .map(|(_, value)| value.into_owned())
}

fn html(status: StatusCode, body: &str) -> Response<ResponseBody> {
    let page = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>Profile pictures</title><style>body{{font-family:system-ui,sans-serif;\
         max-width:48rem;margin:2rem auto;padding:0 1rem}}.pictures{{list-style:none;padding:0}}\
         .pictures li{{display:flex;gap:1rem;align-items:center;margin:.5rem 0}}\
         .pictures img{{object-fit:cover;border-radius:50%;background:#eee}}\
         .pictures form{{margin-left:auto}}.notice{{background:#e8f6ec;padding:.5rem}}\
         .error{{background:#fde8e8;padding:.5rem}}</style></head>\n<body>\n\
         <h1>Profile pictures</h1>\n{body}</body></html>\n"
    );
    html_page(status, page)
}
