//! A diesel app and the storage in one database, on SQLite, PostgreSQL and MySQL/MariaDB:
//!
//! - the app's own migrations (a `FileBasedMigrations` directory, what the diesel CLI runs)
//!   revert and redo beside the storage's, whichever migrated first, because the storage
//!   records its versions in `storage_schema_migrations`, not in diesel's table;
//! - a database migrated the old way (the storage's versions in `__diesel_schema_migrations`)
//!   is adopted by `migrate()`;
//! - two storages migrating at once both succeed and the migration runs once;
//! - on SQLite, the app's writes beside 40 uploads never meet "database is locked" when its
//!   connection went through `prepare_connection` or comes from `run`; on PostgreSQL the app's
//!   own connection needs nothing, and the same load passes.
//!
//! The last test (ignored) only measures what an unprepared app connection meets.

#![allow(missing_docs)] // diesel::table! items
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::print_stderr,
    clippy::cast_possible_truncation
)]

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::RawDb;
use diesel::migration::MigrationVersion;
use diesel::prelude::*;
use diesel_migrations::{FileBasedMigrations, MigrationHarness};
use storage_core::StorageExt;
use storage_diesel::{connect_url, AnyStorage, DatabaseOptions};

type TestResult<T = ()> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// The storage's one migration, `2026-11-21-000001_create_storage`.
const STORAGE_VERSION: &str = "20261121000001";
/// The app's migrations, older than the storage's: a version of ours left in diesel's table
/// would be the first `revert_last_migration` picks, and unknown to the app.
const APP_MIGRATIONS: [(&str, &str); 2] = [
    ("2025-01-10-093000_create_users", "20250110093000"),
    ("2025-01-11-101500_add_avatar", "20250111101500"),
];

diesel::table! {
    users (id) {
        id -> Integer,
        name -> Text,
    }
}

/// Writes the app's migration directory as `diesel migration generate` lays it out, with the
/// bodies filled in; `id_column` is the backend's auto-increment key.
fn app_migrations(dir: &Path, id_column: &str) -> TestResult<FileBasedMigrations> {
    let bodies = [
        (
            format!("CREATE TABLE users (\n    {id_column},\n    name TEXT NOT NULL\n);"),
            "DROP TABLE users;".to_owned(),
        ),
        (
            "ALTER TABLE users ADD COLUMN avatar TEXT;".to_owned(),
            "ALTER TABLE users DROP COLUMN avatar;".to_owned(),
        ),
    ];
    for ((name, _), (up, down)) in APP_MIGRATIONS.iter().zip(bodies) {
        let migration = dir.join("migrations").join(name);
        std::fs::create_dir_all(&migration)?;
        std::fs::write(
            migration.join("up.sql"),
            format!("-- Your SQL goes here\n{up}\n"),
        )?;
        std::fs::write(
            migration.join("down.sql"),
            format!("-- This file should undo anything in `up.sql`\n{down}\n"),
        )?;
    }
    Ok(FileBasedMigrations::from_path(dir.join("migrations"))?)
}

const SQLITE_ID: &str = "id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL";
#[cfg(feature = "postgres")]
const POSTGRES_ID: &str = "id SERIAL PRIMARY KEY";
#[cfg(feature = "mysql")]
const MYSQL_ID: &str = "id INTEGER AUTO_INCREMENT PRIMARY KEY";

