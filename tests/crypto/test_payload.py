"""Plaintext payloads: encoding, validation, and their binding to envelopes."""

from __future__ import annotations

import contextlib

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taube.crypto import (
    TYPE_ROOM_KEY,
    BadPayload,
    MessagePayload,
    RoomKey,
    ToDevicePayload,
    check_binding,
    check_to_device_binding,
    decode_payload,
    encode_payload,
    room_key_of,
)
from taube.proto.ids import ConversationId, DeviceId, MessageId, UserId

from .helpers import CONVERSATION, OTHER_CONVERSATION, make_device, message_id, to_device_payload

ALICE = UserId("alice@example.org")
DEVICE = DeviceId("A" * 22)


def payload(**changes: object) -> MessagePayload:
    base = MessagePayload(
        sender=ALICE,
        sender_device=DEVICE,
        conversation=CONVERSATION,
        message_id=message_id(1),
        type="text",
        content={"body": "héllo ✓"},
    )
    return msgspec.structs.replace(base, **changes)


def test_payload_is_utf8_json_and_round_trips() -> None:
    data = encode_payload(payload())
    assert "héllo ✓".encode() in data  # UTF-8, not \\u escapes
    assert decode_payload(data, MessagePayload) == payload()


def test_control_characters_are_escaped_so_no_nul_reaches_libolm() -> None:
    data = encode_payload(payload(content={"body": "a\x00b\x01"}))
    assert b"\x00" not in data
    assert b"\x01" not in data
    assert decode_payload(data, MessagePayload).content == {"body": "a\x00b\x01"}


def test_unknown_fields_from_newer_clients_are_ignored() -> None:
    data = msgspec.json.encode({**msgspec.to_builtins(payload()), "future": [1, 2]})
    assert decode_payload(data, MessagePayload) == payload()


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xff\xfe",
        b"null",
        b"[]",
        b'{"sender": "alice@example.org"}',
        encode_payload(payload()).replace(b"alice@example.org", b"ALICE@@example.org"),
        encode_payload(payload()).replace(b'"type":"text"', b'"type":""'),
    ],
)
def test_invalid_payloads_are_bad_payloads(data: bytes) -> None:
    with pytest.raises(BadPayload):
        decode_payload(data, MessagePayload)


@settings(max_examples=200)
@given(st.binary(max_size=300))
def test_decoding_arbitrary_bytes_raises_bad_payload_only(data: bytes) -> None:
    for kind in (MessagePayload, ToDevicePayload):
        with contextlib.suppress(BadPayload):
            decode_payload(data, kind)


def test_check_binding_accepts_the_matching_envelope() -> None:
    check_binding(payload(), ALICE, DEVICE, CONVERSATION, message_id(1))


@pytest.mark.parametrize(
    ("field", "envelope"),
    [
        ("sender", (UserId("bob@example.org"), DEVICE, CONVERSATION, message_id(1))),
        ("sender device", (ALICE, DeviceId("B" * 22), CONVERSATION, message_id(1))),
        ("conversation", (ALICE, DEVICE, OTHER_CONVERSATION, message_id(1))),
        ("message id", (ALICE, DEVICE, CONVERSATION, message_id(2))),
    ],
)
def test_check_binding_refuses_each_mismatch(
    field: str, envelope: tuple[UserId, DeviceId, ConversationId, MessageId]
) -> None:
    sender, device, conversation, mid = envelope
    with pytest.raises(BadPayload):
        check_binding(payload(), sender, device, conversation, mid)


def test_to_device_binding_checks_every_field() -> None:
    alice, bob, carol = make_device(), make_device("bob@example.org"), make_device("carol@x.org")
    good = to_device_payload(alice, bob)
    check_to_device_binding(good, alice.verified, bob.user, bob.device, bob.account.curve25519)
    wrong = {
        "sender": carol.user,
        "sender_device": carol.device,
        "sender_key": carol.account.ed25519,
        "recipient": carol.user,
        "recipient_device": carol.device,
        "recipient_key": carol.account.curve25519,
    }
    for field, value in wrong.items():
        changed = msgspec.structs.replace(good, **{field: value})
        with pytest.raises(BadPayload):
            check_to_device_binding(
                changed, alice.verified, bob.user, bob.device, bob.account.curve25519
            )


def test_room_key_of() -> None:
    key = RoomKey(conversation=CONVERSATION, session_id="S" * 43, session_key="K" * 100)
    alice, bob = make_device(), make_device("bob@example.org")
    base = ToDevicePayload(
        sender=alice.user,
        sender_device=alice.device,
        sender_key=alice.account.ed25519,
        recipient=bob.user,
        recipient_device=bob.device,
        recipient_key=bob.account.curve25519,
        type=TYPE_ROOM_KEY,
        content=msgspec.to_builtins(key),
    )
    assert room_key_of(base) == key
    with pytest.raises(BadPayload, match="not a room key"):
        room_key_of(msgspec.structs.replace(base, type="other"))
    with pytest.raises(BadPayload):
        room_key_of(msgspec.structs.replace(base, content={"session_id": 5}))
    with pytest.raises(BadPayload, match="algorithm"):
        room_key_of(msgspec.structs.replace(base, content={**base.content, "algorithm": "x"}))


def test_deeply_nested_json_is_a_bad_payload() -> None:
    data = (
        b'{"sender":"alice@example.org","sender_device":"'
        + b"A" * 22
        + b'","conversation":"'
        + b"C" * 22
        + b'","message_id":"'
        + b"m" * 22
        + b'","type":"t","content":{"x":'
        + b"[" * 100_000
        + b"]" * 100_000
        + b"}}"
    )
    with pytest.raises(BadPayload):
        decode_payload(data, MessagePayload)


def test_repr_hides_contents_and_keys() -> None:
    secret = payload(content={"body": "the secret plan"})
    assert "the secret plan" not in repr(secret)
    assert "****" in repr(secret)
    assert CONVERSATION in repr(secret)
    key = RoomKey(conversation=CONVERSATION, session_id="S" * 43, session_key="K" * 100)
    assert "K" * 100 not in repr(key)
    assert "S" * 43 in repr(key)
