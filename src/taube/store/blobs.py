"""Blob metadata: ownership, quota and who may download."""

from __future__ import annotations

from taube.proto.errors import ErrorCode, ProtocolError
from taube.proto.ids import BlobId, UserId
from taube.store.delivery import blob_visible
from taube.store.sql import Tx


async def create_blob(tx: Tx, blob: BlobId, owner: UserId, size: int, now: int, quota: int) -> None:
    row = await tx.fetchone(
        "UPDATE users SET blob_bytes = blob_bytes + ? WHERE user_id = ? AND blob_bytes + ? <= ?"
        " RETURNING blob_bytes",
        size,
        owner,
        size,
        quota,
    )
    if row is None:
        raise ProtocolError(ErrorCode.QUOTA_EXCEEDED, "attachment storage quota exceeded")
    await tx.execute(
        "INSERT INTO blobs (blob, owner, size, created_ms) VALUES (?, ?, ?, ?)",
        blob,
        owner,
        size,
        now,
    )


async def blob_for(tx: Tx, blob: BlobId, user: UserId) -> int | None:
    """The blob's size if ``user`` may download it, else ``None``."""
    row = await tx.fetchone("SELECT owner, size FROM blobs WHERE blob = ?", blob)
    if row is None:
        return None
    if row[0] == user or await blob_visible(tx, blob, user):
        return int(row[1])
    return None


async def all_blob_ids(tx: Tx) -> set[str]:
    return {r[0] for r in await tx.fetchall("SELECT blob FROM blobs")}
