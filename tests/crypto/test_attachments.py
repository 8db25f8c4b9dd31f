"""Attachments: streaming chunked AES-256-GCM, hash checked before any plaintext."""

from __future__ import annotations

import hashlib
import io
import itertools
import os
import tempfile
import tracemalloc
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from taube.crypto import (
    AttachmentEncryptor,
    AttachmentKey,
    BadPayload,
    DecryptionFailed,
    adecrypt_attachment,
    decrypt_attachment,
    decrypt_to_path,
    encrypt_file,
)
from taube.crypto.attachments import CHUNK_SIZE, TAG_SIZE
from taube.proto.signing import b64decode, b64encode

SIZES = [0, 1, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 3 * CHUNK_SIZE, 3 * CHUNK_SIZE + 17]


class OneWay(io.BytesIO):
    """A stream that cannot seek (like a socket or a pipe) and reads short."""

    def seekable(self) -> bool:
        return False

    def read(self, size: int | None = -1, /) -> bytes:
        return super().read(1000 if size is None or size < 0 else min(size, 1000))


def encrypt(data: bytes) -> tuple[bytes, AttachmentKey]:
    encryptor = AttachmentEncryptor()
    ciphertext = b"".join(encryptor.encrypt(io.BytesIO(data)))
    return ciphertext, encryptor.result()


def decrypt(ciphertext: bytes, key: AttachmentKey) -> bytes:
    return b"".join(decrypt_attachment(io.BytesIO(ciphertext), key))


def chunks_of(ciphertext: bytes) -> list[bytes]:
    size = CHUNK_SIZE + TAG_SIZE
    return [ciphertext[i : i + size] for i in range(0, len(ciphertext), size)]


def rehash(key: AttachmentKey, ciphertext: bytes) -> AttachmentKey:
    """The key material a sender would give for ``ciphertext`` (hash matches)."""
    return msgspec.structs.replace(key, sha256=b64encode(hashlib.sha256(ciphertext).digest()))


