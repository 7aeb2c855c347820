//! Test databases: a fresh SQLite file, PostgreSQL schema or MySQL database per test, and raw SQL
//! access to look under the storage.

#![allow(dead_code, unreachable_pub, clippy::print_stderr)]

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::BigInt;
use storage_core::{Error, Result};
use storage_diesel::DatabaseOptions;

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

macro_rules! count_rows {
    ($conn:expr, $sql:expr) => {
        diesel::sql_query($sql)
            .get_result::<Count>($conn)
            .map(|c| c.n)
            .map_err(|e| err("count", e))
    };
}

fn err(what: &str, e: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::backend("test", what.to_owned(), e)
}

pub fn unique(prefix: &str) -> String {
    format!("{prefix}_{}", rand::random::<u64>() % 1_000_000_000_000)
}

/// The options tests use: small chunks so even small files span many chunks.
pub fn options() -> DatabaseOptions {
    DatabaseOptions::new()
        .chunk_size(64 * 1024)
        .pool_size(8)
        .migrate_on_connect(true)
}

pub use storage_conformance::required_env;

/// The URL of a real server from the environment (see [`required_env`]).
pub fn server_url(var: &str) -> Option<String> {
    required_env(
        var,
        "set it (see scripts/test) to run these tests against a real server",
    )
}

/// A schema of its own on the PostgreSQL server of `DBFILES_TEST_POSTGRES_URL`; `None` to skip.
#[cfg(feature = "postgres")]
pub fn pg_db() -> Result<Option<PgDb>> {
    server_url("DBFILES_TEST_POSTGRES_URL")
        .map(|admin| PgDb::new(&admin))
        .transpose()
}

/// A database of its own on the MySQL server of `DBFILES_TEST_MYSQL_URL`; `None` to skip.
#[cfg(feature = "mysql")]
pub fn mysql_db() -> Result<Option<MysqlDb>> {
    server_url("DBFILES_TEST_MYSQL_URL")
        .map(|admin| MysqlDb::new(&admin))
        .transpose()
}

/// A SQLite file in a temporary directory.
pub struct SqliteDb {
    pub dir: tempfile::TempDir,
    pub url: String,
}

impl SqliteDb {
    pub fn new() -> Result<Self> {
        let dir = tempfile::tempdir().map_err(|e| err("tempdir", e))?;
        let url = format!("sqlite://{}/media.db", dir.path().display());
        Ok(Self { dir, url })
    }

    pub fn count(&self, sql: &str) -> Result<i64> {
        let path = self.url.trim_start_matches("sqlite://");
        let mut conn = SqliteConnection::establish(path).map_err(|e| err("connect", e))?;
        count_rows!(&mut conn, sql)
    }

    pub fn exec(&self, sql: &str) -> Result<()> {
        let path = self.url.trim_start_matches("sqlite://");
        let mut conn = SqliteConnection::establish(path).map_err(|e| err("connect", e))?;
        conn.batch_execute(sql).map_err(|e| err("exec", e))
    }
}

/// Raw SQL on the database under a storage.
pub trait RawDb {
    /// `SELECT COUNT(*) AS n ...`
    fn count(&self, sql: &str) -> Result<i64>;
    /// Statements without results.
    fn exec(&self, sql: &str) -> Result<()>;
    /// The storage URL.
    fn url(&self) -> &str;
}

impl RawDb for SqliteDb {
    fn count(&self, sql: &str) -> Result<i64> {
        SqliteDb::count(self, sql)
    }
    fn exec(&self, sql: &str) -> Result<()> {
        SqliteDb::exec(self, sql)
    }
    fn url(&self) -> &str {
        &self.url
    }
}

/// A PostgreSQL schema of its own, dropped when the value is dropped.
#[cfg(feature = "postgres")]
pub struct PgDb {
    admin: String,
    pub schema: String,
    pub url: String,
}

#[cfg(feature = "postgres")]
impl PgDb {
    pub fn new(admin: &str) -> Result<Self> {
        let schema = unique("dbfiles_test");
        let mut conn = PgConnection::establish(admin).map_err(|e| err("connect", e))?;
        conn.batch_execute(&format!("CREATE SCHEMA {schema}"))
            .map_err(|e| err("create schema", e))?;
        let separator = if admin.contains('?') { '&' } else { '?' };
        let url = format!("{admin}{separator}options=-c%20search_path%3D{schema}");
        Ok(Self {
            admin: admin.to_owned(),
            schema,
            url,
        })
    }

    fn conn(&self) -> Result<PgConnection> {
        let mut conn = PgConnection::establish(&self.admin).map_err(|e| err("connect", e))?;
        conn.batch_execute(&format!("SET search_path TO {}", self.schema))
            .map_err(|e| err("search_path", e))?;
        Ok(conn)
    }

    pub fn count(&self, sql: &str) -> Result<i64> {
        count_rows!(&mut self.conn()?, sql)
    }

    pub fn exec(&self, sql: &str) -> Result<()> {
        self.conn()?.batch_execute(sql).map_err(|e| err("exec", e))
    }
}

#[cfg(feature = "postgres")]
impl RawDb for PgDb {
    fn count(&self, sql: &str) -> Result<i64> {
        PgDb::count(self, sql)
    }
    fn exec(&self, sql: &str) -> Result<()> {
        PgDb::exec(self, sql)
    }
    fn url(&self) -> &str {
        &self.url
    }
}

#[cfg(feature = "postgres")]
impl Drop for PgDb {
    fn drop(&mut self) {
        if let Ok(mut conn) = PgConnection::establish(&self.admin) {
            let _ = conn.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema));
        }
    }
}

/// A MySQL/MariaDB database of its own, dropped when the value is dropped.
#[cfg(feature = "mysql")]
pub struct MysqlDb {
    admin: String,
    pub database: String,
    pub url: String,
}

#[cfg(feature = "mysql")]
impl MysqlDb {
    pub fn new(admin: &str) -> Result<Self> {
        let database = unique("dbfiles_test");
        let mut conn = MysqlConnection::establish(admin).map_err(|e| err("connect", e))?;
        conn.batch_execute(&format!("CREATE DATABASE {database}"))
            .map_err(|e| err("create database", e))?;
        let mut url = url::Url::parse(admin).map_err(|e| err("url", e))?;
        url.set_path(&format!("/{database}"));
        Ok(Self {
            admin: admin.to_owned(),
            database,
            url: url.to_string(),
        })
    }

    pub fn count(&self, sql: &str) -> Result<i64> {
        let mut conn = MysqlConnection::establish(&self.url).map_err(|e| err("connect", e))?;
        count_rows!(&mut conn, sql)
    }

    pub fn exec(&self, sql: &str) -> Result<()> {
        let mut conn = MysqlConnection::establish(&self.url).map_err(|e| err("connect", e))?;
        conn.batch_execute(sql).map_err(|e| err("exec", e))
    }
}

#[cfg(feature = "mysql")]
impl RawDb for MysqlDb {
    fn count(&self, sql: &str) -> Result<i64> {
        MysqlDb::count(self, sql)
    }
    fn exec(&self, sql: &str) -> Result<()> {
        MysqlDb::exec(self, sql)
    }
    fn url(&self) -> &str {
        &self.url
    }
}

#[cfg(feature = "mysql")]
impl Drop for MysqlDb {
    fn drop(&mut self) {
        if let Ok(mut conn) = MysqlConnection::establish(&self.admin) {
            let _ = conn.batch_execute(&format!("DROP DATABASE IF EXISTS {}", self.database));
        }
    }
}
