//! The SQL of the single-row layouts: built once per storage from checked identifiers, with every
//! value bound as a parameter, and run on each of diesel's three connections.

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::result::QueryResult;
use diesel::sql_types::{BigInt, Binary, Nullable, Text};

use crate::dialect::Dialect;

/// How one database spells the few things the three disagree on. Templates use `{c}` for a
/// column and `{a}`, `{b}` for placeholders.
#[derive(Debug)]
pub(crate) struct Flavor {
    pub(crate) quote: char,
    /// `$1, $2` (PostgreSQL) rather than `?`.
    pub(crate) numbered: bool,
    /// The current UTC time as Django stores a `DateTimeField` with `USE_TZ = True`.
    pub(crate) now: &'static str,
    pub(crate) bigint: &'static str,
    pub(crate) octets: &'static str,
    pub(crate) sha256_hex: &'static str,
    pub(crate) epoch_micros: &'static str,
    pub(crate) substr: &'static str,
    /// Names compare byte by byte: a case- or accent-insensitive collation must not make
    /// `a.txt` find `A.txt` (MySQL's default collations do).
    pub(crate) exact: &'static str,
    /// An ordering key that sorts names byte by byte, whatever the column's collation.
    pub(crate) sort_key: &'static str,
    pub(crate) key_type: &'static str,
    pub(crate) blob_type: &'static str,
    pub(crate) bigint_type: &'static str,
}

#[cfg(feature = "sqlite")]
pub(crate) const SQLITE: Flavor = Flavor {
    quote: '"',
    numbered: false,
    now: "strftime('%Y-%m-%d %H:%M:%f', 'now')",
    bigint: "CAST({c} AS INTEGER)",
    octets: "length(CAST({c} AS BLOB))",
    sha256_hex: "dbfiles_sha256({c})",
    epoch_micros: "CAST(ROUND((julianday({c}) - 2440587.5) * 86400000000.0) AS INTEGER)",
    substr: "substr({c}, {a}, {b})",
    exact: "",
    sort_key: "{c}",
    key_type: "TEXT",
    blob_type: "BLOB",
    bigint_type: "BIGINT",
};

#[cfg(feature = "postgres")]
pub(crate) const POSTGRES: Flavor = Flavor {
    quote: '"',
    numbered: true,
    now: "CURRENT_TIMESTAMP",
    bigint: "CAST({c} AS BIGINT)",
    octets: "octet_length({c})",
    sha256_hex: "encode(sha256({c}), 'hex')",
    epoch_micros: "CAST(EXTRACT(EPOCH FROM {c}) * 1000000 AS BIGINT)",
    substr: "substring({c} from CAST({a} AS INTEGER) for CAST({b} AS INTEGER))",
    exact: "",
    sort_key: "{c} COLLATE \"C\"",
    key_type: "TEXT COLLATE \"C\"",
    blob_type: "BYTEA",
    bigint_type: "BIGINT",
};

#[cfg(feature = "mysql")]
pub(crate) const MYSQL: Flavor = Flavor {
    quote: '`',
    numbered: false,
    now: "UTC_TIMESTAMP(6)",
    bigint: "CAST({c} AS SIGNED)",
    octets: "LENGTH({c})",
    sha256_hex: "LOWER(SHA2({c}, 256))",
    epoch_micros: "TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', {c})",
    substr: "SUBSTRING({c}, {a}, {b})",
    exact: " AND CAST({c} AS BINARY) = CAST({a} AS BINARY)",
    sort_key: "CAST({c} AS BINARY)",
    key_type: "VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin",
    blob_type: "LONGBLOB",
    bigint_type: "BIGINT",
};

fn fill(template: &str, c: &str) -> String {
    template.replace("{c}", c)
}