fn versions(applied: &[MigrationVersion<'_>]) -> Vec<String> {
    applied.iter().map(ToString::to_string).collect()
}

fn app_versions() -> Vec<String> {
    APP_MIGRATIONS
        .iter()
        .map(|(_, v)| (*v).to_owned())
        .collect()
}

/// The options tests use, without migrating on connect: each test migrates when it means to.
fn options() -> DatabaseOptions {
    common::options().migrate_on_connect(false)
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// The app's `diesel migration revert`, `redo` and a full revert, then migrated again: each
/// meets only the app's versions.
fn app_reverts_and_redoes<C>(conn: &mut C, app: &FileBasedMigrations) -> TestResult
where
    C: Connection + MigrationHarness<<C as Connection>::Backend>,
{
    let reverted = conn.revert_last_migration(app.clone())?;
    assert_eq!(reverted.to_string(), APP_MIGRATIONS[1].1);
    let redone = conn.run_pending_migrations(app.clone())?;
    assert_eq!(versions(&redone), [APP_MIGRATIONS[1].1]);
    let mut all = versions(&conn.revert_all_migrations(app.clone())?);
    all.sort();
    assert_eq!(all, app_versions());
    let again = conn.run_pending_migrations(app.clone())?;
    assert_eq!(versions(&again), app_versions());
    Ok(())
}

/// diesel's table holds the app's versions and nothing else; ours holds the storage's; the
/// storage still saves and reads, and has nothing left to migrate.
async fn both_intact(db: &dyn RawDb, storage: &AnyStorage, name: &str) -> TestResult {
    assert_eq!(
        db.count("SELECT COUNT(*) AS n FROM __diesel_schema_migrations")?,
        2
    );
    for (_, version) in APP_MIGRATIONS {
        let sql = format!(
            "SELECT COUNT(*) AS n FROM __diesel_schema_migrations WHERE version = '{version}'"
        );
        assert_eq!(db.count(&sql)?, 1, "app version {version} missing");
    }
    assert_eq!(
        db.count("SELECT COUNT(*) AS n FROM storage_schema_migrations")?,
        1
    );
    assert_eq!(
        db.count(&format!(
            "SELECT COUNT(*) AS n FROM storage_schema_migrations WHERE version = '{STORAGE_VERSION}'"
        ))?,
        1
    );
    assert!(storage.migrate().await?.is_empty(), "migrated twice");
    let files = storage.storage();
    let data = pattern(200 * 1024, 3);
    let saved = files.save(name, data.clone()).await?;
    assert_eq!(
        files.read_to_bytes(saved.name.as_str()).await?.as_ref(),
        data
    );
    Ok(())
}

/// The app: its migration directory (there while the `TempDir` lives) and its own connection.
fn app_with_connection<C: Connection>(
    raw_url: &str,
    id_column: &str,
) -> TestResult<(tempfile::TempDir, FileBasedMigrations, C)> {
    let dir = tempfile::tempdir()?;
    let app = app_migrations(dir.path(), id_column)?;
    Ok((dir, app, C::establish(raw_url)?))
}

/// The app and the storage migrate one database, in either order; the app's revert, redo and
/// revert-all then work, and both keep what they own.
async fn app_and_storage_share_migrations<C>(
    db: &dyn RawDb,
    raw_url: &str,
    id_column: &str,
    storage_first: bool,
) -> TestResult
where
    C: Connection + MigrationHarness<<C as Connection>::Backend>,
{
    let (_dir, app, mut conn) = app_with_connection::<C>(raw_url, id_column)?;
    let storage = connect_url(db.url(), options()).await?;
    if storage_first {
        assert_eq!(storage.migrate().await?, [STORAGE_VERSION]);
    }
    assert_eq!(
        versions(&conn.run_pending_migrations(app.clone())?),
        app_versions()
    );
    if !storage_first {
        assert_eq!(storage.migrate().await?, [STORAGE_VERSION]);
    }
    app_reverts_and_redoes(&mut conn, &app)?;
    both_intact(db, &storage, "shared/after-redo.bin").await
}

/// A database migrated by the old storage (its version in diesel's table, beside the app's) is
/// adopted by `migrate()`: the version moves to our table, nothing runs again, the files stay,
/// and the app's revert works.
async fn old_database_is_adopted<C>(
    db: &dyn RawDb,
    raw_url: &str,
    id_column: &str,
    old_storage: diesel_migrations::EmbeddedMigrations,
) -> TestResult
where
    C: Connection + MigrationHarness<<C as Connection>::Backend>,
{
    let (_dir, app, mut conn) = app_with_connection::<C>(raw_url, id_column)?;
    conn.run_pending_migrations(app.clone())?;
    // What `migrate()` did before storage_schema_migrations.
    assert_eq!(
        versions(&conn.run_pending_migrations(old_storage)?),
        [STORAGE_VERSION]
    );
    assert_eq!(
        db.count("SELECT COUNT(*) AS n FROM __diesel_schema_migrations")?,
        3
    );
    let storage = connect_url(db.url(), options()).await?;
    let files = storage.storage();
    let old = pattern(150 * 1024, 9);
    files.save("old/file.bin", old.clone()).await?;

    assert!(
        storage.migrate().await?.is_empty(),
        "an adopted version is not applied"
    );
    assert_eq!(files.read_to_bytes("old/file.bin").await?.as_ref(), old);
    both_intact(db, &storage, "old/after-adoption.bin").await?;
    app_reverts_and_redoes(&mut conn, &app)?;
    both_intact(db, &storage, "old/after-redo.bin").await
}

/// Two storages (two app servers) migrate a new database at once: both succeed, and the
/// migration ran once. With `versions_table`, the versions table exists already, as the next
/// migration will find it: then nothing but the lock keeps both from reading "not applied" (on
/// SQLite, creating the table makes the second migrator wait by chance).
async fn racing_migrations_run_once(db: &dyn RawDb, versions_table: bool) -> TestResult {
    if versions_table {
        db.exec(
            "CREATE TABLE storage_schema_migrations (version VARCHAR(50) PRIMARY KEY NOT NULL, \
             run_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP)",
        )?;
    }
    let a = connect_url(db.url(), options()).await?;
    let b = connect_url(db.url(), options()).await?;
    let (from_a, from_b) = tokio::join!(a.migrate(), b.migrate());
    let mut applied = from_a?;
    applied.extend(from_b?);
    assert_eq!(
        applied,
        [STORAGE_VERSION],
        "the migration must run exactly once"
    );
    assert_eq!(
        db.count("SELECT COUNT(*) AS n FROM storage_schema_migrations")?,
        1
    );
    let saved = b.storage().save("race/after.txt", b"ok".to_vec()).await?;
    assert_eq!(
        a.storage()
            .read_to_bytes(saved.name.as_str())
            .await?
            .as_ref(),
        b"ok"
    );
    Ok(())
}

/// Rounds of the race, each on a new database, half of them with the versions table: one round
/// may not overlap the two migrations.
const RACE_ROUNDS: usize = 10;

/// What diesel's `Connection::establish` takes for a test database.
trait RawUrl {
    fn raw_url(&self) -> String;
}

impl RawUrl for common::SqliteDb {
    fn raw_url(&self) -> String {
        self.url.trim_start_matches("sqlite://").to_owned()
    }
}

#[cfg(feature = "postgres")]
impl RawUrl for common::PgDb {
    fn raw_url(&self) -> String {
        self.url.clone()
    }
}

#[cfg(feature = "mysql")]
impl RawUrl for common::MysqlDb {
    fn raw_url(&self) -> String {
        self.url.clone()
    }
}

/// The migration tests on one backend: `$new_db` gives a database of its own (`None`: skipped),
/// `$id` is the app's key column, `$old` the storage's migrations as the old code ran them.
macro_rules! migration_tests {
    ($backend:ident, $conn:ty, $new_db:expr, $id:expr, $old:literal) => {
        mod $backend {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn app_migrates_then_storage_and_app_reverts() -> TestResult {
                let Some(db) = $new_db else { return Ok(()) };
                app_and_storage_share_migrations::<$conn>(&db, &db.raw_url(), $id, false).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn storage_migrates_then_app_and_app_reverts() -> TestResult {
                let Some(db) = $new_db else { return Ok(()) };
                app_and_storage_share_migrations::<$conn>(&db, &db.raw_url(), $id, true).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn old_database_is_adopted() -> TestResult {
                const OLD: diesel_migrations::EmbeddedMigrations =
                    diesel_migrations::embed_migrations!($old);
                let Some(db) = $new_db else { return Ok(()) };
                super::old_database_is_adopted::<$conn>(&db, &db.raw_url(), $id, OLD).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn racing_migrations_run_once() -> TestResult {
                for round in 0..RACE_ROUNDS {
                    let Some(db) = $new_db else { return Ok(()) };
                    super::racing_migrations_run_once(&db, round % 2 == 1).await?;
                }
                Ok(())
            }
        }
    };
}

migration_tests!(
    sqlite,
    SqliteConnection,
    Some(common::SqliteDb::new()?),
    SQLITE_ID,
    "migrations/sqlite"
);

#[cfg(feature = "postgres")]
migration_tests!(
    postgres,
    PgConnection,
    common::pg_db()?,
    POSTGRES_ID,
    "migrations/postgres"
);

#[cfg(feature = "mysql")]
migration_tests!(
    mysql,
    MysqlConnection,
    common::mysql_db()?,
    MYSQL_ID,
    "migrations/mysql"
);

// --- SQLite: the app's connection beside uploads ----------------------------------------------

/// 40 uploads of 256 KiB each, at once.
const UPLOADS: u8 = 40;
const UPLOAD_SIZE: usize = 256 * 1024;
/// A bound on the app's loop; it stops when the uploads are done, long before.
const MAX_APP_WRITES: u64 = 1_000_000;

/// How the app gets the connection it writes its rows with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AppConnection {
    /// `SqliteConnection::establish`, then `SqliteStorage::prepare_connection`.
    Prepared,
    /// `SqliteStorage::run`.
    FromRun,
    /// `SqliteConnection::establish` alone (only measured, see the ignored test).
    Unprepared,
}

/// An app's error type: its database errors and the storage's (`run` hands pool errors over
/// through `From`).
#[derive(Debug)]
enum AppError {
    Storage(storage_core::Error),
    Database(diesel::result::Error),
}

impl From<storage_core::Error> for AppError {
    fn from(e: storage_core::Error) -> Self {
        Self::Storage(e)
    }
}

impl From<diesel::result::Error> for AppError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Database(e)
    }
}

impl std::error::Error for AppError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Storage(e) => Some(e),
            Self::Database(e) => Some(e),
        }
    }
}

