//! The database statements, written once and compiled for each connection type.
//!
//! The bodies are identical for SQLite, PostgreSQL and MySQL; only the transaction kind
//! differs (SQLite takes its write lock up front with `BEGIN IMMEDIATE`, so a transaction never
//! has to upgrade a read lock and fail with "database is locked"), with the catalog query that
//! finds a table and the lock that keeps two migrations apart (`migrations.rs`).

use diesel::prelude::*;
use diesel::r2d2::R2D2Connection;
use diesel::result::QueryResult;
use storage_core::BoxError;

use crate::migrations::Work;
use crate::schema::{state, storage_chunks, storage_files};

/// A `storage_files` row.
#[derive(Debug, Clone, Queryable)]
pub(crate) struct FileRow {
    pub(crate) id: i64,
    pub(crate) name: Option<String>,
    pub(crate) size: i64,
    pub(crate) content_type: Option<String>,
    pub(crate) sha256: Option<String>,
    pub(crate) chunk_size: i32,
    pub(crate) visibility: i16,
    pub(crate) created_at: i64,
    pub(crate) modified_at: i64,
    #[allow(dead_code)]
    pub(crate) state: i16,
    #[allow(dead_code)]
    pub(crate) state_since: i64,
}

/// What a finished upload records when it is published.
#[derive(Debug, Clone)]
pub(crate) struct Published {
    pub(crate) size: i64,
    pub(crate) sha256: String,
    pub(crate) content_type: Option<String>,
    pub(crate) visibility: i16,
    pub(crate) now: i64,
}

/// The outcome of publishing under one name.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Publish {
    Done { created_at: i64 },
    NameTaken,
    UploadGone,
}

/// Everything the storage asks of a database connection.
pub(crate) trait Dialect: R2D2Connection + Send + 'static {
    /// Short backend name for messages.
    const BACKEND: &'static str;

    /// Runs the embedded migrations not yet recorded; returns their versions.
    fn migrate(&mut self) -> Result<Vec<String>, BoxError>;
    /// Runs `work` while holding the lock that lets one process at a time migrate the database.
    fn with_migration_lock(&mut self, work: &mut Work<'_, Self>) -> Result<Vec<String>, BoxError>;
    /// Whether `table` exists (in the current schema on PostgreSQL, database on MySQL).
    fn table_exists(&mut self, table: &str) -> QueryResult<bool>;
    /// The versions in `storage_schema_migrations`.
    fn recorded_versions(&mut self) -> QueryResult<Vec<String>>;
    fn record_version(&mut self, version: &str) -> QueryResult<()>;
    /// Moves those of `ours` found in `__diesel_schema_migrations` into
    /// `storage_schema_migrations`, leaving the app's rows; returns the versions moved.
    fn adopt_versions(&mut self, ours: &[String]) -> QueryResult<Vec<String>>;
    fn configure(&mut self) -> QueryResult<()>;
    fn insert_pending(
        &mut self,
        id: i64,
        chunk_size: i32,
        visibility: i16,
        now: i64,
    ) -> QueryResult<usize>;
    fn insert_chunk(&mut self, file_id: i64, seq: i32, data: &[u8]) -> QueryResult<usize>;
    fn publish_new(
        &mut self,
        file_id: i64,
        name: &str,
        published: &Published,
    ) -> QueryResult<Publish>;
    fn publish_overwrite(
        &mut self,
        file_id: i64,
        name: &str,
        published: &Published,
    ) -> QueryResult<Publish>;
    fn live_file(&mut self, name: &str) -> QueryResult<Option<FileRow>>;
    fn live_file_with_first_chunk(
        &mut self,
        name: &str,
    ) -> QueryResult<Option<(FileRow, Option<Vec<u8>>)>>;
    fn chunks(
        &mut self,
        file_id: i64,
        first: i32,
        last: i32,
        limit: i64,
    ) -> QueryResult<Vec<(i32, Vec<u8>)>>;
    fn retire(&mut self, name: &str, now: i64) -> QueryResult<usize>;
    fn discard(&mut self, file_id: i64) -> QueryResult<usize>;
    fn names_after(
        &mut self,
        cursor: &str,
        inclusive: bool,
        upper: Option<&str>,
        limit: i64,
    ) -> QueryResult<Vec<String>>;
    fn sweepable(
        &mut self,
        pending_before: i64,
        retired_before: i64,
        limit: i64,
    ) -> QueryResult<Vec<i64>>;
    /// The distinct non-empty values of `table.column`; both are checked identifiers, quoted
    /// here.
    fn column_values(&mut self, table: &str, column: &str) -> QueryResult<Vec<String>>;
    /// Whether some row of `table.column` holds `value` (compared with the column's collation).
    fn holds_value(&mut self, table: &str, column: &str, value: &str) -> QueryResult<bool>;
    /// The declared referencing columns, `(table, column)`; none while the table is missing.
    fn declared_references(&mut self) -> QueryResult<Vec<(String, String)>>;
    /// Records a referencing column, creating the declarations table if needed.
    fn declare_reference(&mut self, table: &str, column: &str) -> QueryResult<()>;
    /// Removes a declaration; the number of rows removed.
    fn forget_reference(&mut self, table: &str, column: &str) -> QueryResult<usize>;
}

