"""Turning stored entries into encoded server frames."""

from __future__ import annotations

import msgspec

from taube.proto import frames
from taube.proto.codec import encode
from taube.proto.ids import DeviceId
from taube.proto.state import StateEvent
from taube.store.conversations import KIND_STATE
from taube.store.delivery import LogEntry
from taube.store.queues import KIND_KEYS_CHANGED, QueueEntry

_event = msgspec.json.Decoder(StateEvent)


def log_frame(entry: LogEntry, device: DeviceId) -> bytes:
    """The frame for ``entry`` as ``device`` gets it (its own sends without body)."""
    if entry.kind == KIND_STATE:
        return encode(
            frames.State(
                conversation=entry.conversation, seq=entry.seq, event=_event.decode(entry.body)
            )
        )
    return encode(
        frames.Message(
            conversation=entry.conversation,
            seq=entry.seq,
            id=entry.msg_id,
            sender=entry.sender,
            sender_device=entry.sender_device,
            ts=entry.ts,
            body=None if entry.sender_device == device else entry.body,
            blobs=list(entry.blobs),
            expires_ms=entry.expires_ms,
        )
    )


def queue_frame(entry: QueueEntry) -> bytes:
    if entry.kind == KIND_KEYS_CHANGED:
        return encode(frames.KeysChanged(seq=entry.seq, user=entry.sender))
    return encode(
        frames.ToDevice(
            seq=entry.seq,
            sender=entry.sender,
            sender_device=entry.sender_device,
            ts=entry.ts,
            body=entry.body,
        )
    )