impl std::fmt::Display for AppError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Storage(_) => "storage error",
            Self::Database(_) => "database error",
        })
    }
}

fn insert_user(conn: &mut SqliteConnection, i: u64) -> Result<(), AppError> {
    diesel::insert_into(users::table)
        .values(users::name.eq(format!("user {i}")))
        .execute(conn)?;
    Ok(())
}

/// What the app and the uploads met.
#[derive(Debug, Default)]
struct Outcome {
    uploads_failed: Vec<String>,
    app_writes: u64,
    app_failed: Vec<String>,
}

/// The app's write loop until `done`: one row at a time, errors counted, not fatal. The first
/// attempt is announced on `started`, so the uploads begin while the app is writing.
fn app_loop(
    mut write: impl FnMut(u64) -> Result<(), AppError>,
    done: &AtomicBool,
    started: tokio::sync::oneshot::Sender<()>,
) -> (u64, Vec<String>) {
    let mut started = Some(started);
    let (mut written, mut failed) = (0, Vec::new());
    for i in 0..MAX_APP_WRITES {
        if done.load(Ordering::Acquire) {
            break;
        }
        match write(i) {
            Ok(()) => written += 1,
            Err(e) => failed.push(with_sources(&e)),
        }
        if let Some(started) = started.take() {
            let _ = started.send(());
        }
    }
    (written, failed)
}

