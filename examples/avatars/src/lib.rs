//! User avatars on axum: a diesel app with its own `users` table and migrations, sharing one
//! SQLite database with the storage that keeps the pictures.
//!
//! - `POST /users` with `{"name": "ada"}` makes a user; `GET /users/{id}` shows it as JSON, the
//!   avatar as a signed URL that stays the same for an hour (so browsers cache the picture).
//! - `PUT /me/avatar` (a multipart form with one image) sets the asking user's avatar:
//!   [`put_avatar`] is the whole handler. `DELETE /me/avatar` removes it.
//! - `/media/...` serves the pictures (private: signed URLs only).
//!
//! Who is asking comes from an `X-User-Id` header: a stand-in for the app's own login, which
//! would go in [`CurrentUser`] the same way. That extractor runs, and finds the row, before the
//! upload body is read: [`UploadForm`] stores nothing until the handler attaches it.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use diesel::prelude::*;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use storage_axum::{UploadForm, UploadRejected};
use storage_core::{UploadTo, UrlSigner};
use storage_diesel::{
    DatabaseOptions, FileRef, FileReferences, ImageField, ReferenceSource, SqliteStorage,
};
use storage_http::ServeConfig;

/// The app's own schema, as `diesel print-schema` writes it.
pub mod schema {
    #![allow(missing_docs)] // diesel::table! items

    diesel::table! {
        /// The app's own table (`migrations/`).
        users (id) {
            id -> Integer,
            name -> Text,
            avatar -> Text,
        }
    }
}

use schema::users;

diesel::define_sql_function! {
    /// SQLite's id of the row the connection inserted last.
    fn last_insert_rowid() -> Integer;
}

/// The app's own migrations, run with diesel's harness; the storage keeps its own apart.
const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// A row of `users`.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = users)]
pub struct User {
    /// The id.
    pub id: i32,
    /// The name shown.
    pub name: String,
    /// The stored picture, empty when none.
    pub avatar: FileRef,
}

/// The app's state: the storage (also the app's database) and the avatar field.
#[derive(Clone)]
pub struct App {
    storage: SqliteStorage,
    avatar: ImageField,
    serve: Arc<ServeConfig>,
}

impl App {
    /// Opens the database at `url` (`sqlite://avatars.db`), runs the storage's migrations and
    /// the app's own, and declares the avatar column so cleanup never deletes a picture a row
    /// holds. `secret` signs the pictures' URLs.
    pub async fn open(url: &str, secret: &str) -> Result<Self, AppError> {
        // One signed URL per picture per hour: the same link on every page view.
        let signer = UrlSigner::new(secret)
            .with_default_expiry(Duration::from_secs(3600))
            .with_expiry_window(Duration::from_secs(3600));
        let options = DatabaseOptions::new()
            .migrate_on_connect(true)
            .url_signer(signer.clone());
        let storage = SqliteStorage::connect(url, options).await?;
        storage
            .run(|conn| {
                conn.run_pending_migrations(MIGRATIONS)
                    .map(drop)
                    .map_err(AppError::Migration)
            })
            .await?;
        let shared = Arc::new(storage.clone());
        let avatar = ImageField::new("users", "avatar", shared.clone())?
            .upload_to(UploadTo::uuid("avatars"))
            .max_size(1024, 1024)
            .max_bytes(2 << 20)
            .delete_replaced(shared.clone());
        shared
            .declare_references(&FileReferences::new().with(avatar.column().clone()))
            .await?;
        let serve = Arc::new(ServeConfig::new().signer(signer));
        Ok(Self {
            storage,
            avatar,
            serve,
        })
    }

    /// The storage, which is also the app's database.
    pub fn storage(&self) -> &SqliteStorage {
        &self.storage
    }

    async fn profile(&self, id: i32) -> Result<Profile, AppError> {
        let user: User = self
            .storage
            .run(move |c| {
                Ok::<_, AppError>(users::table.find(id).select(User::as_select()).first(c)?)
            })
            .await?;
        let file = self.avatar.file(&user.avatar);
        let avatar = if file.is_set() {
            Some(file.url().await?)
        } else {
            None
        };
        Ok(Profile {
            id: user.id,
            name: user.name,
            avatar,
        })
    }
}

/// A user as the API shows it.
#[derive(Debug, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Profile {
    /// The id.
    pub id: i32,
    /// The name.
    pub name: String,
    /// A signed URL of the picture.
    pub avatar: Option<String>,
}

/// What a request can fail with; storage refusals keep their status (413, 415, 400).
#[derive(Debug)]
pub enum AppError {
    /// The storage refused or failed.
    Storage(storage_core::Error),
    /// The database failed; `NotFound` is a 404.
    Db(diesel::result::Error),
    /// The app's migrations failed.
    Migration(Box<dyn std::error::Error + Send + Sync>),
    /// No `X-User-Id`.
    Unauthorized,
}

