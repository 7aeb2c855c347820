//! The storage's migration harness: diesel_migrations' embedded migrations, run one process at a
//! time and recorded in `storage_schema_migrations`.
//!
//! diesel's own harness records versions in `__diesel_schema_migrations`, the table an app's
//! `diesel migration revert` and `redo` read; they fail on a version their migration directory
//! lacks. So the storage keeps its versions apart, and adopts those an older storage left in
//! diesel's table.

use std::collections::HashSet;

use diesel::connection::SimpleConnection;
use diesel::migration::{Migration, MigrationSource};
use diesel::Connection;
use diesel_migrations::EmbeddedMigrations;
use storage_core::BoxError;

use crate::dialect::Dialect;

/// What runs under the migration lock; returns the versions it applied.
pub(crate) type Work<'a, C> = dyn FnMut(&mut C) -> Result<Vec<String>, BoxError> + 'a;

/// The same columns as diesel's table, so adopted rows keep their `run_on`.
const CREATE_VERSIONS: &str = "CREATE TABLE IF NOT EXISTS storage_schema_migrations (\
     version VARCHAR(50) PRIMARY KEY NOT NULL, \
     run_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP)";

/// Runs the migrations of `source` not yet recorded, in version order, each in a transaction
/// unless its metadata says otherwise; returns their versions. Versions found in diesel's table
/// are moved into ours first, in a transaction: they are adopted, not applied.
pub(crate) fn run_pending<C: Dialect>(
    conn: &mut C,
    source: &EmbeddedMigrations,
) -> Result<Vec<String>, BoxError> {
    let mut migrations: Vec<Box<dyn Migration<C::Backend>>> =
        MigrationSource::<C::Backend>::migrations(source)?;
    migrations.sort_by(|a, b| a.name().version().cmp(&b.name().version()));
    let ours: Vec<String> = migrations
        .iter()
        .map(|m| m.name().version().to_string())
        .collect();
    conn.with_migration_lock(&mut |conn: &mut C| {
        conn.batch_execute(CREATE_VERSIONS)?;
        if conn.table_exists("__diesel_schema_migrations")? {
            conn.transaction(|conn| conn.adopt_versions(&ours))?;
        }
        let recorded: HashSet<String> = conn.recorded_versions()?.into_iter().collect();
        let mut applied = Vec::new();
        for migration in &migrations {
            let version = migration.name().version().to_string();
            if recorded.contains(&version) {
                continue;
            }
            let apply = |conn: &mut C| -> Result<(), BoxError> {
                migration.run(conn)?;
                conn.record_version(&version)?;
                Ok(())
            };
            if migration.metadata().run_in_transaction() {
                conn.transaction(apply)?;
            } else {
                apply(conn)?;
            }
            applied.push(version);
        }
        Ok(applied)
    })
}

/// `BEGIN IMMEDIATE` takes SQLite's write lock up front (a second migrator waits for it, up to
/// the busy timeout), and everything, DDL included, commits or rolls back together.
#[cfg(feature = "sqlite")]
pub(crate) fn sqlite_lock(
    conn: &mut diesel::sqlite::SqliteConnection,
    work: &mut Work<'_, diesel::sqlite::SqliteConnection>,
) -> Result<Vec<String>, BoxError> {
    conn.immediate_transaction(|conn| work(conn))
}

/// PostgreSQL's DDL is transactional: one transaction holding an advisory lock per schema (the
/// tests share a database, one schema each) until it ends, even if the connection dies.
#[cfg(feature = "postgres")]
pub(crate) fn postgres_lock(
    conn: &mut diesel::pg::PgConnection,
    work: &mut Work<'_, diesel::pg::PgConnection>,
) -> Result<Vec<String>, BoxError> {
    conn.transaction(|conn| {
        conn.batch_execute(
            "SELECT pg_advisory_xact_lock(\
             hashtext('storage_schema_migrations.' || COALESCE(current_schema(), '')))",
        )?;
        work(conn)
    })
}

/// A lock per database, named so because `GET_LOCK` names are server-wide and at most 64
/// characters long.
#[cfg(feature = "mysql")]
const MYSQL_LOCK: &str = "CONCAT('storage_schema_migrations.', MD5(COALESCE(DATABASE(), '')))";

/// How long a second migrator waits for the first on MySQL.
#[cfg(feature = "mysql")]
const MYSQL_LOCK_WAIT_SECONDS: u32 = 60;

/// DDL commits implicitly on MySQL and MariaDB, so no transaction can hold a migration
/// together: a named lock keeps a second migrator waiting until the first is done. It belongs
/// to the session, so the server frees it if the connection dies.
#[cfg(feature = "mysql")]
pub(crate) fn mysql_lock(
    conn: &mut diesel::mysql::MysqlConnection,
    work: &mut Work<'_, diesel::mysql::MysqlConnection>,
) -> Result<Vec<String>, BoxError> {
    use diesel::RunQueryDsl;
    // GET_LOCK: 1 taken, 0 timed out, NULL on error.
    let taken = diesel::sql_query(format!(
        "SELECT CAST(COALESCE(GET_LOCK({MYSQL_LOCK}, {MYSQL_LOCK_WAIT_SECONDS}), 0) AS SIGNED) AS n"
    ))
    .get_result::<crate::dialect::Count>(conn)?;
    if taken.n != 1 {
        return Err(format!(
            "another migration held the lock for {MYSQL_LOCK_WAIT_SECONDS} s; try again"
        )
        .into());
    }
    // The lock belongs to the session, and a pooled connection outlives this call: release it
    // even when the work panics, or the next migrator would wait for a lock nobody holds.
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(conn)));
    let released = conn.batch_execute(&format!("DO RELEASE_LOCK({MYSQL_LOCK})"));
    let applied = match result {
        Ok(applied) => applied?,
        Err(panic) => std::panic::resume_unwind(panic),
    };
    released?;
    Ok(applied)
}