/// 40 uploads through the storage while the app writes its own rows in a loop, on one SQLite
/// file; then every file is read back byte for byte and the app's rows counted.
async fn uploads_beside_app_writes(how: AppConnection) -> TestResult<Outcome> {
    let db = common::SqliteDb::new()?;
    let path = db.raw_url();
    let storage =
        storage_diesel::SqliteStorage::connect(&db.url, options().migrate_on_connect(true)).await?;
    let dir = tempfile::tempdir()?;
    let app = app_migrations(dir.path(), SQLITE_ID)?;
    SqliteConnection::establish(&path)?.run_pending_migrations(app)?;

    let done = Arc::new(AtomicBool::new(false));
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let writer = {
        let (done, storage) = (Arc::clone(&done), storage.clone());
        tokio::spawn(async move {
            if how == AppConnection::FromRun {
                let handle = tokio::runtime::Handle::current();
                // The loop is blocking code; each write is one `run` on the storage's pool.
                return tokio::task::spawn_blocking(move || {
                    app_loop(
                        |i| handle.block_on(storage.run(move |conn| insert_user(conn, i))),
                        &done,
                        started_tx,
                    )
                })
                .await
                .map_err(|e| e.to_string());
            }
            tokio::task::spawn_blocking(move || {
                let mut conn = SqliteConnection::establish(&path).map_err(|e| e.to_string())?;
                if how == AppConnection::Prepared {
                    storage_diesel::SqliteStorage::prepare_connection(&mut conn)
                        .map_err(|e| e.to_string())?;
                }
                Ok(app_loop(|i| insert_user(&mut conn, i), &done, started_tx))
            })
            .await
            .map_err(|e| e.to_string())
            .and_then(|written| written)
        })
    };
    // Bounded: the sender is used or dropped when the loop ends.
    let _ = started_rx.await;

    let uploads: Vec<_> = (0..UPLOADS)
        .map(|i| {
            let storage = storage.clone();
            tokio::spawn(async move {
                storage
                    .save(&format!("uploads/{i}.bin"), pattern(UPLOAD_SIZE, i))
                    .await
            })
        })
        .collect();
    let mut outcome = Outcome::default();
    let mut saved = Vec::new();
    for (i, upload) in (0..UPLOADS).zip(uploads) {
        match upload.await? {
            Ok(meta) => saved.push((i, meta.name)),
            Err(e) => outcome.uploads_failed.push(with_sources(&e)),
        }
    }
    done.store(true, Ordering::Release);
    let (app_writes, app_failed) = writer.await??;
    outcome.app_writes = app_writes;
    outcome.app_failed = app_failed;

    for (i, name) in saved {
        let read = storage.read_to_bytes(name.as_str()).await?;
        assert!(
            read.as_ref() == pattern(UPLOAD_SIZE, i).as_slice(),
            "upload {i} came back different"
        );
    }
    let rows = db.count("SELECT COUNT(*) AS n FROM users")?;
    assert_eq!(u64::try_from(rows)?, outcome.app_writes);
    Ok(outcome)
}

