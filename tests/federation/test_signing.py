"""Server keys and request signatures, without servers: what is covered by a
signature, rotation and its grace period, and the wire bodies' decoding."""

from __future__ import annotations

import contextlib
import json
import stat
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from taube.proto.codec import decode
from taube.proto.errors import ProtocolError
from taube.proto.federation import (
    ServerKeys,
    Transaction,
    TransactionResult,
    request_signing_bytes,
)
from taube.proto.signing import b64decode, ed25519_public_key
from taube.server.federation.keyring import RETIRED_GRACE_MS, ServerKeyring

NOW = 1_765_152_000_000
REQUEST = ("POST", "/_federation/v1/send", "a.test", "b.test", NOW, "t" * 22, b'{"entries":[]}')


def _verifies(ring: ServerKeyring, key_id: str, signature: str, signed: bytes) -> bool:
    [key] = [k for k in ring.published("a.test", NOW).keys if k.key_id == key_id]
    try:
        ed25519_public_key(key.public_key).verify(b64decode(signature), signed)
    except Exception:
        return False
    return True


def test_every_part_of_a_request_is_signed(tmp_path: Path) -> None:
    ring = ServerKeyring.open(tmp_path, NOW)
    key_id, signature = ring.sign(request_signing_bytes(*REQUEST))
    assert _verifies(ring, key_id, signature, request_signing_bytes(*REQUEST))
    for index, changed in enumerate(
        ("GET", "/_federation/v1/keys/query", "c.test", "a.test", NOW + 1, "u" * 22, b"{}")
    ):
        other: list[Any] = list(REQUEST)
        other[index] = changed
        assert not _verifies(ring, key_id, signature, request_signing_bytes(*other)), index


def test_the_keyring_is_private_and_survives_a_restart(tmp_path: Path) -> None:
    ring = ServerKeyring.open(tmp_path, NOW)
    path = tmp_path / "server_keys.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = ServerKeyring.open(tmp_path, NOW + 1000)
    assert again.current[0] == ring.current[0]
    assert again.published("a.test", NOW) == ring.published("a.test", NOW)


def test_a_rotated_key_verifies_until_its_grace_ends(tmp_path: Path) -> None:
    ring = ServerKeyring.open(tmp_path, NOW)
    old_id, old_signature = ring.sign(request_signing_bytes(*REQUEST))
    new_id = ring.rotate(NOW + 10)
    assert ring.current[0] == new_id != old_id
    keys = {k.key_id: k for k in ring.published("a.test", NOW + 20).keys}
    assert keys[old_id].valid_until_ms == NOW + 10 + RETIRED_GRACE_MS
    assert keys[new_id].valid_until_ms is None
    assert _verifies(ring, old_id, old_signature, request_signing_bytes(*REQUEST))
    later = NOW + 20 + RETIRED_GRACE_MS
    assert [k.key_id for k in ring.published("a.test", later).keys] == [new_id]


def test_rotation_by_age(tmp_path: Path) -> None:
    ring = ServerKeyring.open(tmp_path, NOW)
    assert ring.rotate_if_older(1000, NOW + 999) is None
    assert ring.rotate_if_older(1000, NOW + 1000) is not None


def test_a_key_document_names_its_domain() -> None:
    with pytest.raises(ProtocolError):
        decode(json.dumps({"domain": "a.test", "keys": []}).encode(), ServerKeys)
    with pytest.raises(ProtocolError):
        decode(b'{"domain": "A TEST", "keys": [{"key_id": "k", "public_key": "x"}]}', ServerKeys)


@given(st.binary(max_size=300))
def test_transaction_decoding_raises_only_protocol_errors(data: bytes) -> None:
    for kind in (Transaction, TransactionResult, ServerKeys):
        with contextlib.suppress(ProtocolError):
            decode(data, kind)


def test_a_transaction_round_trips() -> None:
    empty = Transaction()
    assert decode(msgspec.json.encode(empty), Transaction) == empty
