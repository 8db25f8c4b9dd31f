"""``Subscriber``: what the hub needs of one connected device.

The hub keeps subscribers by device and by user and hands them what a commit
advanced; it never reads the socket or the store itself. ``Connection``
(``ws/connection.py``) is the one real subscriber; the hub's tests use a
fake. Keeping the contract here lets ``hub`` know nothing of WebSockets, and
keeps ``context`` → ``hub`` → ``ws.connection`` → ``context`` from being a
circle.
"""

from __future__ import annotations

from typing import Protocol

from taube.proto.ids import ConversationId, DeviceId, UserId


class Subscriber(Protocol):
    """One device connected to this node; every method but ``close`` never blocks."""

    @property
    def user(self) -> UserId: ...

    @property
    def device(self) -> DeviceId: ...

    # ----------------------------------------------------------- live entries

    def offer(self, conversation: ConversationId, seq: int, frame: bytes) -> None:
        """A committed entry, encoded: sent now if it is the next one, else
        the conversation is marked dirty and read from the store."""

    def notice(self, conversation: ConversationId, seq: int) -> None:
        """Entries up to ``seq`` exist (no frame): mark the conversation dirty."""

    def offer_queue(self, seq: int, frame: bytes) -> None:
        """A to-device entry, encoded: sent now, or the queue is marked dirty."""

    def notice_queue(self, seq: int) -> None:
        """The device's queue reaches ``seq``: mark it dirty if that is news."""

    def queue_dirty(self) -> None:
        """Read the device's queue from the store."""

    def push(self, frame: bytes) -> None:
        """A frame that is not stored (typing): queue it for the socket."""

    # ----------------------------------------------------------- resyncing

    def forget(self, conversation: ConversationId) -> None:
        """Membership changed: reload the conversation's cursor before sending more."""

    def resync(self) -> None:
        """Wake-ups may have been lost: re-read every cursor and the queue."""

    # ----------------------------------------------------------- closing

    async def close(self, code: int, reason: str) -> None:
        """Close the socket with a WebSocket close ``code``."""
