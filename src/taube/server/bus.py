"""What one node tells the others after a commit: wake-ups, never content.

On one node the hub hands committed frames to its connections directly and no
bus is needed. With several nodes on one database, a node publishes a
*notice* for everything its commits advanced, and every other node applies
it to its own connections:

- ``Entry``: a conversation's log reached ``seq``; wake the recipients'
  devices (they read the entry from the database). With ``members`` when the
  entry changed the membership, so that other nodes update their cache.
- ``Queued``: entries were queued for these devices (to-device messages,
  key changes).
- ``DeviceRemoved``: close this device's WebSocket.
- ``Ephemeral``: a frame that is not stored (typing): push it as it is.
- ``Resync``: the sender may have lost notices (it could not publish for a
  while): re-read everything.

A notice is only a hint. A lost one delays a delivery until the next notice
for that conversation, the device's next connection, or the periodic
re-check (``bus.recheck_s``); a duplicate or late one costs a read. The
database stays the one source of truth (DESIGN §6).

``RemoteBus`` is what ``Server`` needs of a bus; ``taube.server.redisbus``
implements it on Redis pub/sub.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import msgspec

from taube.proto.ids import ConversationId, DeviceId, UserId


class Notice(msgspec.Struct, tag_field="type", kw_only=True):
    pass


class Entry(Notice, tag="entry"):
    conversation: ConversationId
    seq: int
    recipients: list[UserId]
    #: the members after this entry, when it changed them
    members: list[UserId] | None = None


class Queued(Notice, tag="queued"):
    devices: list[DeviceId]


class DeviceRemoved(Notice, tag="device.removed"):
    device: DeviceId


class Ephemeral(Notice, tag="ephemeral"):
    recipients: list[UserId]
    #: the encoded server frame, pushed as it is
    frame: msgspec.Raw
    skip: DeviceId | None = None


class Resync(Notice, tag="resync"):
    pass


AnyNotice = Entry | Queued | DeviceRemoved | Ephemeral | Resync


class Batch(msgspec.Struct, kw_only=True):
    """One message on the bus: the notices a node had ready at once."""

    #: the publishing process (random per start): a node skips its own batches
    instance: str
    #: the publishing node's ``server.node_id``, for logs
    node: str
    notices: list[AnyNotice]


encode_batch = msgspec.json.Encoder().encode
decode_batch = msgspec.json.Decoder(Batch).decode

#: called with the notices of another node's batch
Receiver = Callable[[str, list[AnyNotice]], None]
#: called when notices may have been lost (the subscription was re-established)
LostHandler = Callable[[], None]


class RemoteBus(Protocol):
    """A bus to the other nodes: ``publish`` never blocks and never fails."""

    def publish(self, notice: AnyNotice) -> None: ...

    async def flush(self, timeout: float) -> bool:
        """Wait until what was published so far has gone out (``False``: timed out)."""
        ...