@pytest.mark.parametrize("size", SIZES)
def test_round_trip(size: int) -> None:
    data = os.urandom(size)
    ciphertext, key = encrypt(data)
    chunks = max(1, -(-size // CHUNK_SIZE))
    assert len(ciphertext) == size + chunks * TAG_SIZE
    assert b64decode(key.sha256) == hashlib.sha256(ciphertext).digest()
    assert len(b64decode(key.key)) == 32
    assert decrypt(ciphertext, key) == data
    assert b"".join(decrypt_attachment(OneWay(ciphertext), key)) == data


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.binary(max_size=3 * CHUNK_SIZE + 100),
    cuts=st.lists(st.integers(0, 3 * CHUNK_SIZE + 100), max_size=8),
)
def test_any_piece_sizes_give_the_same_ciphertext(data: bytes, cuts: list[int]) -> None:
    bounds = sorted({0, len(data), *(c for c in cuts if c <= len(data))})
    pieces = [data[a:b] for a, b in itertools.pairwise(bounds)]
    first = AttachmentEncryptor()
    whole = b"".join(first.encrypt(io.BytesIO(data)))
    second = AttachmentEncryptor(key=first.key)
    assert b"".join(second.encrypt(pieces)) == whole
    assert second.result() == first.result()
    assert decrypt(whole, first.result()) == data


def test_keys_are_fresh_and_repr_hides_them() -> None:
    _, first = encrypt(b"x")
    _, second = encrypt(b"x")
    assert first.key != second.key
    assert first.sha256 != second.sha256
    assert first.key not in repr(first)
    assert first.sha256 in repr(first)


def test_encryptor_misuse() -> None:
    encryptor = AttachmentEncryptor()
    with pytest.raises(RuntimeError):
        encryptor.result()
    stream = encryptor.encrypt([b"abc"])
    next(stream)
    with pytest.raises(RuntimeError):
        list(encryptor.encrypt([b"again"]))
    with pytest.raises(ValueError, match="32 bytes"):
        AttachmentEncryptor(key=bytes(16))


# ---------------------------------------------------------------- tampering


@settings(max_examples=60, deadline=None)
@given(position=st.integers(0, 2 * CHUNK_SIZE + 2 * TAG_SIZE + 9), bit=st.integers(0, 7))
def test_a_flipped_bit_fails_before_any_plaintext(position: int, bit: int) -> None:
    ciphertext, key = encrypt(os.urandom(2 * CHUNK_SIZE + 10))
    tampered = bytearray(ciphertext)
    tampered[position] ^= 1 << bit
    with pytest.raises(DecryptionFailed, match="SHA-256"):
        decrypt_attachment(io.BytesIO(bytes(tampered)), key)  # raises before iterating
    with pytest.raises(DecryptionFailed):  # and with the hash "fixed", GCM still refuses
        decrypt(bytes(tampered), rehash(key, bytes(tampered)))


def tampered_variants(ciphertext: bytes) -> dict[str, bytes]:
    parts = chunks_of(ciphertext)
    return {
        "truncated after a full chunk": b"".join(parts[:-1]),
        "last chunk cut mid-way": ciphertext[:-5],
        "chunks swapped": b"".join([parts[1], parts[0], *parts[2:]]),
        "chunk repeated": b"".join([parts[0], *parts]),
        "extra bytes": ciphertext + b"\x00" * 20,
        "empty": b"",
        "shorter than a tag": ciphertext[:10],
    }


@pytest.mark.parametrize("variant", list(tampered_variants(b"\x00" * 4 * (CHUNK_SIZE + 16))))
def test_truncation_reordering_and_extension_are_caught_even_with_a_matching_hash(
    variant: str,
) -> None:
    """If the hash is computed over the changed ciphertext (a file changed
    between the check and the read, a buggy sender), STREAM still refuses."""
    ciphertext, key = encrypt(os.urandom(3 * CHUNK_SIZE + 5))
    changed = tampered_variants(ciphertext)[variant]
    with pytest.raises(DecryptionFailed):
        decrypt(changed, rehash(key, changed))
    with pytest.raises(DecryptionFailed):
        decrypt(changed, key)


def test_a_chunk_released_is_always_authentic() -> None:
    """With a matching hash but a forged second chunk, the first (authentic)
    chunk may come out, the forged one never does."""
    data = os.urandom(2 * CHUNK_SIZE + 1)
    ciphertext, key = encrypt(data)
    forged = bytearray(ciphertext)
    forged[CHUNK_SIZE + TAG_SIZE + 3] ^= 1
    out: list[bytes] = []
    with pytest.raises(DecryptionFailed):
        out.extend(decrypt_attachment(io.BytesIO(bytes(forged)), rehash(key, bytes(forged))))
    assert out == [data[:CHUNK_SIZE]]


def test_wrong_key_or_malformed_key_material() -> None:
    ciphertext, key = encrypt(b"hello")
    other = msgspec.structs.replace(key, key=b64encode(os.urandom(32)))
    with pytest.raises(DecryptionFailed):
        decrypt(ciphertext, other)
    for bad in [
        msgspec.structs.replace(key, key="short"),
        msgspec.structs.replace(key, key="!!!"),
        msgspec.structs.replace(key, sha256=b64encode(bytes(16))),
        msgspec.structs.replace(key, algorithm="m.aes-ctr"),
    ]:
        with pytest.raises(BadPayload):
            decrypt(ciphertext, bad)


# ---------------------------------------------------------------- files and streams


def test_encrypt_file_and_decrypt_to_path(tmp_path: Path) -> None:
    data = os.urandom(CHUNK_SIZE * 2 + 7)
    source, encrypted = tmp_path / "in.bin", tmp_path / "blob"
    source.write_bytes(data)
    with source.open("rb") as src, encrypted.open("wb") as dst:
        key = encrypt_file(src, dst)
    target = tmp_path / "out.bin"
    with encrypted.open("rb") as src:
        assert decrypt_to_path(src, key, target) == len(data)
    assert target.read_bytes() == data
    assert target.stat().st_mode & 0o777 == 0o600


def test_decrypt_to_path_leaves_nothing_on_failure(tmp_path: Path) -> None:
    ciphertext, key = encrypt(os.urandom(2 * CHUNK_SIZE + 1))
    forged = bytearray(ciphertext)
    forged[-1] ^= 1
    target = tmp_path / "out.bin"
    for blob, material in [(bytes(forged), key), (bytes(forged), rehash(key, bytes(forged)))]:
        with pytest.raises(DecryptionFailed):
            decrypt_to_path(io.BytesIO(blob), material, target)
        assert list(tmp_path.iterdir()) == []


async def agen(data: bytes, piece: int = 10_000) -> AsyncIterator[bytes]:
    for i in range(0, len(data), piece):
        yield data[i : i + piece]


async def test_async_round_trip() -> None:
    data = os.urandom(2 * CHUNK_SIZE + 333)
    encryptor = AttachmentEncryptor()
    ciphertext = b"".join([chunk async for chunk in encryptor.aencrypt(agen(data))])
    key = encryptor.result()
    plaintext = b"".join(
        [chunk async for chunk in await adecrypt_attachment(agen(ciphertext), key)]
    )
    assert plaintext == data


async def test_async_decrypt_fails_at_the_await() -> None:
    ciphertext, key = encrypt(os.urandom(CHUNK_SIZE + 1))
    tampered = bytearray(ciphertext)
    tampered[7] ^= 4
    with pytest.raises(DecryptionFailed):
        await adecrypt_attachment(agen(bytes(tampered)), key)


def test_large_files_stream_in_bounded_memory() -> None:
    """32 MiB through encryption and (spooled) decryption with well under
    1 MiB held at any time."""
    size = 32 * 1024 * 1024
    piece = os.urandom(CHUNK_SIZE)

    def source() -> Iterator[bytes]:
        for _ in range(size // CHUNK_SIZE):
            yield piece

    with tempfile.TemporaryFile() as spool:
        tracemalloc.start()
        try:
            encryptor = AttachmentEncryptor()
            for chunk in encryptor.encrypt(source()):
                spool.write(chunk)
            key = encryptor.result()
            spool.seek(0)
            total = sum(len(chunk) for chunk in decrypt_attachment(spool, key))
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert total == size
    assert peak < 1024 * 1024, peak
