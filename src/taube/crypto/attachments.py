"""Attachments: files encrypted on the client under a fresh key per file.

The key and the SHA-256 of the ciphertext travel inside the (Megolm-
encrypted) message that refers to the blob; the server stores an opaque blob
(DESIGN §5).

Cipher: **AES-256-GCM in 64 KiB chunks, the STREAM construction** (as in
age and Tink's streaming AEAD): chunk ``i`` is sealed with the nonce
``i`` (11 bytes, big-endian) ``|| last`` (one byte, 1 for the final chunk,
else 0) and the associated data ``taube.attachment.v1``. A fresh random key
per file makes counter nonces safe. Why not AES-CTR + HMAC (Matrix's
attachment format)? With the hash of the ciphertext checked first both are
tamper-proof, but chunked GCM also authenticates *each chunk before it is
released*, so a file changed on disk between the hash check and the
decryption (or a caller that streams a video without the hash) still never
yields forged plaintext, and truncation or reordering is caught by the
nonce. It costs 16 bytes per 64 KiB.

Streaming: both directions handle one chunk at a time from a binary file
object or an (async) iterator of byte strings of any size, so a large file
is never held in memory.

Decryption is **fail-closed**: it hashes the whole ciphertext and compares
with the expected SHA-256 *before* decrypting anything. A source that cannot
be read twice (not seekable, or an async stream) is spooled to an anonymous
temporary file first; only ciphertext is ever written there.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import secrets
import tempfile
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from pathlib import Path
from typing import IO, Final, Protocol, runtime_checkable

import msgspec
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from taube.crypto.errors import BadPayload, DecryptionFailed
from taube.proto.errors import ProtocolError
from taube.proto.signing import b64decode, b64encode

ALGORITHM: Final = "taube.attachment.v1"
CHUNK_SIZE: Final = 64 * 1024
TAG_SIZE: Final = 16
KEY_SIZE: Final = 32
_AAD: Final = b"taube.attachment.v1"
_MAX_CHUNKS: Final = 1 << 88


class AttachmentKey(msgspec.Struct, kw_only=True):
    """What a message carries about an encrypted blob (never send it in clear)."""

    algorithm: str = ALGORITHM
    #: the 256-bit file key, unpadded base64
    key: str
    #: SHA-256 of the whole ciphertext, unpadded base64
    sha256: str

    def __repr__(self) -> str:
        return f"AttachmentKey(algorithm={self.algorithm!r}, key='****', sha256={self.sha256!r})"

    def raw(self) -> tuple[bytes, bytes]:
        """``(key, sha256)`` as bytes; ``BadPayload`` if malformed."""
        if self.algorithm != ALGORITHM:
            raise BadPayload(f"unknown attachment algorithm {self.algorithm!r}")
        try:
            key, digest = b64decode(self.key), b64decode(self.sha256)
        except ProtocolError as exc:
            raise BadPayload("malformed attachment key") from exc
        if len(key) != KEY_SIZE or len(digest) != hashlib.sha256().digest_size:
            raise BadPayload("malformed attachment key")
        return key, digest


def _nonce(counter: int, last: bool) -> bytes:
    if counter >= _MAX_CHUNKS:
        raise ValueError("attachment too large")
    return counter.to_bytes(11, "big") + (b"\x01" if last else b"\x00")


class _Rechunker:
    """Cuts pieces of any size into ``size``-byte chunks, holding one back so
    that the final chunk is known to be final."""

    __slots__ = ("_buffer", "_size")

    def __init__(self, size: int) -> None:
        self._size = size
        self._buffer = bytearray()

    def feed(self, piece: bytes) -> list[bytes]:
        self._buffer += piece
        chunks: list[bytes] = []
        start = 0
        while len(self._buffer) - start > self._size:  # more follows: not the last
            chunks.append(bytes(self._buffer[start : start + self._size]))
            start += self._size
        del self._buffer[:start]
        return chunks

    def finish(self) -> bytes:
        last = bytes(self._buffer)
        self._buffer.clear()
        return last


@runtime_checkable
class Readable(Protocol):
    """A binary file object, as far as encryption needs one."""

    def read(self, size: int = -1, /) -> bytes: ...


def _read_pieces(source: Readable | Iterable[bytes]) -> Iterable[bytes]:
    if isinstance(source, bytes | bytearray | memoryview):
        return [bytes(source)]
    if isinstance(source, Readable):
        return iter(lambda: source.read(CHUNK_SIZE), b"")
    return source


# ==================================================================== encryption


class AttachmentEncryptor:
    """Encrypts one file, chunk by chunk, under a fresh random key.

    ::

        encryptor = AttachmentEncryptor()
        for chunk in encryptor.encrypt(open(path, "rb")):
            upload(chunk)
        key = encryptor.result()   # AttachmentKey: key + SHA-256 of the ciphertext

    Encryption is deterministic for a given key, so a failed upload can be
    retried by encrypting again with ``AttachmentEncryptor(key=...)``.
    """

    __slots__ = ("_aead", "_counter", "_done", "_hash", "_key", "_started")

    def __init__(self, key: bytes | None = None) -> None:
        self._key = secrets.token_bytes(KEY_SIZE) if key is None else key
        if len(self._key) != KEY_SIZE:
            raise ValueError("an attachment key is 32 bytes")
        self._aead = AESGCM(self._key)
        self._hash = hashlib.sha256()
        self._counter = 0
        self._started = False
        self._done = False

    def __repr__(self) -> str:
        return f"AttachmentEncryptor(chunks={self._counter}, done={self._done})"

    @property
    def key(self) -> bytes:
        return self._key

    def _begin(self) -> None:
        if self._started:
            raise RuntimeError("an AttachmentEncryptor encrypts one file")
        self._started = True

    def _seal(self, chunk: bytes, last: bool) -> bytes:
        sealed = self._aead.encrypt(_nonce(self._counter, last), chunk, _AAD)
        self._counter += 1
        self._hash.update(sealed)
        self._done = last
        return sealed

    def encrypt(self, source: Readable | Iterable[bytes]) -> Iterator[bytes]:
        """The ciphertext of a binary file object or an iterable of bytes."""
        self._begin()
        rechunker = _Rechunker(CHUNK_SIZE)
        for piece in _read_pieces(source):
            for chunk in rechunker.feed(piece):
                yield self._seal(chunk, last=False)
        yield self._seal(rechunker.finish(), last=True)

    async def aencrypt(self, source: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
        """The ciphertext of an async iterable of bytes."""
        self._begin()
        rechunker = _Rechunker(CHUNK_SIZE)
        async for piece in source:
            for chunk in rechunker.feed(piece):
                yield self._seal(chunk, last=False)
        yield self._seal(rechunker.finish(), last=True)

    def result(self) -> AttachmentKey:
        """The key material, once the whole ciphertext has been produced."""
        if not self._done:
            raise RuntimeError("the ciphertext has not been read to the end")
        return AttachmentKey(key=b64encode(self._key), sha256=b64encode(self._hash.digest()))


def encrypt_file(source: Readable, destination: IO[bytes]) -> AttachmentKey:
    """Encrypt ``source`` into ``destination``; the key material."""
    encryptor = AttachmentEncryptor()
    for chunk in encryptor.encrypt(source):
        destination.write(chunk)
    return encryptor.result()


# ==================================================================== decryption


class _Opener:
    __slots__ = ("_aead", "_counter")

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)
        self._counter = 0

    def open(self, chunk: bytes, last: bool) -> bytes:
        if len(chunk) < TAG_SIZE:
            raise DecryptionFailed("the attachment is cut short")
        try:
            plaintext = self._aead.decrypt(_nonce(self._counter, last), chunk, _AAD)
        except InvalidTag as exc:
            raise DecryptionFailed("the attachment was changed") from exc
        self._counter += 1
        return plaintext


def _check_digest(actual: bytes, expected: bytes) -> None:
    if not hmac.compare_digest(actual, expected):
        raise DecryptionFailed("the attachment's SHA-256 does not match")


def _decrypt_from(reader: IO[bytes], key: bytes, close: bool) -> Iterator[bytes]:
    opener = _Opener(key)
    rechunker = _Rechunker(CHUNK_SIZE + TAG_SIZE)
    try:
        for piece in iter(lambda: reader.read(CHUNK_SIZE + TAG_SIZE), b""):
            for chunk in rechunker.feed(piece):
                yield opener.open(chunk, last=False)
        yield opener.open(rechunker.finish(), last=True)
    finally:
        if close:
            reader.close()


def decrypt_attachment(source: IO[bytes], key: AttachmentKey) -> Iterator[bytes]:
    """Check the ciphertext's SHA-256, then return an iterator of plaintext.

    Raises ``DecryptionFailed`` *here*, before any plaintext exists, if the
    hash does not match. A seekable ``source`` is read twice (from its
    current position); any other is spooled to a temporary file. Each chunk
    is authenticated again as it is decrypted, so the iterator can still
    raise ``DecryptionFailed`` if the source changed in between: treat that
    as a failed download and discard what was written.
    """
    file_key, expected = key.raw()
    digest = hashlib.sha256()
    if source.seekable():
        start = source.tell()
        for piece in iter(lambda: source.read(CHUNK_SIZE + TAG_SIZE), b""):
            digest.update(piece)
        _check_digest(digest.digest(), expected)
        source.seek(start)
        return _decrypt_from(source, file_key, close=False)
    spool = tempfile.TemporaryFile()  # noqa: SIM115 (closed by the generator)
    try:
        for piece in iter(lambda: source.read(CHUNK_SIZE + TAG_SIZE), b""):
            digest.update(piece)
            spool.write(piece)
        _check_digest(digest.digest(), expected)
        spool.seek(0)
    except BaseException:
        spool.close()
        raise
    return _decrypt_from(spool, file_key, close=True)


async def adecrypt_attachment(
    source: AsyncIterable[bytes], key: AttachmentKey
) -> AsyncIterator[bytes]:
    """Spool and check an async ciphertext stream, then decrypt it.

    ``async for chunk in await adecrypt_attachment(stream, key)``: the
    ``await`` reads the whole stream to an anonymous temporary file (file
    I/O in a worker thread) and raises ``DecryptionFailed`` on a hash
    mismatch, before any plaintext exists.
    """
    file_key, expected = key.raw()
    digest = hashlib.sha256()
    spool = await asyncio.to_thread(tempfile.TemporaryFile)
    try:
        async for piece in source:
            digest.update(piece)
            await asyncio.to_thread(spool.write, piece)
        _check_digest(digest.digest(), expected)
        await asyncio.to_thread(spool.seek, 0)
    except BaseException:
        spool.close()
        raise
    return _adecrypt_spool(spool, file_key)


async def _adecrypt_spool(spool: IO[bytes], key: bytes) -> AsyncIterator[bytes]:
    opener = _Opener(key)
    rechunker = _Rechunker(CHUNK_SIZE + TAG_SIZE)
    try:
        while piece := await asyncio.to_thread(spool.read, CHUNK_SIZE + TAG_SIZE):
            for chunk in rechunker.feed(piece):
                yield opener.open(chunk, last=False)
        yield opener.open(rechunker.finish(), last=True)
    finally:
        spool.close()


def decrypt_to_path(source: IO[bytes], key: AttachmentKey, path: Path) -> int:
    """Decrypt into ``path``, which appears only if everything checked out.

    The plaintext goes to ``<path>.part`` (created new, mode 0600) and is
    renamed into place at the end; on any failure the partial file is
    removed. Returns the plaintext size.
    """
    partial = path.with_name(path.name + ".part")
    size = 0
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as out:
            for chunk in decrypt_attachment(source, key):
                out.write(chunk)
                size += len(chunk)
        partial.replace(path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return size
