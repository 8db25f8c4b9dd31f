-- Federation: the transaction ids of signed server-to-server requests seen
-- within the freshness window, so a replayed request is refused even after
-- a restart. Rows older than the window are deleted.
CREATE TABLE federation_txns (
    origin TEXT NOT NULL,
    txn TEXT NOT NULL,
    ts BIGINT NOT NULL,
    PRIMARY KEY (origin, txn)
) {without_rowid};
CREATE INDEX federation_txns_ts ON federation_txns (ts)
