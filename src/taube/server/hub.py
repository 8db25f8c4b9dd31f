"""In-process fan-out: which devices are connected here, and who is in which
conversation.

The hub only pushes what was committed; the database stays the one source of
truth. A connection that cannot take a live entry (it is behind, busy, or
was just added) is told its conversation is *dirty* and reads it from the
store, so a lost or early push delays a message but never loses one.
Wake-ups from other nodes (``wake_entry``, ``wake_queues``) carry no frame:
they always go that way. The hub knows connections only as ``Subscriber``s
(``subscriber.py``), never the WebSocket class.

The membership cache follows the state changes of this node and, through
the bus, of the others; each conversation's entry remembers the ``seq`` of
the state entry it reflects, so a late notice cannot undo a newer one.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable

from taube.proto.ids import ConversationId, DeviceId, UserId
from taube.server.subscriber import Subscriber

log = logging.getLogger(__name__)

MAX_CACHED_CONVERSATIONS = 200_000
#: a conversation's members are re-read for a "not a member" at most this often
RECHECK_MEMBERS_S = 1.0


class Hub:
    def __init__(
        self,
        load_members: Callable[[ConversationId], Awaitable[frozenset[UserId]]],
        monotonic: Callable[[], float] = time.monotonic,
    ):
        self._load_members = load_members
        self._monotonic = monotonic
        self._reloaded: dict[ConversationId, float] = {}
        self.by_device: dict[DeviceId, Subscriber] = {}
        self.by_user: dict[UserId, set[Subscriber]] = defaultdict(set)
        self._members: dict[ConversationId, frozenset[UserId]] = {}
        self._members_seq: dict[ConversationId, int] = {}

    # ----------------------------------------------------------- connections

    def attach(self, conn: Subscriber) -> Subscriber | None:
        """Register ``conn``; returns an older connection of the same device."""
        old = self.by_device.get(conn.device)
        if old is not None:
            self.detach(old)
        self.by_device[conn.device] = conn
        self.by_user[conn.user].add(conn)
        return old

    def detach(self, conn: Subscriber) -> None:
        if self.by_device.get(conn.device) is conn:
            del self.by_device[conn.device]
        conns = self.by_user.get(conn.user)
        if conns is not None:
            conns.discard(conn)
            if not conns:
                del self.by_user[conn.user]

    def connections(self) -> list[Subscriber]:
        return list(self.by_device.values())

    # ----------------------------------------------------------- membership

    async def members(self, conversation: ConversationId) -> frozenset[UserId]:
        members = self._members.get(conversation)
        if members is None:
            loaded = await self._load_members(conversation)
            if len(self._members) >= MAX_CACHED_CONVERSATIONS:
                self._members.clear()
                self._members_seq.clear()
            # a state change while we read wins: it is newer than what we read
            members = self._members.setdefault(conversation, loaded)
        return members

    async def is_member(self, conversation: ConversationId, user: UserId) -> bool:
        """Whether ``user`` is a member; a "no" from the cache is checked in the
        store (a notice from another node may be late or lost), at most once a
        second per conversation (a non-member sending again and again must not
        become a query per frame)."""
        if user in await self.members(conversation):
            return True
        now = self._monotonic()
        if now - self._reloaded.get(conversation, -RECHECK_MEMBERS_S) < RECHECK_MEMBERS_S:
            return False
        if len(self._reloaded) >= MAX_CACHED_CONVERSATIONS:
            self._reloaded.clear()
        self._reloaded[conversation] = now
        loaded = await self._load_members(conversation)
        self._members[conversation] = loaded
        return user in loaded

    def cached_members(self, conversation: ConversationId) -> frozenset[UserId] | None:
        return self._members.get(conversation)

    def set_members(
        self, conversation: ConversationId, members: frozenset[UserId], seq: int = 0
    ) -> None:
        """The members after the state entry at ``seq``; older news is ignored."""
        if seq and seq < self._members_seq.get(conversation, 0):
            return
        old = self._members.get(conversation, frozenset())
        self._members[conversation] = members
        if seq:
            self._members_seq[conversation] = seq
        for user in old ^ members:
            for conn in self.by_user.get(user, ()):
                conn.forget(conversation)

    def resync(self) -> None:
        """Notices may have been lost: drop the membership cache, and have
        every connection re-read its cursors, conversations and queue."""
        self._members.clear()
        self._members_seq.clear()
        for conn in self.by_device.values():
            conn.resync()

    # ----------------------------------------------------------- pushes

    def publish_entry(
        self,
        conversation: ConversationId,
        seq: int,
        recipients: Iterable[UserId],
        frame: bytes,
        sender_device: DeviceId | None = None,
        echo: bytes | None = None,
    ) -> None:
        """Offer a committed log entry to every connected device of ``recipients``."""
        for user in recipients:
            for conn in self.by_user.get(user, ()):
                if conn.device == sender_device and echo is not None:
                    conn.offer(conversation, seq, echo)
                else:
                    conn.offer(conversation, seq, frame)

    def wake_entry(
        self, conversation: ConversationId, seq: int, recipients: Iterable[UserId]
    ) -> None:
        """Another node committed ``seq``: recipients' devices read it from the store."""
        for user in recipients:
            for conn in self.by_user.get(user, ()):
                conn.notice(conversation, seq)

    def publish_queue(self, device: DeviceId, seq: int, frame: bytes) -> None:
        conn = self.by_device.get(device)
        if conn is not None:
            conn.offer_queue(seq, frame)

    def wake_queues(self, devices: Iterable[DeviceId]) -> None:
        """Entries were queued for ``devices``: have them read their queues."""
        for device in devices:
            conn = self.by_device.get(device)
            if conn is not None:
                conn.queue_dirty()

    def publish_ephemeral(
        self, recipients: Iterable[UserId], frame: bytes, skip: DeviceId | None = None
    ) -> None:
        for user in recipients:
            for conn in self.by_user.get(user, ()):
                if conn.device != skip:
                    conn.push(frame)

    async def close_device(self, device: DeviceId, code: int, reason: str) -> None:
        conn = self.by_device.get(device)
        if conn is not None:
            await conn.close(code, reason)