/// The columns of a single-row table, already quoted.
#[derive(Debug, Clone)]
pub(crate) struct Columns {
    pub(crate) table: String,
    pub(crate) name: String,
    pub(crate) blob: String,
    pub(crate) size: Option<String>,
    /// django-binary-database-files' extra columns: `id`, `created_datetime`, `content_hash`.
    pub(crate) django: bool,
}

/// Every statement a single-row storage runs, with `?` placeholders (numbered for PostgreSQL).
#[derive(Debug, Clone)]
pub(crate) struct LegacySql {
    pub(crate) find_with_head: String,
    pub(crate) find: String,
    pub(crate) slice: String,
    pub(crate) slice_by_id: String,
    pub(crate) count: String,
    pub(crate) insert: String,
    pub(crate) delete: String,
    pub(crate) names_from: String,
    pub(crate) names_after: String,
    pub(crate) names_from_below: String,
    pub(crate) names_after_below: String,
    pub(crate) probe: String,
    pub(crate) create_table: String,
    /// How many times a name is bound where the statement compares one (MySQL: twice).
    pub(crate) name_binds: usize,
}

/// Bytes returned with the metadata when a read starts at 0, and per query after that.
pub(crate) const SLICE: i64 = 1 << 20;

impl LegacySql {
    pub(crate) fn new(flavor: &Flavor, cols: &Columns) -> Self {
        let Columns {
            table,
            name,
            blob,
            size,
            django,
        } = cols;
        let name_is = format!("{name} = ?{}", fill(flavor.exact, name).replace("{a}", "?"));
        let name_binds = if flavor.exact.is_empty() { 1 } else { 2 };
        let octets = fill(flavor.bigint, &fill(flavor.octets, blob));
        let sha = fill(flavor.sha256_hex, blob);
        let (id, created, hash) = if *django {
            (
                fill(flavor.bigint, "id"),
                fill(flavor.epoch_micros, "created_datetime"),
                "content_hash".to_owned(),
            )
        } else {
            (
                fill(flavor.bigint, "NULL"),
                fill(flavor.bigint, "NULL"),
                "NULL".to_owned(),
            )
        };
        let head = fill(flavor.substr, blob)
            .replace("{a}", "1")
            .replace("{b}", &SLICE.to_string());
        let select = |head: &str| {
            format!(
                "SELECT {id} AS id, {octets} AS size, {sha} AS sha256, {created} AS created, \
                 {hash} AS content_hash, {head} AS head FROM {table} WHERE {name_is}"
            )
        };
        let slice_expr = fill(flavor.substr, blob)
            .replace("{a}", "?")
            .replace("{b}", "?");
        let slice = format!("SELECT {slice_expr} AS data FROM {table} WHERE {name_is}");
        let slice_by_id = format!("{slice} AND id = ?");
        let (insert_columns, insert_values) = if *django {
            (
                format!("{name}, size, {blob}, created_datetime, content_hash"),
                format!("?, ?, ?, {}, ?", flavor.now),
            )
        } else {
            match size {
                Some(size) => (format!("{name}, {blob}, {size}"), "?, ?, ?".to_owned()),
                None => (format!("{name}, {blob}"), "?, ?".to_owned()),
            }
        };
        let sort = fill(flavor.sort_key, name);
        let names = |op: &str, below: bool| {
            let below = if below {
                format!(" AND {sort} < ?")
            } else {
                String::new()
            };
            format!("SELECT {name} AS value FROM {table} WHERE {sort} {op} ?{below} ORDER BY {sort} LIMIT 500")
        };
        let create_table = {
            let size_column = size
                .as_ref()
                .map(|s| format!(", {s} {}", flavor.bigint_type))
                .unwrap_or_default();
            format!(
                "CREATE TABLE {table} ({name} {} PRIMARY KEY, {blob} {} NOT NULL{size_column})",
                flavor.key_type, flavor.blob_type
            )
        };
        // Statements with placeholders, in PostgreSQL's numbered form where needed.
        let p = |sql: String| if flavor.numbered { numbered(&sql) } else { sql };
        Self {
            find_with_head: p(select(&head)),
            find: p(select("NULL")),
            slice: p(slice),
            slice_by_id: p(slice_by_id),
            count: p(format!("SELECT COUNT(*) AS n FROM {table} WHERE {name_is}")),
            insert: p(format!(
                "INSERT INTO {table} ({insert_columns}) VALUES ({insert_values})"
            )),
            delete: p(format!("DELETE FROM {table} WHERE {name_is}")),
            names_from: p(names(">=", false)),
            names_after: p(names(">", false)),
            names_from_below: p(names(">=", true)),
            names_after_below: p(names(">", true)),
            probe: format!("SELECT COUNT(*) AS n FROM {table} WHERE 1 = 0"),
            create_table,
            name_binds,
        }
    }
}

