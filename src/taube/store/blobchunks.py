"""Encrypted attachment bytes in the database, in chunks: shared by every node.

With several ``taube serve`` nodes on one PostgreSQL database, a blob
uploaded through one node must be downloadable through any other, and
deleted by whichever node prunes its last reference. So the bytes live in
the ``blob_chunks`` table beside the rows that govern them
(``storage.blobs = "database"``). It works on SQLite too, which keeps the
store contract tests one suite.

Uploads are written a chunk at a time as they arrive (memory stays at one
chunk per upload), each chunk in a short transaction of its own outside the
group commit (``Engine.write_apart``); the blob's row, committed by the
caller afterwards, makes them durable and visible. Downloads read a chunk at
a time. The same size limit, quota and reference rules apply as for files:
only the place of the bytes differs.

Chunks without a row (an upload cut off by a crash, or a crash between
freeing a row and deleting its chunks) are deleted by the retention sweep
once their upload began more than ``ORPHAN_AGE_MS`` ago: any node may run
the sweep while others are receiving uploads, so age is what tells a dead
upload from a running one.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from taube.proto.ids import BlobId
from taube.store.blobstore import CHUNK_BYTES, too_large
from taube.store.sql import Engine, Tx

#: chunks without a row are removed once their upload began this long ago
ORPHAN_AGE_MS = 86_400_000

#: orphaned blobs removed per sweep job (the next sweep takes the rest)
ORPHAN_BATCH = 500


async def write_chunk(tx: Tx, blob: BlobId, part: int, data: bytes, now: int) -> None:
    await tx.execute(
        "INSERT INTO blob_chunks (blob, part, written_ms, data) VALUES (?, ?, ?, ?)",
        blob,
        part,
        now,
        data,
    )


async def read_chunk(tx: Tx, blob: BlobId, part: int) -> bytes | None:
    row = await tx.fetchone("SELECT data FROM blob_chunks WHERE blob = ? AND part = ?", blob, part)
    return None if row is None else bytes(row[0])


async def has_chunks(tx: Tx, blob: BlobId) -> bool:
    row = await tx.fetchone("SELECT 1 FROM blob_chunks WHERE blob = ? AND part = 0", blob)
    return row is not None


async def delete_chunks(tx: Tx, blobs: list[BlobId]) -> None:
    await tx.executemany("DELETE FROM blob_chunks WHERE blob = ?", [(blob,) for blob in blobs])


async def delete_orphans(tx: Tx, begun_before: int) -> int:
    """Delete the chunks of uploads begun before then that have no row."""
    rows = await tx.fetchall(
        "SELECT c.blob FROM blob_chunks c WHERE c.part = 0 AND c.written_ms < ?"
        " AND NOT EXISTS (SELECT 1 FROM blobs b WHERE b.blob = c.blob) LIMIT ?",
        begun_before,
        ORPHAN_BATCH,
    )
    await delete_chunks(tx, [BlobId(r[0]) for r in rows])
    return len(rows)


class BlobChunks:
    """``BlobStore`` on the engine's own database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def prepare(self) -> None:
        """Nothing: other nodes may be receiving uploads (see ``sweep``)."""

    def file(self, blob: BlobId) -> None:
        return None

    async def receive(
        self, blob: BlobId, stream: AsyncIterator[bytes], limit: int, now: int
    ) -> int:
        size = 0
        part = 0
        pending = bytearray()
        try:
            async for data in stream:
                size += len(data)
                if size > limit:
                    raise too_large(limit)
                pending += data
                while len(pending) >= CHUNK_BYTES:
                    chunk = bytes(pending[:CHUNK_BYTES])
                    del pending[:CHUNK_BYTES]
                    await self.engine.write_apart(write_chunk, blob, part, chunk, now)
                    part += 1
            if pending or part == 0:  # an empty blob still has its (empty) first chunk
                await self.engine.write_apart(write_chunk, blob, part, bytes(pending), now)
        except BaseException:
            # What was written goes again; failing that, the sweep takes it.
            with contextlib.suppress(Exception):
                await self.delete([blob])
            raise
        return size

    async def chunks(self, blob: BlobId) -> AsyncIterator[bytes]:
        part = 0
        while (data := await self.engine.read(read_chunk, blob, part)) is not None:
            yield data
            part += 1

    async def exists(self, blob: BlobId) -> bool:
        return await self.engine.read(has_chunks, blob)

    async def delete(self, blobs: list[BlobId]) -> None:
        if blobs:
            await self.engine.write_apart(delete_chunks, blobs)

    async def sweep(self, now: int) -> int:
        removed = 0
        while count := await self.engine.write_apart(delete_orphans, now - ORPHAN_AGE_MS):
            removed += count
            if count < ORPHAN_BATCH:
                break
        return removed
