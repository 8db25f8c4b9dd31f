"""Where attachment bytes live: the one small interface of both blob stores.

Blob *rows* (owner, size, references) are always in the database; a blob
store keeps only the opaque bytes, under the blob's random id. An upload is
written in full (``receive``) before its row is committed, so a crash in
between leaves bytes without a row, which the store removes later, never a
row without bytes.

- ``BlobFiles``: a directory, one file per blob (the default; one node).
- ``BlobChunks``: chunks in the database itself, so every node serving the
  same PostgreSQL database sees every blob (``storage.blobs = "database"``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Literal, Protocol

from taube.proto.errors import ErrorCode, ProtocolError
from taube.proto.ids import BlobId

#: ``storage.blobs``: which store holds the bytes
BlobStoreKind = Literal["directory", "database"]

#: bytes read or written at a time
CHUNK_BYTES = 256 << 10


class BlobStore(Protocol):
    async def prepare(self) -> None:
        """At start: remove what uploads cut off by a crash left behind."""

    async def receive(
        self, blob: BlobId, stream: AsyncIterator[bytes], limit: int, now: int
    ) -> int:
        """Store ``stream`` under ``blob``, durable once the blob's row is committed.

        Refuses more than ``limit`` bytes (``payload_too_large``), leaving
        nothing behind; returns the size.
        """

    def file(self, blob: BlobId) -> Path | None:
        """The blob's file, where it is one (the server can send it as is)."""

    def chunks(self, blob: BlobId) -> AsyncIterator[bytes]:
        """The blob's bytes, a chunk at a time; nothing if it is gone."""

    async def exists(self, blob: BlobId) -> bool: ...

    async def delete(self, blobs: list[BlobId]) -> None:
        """Remove the bytes of blobs whose rows are gone (missing ones are fine)."""

    async def sweep(self, now: int) -> int:
        """Remove bytes left without a row; returns how many blobs' bytes went."""


def too_large(limit: int) -> ProtocolError:
    return ProtocolError(ErrorCode.PAYLOAD_TOO_LARGE, f"an attachment is at most {limit} bytes")
