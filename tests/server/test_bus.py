"""Bus notices: the wire between nodes, and how a node applies them."""

from __future__ import annotations

import msgspec

from taube.proto.ids import ConversationId, DeviceId, UserId
from taube.server.bus import (
    Batch,
    DeviceRemoved,
    Entry,
    Ephemeral,
    Queued,
    Resync,
    decode_batch,
    encode_batch,
)


def test_a_batch_round_trips() -> None:
    frame = b'{"type":"typing.event","conversation":"c","user":"a@x","active":true}'
    batch = Batch(
        instance="abc",
        node="node1",
        notices=[
            Entry(conversation=ConversationId("c"), seq=7, recipients=[UserId("a@x")]),
            Entry(
                conversation=ConversationId("c"),
                seq=8,
                recipients=[UserId("a@x"), UserId("b@x")],
                members=[UserId("a@x")],
            ),
            Queued(devices=[DeviceId("d1"), DeviceId("d2")]),
            DeviceRemoved(device=DeviceId("d1")),
            Ephemeral(recipients=[UserId("b@x")], frame=msgspec.Raw(frame), skip=DeviceId("d1")),
            Resync(),
        ],
    )
    data = encode_batch(batch)
    assert b'"frame":{"type":"typing.event"' in data  # embedded as JSON, not re-escaped
    decoded = decode_batch(data)
    assert decoded.instance == "abc"
    assert decoded.node == "node1"
    assert [type(n).__name__ for n in decoded.notices] == [
        "Entry",
        "Entry",
        "Queued",
        "DeviceRemoved",
        "Ephemeral",
        "Resync",
    ]
    ephemeral = decoded.notices[4]
    assert isinstance(ephemeral, Ephemeral)
    assert bytes(ephemeral.frame) == frame
    first = decoded.notices[0]
    assert isinstance(first, Entry)
    assert first.members is None