/// An error and its sources: the storage's message names the operation, its source the cause.
fn with_sources(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

fn assert_no_error(outcome: &Outcome) {
    assert!(
        outcome.uploads_failed.is_empty() && outcome.app_failed.is_empty(),
        "{} of {UPLOADS} uploads failed ({:?}); {} of {} app writes failed ({:?})",
        outcome.uploads_failed.len(),
        outcome.uploads_failed.first(),
        outcome.app_failed.len(),
        outcome.app_writes + outcome.app_failed.len() as u64,
        outcome.app_failed.first(),
    );
    assert!(outcome.app_writes > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_app_connection_prepared_writes_beside_40_uploads() -> TestResult {
    let outcome = uploads_beside_app_writes(AppConnection::Prepared).await?;
    assert_no_error(&outcome);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_app_writes_through_run_beside_40_uploads() -> TestResult {
    let outcome = uploads_beside_app_writes(AppConnection::FromRun).await?;
    assert_no_error(&outcome);
    Ok(())
}

/// `prepare_connection` and `pool()` give connections set up as the storage's own.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_prepared_and_pooled_connections_are_configured() -> TestResult {
    #[derive(QueryableByName)]
    struct Timeout {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        timeout: i64,
    }
    #[derive(QueryableByName)]
    struct Journal {
        #[diesel(sql_type = diesel::sql_types::Text)]
        journal_mode: String,
    }
    fn settings(conn: &mut SqliteConnection) -> TestResult<(i64, String)> {
        let timeout = diesel::sql_query("PRAGMA busy_timeout").get_result::<Timeout>(conn)?;
        let journal = diesel::sql_query("PRAGMA journal_mode").get_result::<Journal>(conn)?;
        Ok((timeout.timeout, journal.journal_mode))
    }
    let db = common::SqliteDb::new()?;
    let storage = storage_diesel::SqliteStorage::connect(&db.url, options()).await?;
    let mut own = SqliteConnection::establish(&db.raw_url())?;
    assert_eq!(
        settings(&mut own)?.0,
        0,
        "a plain connection has no busy timeout"
    );
    storage_diesel::SqliteStorage::prepare_connection(&mut own)?;
    assert_eq!(settings(&mut own)?, (10_000, "wal".to_owned()));
    let pool = storage.pool();
    let pooled = tokio::task::spawn_blocking(move || -> TestResult<(i64, String)> {
        let mut conn = pool.get()?;
        settings(&mut conn)
    })
    .await??;
    assert_eq!(pooled, (10_000, "wal".to_owned()));
    Ok(())
}

/// Not a test: how many uploads and app writes fail beside an app connection that was NOT
/// prepared (no busy timeout). Run with
/// `cargo test -p storage-diesel --test shared_database -- --ignored --nocapture unprepared`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "a measurement for the docs, not an assertion"]
async fn sqlite_unprepared_app_connection_measurement() -> TestResult {
    for round in 1..=3 {
        let outcome = uploads_beside_app_writes(AppConnection::Unprepared).await?;
        let locked = |errors: &[String]| {
            errors
                .iter()
                .filter(|e| e.contains("database is locked"))
                .count()
        };
        eprintln!(
            "round {round}: uploads failed {} of {UPLOADS} ({} locked); app writes failed {} of {} ({} locked)",
            outcome.uploads_failed.len(),
            locked(&outcome.uploads_failed),
            outcome.app_failed.len(),
            outcome.app_writes + outcome.app_failed.len() as u64,
            locked(&outcome.app_failed),
        );
        let mut kinds = std::collections::BTreeMap::<&str, usize>::new();
        for error in &outcome.uploads_failed {
            *kinds.entry(error).or_default() += 1;
        }
        for (error, times) in kinds {
            eprintln!("  upload error x{times}: {error}");
        }
    }
    Ok(())
}

// --- PostgreSQL: the app's code on the storage's pool -----------------------------------------

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_app_code_runs_on_the_storage_pool() -> TestResult {
    let Some(db) = common::pg_db()? else {
        return Ok(());
    };
    let dir = tempfile::tempdir()?;
    let app = app_migrations(dir.path(), POSTGRES_ID)?;
    PgConnection::establish(&db.url)?.run_pending_migrations(app)?;
    let storage = storage_diesel::PgStorage::connect(&db.url, options()).await?;
    let names: Vec<String> = storage
        .run(|conn: &mut PgConnection| -> Result<_, AppError> {
            diesel::insert_into(users::table)
                .values(users::name.eq("ann"))
                .execute(conn)?;
            Ok(users::table.select(users::name).load(conn)?)
        })
        .await?;
    assert_eq!(names, ["ann"]);
    let failed = storage
        .run(|conn: &mut PgConnection| -> Result<usize, AppError> {
            Ok(diesel::sql_query("SELECT * FROM no_such_table").execute(conn)?)
        })
        .await;
    assert!(matches!(failed, Err(AppError::Database(_))), "{failed:?}");
    Ok(())
}

/// The app's own PostgreSQL connection writing rows in a loop beside 40 uploads into the same
/// database: no error on either side, every file byte-equal, every row counted.
#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_app_connection_writes_beside_40_uploads() -> TestResult {
    let Some(db) = common::pg_db()? else {
        return Ok(());
    };
    let dir = tempfile::tempdir()?;
    let app = app_migrations(dir.path(), POSTGRES_ID)?;
    PgConnection::establish(&db.url)?.run_pending_migrations(app)?;
    let storage =
        storage_diesel::PgStorage::connect(&db.url, options().migrate_on_connect(true)).await?;

    let done = Arc::new(AtomicBool::new(false));
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let writer = {
        let (done, url) = (Arc::clone(&done), db.url.clone());
        tokio::task::spawn_blocking(move || -> Result<(u64, Vec<String>), String> {
            let mut conn = PgConnection::establish(&url).map_err(|e| e.to_string())?;
            let insert = |i: u64| -> Result<(), AppError> {
                diesel::insert_into(users::table)
                    .values(users::name.eq(format!("user {i}")))
                    .execute(&mut conn)?;
                Ok(())
            };
            Ok(app_loop(insert, &done, started_tx))
        })
    };
    let _ = started_rx.await;
    let uploads: Vec<_> = (0..UPLOADS)
        .map(|i| {
            let storage = storage.clone();
            tokio::spawn(async move {
                storage
                    .save(&format!("uploads/{i}.bin"), pattern(UPLOAD_SIZE, i))
                    .await
            })
        })
        .collect();
    let mut outcome = Outcome::default();
    let mut saved = Vec::new();
    for (i, upload) in (0..UPLOADS).zip(uploads) {
        match upload.await? {
            Ok(meta) => saved.push((i, meta.name)),
            Err(e) => outcome.uploads_failed.push(with_sources(&e)),
        }
    }
    done.store(true, Ordering::Release);
    let (app_writes, app_failed) = writer.await??;
    outcome.app_writes = app_writes;
    outcome.app_failed = app_failed;
    assert_no_error(&outcome);
    for (i, name) in saved {
        let read = storage.read_to_bytes(name.as_str()).await?;
        assert!(
            read.as_ref() == pattern(UPLOAD_SIZE, i).as_slice(),
            "upload {i} came back different"
        );
    }
    assert_eq!(
        u64::try_from(db.count("SELECT COUNT(*) AS n FROM users")?)?,
        outcome.app_writes
    );
    Ok(())
}
