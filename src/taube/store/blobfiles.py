"""Encrypted attachment bytes in a directory: written whole, synced, renamed."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

from taube.proto.errors import ErrorCode, ProtocolError
from taube.proto.ids import BlobId


class BlobFiles:
    """``root/ab/abcdef...``: one file per blob, named by its random id."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.tmp = root / "tmp"

    def prepare(self) -> None:
        self.tmp.mkdir(parents=True, exist_ok=True)
        for leftover in self.tmp.iterdir():  # uploads cut off by a crash
            leftover.unlink(missing_ok=True)

    def path(self, blob: BlobId) -> Path:
        return self.root / blob[:2] / blob

    def write_from(self, chunks: list[bytes], tmp: Path) -> None:
        with tmp.open("ab") as file:
            for chunk in chunks:
                file.write(chunk)

    async def receive(
        self, blob: BlobId, stream: AsyncIterator[bytes], limit: int
    ) -> tuple[Path, int]:
        """Write ``stream`` to a temporary file; refuse more than ``limit`` bytes.

        Returns the temporary path and the size; ``commit`` moves it in place.
        """
        tmp = self.tmp / f"{blob}.{secrets.token_hex(4)}"
        size = 0
        pending: list[bytes] = []
        pending_size = 0
        try:
            async for chunk in stream:
                size += len(chunk)
                if size > limit:
                    raise ProtocolError(
                        ErrorCode.PAYLOAD_TOO_LARGE, f"an attachment is at most {limit} bytes"
                    )
                pending.append(chunk)
                pending_size += len(chunk)
                if pending_size >= 1 << 20:
                    await asyncio.to_thread(self.write_from, pending, tmp)
                    pending, pending_size = [], 0
            await asyncio.to_thread(self._finish, pending, tmp)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return tmp, size

    def _finish(self, chunks: list[bytes], tmp: Path) -> None:
        self.write_from(chunks, tmp)
        with tmp.open("rb") as file:
            os.fsync(file.fileno())

    def commit(self, blob: BlobId, tmp: Path) -> None:
        target = self.path(blob)
        target.parent.mkdir(exist_ok=True)
        tmp.rename(target)
        fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def delete(self, blobs: list[BlobId]) -> None:
        for blob in blobs:
            self.path(blob).unlink(missing_ok=True)

    def all_ids(self) -> set[str]:
        return {
            file.name
            for folder in self.root.iterdir()
            if folder.is_dir() and folder != self.tmp
            for file in folder.iterdir()
        }