/// A `SELECT COUNT(*) AS n` result.
#[derive(diesel::QueryableByName)]
pub(crate) struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub(crate) n: i64,
}

/// The declarations table, created on first use by every layout (it is not part of a layout).
const CREATE_REFERENCES: &str = "CREATE TABLE IF NOT EXISTS storage_references (\
     table_name VARCHAR(128) NOT NULL, column_name VARCHAR(128) NOT NULL, \
     PRIMARY KEY (table_name, column_name))";

/// One value of a referencing column.
#[derive(diesel::QueryableByName)]
struct Reference {
    #[diesel(sql_type = diesel::sql_types::Text)]
    value: String,
}

/// A table (`schema.table` allowed) or column name: letters, digits and `_`, not starting with a
/// digit. Only such names are ever put into SQL text.
pub(crate) fn is_identifier(text: &str) -> bool {
    text.split('.').all(|part| {
        let mut chars = part.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
    }) && text.split('.').count() <= 2
}

pub(crate) fn is_unique_violation(e: &diesel::result::Error) -> bool {
    matches!(
        e,
        diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _)
    )
}

/// The columns a pending row gets when it is published under `name`.
macro_rules! live_row {
    ($name:expr, $p:expr, $created:expr) => {
        (
            f::name.eq(Some($name)),
            f::size.eq($p.size),
            f::sha256.eq(Some(&$p.sha256)),
            f::content_type.eq($p.content_type.as_deref()),
            f::visibility.eq($p.visibility),
            f::created_at.eq($created),
            f::modified_at.eq($p.now),
            f::state.eq(state::LIVE),
            f::state_since.eq($p.now),
        )
    };
}

