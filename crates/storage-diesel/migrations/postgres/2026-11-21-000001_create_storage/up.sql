-- See the SQLite migration for the meaning of each column. Names use the "C" collation so that
-- the unique index also serves prefix ranges (listdir) and orders names byte by byte.
CREATE TABLE storage_files (
    id BIGINT PRIMARY KEY,
    name TEXT COLLATE "C" UNIQUE,
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
    data BYTEA NOT NULL,
    PRIMARY KEY (file_id, seq)
);
-- Chunks are already compressed or incompressible more often than not; skip TOAST compression.
ALTER TABLE storage_chunks ALTER COLUMN data SET STORAGE EXTERNAL;
