-- Files and their chunks. A file row's name is NULL while its upload is in flight (state 0,
-- pending) and after it was overwritten or deleted (state 2, retired); only live rows (state 1)
-- have a name, and the unique index on it decides races between writers.
-- Times are microseconds since the Unix epoch, UTC.
CREATE TABLE storage_files (
    id INTEGER PRIMARY KEY NOT NULL,
    name TEXT UNIQUE,
    size BIGINT NOT NULL DEFAULT 0,
    content_type TEXT,
    sha256 TEXT,
    chunk_size INTEGER NOT NULL,
    visibility SMALLINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    modified_at BIGINT NOT NULL,
    state SMALLINT NOT NULL,
    state_since BIGINT NOT NULL
);
CREATE INDEX storage_files_state ON storage_files (state, state_since);

CREATE TABLE storage_chunks (
    file_id BIGINT NOT NULL REFERENCES storage_files (id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (file_id, seq)
);