/// `?` placeholders as PostgreSQL's `$1, $2, ...`.
fn numbered(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut n = 0;
    for c in sql.chars() {
        if c == '?' {
            n += 1;
            out.push_str(&format!("${n}"));
        } else {
            out.push(c);
        }
    }
    out
}

/// A row as the lookup returns it.
#[derive(Debug, QueryableByName)]
pub(crate) struct FoundRow {
    #[diesel(sql_type = Nullable<BigInt>)]
    pub(crate) id: Option<i64>,
    #[diesel(sql_type = BigInt)]
    pub(crate) size: i64,
    #[diesel(sql_type = Nullable<Text>)]
    pub(crate) sha256: Option<String>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub(crate) created: Option<i64>,
    #[diesel(sql_type = Nullable<Text>)]
    pub(crate) content_hash: Option<String>,
    #[diesel(sql_type = Nullable<Binary>)]
    pub(crate) head: Option<Vec<u8>>,
}

#[derive(QueryableByName)]
struct Slice {
    #[diesel(sql_type = Nullable<Binary>)]
    data: Option<Vec<u8>>,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(QueryableByName)]
struct Value {
    #[diesel(sql_type = Text)]
    value: String,
}

/// What an insert writes.
#[derive(Debug)]
pub(crate) struct NewRow<'a> {
    pub(crate) name: &'a str,
    pub(crate) content: &'a [u8],
    pub(crate) size: i64,
    pub(crate) content_hash: Option<&'a str>,
    pub(crate) django: bool,
    pub(crate) with_size: bool,
}