impl From<storage_core::Error> for AppError {
    fn from(e: storage_core::Error) -> Self {
        Self::Storage(e)
    }
}

impl From<diesel::result::Error> for AppError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Db(e)
    }
}

impl std::fmt::Display for AppError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Storage(e) => e.fmt(f),
            Self::Db(e) => write!(f, "database: {e}"),
            Self::Migration(e) => write!(f, "migration: {e}"),
            Self::Unauthorized => f.write_str("who is asking? (X-User-Id)"),
        }
    }
}

impl std::error::Error for AppError {}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        match self {
            Self::Storage(e) => UploadRejected(e).into_response(),
            Self::Db(diesel::result::Error::NotFound) => {
                (StatusCode::NOT_FOUND, "no such user").into_response()
            }
            Self::Unauthorized => (StatusCode::UNAUTHORIZED, self.to_string()).into_response(),
            other => (StatusCode::INTERNAL_SERVER_ERROR, other.to_string()).into_response(),
        }
    }
}

/// The asking user's row, looked up before the handler (and before any upload is read).
#[derive(Debug)]
pub struct CurrentUser(pub User);

impl FromRequestParts<App> for CurrentUser {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, AppError> {
        let id: i32 = parts
            .headers
            .get("x-user-id")
            .and_then(|v| v.to_str().ok()?.parse().ok())
            .ok_or(AppError::Unauthorized)?;
        let user = app
            .storage
            .run(move |c| {
                Ok::<_, AppError>(users::table.find(id).select(User::as_select()).first(c)?)
            })
            .await?;
        Ok(Self(user))
    }
}

/// `PUT /me/avatar`: checks the picture, stores it, points the row at it and deletes the old
/// one; if the row cannot be updated, the new picture is removed and the old one kept.
pub async fn put_avatar(
    State(app): State<App>,
    CurrentUser(me): CurrentUser,
    form: UploadForm,
) -> Result<Json<Profile>, AppError> {
    let change = app.avatar.attach(&me.avatar, form).await?;
    let value = change.value();
    let updated = app.storage.run(move |c| set_avatar(c, me.id, value)).await;
    change.finish(updated).await?;
    Ok(Json(app.profile(me.id).await?))
}

/// `DELETE /me/avatar`: empties the row, then deletes the picture.
pub async fn delete_avatar(
    State(app): State<App>,
    CurrentUser(me): CurrentUser,
) -> Result<Json<Profile>, AppError> {
    let change = app.avatar.clear(&me.avatar);
    let updated = app
        .storage
        .run(move |c| set_avatar(c, me.id, FileRef::empty()))
        .await;
    change.finish(updated).await?;
    Ok(Json(app.profile(me.id).await?))
}

/// Points user `id`'s row at `avatar`. No row updated (the user was deleted meanwhile) is an
/// error too, so the new file is rolled back rather than left with no row.
fn set_avatar(conn: &mut SqliteConnection, id: i32, avatar: FileRef) -> Result<(), AppError> {
    let updated = diesel::update(users::table.find(id))
        .set(users::avatar.eq(avatar))
        .execute(conn)?;
    match updated {
        0 => Err(AppError::Db(diesel::result::Error::NotFound)),
        _ => Ok(()),
    }
}

/// The body of `POST /users`.
#[derive(Debug, serde::Deserialize)]
pub struct NewUser {
    /// The name shown.
    pub name: String,
}

async fn create_user(
    State(app): State<App>,
    Json(new): Json<NewUser>,
) -> Result<Json<Profile>, AppError> {
    let id = app
        .storage
        .run(move |c| {
            diesel::insert_into(users::table)
                .values(users::name.eq(new.name))
                .execute(c)?;
            // The same connection, right after its insert.
            let id = diesel::select(last_insert_rowid()).get_result(c)?;
            Ok::<_, AppError>(id)
        })
        .await?;
    Ok(Json(app.profile(id).await?))
}

async fn show_user(State(app): State<App>, Path(id): Path<i32>) -> Result<Json<Profile>, AppError> {
    Ok(Json(app.profile(id).await?))
}

/// The routes, with the pictures served under `/media`.
pub fn router(app: App) -> Router {
    let media = storage_axum::router_with(Arc::new(app.storage.clone()), (*app.serve).clone());
    Router::new()
        .route("/users", post(create_user))
        .route("/users/{id}", get(show_user))
        .route("/me/avatar", put(put_avatar).delete(delete_avatar))
        .nest_service("/media", media)
        .with_state(app)
}
