"""Encrypted attachment bytes in a directory: written whole, synced, renamed."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

from taube.proto.ids import BlobId
from taube.store.blobstore import CHUNK_BYTES, too_large


class BlobFiles:
    """``root/ab/abcdef...``: one file per blob, named by its random id.

    Only one node may use a directory: files without a row are removed at
    start (``Store.remove_orphan_files``), which would also remove another
    node's upload in flight.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.tmp = root / "tmp"

    async def prepare(self) -> None:
        await asyncio.to_thread(self._prepare)

    def _prepare(self) -> None:
        self.tmp.mkdir(parents=True, exist_ok=True)
        for leftover in self.tmp.iterdir():  # uploads cut off by a crash
            leftover.unlink(missing_ok=True)

    def path(self, blob: BlobId) -> Path:
        return self.root / blob[:2] / blob

    def file(self, blob: BlobId) -> Path:
        return self.path(blob)

    def write_from(self, chunks: list[bytes], tmp: Path) -> None:
        with tmp.open("ab") as file:
            for chunk in chunks:
                file.write(chunk)

    async def receive(
        self, blob: BlobId, stream: AsyncIterator[bytes], limit: int, now: int
    ) -> int:
        """Write ``stream`` to a temporary file, sync it, rename it into place.

        Refuses more than ``limit`` bytes. The file is in place before the
        caller commits its row: a crash in between leaves an orphan file
        (removed at the next start), never a row without its file.
        """
        tmp = self.tmp / f"{blob}.{secrets.token_hex(4)}"
        size = 0
        pending: list[bytes] = []
        pending_size = 0
        try:
            async for chunk in stream:
                size += len(chunk)
                if size > limit:
                    raise too_large(limit)
                pending.append(chunk)
                pending_size += len(chunk)
                if pending_size >= 1 << 20:
                    await asyncio.to_thread(self.write_from, pending, tmp)
                    pending, pending_size = [], 0
            await asyncio.to_thread(self._finish, pending, tmp)
            await asyncio.to_thread(self._commit, blob, tmp)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return size

    def _finish(self, chunks: list[bytes], tmp: Path) -> None:
        self.write_from(chunks, tmp)
        with tmp.open("rb") as file:
            os.fsync(file.fileno())

    def _commit(self, blob: BlobId, tmp: Path) -> None:
        target = self.path(blob)
        target.parent.mkdir(exist_ok=True)
        tmp.rename(target)
        fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    async def chunks(self, blob: BlobId) -> AsyncIterator[bytes]:
        try:
            file = await asyncio.to_thread(self.path(blob).open, "rb")
        except FileNotFoundError:
            return
        try:
            while chunk := await asyncio.to_thread(file.read, CHUNK_BYTES):
                yield chunk
        finally:
            file.close()

    async def exists(self, blob: BlobId) -> bool:
        return await asyncio.to_thread(self.path(blob).exists)

    async def delete(self, blobs: list[BlobId]) -> None:
        await asyncio.to_thread(self.delete_now, blobs)

    def delete_now(self, blobs: list[BlobId]) -> None:
        for blob in blobs:
            self.path(blob).unlink(missing_ok=True)

    async def sweep(self, now: int) -> int:
        """Nothing: orphan files are removed at start, when no upload is running."""
        return 0

    def all_ids(self) -> set[str]:
        return {
            file.name
            for folder in self.root.iterdir()
            if folder.is_dir() and folder != self.tmp
            for file in folder.iterdir()
        }
