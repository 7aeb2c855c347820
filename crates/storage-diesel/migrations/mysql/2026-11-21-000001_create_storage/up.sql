-- See the SQLite migration for the meaning of each column. Names are VARBINARY(1024): compared
-- byte by byte (case-sensitive, like a filesystem), and short enough for a unique InnoDB index
-- that also serves prefix ranges (listdir).
CREATE TABLE storage_files (
    id BIGINT NOT NULL PRIMARY KEY,
    name VARBINARY(1024) NULL UNIQUE,
    size BIGINT NOT NULL DEFAULT 0,
    content_type VARCHAR(255) NULL,
    sha256 CHAR(64) NULL,
    chunk_size INTEGER NOT NULL,
    visibility SMALLINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    modified_at BIGINT NOT NULL,
    state SMALLINT NOT NULL,
    state_since BIGINT NOT NULL,
    INDEX storage_files_state (state, state_since)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

CREATE TABLE storage_chunks (
    file_id BIGINT NOT NULL,
    seq INTEGER NOT NULL,
    data LONGBLOB NOT NULL,
    PRIMARY KEY (file_id, seq),
    CONSTRAINT storage_chunks_file FOREIGN KEY (file_id) REFERENCES storage_files (id) ON DELETE CASCADE
) ENGINE = InnoDB;
