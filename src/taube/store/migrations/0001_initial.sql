-- Accounts, devices and their tokens (tokens are stored as SHA-256 only).
CREATE TABLE users (
    user_id TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    identity TEXT,
    blob_bytes BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE devices (
    device TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (user_id),
    name TEXT NOT NULL,
    token_hash {blob} NOT NULL UNIQUE,
    created_ms BIGINT NOT NULL,
    last_seen_ms BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL,
    keys TEXT
);
CREATE INDEX devices_user ON devices (user_id);

-- The key directory: one-time keys are handed out once, then deleted.
CREATE TABLE one_time_keys (
    device TEXT NOT NULL,
    key_id TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (device, key_id)
) {without_rowid};

CREATE TABLE fallback_keys (
    device TEXT PRIMARY KEY,
    data TEXT NOT NULL
);

-- Conversations: routing state derived from the signed state chain.
CREATE TABLE conversations (
    conversation TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    seq BIGINT NOT NULL,
    depth BIGINT NOT NULL,
    head TEXT NOT NULL,
    creator TEXT NOT NULL,
    timer_seconds BIGINT NOT NULL DEFAULT 0,
    created_ms BIGINT NOT NULL
);

CREATE TABLE state_events (
    conversation TEXT NOT NULL,
    depth BIGINT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (conversation, depth)
) {without_rowid};

CREATE TABLE members (
    conversation TEXT NOT NULL,
    user_id TEXT NOT NULL,
    role TEXT NOT NULL,
    joined_seq BIGINT NOT NULL,
    PRIMARY KEY (conversation, user_id)
) {without_rowid};
CREATE INDEX members_user ON members (user_id);

-- Each device's acknowledged position in each conversation log. A device
-- whose user left keeps its cursor until it has the leave event (until_seq).
CREATE TABLE cursors (
    device TEXT NOT NULL,
    conversation TEXT NOT NULL,
    seq BIGINT NOT NULL,
    until_seq BIGINT,
    PRIMARY KEY (device, conversation)
) {without_rowid};
CREATE INDEX cursors_conversation ON cursors (conversation, seq);

-- The append-only conversation log: ciphertext until every device has it.
CREATE TABLE log (
    conversation TEXT NOT NULL,
    seq BIGINT NOT NULL,
    kind SMALLINT NOT NULL,
    msg_id TEXT NOT NULL,
    sender TEXT NOT NULL,
    sender_device TEXT NOT NULL,
    ts BIGINT NOT NULL,
    body {blob} NOT NULL,
    blobs TEXT,
    expires_ms BIGINT,
    PRIMARY KEY (conversation, seq)
);
CREATE INDEX log_ts ON log (ts);
CREATE INDEX log_expires ON log (expires_ms) WHERE expires_ms IS NOT NULL;

-- Sends already stored, so a retry is answered with the first seq even
-- after the entry itself was delivered and deleted.
CREATE TABLE sent (
    device TEXT NOT NULL,
    msg_id TEXT NOT NULL,
    conversation TEXT NOT NULL,
    seq BIGINT NOT NULL,
    ts BIGINT NOT NULL,
    PRIMARY KEY (device, msg_id)
) {without_rowid};
CREATE INDEX sent_ts ON sent (ts);

-- Per-device queues: to-device messages (kind 0) and key-change notices (kind 1).
CREATE TABLE device_queue (
    seq {serial},
    device TEXT NOT NULL,
    kind SMALLINT NOT NULL,
    sender TEXT NOT NULL,
    sender_device TEXT NOT NULL,
    ts BIGINT NOT NULL,
    body {blob} NOT NULL
);
CREATE INDEX device_queue_device ON device_queue (device, seq);
CREATE INDEX device_queue_ts ON device_queue (ts);

-- Encrypted attachments; refs counts the log entries that name a blob.
CREATE TABLE blobs (
    blob TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    size BIGINT NOT NULL,
    created_ms BIGINT NOT NULL,
    refs BIGINT NOT NULL DEFAULT 0,
    attached SMALLINT NOT NULL DEFAULT 0
);
CREATE INDEX blobs_owner ON blobs (owner);

CREATE TABLE blob_refs (
    conversation TEXT NOT NULL,
    seq BIGINT NOT NULL,
    blob TEXT NOT NULL,
    PRIMARY KEY (conversation, seq, blob)
) {without_rowid};
CREATE INDEX blob_refs_blob ON blob_refs (blob)
