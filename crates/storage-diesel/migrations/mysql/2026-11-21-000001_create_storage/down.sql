DROP TABLE storage_chunks;
DROP TABLE storage_files;
