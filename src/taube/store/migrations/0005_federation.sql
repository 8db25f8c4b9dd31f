-- Federation: the transaction ids of signed server-to-server requests seen
-- within the freshness window, so a replayed request is refused even after
-- a restart. Rows older than the window are deleted.
CREATE TABLE federation_txns (
    origin TEXT NOT NULL,
    txn TEXT NOT NULL,
    ts BIGINT NOT NULL,
    PRIMARY KEY (origin, txn)
) {without_rowid};
CREATE INDEX federation_txns_ts ON federation_txns (ts);

-- Servers of other domains with members in this server's conversations.
-- Each such server has a cursor named '@<domain>' in cursors, like a
-- device: the conversation log is its outbound queue, ordered, and an
-- entry is deleted only once that server (and every local device) has it.
CREATE TABLE federation_destinations (
    domain TEXT PRIMARY KEY
);

-- To-device messages for devices on other servers, until that server took them.
CREATE TABLE federation_todevice (
    seq {serial},
    destination TEXT NOT NULL,
    ref TEXT NOT NULL,
    target_user TEXT NOT NULL,
    target_device TEXT NOT NULL,
    sender TEXT NOT NULL,
    sender_device TEXT NOT NULL,
    ts BIGINT NOT NULL,
    body {blob} NOT NULL
);
CREATE INDEX federation_todevice_destination ON federation_todevice (destination, seq)
