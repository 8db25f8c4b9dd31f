-- Invite links (issue 20): the server keeps only the SHA-256 of an invite's
-- id (the id is derived from a secret that only the link carries), so it can
-- expire, revoke and use up an invite, but not make or verify one.
CREATE TABLE invites (
    id_hash {blob} PRIMARY KEY,
    user_id TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL,
    revoked_ms BIGINT,
    used_by TEXT,
    used_ms BIGINT
);
CREATE INDEX invites_user ON invites (user_id);

-- Who may see the user's presence: 'everyone', 'contacts' (people with a
-- direct chat with the user) or 'nobody'.
ALTER TABLE users ADD COLUMN presence TEXT NOT NULL DEFAULT 'contacts';

-- The name others find the user by; NULL: not in the directory (the default).
ALTER TABLE users ADD COLUMN directory_name TEXT;
CREATE INDEX users_directory ON users (directory_name)