/// The single-row statements on one connection type.
pub(crate) trait LegacyDialect: Dialect {
    const FLAVOR: Flavor;
    /// django-binary-database-files' table as Django's `sqlmigrate` prints it for this database.
    const DJANGO_DDL: &'static str;
    fn legacy_find(
        &mut self,
        sql: &LegacySql,
        with_head: bool,
        name: &str,
    ) -> QueryResult<Option<FoundRow>>;
    fn legacy_slice(
        &mut self,
        sql: &LegacySql,
        name: &str,
        id: Option<i64>,
        from: i64,
        len: i64,
    ) -> QueryResult<Option<Vec<u8>>>;
    fn legacy_count(&mut self, sql: &LegacySql, name: &str) -> QueryResult<i64>;
    fn legacy_insert(&mut self, sql: &LegacySql, row: &NewRow<'_>) -> QueryResult<usize>;
    /// Deletes the row under the name and inserts the new one, in one transaction.
    fn legacy_replace(&mut self, sql: &LegacySql, row: &NewRow<'_>) -> QueryResult<usize>;
    fn legacy_delete(&mut self, sql: &LegacySql, name: &str) -> QueryResult<usize>;
    fn legacy_names(
        &mut self,
        sql: &LegacySql,
        from: &str,
        inclusive: bool,
        upper: Option<&str>,
    ) -> QueryResult<Vec<String>>;
    /// True when the table answers a query.
    fn legacy_table_exists(&mut self, sql: &LegacySql) -> bool;
    fn legacy_execute(&mut self, statements: &str) -> QueryResult<()>;
    /// Inserts `row` twice in a transaction that is rolled back: true when the second insert
    /// meets a unique index on the name column.
    fn legacy_name_is_unique(&mut self, sql: &LegacySql, row: &NewRow<'_>) -> QueryResult<bool>;
    /// The largest statement the server accepts, where it has such a limit.
    fn legacy_statement_limit(&mut self) -> QueryResult<Option<u64>>;
}

macro_rules! legacy_dialect {
    ($conn:ty, $backend:ty, $flavor:expr, $ddl:literal, $transaction:ident, $limit:expr) => {
        impl LegacyDialect for $conn {
            const FLAVOR: Flavor = $flavor;
            const DJANGO_DDL: &'static str = include_str!($ddl);

            fn legacy_find(
                &mut self,
                sql: &LegacySql,
                with_head: bool,
                name: &str,
            ) -> QueryResult<Option<FoundRow>> {
                let text = if with_head {
                    &sql.find_with_head
                } else {
                    &sql.find
                };
                let mut query = diesel::sql_query(text.as_str()).into_boxed::<$backend>();
                for _ in 0..sql.name_binds {
                    query = query.bind::<Text, _>(name);
                }
                query.get_result(self).optional()
            }

            fn legacy_slice(
                &mut self,
                sql: &LegacySql,
                name: &str,
                id: Option<i64>,
                from: i64,
                len: i64,
            ) -> QueryResult<Option<Vec<u8>>> {
                let text = if id.is_some() {
                    &sql.slice_by_id
                } else {
                    &sql.slice
                };
                let mut query = diesel::sql_query(text.as_str())
                    .into_boxed::<$backend>()
                    .bind::<BigInt, _>(from)
                    .bind::<BigInt, _>(len);
                for _ in 0..sql.name_binds {
                    query = query.bind::<Text, _>(name);
                }
                if let Some(id) = id {
                    query = query.bind::<BigInt, _>(id);
                }
                let found: Option<Slice> = query.get_result(self).optional()?;
                Ok(found.map(|s| s.data.unwrap_or_default()))
            }

            fn legacy_count(&mut self, sql: &LegacySql, name: &str) -> QueryResult<i64> {
                let mut query = diesel::sql_query(sql.count.as_str()).into_boxed::<$backend>();
                for _ in 0..sql.name_binds {
                    query = query.bind::<Text, _>(name);
                }
                query.get_result::<Count>(self).map(|c| c.n)
            }

            fn legacy_insert(&mut self, sql: &LegacySql, row: &NewRow<'_>) -> QueryResult<usize> {
                let mut query = diesel::sql_query(sql.insert.as_str())
                    .into_boxed::<$backend>()
                    .bind::<Text, _>(row.name);
                if row.django {
                    query = query
                        .bind::<BigInt, _>(row.size)
                        .bind::<Binary, _>(row.content)
                        .bind::<Nullable<Text>, _>(row.content_hash);
                } else {
                    query = query.bind::<Binary, _>(row.content);
                    if row.with_size {
                        query = query.bind::<BigInt, _>(row.size);
                    }
                }
                query.execute(self)
            }

            fn legacy_replace(&mut self, sql: &LegacySql, row: &NewRow<'_>) -> QueryResult<usize> {
                self.$transaction(|conn| {
                    conn.legacy_delete(sql, row.name)?;
                    conn.legacy_insert(sql, row)
                })
            }

            fn legacy_delete(&mut self, sql: &LegacySql, name: &str) -> QueryResult<usize> {
                let mut query = diesel::sql_query(sql.delete.as_str()).into_boxed::<$backend>();
                for _ in 0..sql.name_binds {
                    query = query.bind::<Text, _>(name);
                }
                query.execute(self)
            }

            fn legacy_names(
                &mut self,
                sql: &LegacySql,
                from: &str,
                inclusive: bool,
                upper: Option<&str>,
            ) -> QueryResult<Vec<String>> {
                let text = match (inclusive, upper.is_some()) {
                    (true, false) => &sql.names_from,
                    (false, false) => &sql.names_after,
                    (true, true) => &sql.names_from_below,
                    (false, true) => &sql.names_after_below,
                };
                let mut query = diesel::sql_query(text.as_str())
                    .into_boxed::<$backend>()
                    .bind::<Text, _>(from);
                if let Some(upper) = upper {
                    query = query.bind::<Text, _>(upper);
                }
                query
                    .load::<Value>(self)
                    .map(|rows| rows.into_iter().map(|r| r.value).collect())
            }

            fn legacy_table_exists(&mut self, sql: &LegacySql) -> bool {
                // A failed statement must not poison an open transaction: run it alone.
                diesel::sql_query(sql.probe.as_str())
                    .get_result::<Count>(self)
                    .is_ok()
            }

            fn legacy_execute(&mut self, statements: &str) -> QueryResult<()> {
                self.batch_execute(statements)
            }

            fn legacy_name_is_unique(
                &mut self,
                sql: &LegacySql,
                row: &NewRow<'_>,
            ) -> QueryResult<bool> {
                let mut unique = false;
                let outcome: QueryResult<()> = self.$transaction(|conn| {
                    conn.legacy_insert(sql, row)?;
                    unique = matches!(
                        conn.legacy_insert(sql, row),
                        Err(diesel::result::Error::DatabaseError(
                            diesel::result::DatabaseErrorKind::UniqueViolation,
                            _
                        ))
                    );
                    Err(diesel::result::Error::RollbackTransaction)
                });
                // Tables that cannot roll back (MyISAM) keep the probe rows: remove them.
                self.legacy_delete(sql, row.name)?;
                match outcome {
                    Err(diesel::result::Error::RollbackTransaction) | Ok(()) => Ok(unique),
                    Err(e) => Err(e),
                }
            }

            fn legacy_statement_limit(&mut self) -> QueryResult<Option<u64>> {
                let limit: fn(&mut Self) -> QueryResult<Option<u64>> = $limit;
                limit(self)
            }
        }
    };
}

#[cfg(feature = "sqlite")]
legacy_dialect!(
    diesel::sqlite::SqliteConnection,
    diesel::sqlite::Sqlite,
    SQLITE,
    "../tests/django/binary_database_files.sqlite.sql",
    immediate_transaction,
    |_| Ok(None)
);

#[cfg(feature = "postgres")]
legacy_dialect!(
    diesel::pg::PgConnection,
    diesel::pg::Pg,
    POSTGRES,
    "../tests/django/binary_database_files.postgres.sql",
    transaction,
    |_| Ok(None)
);

#[cfg(feature = "mysql")]
legacy_dialect!(
    diesel::mysql::MysqlConnection,
    diesel::mysql::Mysql,
    MYSQL,
    "../tests/django/binary_database_files.mysql.sql",
    transaction,
    |conn| {
        diesel::sql_query("SELECT CAST(@@max_allowed_packet AS SIGNED) AS n")
            .get_result::<Count>(conn)
            .map(|c| u64::try_from(c.n).ok())
    }
);

/// Registers `dbfiles_sha256(blob)` on a SQLite connection (PostgreSQL and MySQL have SHA-256
/// built in).
#[cfg(feature = "sqlite")]
pub(crate) fn register_sqlite_functions(
    conn: &mut diesel::sqlite::SqliteConnection,
) -> QueryResult<()> {
    use sha2::{Digest, Sha256};
    #[diesel::declare_sql_function]
    extern "SQL" {
        fn dbfiles_sha256(content: Nullable<Binary>) -> Nullable<Text>;
    }
    dbfiles_sha256_utils::register_impl(conn, |content: Option<Vec<u8>>| {
        content.map(|bytes| hex::encode(Sha256::digest(&bytes)))
    })
}
