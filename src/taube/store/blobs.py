"""Blob metadata: ownership, quota and who may download."""

from __future__ import annotations

import sqlite3

from taube.proto.errors import ErrorCode, ProtocolError
from taube.proto.ids import BlobId, UserId
from taube.store.delivery import blob_visible


def create_blob(
    conn: sqlite3.Connection, blob: BlobId, owner: UserId, size: int, now: int, quota: int
) -> None:
    row = conn.execute(
        "UPDATE users SET blob_bytes = blob_bytes + ? WHERE user_id = ? AND blob_bytes + ? <= ?"
        " RETURNING blob_bytes",
        (size, owner, size, quota),
    ).fetchone()
    if row is None:
        raise ProtocolError(ErrorCode.QUOTA_EXCEEDED, "attachment storage quota exceeded")
    conn.execute(
        "INSERT INTO blobs (blob, owner, size, created_ms) VALUES (?, ?, ?, ?)",
        (blob, owner, size, now),
    )


def blob_for(conn: sqlite3.Connection, blob: BlobId, user: UserId) -> int | None:
    """The blob's size if ``user`` may download it, else ``None``."""
    row = conn.execute("SELECT owner, size FROM blobs WHERE blob = ?", (blob,)).fetchone()
    if row is None:
        return None
    if row[0] == user or blob_visible(conn, blob, user):
        return int(row[1])
    return None


def all_blob_ids(conn: sqlite3.Connection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT blob FROM blobs")}
