-- Attachment bytes when storage.blobs = "database" (what several nodes
-- share): chunks written as an upload arrives, before the blob's row in
-- blobs. A crash in between leaves chunks without a row; the retention
-- sweep deletes those once they are a day old. An ordinary rowid table on
-- SQLite: its rows are large.
CREATE TABLE blob_chunks (
    blob TEXT NOT NULL,
    part BIGINT NOT NULL,
    written_ms BIGINT NOT NULL,
    data {blob} NOT NULL,
    PRIMARY KEY (blob, part)
);
CREATE INDEX blob_chunks_written ON blob_chunks (written_ms) WHERE part = 0
