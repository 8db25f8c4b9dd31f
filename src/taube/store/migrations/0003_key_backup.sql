-- The user's identity key, sealed on a device with a key derived from the
-- recovery code (argon2id): opaque to the server.
ALTER TABLE users ADD COLUMN key_backup {blob}
