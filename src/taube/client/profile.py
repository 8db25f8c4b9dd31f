"""The client's profile directory: a local SQLite database and its key.

Secrets at rest (the identity key, the device token, the Olm and Megolm
state) are sealed with AES-256-GCM under a 32-byte *profile key*. Where the
key lives, in this order:

1. a passphrase given by the user (``TAUBE_PASSPHRASE`` or the
   ``passphrase`` argument): the key is derived with argon2id (salt in the
   profile), and nothing else is stored;
2. the OS keyring, if the optional ``keyring`` package and a backend are
   there;
3. else a file ``profile.key`` (mode 0600) beside the database: it protects
   against a copied database, not against someone who can read the profile.

Message plaintext (what the user reads) is kept in the database without
extra sealing, like the message history of any messenger; disappearing
messages are deleted from it when their timer runs out.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from argon2.low_level import Type, hash_secret_raw
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from taube.client.errors import ClientError
from taube.client.search import SearchIndex

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS conversations (
    conversation TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    events BLOB NOT NULL,
    updated_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS messages (
    conversation TEXT NOT NULL,
    id TEXT NOT NULL,
    seq INTEGER,
    sender TEXT NOT NULL,
    sender_device TEXT NOT NULL,
    ts INTEGER NOT NULL,
    type TEXT NOT NULL,
    content BLOB NOT NULL,
    status TEXT NOT NULL,
    expires_ms INTEGER,
    session TEXT,
    PRIMARY KEY (conversation, id)
);
CREATE INDEX IF NOT EXISTS messages_order ON messages (conversation, seq);
CREATE INDEX IF NOT EXISTS messages_expiry ON messages (expires_ms) WHERE expires_ms IS NOT NULL;
CREATE TABLE IF NOT EXISTS undecrypted (
    conversation TEXT NOT NULL,
    seq INTEGER NOT NULL,
    session_id TEXT NOT NULL,
    frame BLOB NOT NULL,
    sender_device TEXT NOT NULL DEFAULT '',
    stored_ms INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (conversation, seq)
);
CREATE TABLE IF NOT EXISTS outbox (
    id TEXT PRIMARY KEY,
    conversation TEXT NOT NULL,
    payload BLOB NOT NULL,
    created_ms INTEGER NOT NULL,
    expire_ms INTEGER
);
CREATE TABLE IF NOT EXISTS profiles (
    user_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    avatar TEXT,
    ts INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS identities (
    user_id TEXT PRIMARY KEY,
    identity_key TEXT NOT NULL,
    verified INTEGER NOT NULL DEFAULT 0,
    changed INTEGER NOT NULL DEFAULT 0
);
"""


def _seal(key: bytes, data: bytes) -> bytes:
    nonce = os.urandom(12)
    return nonce + AESGCM(key).encrypt(nonce, data, b"taube.profile.v1")


def _unseal(key: bytes, data: bytes) -> bytes:
    try:
        return AESGCM(key).decrypt(data[:12], data[12:], b"taube.profile.v1")
    except InvalidTag:
        raise ClientError(
            "the profile key does not open this profile (wrong passphrase?)"
        ) from None


def profile_key(directory: Path, passphrase: str | None) -> bytes:
    """The profile key, from the passphrase, the keyring or the key file."""
    if passphrase:
        salt_file = directory / "profile.salt"
        if not salt_file.exists():
            salt_file.write_bytes(secrets.token_bytes(16))
        return hash_secret_raw(
            passphrase.encode(),
            salt_file.read_bytes(),
            time_cost=3,
            memory_cost=65536,
            parallelism=1,
            hash_len=32,
            type=Type.ID,
        )
    key = _keyring_key(directory)
    if key is not None:
        return key
    key_file = directory / "profile.key"
    if not key_file.exists():
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as file:
            file.write(secrets.token_bytes(32))
    return key_file.read_bytes()