macro_rules! dialect {
    (
        $conn:ty,
        $backend:literal,
        $migrations:literal,
        $transaction:ident,
        $quote:literal,
        $param:literal,
        $table_exists:literal,
        $migration_lock:path,
        $configure:expr
    ) => {
        impl Dialect for $conn {
            const BACKEND: &'static str = $backend;

            fn migrate(&mut self) -> Result<Vec<String>, BoxError> {
                use diesel_migrations::{embed_migrations, EmbeddedMigrations};
                const MIGRATIONS: EmbeddedMigrations = embed_migrations!($migrations);
                crate::migrations::run_pending(self, &MIGRATIONS)
            }

            fn with_migration_lock(
                &mut self,
                work: &mut Work<'_, Self>,
            ) -> Result<Vec<String>, BoxError> {
                $migration_lock(self, work)
            }

            fn table_exists(&mut self, table: &str) -> QueryResult<bool> {
                diesel::sql_query($table_exists)
                    .bind::<diesel::sql_types::Text, _>(table)
                    .get_result::<Count>(self)
                    .map(|c| c.n > 0)
            }

            fn recorded_versions(&mut self) -> QueryResult<Vec<String>> {
                use crate::schema::storage_schema_migrations::dsl as s;
                s::storage_schema_migrations.select(s::version).load(self)
            }

            fn record_version(&mut self, version: &str) -> QueryResult<()> {
                use crate::schema::storage_schema_migrations::dsl as s;
                diesel::insert_into(s::storage_schema_migrations)
                    .values(s::version.eq(version))
                    .execute(self)
                    .map(drop)
            }

            fn adopt_versions(&mut self, ours: &[String]) -> QueryResult<Vec<String>> {
                use crate::schema::__diesel_schema_migrations::dsl as d;
                use crate::schema::storage_schema_migrations::dsl as s;
                let found: Vec<String> = d::__diesel_schema_migrations
                    .filter(d::version.eq_any(ours))
                    .select(d::version)
                    .load(self)?;
                if found.is_empty() {
                    return Ok(found);
                }
                let recorded = self.recorded_versions()?;
                let missing: Vec<&String> =
                    found.iter().filter(|v| !recorded.contains(v)).collect();
                if !missing.is_empty() {
                    diesel::insert_into(s::storage_schema_migrations)
                        .values(
                            d::__diesel_schema_migrations
                                .filter(d::version.eq_any(missing))
                                .select((d::version, d::run_on)),
                        )
                        .into_columns((s::version, s::run_on))
                        .execute(self)?;
                }
                diesel::delete(d::__diesel_schema_migrations.filter(d::version.eq_any(&found)))
                    .execute(self)?;
                Ok(found)
            }

            fn configure(&mut self) -> QueryResult<()> {
                let configure: fn(&mut Self) -> QueryResult<()> = $configure;
                configure(self)
            }

            fn insert_pending(
                &mut self,
                id: i64,
                chunk_size: i32,
                visibility: i16,
                now: i64,
            ) -> QueryResult<usize> {
                use storage_files::dsl as f;
                diesel::insert_into(f::storage_files)
                    .values((
                        f::id.eq(id),
                        f::size.eq(0_i64),
                        f::chunk_size.eq(chunk_size),
                        f::visibility.eq(visibility),
                        f::created_at.eq(now),
                        f::modified_at.eq(now),
                        f::state.eq(state::PENDING),
                        f::state_since.eq(now),
                    ))
                    .execute(self)
            }

            fn insert_chunk(&mut self, file_id: i64, seq: i32, data: &[u8]) -> QueryResult<usize> {
                use storage_chunks::dsl as c;
                diesel::insert_into(c::storage_chunks)
                    .values((c::file_id.eq(file_id), c::seq.eq(seq), c::data.eq(data)))
                    .execute(self)
            }

            fn publish_new(
                &mut self,
                file_id: i64,
                name: &str,
                p: &Published,
            ) -> QueryResult<Publish> {
                use storage_files::dsl as f;
                let updated = diesel::update(
                    f::storage_files
                        .filter(f::id.eq(file_id))
                        .filter(f::state.eq(state::PENDING)),
                )
                .set(live_row!(name, p, p.now))
                .execute(self);
                match updated {
                    Ok(1) => Ok(Publish::Done { created_at: p.now }),
                    Ok(_) => Ok(Publish::UploadGone),
                    Err(e) if is_unique_violation(&e) => Ok(Publish::NameTaken),
                    Err(e) => Err(e),
                }
            }

            fn publish_overwrite(
                &mut self,
                file_id: i64,
                name: &str,
                p: &Published,
            ) -> QueryResult<Publish> {
                use storage_files::dsl as f;
                let outcome = self.$transaction(|conn| {
                    let old: Option<(i64, i64)> = f::storage_files
                        .filter(f::name.eq(name))
                        .select((f::id, f::created_at))
                        .first(conn)
                        .optional()?;
                    if let Some((old_id, _)) = old {
                        // Matches nothing if a concurrent writer replaced it since we looked; the
                        // publish below then meets the unique index and the caller retries.
                        diesel::update(
                            f::storage_files
                                .filter(f::id.eq(old_id))
                                .filter(f::name.eq(name)),
                        )
                        .set((
                            f::name.eq(None::<&str>),
                            f::state.eq(state::RETIRED),
                            f::state_since.eq(p.now),
                        ))
                        .execute(conn)?;
                    }
                    let created_at = old.map_or(p.now, |(_, created)| created);
                    let updated = diesel::update(
                        f::storage_files
                            .filter(f::id.eq(file_id))
                            .filter(f::state.eq(state::PENDING)),
                    )
                    .set(live_row!(name, p, created_at))
                    .execute(conn)?;
                    if updated == 1 {
                        Ok(Publish::Done { created_at })
                    } else {
                        // Roll back the retirement: the new version is gone.
                        Err(diesel::result::Error::RollbackTransaction)
                    }
                });
                match outcome {
                    Ok(done) => Ok(done),
                    Err(diesel::result::Error::RollbackTransaction) => Ok(Publish::UploadGone),
                    Err(e) if is_unique_violation(&e) => Ok(Publish::NameTaken),
                    Err(e) => Err(e),
                }
            }

            fn live_file(&mut self, name: &str) -> QueryResult<Option<FileRow>> {
                use storage_files::dsl as f;
                f::storage_files
                    .filter(f::name.eq(name))
                    .select(storage_files::all_columns)
                    .first(self)
                    .optional()
            }

            fn live_file_with_first_chunk(
                &mut self,
                name: &str,
            ) -> QueryResult<Option<(FileRow, Option<Vec<u8>>)>> {
                use storage_chunks::dsl as c;
                use storage_files::dsl as f;
                f::storage_files
                    .left_join(c::storage_chunks.on(c::file_id.eq(f::id).and(c::seq.eq(0))))
                    .filter(f::name.eq(name))
                    .select((storage_files::all_columns, c::data.nullable()))
                    .first(self)
                    .optional()
            }

            fn chunks(
                &mut self,
                file_id: i64,
                first: i32,
                last: i32,
                limit: i64,
            ) -> QueryResult<Vec<(i32, Vec<u8>)>> {
                use storage_chunks::dsl as c;
                c::storage_chunks
                    .filter(c::file_id.eq(file_id))
                    .filter(c::seq.ge(first))
                    .filter(c::seq.le(last))
                    .order(c::seq.asc())
                    .limit(limit)
                    .select((c::seq, c::data))
                    .load(self)
            }

            fn retire(&mut self, name: &str, now: i64) -> QueryResult<usize> {
                use storage_files::dsl as f;
                diesel::update(f::storage_files.filter(f::name.eq(name)))
                    .set((
                        f::name.eq(None::<&str>),
                        f::state.eq(state::RETIRED),
                        f::state_since.eq(now),
                    ))
                    .execute(self)
            }

            fn discard(&mut self, file_id: i64) -> QueryResult<usize> {
                use storage_chunks::dsl as c;
                use storage_files::dsl as f;
                self.$transaction(|conn| {
                    diesel::delete(c::storage_chunks.filter(c::file_id.eq(file_id)))
                        .execute(conn)?;
                    diesel::delete(
                        f::storage_files
                            .filter(f::id.eq(file_id))
                            .filter(f::name.is_null()),
                    )
                    .execute(conn)
                })
            }

            fn names_after(
                &mut self,
                cursor: &str,
                inclusive: bool,
                upper: Option<&str>,
                limit: i64,
            ) -> QueryResult<Vec<String>> {
                use storage_files::dsl as f;
                let mut query = f::storage_files
                    .select(f::name.assume_not_null())
                    .filter(f::name.is_not_null())
                    .into_boxed();
                query = if inclusive {
                    query.filter(f::name.ge(cursor))
                } else {
                    query.filter(f::name.gt(cursor))
                };
                if let Some(upper) = upper {
                    query = query.filter(f::name.lt(upper));
                }
                query.order(f::name.asc()).limit(limit).load(self)
            }

            fn sweepable(
                &mut self,
                pending_before: i64,
                retired_before: i64,
                limit: i64,
            ) -> QueryResult<Vec<i64>> {
                use storage_files::dsl as f;
                f::storage_files
                    .filter(
                        (f::state
                            .eq(state::PENDING)
                            .and(f::state_since.lt(pending_before)))
                        .or(f::state
                            .eq(state::RETIRED)
                            .and(f::state_since.lt(retired_before))),
                    )
                    .select(f::id)
                    .limit(limit)
                    .load(self)
            }

            fn column_values(&mut self, table: &str, column: &str) -> QueryResult<Vec<String>> {
                let quote = |ident: &str| format!("{q}{ident}{q}", q = $quote);
                let table = table.split('.').map(quote).collect::<Vec<_>>().join(".");
                let column = quote(column);
                let sql = format!(
                    "SELECT DISTINCT {column} AS value FROM {table} \
                     WHERE {column} IS NOT NULL AND {column} <> ''"
                );
                diesel::sql_query(sql)
                    .load::<Reference>(self)
                    .map(|rows| rows.into_iter().map(|r| r.value).collect())
            }

            fn holds_value(&mut self, table: &str, column: &str, value: &str) -> QueryResult<bool> {
                let quote = |ident: &str| format!("{q}{ident}{q}", q = $quote);
                let table = table.split('.').map(quote).collect::<Vec<_>>().join(".");
                let column = quote(column);
                let sql = format!(
                    "SELECT COUNT(*) AS n FROM \
                     (SELECT 1 AS hit FROM {table} WHERE {column} = {param} LIMIT 1) AS found",
                    param = $param
                );
                diesel::sql_query(sql)
                    .bind::<diesel::sql_types::Text, _>(value)
                    .get_result::<Count>(self)
                    .map(|c| c.n > 0)
            }

            fn declared_references(&mut self) -> QueryResult<Vec<(String, String)>> {
                use crate::schema::storage_references::dsl as r;
                if !self.table_exists("storage_references")? {
                    return Ok(Vec::new());
                }
                r::storage_references
                    .select((r::table_name, r::column_name))
                    .order((r::table_name, r::column_name))
                    .load(self)
            }

            fn declare_reference(&mut self, table: &str, column: &str) -> QueryResult<()> {
                use crate::schema::storage_references::dsl as r;
                use diesel::connection::SimpleConnection;
                self.batch_execute(CREATE_REFERENCES)?;
                let inserted = diesel::insert_into(r::storage_references)
                    .values((r::table_name.eq(table), r::column_name.eq(column)))
                    .execute(self);
                match inserted {
                    // Declared before, or by another app server at the same moment.
                    Err(e) if is_unique_violation(&e) => Ok(()),
                    other => other.map(|_| ()),
                }
            }

            fn forget_reference(&mut self, table: &str, column: &str) -> QueryResult<usize> {
                use crate::schema::storage_references::dsl as r;
                if !self.table_exists("storage_references")? {
                    return Ok(0);
                }
                diesel::delete(
                    r::storage_references
                        .filter(r::table_name.eq(table))
                        .filter(r::column_name.eq(column)),
                )
                .execute(self)
            }
        }
    };
}

