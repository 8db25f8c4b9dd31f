"""What a connector remembers across restarts, in one SQLite file of its own.

The connector's device profile keeps the messages (and its secrets, sealed);
this file keeps what links them to the other network:

- ``handled``: items brought in from the network (by the network's id), so
  that fetching one again after a crash shows nothing twice;
- ``relayed``: taube messages sent out to the network, so that nothing goes
  out twice;
- ``peers``: what the connector knows of the people on the network (for
  e-mail: their Autocrypt state);
- ``aside``: items it would not bring in, with the reason;
- ``tokens``: short-lived secrets of a handshake (e-mail: Secure-Join's
  invite tokens and the invites being joined), each of one ``kind``;
- ``kv``: cursors and settings (an IMAP folder's UIDVALIDITY and last UID).

Every write is committed (``synchronous=FULL``) before the call returns.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import sqlite3
from pathlib import Path

from taube.proto.ids import ConversationId, MessageId

SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS handled (
    network TEXT NOT NULL, remote_id TEXT NOT NULL,
    conversation TEXT NOT NULL, message_id TEXT NOT NULL, at_ms INTEGER NOT NULL,
    PRIMARY KEY (network, remote_id));
CREATE INDEX IF NOT EXISTS handled_by_message ON handled (message_id);
CREATE TABLE IF NOT EXISTS relayed (
    message_id TEXT PRIMARY KEY, network TEXT NOT NULL, remote_id TEXT NOT NULL,
    encrypted INTEGER NOT NULL, at_ms INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS relayed_by_remote ON relayed (network, remote_id);
CREATE TABLE IF NOT EXISTS peers (
    network TEXT NOT NULL, address TEXT NOT NULL, data BLOB NOT NULL,
    PRIMARY KEY (network, address));
CREATE TABLE IF NOT EXISTS aside (
    network TEXT NOT NULL, remote_id TEXT NOT NULL, reason TEXT NOT NULL,
    at_ms INTEGER NOT NULL, PRIMARY KEY (network, remote_id));
CREATE TABLE IF NOT EXISTS tokens (
    network TEXT NOT NULL, kind TEXT NOT NULL, token TEXT NOT NULL,
    data TEXT NOT NULL, at_ms INTEGER NOT NULL, PRIMARY KEY (network, kind, token));
"""


class ConnectorState:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)
        secret = self.get("id-secret")
        if secret is None:
            secret = secrets.token_hex(32)
            self.put("id-secret", secret)
        self._id_secret = bytes.fromhex(secret)

    def close(self) -> None:
        self._db.close()

    def get(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def put(self, key: str, value: str) -> None:
        self._db.execute(
            "INSERT INTO kv VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def message_id_for(self, network: str, remote_id: str) -> MessageId:
        """The taube message id an item from the network gets: the same every
        time (so a retry after a crash is the same message), and unlinkable
        to the network's id for anyone without this connector's secret."""
        digest = hmac.new(
            self._id_secret, f"{network}\0{remote_id}".encode(), hashlib.sha256
        ).digest()
        text = base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode("ascii")
        return MessageId("A" + text[1:] if text.startswith("-") else text)

    # ---------------------------------------------------------------- in

    def handled(self, network: str, remote_id: str) -> MessageId | None:
        row = self._db.execute(
            "SELECT message_id FROM handled WHERE network = ? AND remote_id = ?",
            (network, remote_id),
        ).fetchone()
        return None if row is None else MessageId(row[0])

    def mark_handled(
        self,
        network: str,
        items: list[tuple[str, ConversationId, MessageId]],
        at_ms: int,
    ) -> None:
        """``items``: ``(remote id, conversation, message id)``, durable in taube."""
        with self._db:
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT OR IGNORE INTO handled VALUES (?, ?, ?, ?, ?)",
                [(network, r, c, m, at_ms) for r, c, m in items],
            )

    def put_aside(self, network: str, remote_id: str, reason: str, at_ms: int) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO aside VALUES (?, ?, ?, ?)",
            (network, remote_id, reason[:500], at_ms),
        )

    def aside(self, network: str) -> list[tuple[str, str]]:
        return [
            (str(r), str(why))
            for r, why in self._db.execute(
                "SELECT remote_id, reason FROM aside WHERE network = ? ORDER BY at_ms", (network,)
            )
        ]

    # ---------------------------------------------------------------- out

    def relayed(self, message_id: str) -> bool:
        row = self._db.execute(
            "SELECT 1 FROM relayed WHERE message_id = ?", (message_id,)
        ).fetchone()
        return row is not None

    def mark_relayed(
        self, network: str, message_id: str, remote_id: str, *, encrypted: bool, at_ms: int
    ) -> None:
        self._db.execute(
            "INSERT OR IGNORE INTO relayed VALUES (?, ?, ?, ?, ?)",
            (message_id, network, remote_id, int(encrypted), at_ms),
        )

    def remote_id_of(self, network: str, message_id: str) -> str | None:
        """The network's id of a taube message (sent out, or brought in)."""
        row = self._db.execute(
            "SELECT remote_id FROM relayed WHERE message_id = ? AND network = ?"
            " UNION ALL SELECT remote_id FROM handled WHERE message_id = ? AND network = ?",
            (message_id, network, message_id, network),
        ).fetchone()
        return None if row is None else str(row[0])

    def message_id_of(self, network: str, remote_id: str) -> MessageId | None:
        """The taube message of a network's id (brought in, or sent out)."""
        row = self._db.execute(
            "SELECT message_id FROM handled WHERE network = ? AND remote_id = ?"
            " UNION ALL SELECT message_id FROM relayed WHERE network = ? AND remote_id = ?",
            (network, remote_id, network, remote_id),
        ).fetchone()
        return None if row is None else MessageId(row[0])

    # ---------------------------------------------------------------- peers

    def peer(self, network: str, address: str) -> bytes | None:
        row = self._db.execute(
            "SELECT data FROM peers WHERE network = ? AND address = ?", (network, address.lower())
        ).fetchone()
        return None if row is None else bytes(row[0])

    def put_peer(self, network: str, address: str, data: bytes) -> None:
        self._db.execute(
            "INSERT INTO peers VALUES (?, ?, ?) ON CONFLICT (network, address)"
            " DO UPDATE SET data = excluded.data",
            (network, address.lower(), data),
        )

    # ---------------------------------------------------------------- tokens

    def put_token(self, network: str, kind: str, token: str, data: str, at_ms: int) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO tokens VALUES (?, ?, ?, ?, ?)",
            (network, kind, token, data, at_ms),
        )

    def tokens(self, network: str, kind: str) -> list[tuple[str, str, int]]:
        """Every ``(token, data, at_ms)`` of ``kind``, newest first (the caller
        compares them in constant time: a lookup by token would not be)."""
        return [
            (str(t), str(d), int(at))
            for t, d, at in self._db.execute(
                "SELECT token, data, at_ms FROM tokens WHERE network = ? AND kind = ?"
                " ORDER BY at_ms DESC",
                (network, kind),
            )
        ]

    def drop_token(self, network: str, kind: str, token: str) -> bool:
        """Forget a token; False if it was gone already (used up by someone else)."""
        cursor = self._db.execute(
            "DELETE FROM tokens WHERE network = ? AND kind = ? AND token = ?",
            (network, kind, token),
        )
        return cursor.rowcount == 1