def _keyring_key(directory: Path) -> bytes | None:
    try:
        import keyring  # type: ignore[import-not-found]  # optional
        from keyring.errors import KeyringError  # type: ignore[import-not-found]
    except ImportError:
        return None
    name = str(directory.resolve())
    try:
        stored = keyring.get_password("taube", name)
        if stored is None:
            stored = secrets.token_hex(32)
            keyring.set_password("taube", name, stored)
    except (KeyringError, RuntimeError) as exc:
        log.info("no usable keyring (%s); using the key file", type(exc).__name__)
        return None
    return bytes.fromhex(str(stored))


class Profile:
    """The local database; every call is quick, and the SDK runs them on one
    worker thread so the event loop never waits on the disk."""

    def __init__(self, directory: Path, passphrase: str | None = None) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.key = profile_key(directory, passphrase)
        self.db = sqlite3.connect(
            directory / "taube-client.db", isolation_level=None, check_same_thread=False
        )
        self.db.execute("PRAGMA journal_mode = WAL")
        self.db.execute("PRAGMA synchronous = FULL")
        self.db.execute("PRAGMA secure_delete = ON")
        self.db.executescript(SCHEMA)
        self._upgrade_search()
        self._upgrade_undecrypted()
        check = self.get_raw("keycheck")
        if check is None:
            self.put_raw("keycheck", _seal(self.key, b"taube"))
        else:
            _unseal(self.key, check)

    def _upgrade_search(self) -> None:
        """The search index (``taube.client.search``); a profile from before
        it had ``messages_fts``, which did not follow edits and deletes: its
        messages are indexed again, and it goes."""
        index = SearchIndex(self)
        index.create()
        old = self.db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'messages_fts'"
        ).fetchone()
        if old is not None:
            with self.transaction():
                index.rebuild()
                self.db.execute("DROP TABLE messages_fts")

    def _upgrade_undecrypted(self) -> None:
        """The table of messages waiting for their keys (``taube.client.waiting``)
        from a profile before its bounds: what it held starts waiting now."""
        columns = {row[1] for row in self.db.execute("PRAGMA table_info(undecrypted)")}
        if "stored_ms" not in columns:
            with self.transaction():
                self.db.execute(
                    "ALTER TABLE undecrypted ADD COLUMN sender_device TEXT NOT NULL DEFAULT ''"
                )
                self.db.execute(
                    "ALTER TABLE undecrypted ADD COLUMN stored_ms INTEGER NOT NULL DEFAULT 0"
                )
                self.db.execute("UPDATE undecrypted SET stored_ms = ?", (int(time.time() * 1000),))
        self.db.executescript(
            "CREATE INDEX IF NOT EXISTS undecrypted_session ON undecrypted (session_id);"
            "CREATE INDEX IF NOT EXISTS undecrypted_device ON undecrypted (sender_device);"
            "CREATE INDEX IF NOT EXISTS undecrypted_stored ON undecrypted (stored_ms);"
        )

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self.db.close()

    # key/value, plain and sealed
    def get_raw(self, key: str) -> bytes | None:
        row = self.db.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        return None if row is None else bytes(row[0])

    def put_raw(self, key: str, value: bytes) -> None:
        self.db.execute(
            "INSERT INTO kv VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def get_secret(self, key: str) -> bytes | None:
        value = self.get_raw(key)
        return None if value is None else _unseal(self.key, value)

    def put_secret(self, key: str, value: bytes) -> None:
        self.put_raw(key, _seal(self.key, value))

    def names(self, prefix: str) -> list[str]:
        """The keys that start with ``prefix``."""
        return [
            str(r[0])
            for r in self.db.execute(
                "SELECT key FROM kv WHERE substr(key, 1, ?) = ? ORDER BY key",
                (len(prefix), prefix),
            )
        ]

    def get_text(self, key: str) -> str | None:
        value = self.get_raw(key)
        return None if value is None else value.decode()

    def put_text(self, key: str, value: str) -> None:
        self.put_raw(key, value.encode())

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        return self.db.execute(sql, args)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """All or nothing; nested uses join the outermost transaction."""
        if self.db.in_transaction:
            yield
            return
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")
