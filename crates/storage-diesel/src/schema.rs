//! The chunked layout, as diesel sees it. The SQL lives in `migrations/<backend>/`.

diesel::table! {
    /// One row per stored file version.
    storage_files (id) {
        /// Time-ordered random id.
        id -> BigInt,
        /// The stored name; NULL while pending and once retired.
        name -> Nullable<Text>,
        /// Size in bytes.
        size -> BigInt,
        /// Media type.
        content_type -> Nullable<Text>,
        /// SHA-256, 64 hex digits.
        sha256 -> Nullable<Text>,
        /// Bytes per chunk (the last chunk may be shorter).
        chunk_size -> Integer,
        /// 0 public, 1 private.
        visibility -> SmallInt,
        /// Microseconds since the Unix epoch.
        created_at -> BigInt,
        /// Microseconds since the Unix epoch.
        modified_at -> BigInt,
        /// 0 pending, 1 live, 2 retired.
        state -> SmallInt,
        /// When the row entered its state, microseconds since the Unix epoch.
        state_since -> BigInt,
    }
}

diesel::table! {
    /// The bytes of a file, `chunk_size` at a time.
    storage_chunks (file_id, seq) {
        /// The file row.
        file_id -> BigInt,
        /// 0, 1, 2, ...
        seq -> Integer,
        /// The chunk's bytes.
        data -> Binary,
    }
}

diesel::table! {
    /// The columns that hold stored names (a model's file fields), so cleanup knows what is
    /// referenced. Created on first declaration, by every layout.
    storage_references (table_name, column_name) {
        /// `table` or `schema.table`.
        table_name -> Text,
        /// The column.
        column_name -> Text,
    }
}

diesel::table! {
    /// The storage's applied migrations: its own table, so an app sharing the database keeps
    /// diesel's `__diesel_schema_migrations` (and `diesel migration revert`) to itself.
    storage_schema_migrations (version) {
        /// The migration's version (`20261121000001`).
        version -> VarChar,
        /// When it ran (or, adopted from diesel's table, when it ran there).
        run_on -> Timestamp,
    }
}

diesel::table! {
    /// diesel's migrations table, where storages before `storage_schema_migrations` recorded
    /// their versions; read only to adopt those.
    __diesel_schema_migrations (version) {
        /// The migration's version.
        version -> VarChar,
        /// When it ran.
        run_on -> Timestamp,
    }
}

diesel::joinable!(storage_chunks -> storage_files (file_id));
diesel::allow_tables_to_appear_in_same_query!(storage_files, storage_chunks);

/// `storage_files.state` values.
pub(crate) mod state {
    pub(crate) const PENDING: i16 = 0;
    pub(crate) const LIVE: i16 = 1;
    pub(crate) const RETIRED: i16 = 2;
}
