//! Files kept in the database your app already has: SQLite (bundled, the default), PostgreSQL
//! and MySQL/MariaDB, through diesel.
//!
//! ```
//! # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
//! use storage_core::{Storage, StorageExt};
//! use storage_diesel::{DatabaseOptions, SqliteStorage};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let url = format!("sqlite://{}/media.db", dir.path().display());
//! let storage = SqliteStorage::connect(&url, DatabaseOptions::new()).await?;
//! storage.migrate().await?;
//! let saved = storage.save("invoices/2024-001.pdf", b"%PDF-1.7 ...").await?;
//! assert_eq!(storage.read_to_bytes(saved.name.as_str()).await?.as_ref(), b"%PDF-1.7 ...");
//! # Ok::<(), storage_core::Error>(()) }).unwrap();
//! ```
//!
//! # Layout
//!
//! Files are chunked (`storage_files` + `storage_chunks`, 1 MiB chunks by default), so a 1 GiB
//! upload or download holds about one chunk in memory and a range read fetches only the chunks
//! it needs:
//!
//! - **write**: a pending row (no name yet) is inserted, chunks are inserted as they arrive while
//!   the SHA-256 is computed, then the row is published by setting its name. The unique index on
//!   the name decides races between app servers; a taken name moves on to Django's next
//!   alternative name without re-sending the content. An overwrite retires the old row and
//!   publishes the new one in one transaction.
//! - **read**: the name is resolved to a row once (with the first chunk, for a small file one
//!   round trip), then chunks of that row are fetched a few at a time. Overwrite and delete
//!   retire the old row instead of freeing its chunks, so a download in flight finishes with the
//!   bytes it started with.
//! - **sweep**: [`DieselStorage::sweep`] removes uploads abandoned by a crash and retired rows
//!   past a grace period.
//!
//! No database call runs on the async runtime's worker threads: each runs on tokio's blocking
//! pool with a connection from an r2d2 pool. SQLite runs in WAL mode with a busy timeout.
//!
//! # Sharing the app's database
//!
//! The storage records its migrations in a table of its own, `storage_schema_migrations`, so
//! the app's `diesel migration revert` and `redo` meet only the app's versions; a database
//! migrated by an older release (the storage's versions in diesel's `__diesel_schema_migrations`)
//! is adopted by [`DieselStorage::migrate`]. For the app's own queries,
//! [`DieselStorage::run`] lends a connection of the storage's pool on tokio's blocking pool,
//! [`DieselStorage::pool`] hands over the pool, and [`DieselStorage::prepare_connection`] sets
//! up a connection the app opened itself. On SQLite the app must use one of them: a plain
//! `SqliteConnection::establish` has no busy timeout, and its writes beside uploads fail with
//! "database is locked" (and can make uploads fail).
//!
//! ```
//! # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
//! use diesel::connection::SimpleConnection;
//! use diesel::prelude::*;
//! use storage_diesel::{DatabaseOptions, SqliteStorage};
//!
//! diesel::table! {
//!     users (id) {
//!         id -> Integer,
//!         name -> Text,
//!     }
//! }
//!
//! // Any error type that takes a `storage_core::Error` (the pool's errors) will do.
//! type AppError = Box<dyn std::error::Error + Send + Sync>;
//!
//! # let dir = tempfile::tempdir().unwrap();
//! # let url = format!("sqlite://{}/app.db", dir.path().display());
//! let storage = SqliteStorage::connect(&url, DatabaseOptions::new()).await?;
//! storage.migrate().await?;
//! let names = storage
//!     .run(|conn: &mut SqliteConnection| -> Result<Vec<String>, AppError> {
//!         conn.batch_execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL)")?;
//!         diesel::insert_into(users::table)
//!             .values(users::name.eq("ann"))
//!             .execute(conn)?;
//!         Ok(users::table.select(users::name).load(conn)?)
//!     })
//!     .await?;
//! assert_eq!(names, ["ann"]);
//! # Ok::<(), AppError>(()) }).unwrap();
//! ```
//!
//! # Model fields
//!
//! [`FileField`] and [`ImageField`] are Django's model fields for diesel models: a [`FileRef`]
//! text column in your structs, bound to a storage and an `upload_to` declared once, with
//! `url`, `size`, `open`, `save` and `delete`; [`OrphanCleanup`] deletes files no declared
//! column references. The [`fields`] module walks through Django's `Car.photo` example.
//!
//! # Features
//!
//! `sqlite` (default, libsqlite3 bundled), `postgres` (links libpq), `mysql` (links
//! libmysqlclient; MariaDB's compatible library works).

mod dialect;
pub mod fields;
mod legacy;
mod legacy_sql;
mod migrations;
mod pool;
mod references;
mod schema;
mod storage;
mod url;
mod url_storage;

pub use crate::fields::{
    FieldFile, FileChange, FileField, FileRef, ImageField, OldFile, SavedFile, SavedImage,
};
pub use crate::legacy::{DjangoContentHasher, LegacyLayout, LegacyStorage, TableLayout};
pub use crate::references::{
    CleanupReport, ColumnRef, FileReferences, OrphanCleanup, ReferenceSource,
};
pub use crate::storage::{DatabaseOptions, DieselStorage, SweepReport};
pub use crate::url_storage::{connect_url, AnyStorage, DEFAULT_STORAGE_URL};
/// Printed storage URLs hide passwords: storage-core's rule, here where URLs are opened.
pub use storage_core::redact_url;

/// The chunked storage on SQLite.
#[cfg(feature = "sqlite")]
pub type SqliteStorage = DieselStorage<diesel::sqlite::SqliteConnection>;

/// The chunked storage on PostgreSQL.
#[cfg(feature = "postgres")]
pub type PgStorage = DieselStorage<diesel::pg::PgConnection>;

/// The chunked storage on MySQL or MariaDB.
#[cfg(feature = "mysql")]
pub type MysqlStorage = DieselStorage<diesel::mysql::MysqlConnection>;

/// A single-row layout ([`LegacyLayout`]) on SQLite.
#[cfg(feature = "sqlite")]
pub type SqliteLegacyStorage = LegacyStorage<diesel::sqlite::SqliteConnection>;

/// A single-row layout ([`LegacyLayout`]) on PostgreSQL.
#[cfg(feature = "postgres")]
pub type PgLegacyStorage = LegacyStorage<diesel::pg::PgConnection>;

/// A single-row layout ([`LegacyLayout`]) on MySQL or MariaDB.
#[cfg(feature = "mysql")]
pub type MysqlLegacyStorage = LegacyStorage<diesel::mysql::MysqlConnection>;
