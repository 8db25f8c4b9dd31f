"""Room keys over Olm: sharing with devices, accepting only from the creator."""

from __future__ import annotations

import msgspec
import pytest

from taube.crypto import (
    TYPE_ROOM_KEY,
    BadPayload,
    OutboundGroup,
    accept_room_key,
    share_room_key,
)
from taube.proto.frames import ToDeviceMessage, ToDeviceSend

from .helpers import CONVERSATION, NOW, connect, make_device, message, message_id


def test_share_then_read_a_conversation_message() -> None:
    alice, bob = make_device(), make_device("bob@example.org")
    bob2 = make_device("bob@example.org", bob.identity)
    carol = make_device("carol@example.org")
    for device in (bob, bob2):
        connect(alice, device)
    group = OutboundGroup.create(CONVERSATION, NOW)
    devices = [bob.verified, bob2.verified, carol.verified]
    messages, without_session = share_room_key(alice.olm, group, devices)
    assert without_session == [carol.verified]
    assert [(m.user, m.device) for m in messages] == [
        (bob.user, bob.device),
        (bob2.user, bob2.device),
    ]
    # the messages fit the wire frame as they are
    frame = ToDeviceSend(id=message_id(1), messages=messages)
    msgspec.json.decode(msgspec.json.encode(frame), type=ToDeviceSend)

    group.mark_shared([bob.verified, bob2.verified])
    connect(alice, carol)
    again, missing = share_room_key(alice.olm, group, devices)
    assert missing == []
    assert [m.device for m in again] == [carol.device]

    body = group.encrypt_payload(message(alice, 1, "to all"), now_ms=NOW)
    for device, share in ((bob, messages[0]), (bob2, messages[1]), (carol, again[0])):
        payload = device.olm.decrypt_to_device(alice.verified, share.body)
        assert payload.type == TYPE_ROOM_KEY
        assert accept_room_key(device.inbound, alice.verified, payload)
        got = device.inbound.decrypt_message(alice.verified, CONVERSATION, message_id(1), body)
        assert got.payload.content == {"body": "to all"}


def test_a_room_key_is_accepted_only_from_the_sender_named_inside() -> None:
    alice, bob, carol = make_device(), make_device("bob@example.org"), make_device("carol@x.org")
    connect(alice, bob)
    group = OutboundGroup.create(CONVERSATION, NOW)
    (share,), _ = share_room_key(alice.olm, group, [bob.verified])
    assert isinstance(share, ToDeviceMessage)
    payload = bob.olm.decrypt_to_device(alice.verified, share.body)
    with pytest.raises(BadPayload, match="created it"):
        accept_room_key(bob.inbound, carol.verified, payload)
    assert len(bob.inbound) == 0
    not_a_key = msgspec.structs.replace(payload, type="call.offer")
    with pytest.raises(BadPayload):
        accept_room_key(bob.inbound, alice.verified, not_a_key)