#[cfg(feature = "sqlite")]
dialect!(
    diesel::sqlite::SqliteConnection,
    "sqlite",
    "migrations/sqlite",
    immediate_transaction,
    "\"",
    "?",
    "SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'table' AND name = ?",
    crate::migrations::sqlite_lock,
    |conn| {
        use diesel::connection::SimpleConnection;
        // busy_timeout first: switching to WAL itself may wait for another connection.
        // page_size only takes effect on a new database, before WAL is switched on: big pages
        // make the multi-page chunk rows cheaper to write and read.
        conn.batch_execute(
            "PRAGMA busy_timeout = 10000; PRAGMA page_size = 65536; PRAGMA journal_mode = WAL; \
             PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
        )?;
        crate::legacy_sql::register_sqlite_functions(conn)
    }
);

#[cfg(feature = "postgres")]
dialect!(
    diesel::pg::PgConnection,
    "postgres",
    "migrations/postgres",
    transaction,
    "\"",
    "$1",
    "SELECT COUNT(*) AS n FROM (SELECT to_regclass($1) AS t) AS r WHERE r.t IS NOT NULL",
    crate::migrations::postgres_lock,
    |_| Ok(())
);

#[cfg(feature = "mysql")]
dialect!(
    diesel::mysql::MysqlConnection,
    "mysql",
    "migrations/mysql",
    transaction,
    "`",
    "?",
    "SELECT COUNT(*) AS n FROM information_schema.tables \
     WHERE table_schema = DATABASE() AND table_name = ?",
    crate::migrations::mysql_lock,
    |_| Ok(())
);
