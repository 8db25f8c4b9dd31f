"""Recovery codes and the argon2id-wrapped identity key backup."""

from __future__ import annotations

import time

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taube.crypto import (
    BadPayload,
    CryptoError,
    DecryptionFailed,
    IdentityBackup,
    IdentityKeyPair,
    KdfParams,
    WrongRecoveryCode,
    new_recovery_code,
    unwrap_identity_key,
    wrap_identity_key,
)
from taube.crypto.backup import ALPHABET, DEFAULT_KDF, recovery_code_bytes
from taube.proto.ids import UserId
from taube.proto.signing import b64encode

ALICE = UserId("alice@example.org")
FAST = KdfParams(time_cost=1, memory_cost=1024, parallelism=1)  # tests only


def test_recovery_code_shape() -> None:
    code = new_recovery_code()
    groups = code.split("-")
    assert len(groups) == 6
    assert all(len(group) == 4 for group in groups)
    assert all(ch in ALPHABET for ch in code.replace("-", ""))
    assert len(recovery_code_bytes(code)) == 15  # 120 bits
    assert len({new_recovery_code() for _ in range(50)}) == 50


def test_typing_the_code_is_forgiving() -> None:
    code = new_recovery_code()
    secret = recovery_code_bytes(code)
    assert recovery_code_bytes(code.lower()) == secret
    assert recovery_code_bytes(code.replace("-", " ")) == secret
    assert recovery_code_bytes(code.replace("-", "")) == secret
    assert recovery_code_bytes(" " + code + " ") == secret
    assert recovery_code_bytes("O" * 24) == recovery_code_bytes("0" * 24) == bytes(15)
    assert recovery_code_bytes("I" * 24) == recovery_code_bytes("l" * 24)


@pytest.mark.parametrize("code", ["", "ABCD", "0" * 23, "0" * 25, "U" * 24, "0" * 23 + "!"])
def test_malformed_codes(code: str) -> None:
    with pytest.raises(WrongRecoveryCode):
        recovery_code_bytes(code)


@settings(max_examples=100)
@given(st.binary(min_size=15, max_size=15))
def test_every_secret_has_one_code(secret: bytes) -> None:
    value = int.from_bytes(secret, "big")
    text = "".join(ALPHABET[(value >> (5 * i)) & 31] for i in reversed(range(24)))
    assert recovery_code_bytes(text) == secret


def test_wrap_and_unwrap() -> None:
    identity = IdentityKeyPair.generate()
    code = new_recovery_code()
    blob = wrap_identity_key(identity, code, ALICE, params=FAST)
    stored = IdentityBackup.from_bytes(blob.to_bytes())
    restored = unwrap_identity_key(stored, code.lower(), expected_user=ALICE)
    assert restored.public_key == identity.public_key
    assert restored.private_bytes() == identity.private_bytes()
    assert b64encode(identity.private_bytes()) not in blob.to_bytes().decode()
    assert (blob.time_cost, blob.memory_cost, blob.parallelism) == (1, 1024, 1)


def test_default_parameters_are_rfc_9106_and_still_quick() -> None:
    assert (DEFAULT_KDF.time_cost, DEFAULT_KDF.memory_cost, DEFAULT_KDF.parallelism) == (
        3,
        65536,
        4,
    )
    identity = IdentityKeyPair.generate()
    code = new_recovery_code()
    started = time.perf_counter()
    blob = wrap_identity_key(identity, code, ALICE)
    assert unwrap_identity_key(blob, code).public_key == identity.public_key
    assert time.perf_counter() - started < 10


def test_a_wrong_code_is_refused() -> None:
    blob = wrap_identity_key(IdentityKeyPair.generate(), new_recovery_code(), ALICE, params=FAST)
    with pytest.raises(WrongRecoveryCode) as caught:
        unwrap_identity_key(blob, new_recovery_code())
    assert isinstance(caught.value, DecryptionFailed)
    assert isinstance(caught.value, CryptoError)


@pytest.mark.parametrize(
    "change",
    [
        {"user": UserId("mallory@example.org")},
        {"identity_key": IdentityKeyPair.generate().public_key},
        {"time_cost": 2},
        {"memory_cost": 2048},
        {"salt": b64encode(bytes(16))},
        {"nonce": b64encode(bytes(12))},
    ],
)
def test_every_stored_field_is_authenticated(change: dict[str, object]) -> None:
    code = new_recovery_code()
    blob = wrap_identity_key(IdentityKeyPair.generate(), code, ALICE, params=FAST)
    with pytest.raises(WrongRecoveryCode):
        unwrap_identity_key(msgspec.structs.replace(blob, **change), code)


def test_a_flipped_ciphertext_bit_is_refused() -> None:
    code = new_recovery_code()
    blob = wrap_identity_key(IdentityKeyPair.generate(), code, ALICE, params=FAST)
    raw = bytearray(blob.ciphertext.encode())
    raw[3] = ord("A") if raw[3] != ord("A") else ord("B")
    with pytest.raises(WrongRecoveryCode):
        unwrap_identity_key(msgspec.structs.replace(blob, ciphertext=raw.decode()), code)


@pytest.mark.parametrize(
    "change",
    [
        {"memory_cost": 4 * 1024 * 1024},
        {"time_cost": 1000},
        {"parallelism": 64},
        {"v": 2},
        {"kdf": "scrypt"},
        {"salt": b64encode(bytes(4))},
        {"nonce": "!!"},
    ],
)
def test_malformed_or_hostile_blobs_are_refused_before_deriving(change: dict[str, object]) -> None:
    blob = wrap_identity_key(IdentityKeyPair.generate(), new_recovery_code(), ALICE, params=FAST)
    started = time.perf_counter()
    with pytest.raises(BadPayload):
        unwrap_identity_key(msgspec.structs.replace(blob, **change), new_recovery_code())
    assert time.perf_counter() - started < 2


def test_blob_of_another_user_is_refused() -> None:
    code = new_recovery_code()
    blob = wrap_identity_key(IdentityKeyPair.generate(), code, ALICE, params=FAST)
    with pytest.raises(BadPayload):
        unwrap_identity_key(blob, code, expected_user=UserId("bob@example.org"))


@pytest.mark.parametrize("data", [b"", b"{}", b"[]", b'{"v": 1, "extra": true}'])
def test_blob_decoding(data: bytes) -> None:
    with pytest.raises(BadPayload):
        IdentityBackup.from_bytes(data)
