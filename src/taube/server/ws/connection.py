"""One authenticated WebSocket: what it has been sent, and what it still owes.

Per conversation the connection remembers the highest sequence number it has
sent (``delivered``). A live entry goes straight out when it is the next one
and nothing is pending; anything else marks the conversation *dirty* and the
pump reads it from the store. So every device gets every entry once per
connection, in order, whatever the timing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from aiohttp import WSMsgType, web

from taube.proto import frames
from taube.proto.codec import encode
from taube.proto.errors import ErrorCode, ProtocolError
from taube.proto.ids import ConversationId, DeviceId, UserId, domain_of
from taube.server.frames import log_frame, queue_frame
from taube.store.delivery import Stored
from taube.store.errors import StoreUnavailable

if TYPE_CHECKING:
    from taube.server.context import Server

log = logging.getLogger(__name__)

HIGH_WATER = 512  #: frames queued for the socket before live pushes wait
LOW_WATER = 128
PAGE = 256  #: entries read from the store at a time
MAX_INFLIGHT = 1024  #: sends awaiting their commit, per connection
#: frames waiting for the socket before a peer that sends but never reads is
#: dropped (live entries stop queueing at HIGH_WATER; replies keep coming)
MAX_QUEUED = 8192
CLOSE_TOO_FAR_BEHIND = 4429


class Connection:
    def __init__(self, srv: Server, ws: web.WebSocketResponse, user: UserId, device: DeviceId):
        self.srv = srv
        self.ws = ws
        self.user = user
        self.device = device
        self.out: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.room = asyncio.Event()
        self.room.set()
        self.delivered: dict[ConversationId, int] = {}
        self.until: dict[ConversationId, int | None] = {}
        self.dirty: set[ConversationId] = set()
        self.stale: set[ConversationId] = set()
        self.draining: ConversationId | None = None
        self.queue_sent = 0
        self.queue_wanted = True
        self.queue_draining = False
        self.wake = asyncio.Event()
        self.inflight = 0
        self.inflight_room = asyncio.Event()
        self.inflight_room.set()
        self.closed = False

    # ----------------------------------------------------------- output

    def push(self, frame: bytes) -> None:
        """Queue a frame for the socket (never blocks)."""
        if not self.closed:
            self.out.put_nowait(frame)

    def send(self, frame: object) -> None:
        self.push(encode(frame))

    async def writer(self) -> None:
        while True:
            frame = await self.out.get()
            if frame is None:
                return
            if self.out.qsize() < LOW_WATER:
                self.room.set()
            try:
                await self.ws.send_frame(frame, WSMsgType.TEXT)
            except (ConnectionError, RuntimeError):
                self.closed = True
                return

    async def _put(self, frame: bytes) -> None:
        """Queue a backlog frame, waiting while the socket is behind."""
        while self.out.qsize() >= HIGH_WATER and not self.closed:
            self.room.clear()
            await self.room.wait()
        self.push(frame)

    # ----------------------------------------------------------- live offers

    def offer(self, conversation: ConversationId, seq: int, frame: bytes) -> None:
        if self.closed:
            return
        have = self.delivered.get(conversation)
        if (
            have is not None
            and seq == have + 1
            and conversation not in self.dirty
            and conversation not in self.stale
            and conversation != self.draining
            and self.until.get(conversation) is None
            and self.out.qsize() < HIGH_WATER
        ):
            self.delivered[conversation] = seq
            self.out.put_nowait(frame)
        elif have is None or seq > have:
            self.dirty.add(conversation)
            self.wake.set()

    def notice(self, conversation: ConversationId, seq: int) -> None:
        """Entries up to ``seq`` exist (another node, or the re-check, says so)."""
        if self.closed:
            return
        have = self.delivered.get(conversation)
        if have is None or seq > have:
            self.dirty.add(conversation)
            self.wake.set()

    def notice_queue(self, seq: int) -> None:
        if not self.closed and seq > self.queue_sent:
            self.queue_dirty()

    def resync(self) -> None:
        """Wake-ups may have been lost: re-read every cursor and the queue."""
        for conversation in list(self.delivered):
            self.forget(conversation)
        self.queue_dirty()

    def offer_queue(self, seq: int, frame: bytes) -> None:
        if self.closed or seq <= self.queue_sent:
            return
        if not self.queue_draining and not self.queue_wanted and self.out.qsize() < HIGH_WATER:
            self.queue_sent = seq
            self.out.put_nowait(frame)
        else:
            self.queue_dirty()

    def queue_dirty(self) -> None:
        self.queue_wanted = True
        self.wake.set()

    def forget(self, conversation: ConversationId) -> None:
        """Membership changed: reload this conversation's cursor before sending more."""
        self.stale.add(conversation)
        self.dirty.add(conversation)
        self.wake.set()

    # ----------------------------------------------------------- the pump

    async def pump(self) -> None:
        """Send backlogs: everything at first (then ``queue.empty``), later
        whatever live pushes could not carry.

        While the store is unavailable (the database restarts) the pump
        waits and tries again; what it could not read stays dirty."""
        while not self.closed:
            try:
                await self.srv.acks.settle(self.device)
                cursors = await self.srv.store.device_cursors(self.device)
                break
            except StoreUnavailable as exc:
                await self._store_wait(exc)
        else:
            return
        for cursor in cursors:
            self.delivered[cursor.conversation] = cursor.seq
            self.until[cursor.conversation] = cursor.until_seq
            self.dirty.add(cursor.conversation)
        first = True
        while not self.closed:
            # the device queue first: it carries the room keys that the
            # conversation entries after it need (else they wait undecrypted)
            if self.queue_wanted and not self.closed:
                self.queue_wanted = False
                self.queue_draining = True
                try:
                    await self._drain_queue()
                except StoreUnavailable as exc:
                    self.queue_wanted = True
                    await self._store_wait(exc)
                finally:
                    self.queue_draining = False
            while self.dirty and not self.closed:
                conversation = min(self.dirty)
                self.dirty.discard(conversation)
                self.draining = conversation
                try:
                    await self._drain(conversation)
                except StoreUnavailable as exc:
                    self.dirty.add(conversation)
                    await self._store_wait(exc)
                finally:
                    self.draining = None
            if first and not self.dirty and not self.queue_wanted:
                first = False
                self.send(frames.QueueEmpty())
            if not self.dirty and not self.queue_wanted:
                self.wake.clear()
                await self.wake.wait()

    async def _store_wait(self, exc: StoreUnavailable) -> None:
        log.info("device %s waits for the store: %s", self.device, exc.message)
        await asyncio.sleep(exc.retry_after or 1.0)

    async def _drain(self, conversation: ConversationId) -> None:
        store = self.srv.store
        if conversation in self.stale or conversation not in self.delivered:
            self.stale.discard(conversation)
            cursor = await store.device_cursor(self.device, conversation)
            if cursor is None:
                self.delivered.pop(conversation, None)
                self.until.pop(conversation, None)
                return
            self.delivered[conversation] = max(cursor.seq, self.delivered.get(conversation, 0))
            self.until[conversation] = cursor.until_seq
        while not self.closed:
            after = self.delivered[conversation]
            entries = await store.fetch_log(
                conversation, after, self.until.get(conversation), PAGE, self.srv.clock.now_ms()
            )
            for entry in entries:
                if entry.seq <= self.delivered.get(conversation, entry.seq):
                    continue
                await self._put(log_frame(entry, self.device))
                self.delivered[conversation] = entry.seq
            if len(entries) < PAGE:
                return

    async def _drain_queue(self) -> None:
        while not self.closed:
            entries = await self.srv.store.fetch_queue(self.device, self.queue_sent, PAGE)
            for entry in entries:
                if entry.seq > self.queue_sent:
                    await self._put(queue_frame(entry))
                    self.queue_sent = entry.seq
            if len(entries) < PAGE:
                return

    # ----------------------------------------------------------- client frames

    async def handle(self, frame: frames.ClientFrame) -> None:
        if isinstance(frame, frames.Send):
            await self._send(frame)
        elif isinstance(frame, frames.Ack):
            self._ack(frame)
        elif isinstance(frame, frames.ToDeviceSend):
            await self._to_device(frame)
        elif isinstance(frame, frames.ToDeviceAck):
            await self._ack_queue(frame)
        elif isinstance(frame, frames.Typing):
            await self._typing(frame)
        elif isinstance(frame, frames.Ping):
            self.send(frames.Pong(ref=frame.ref, server_time_ms=self.srv.clock.now_ms()))
        elif isinstance(frame, frames.Hello):
            raise ProtocolError(ErrorCode.BAD_REQUEST, "already authenticated")

    async def _send(self, frame: frames.Send) -> None:
        while self.inflight >= MAX_INFLIGHT:
            self.inflight_room.clear()
            await self.inflight_room.wait()
        srv = self.srv
        if not await srv.hub.is_member(frame.conversation, self.user):
            raise ProtocolError(ErrorCode.NOT_FOUND, "no such conversation")
        future = srv.store.send_message(
            self.user,
            self.device,
            frame.conversation,
            frame.id,
            frame.body,
            list(frame.blobs),
            frame.expire_ms,
            srv.clock.now_ms(),
        )
        self.inflight += 1
        future.add_done_callback(lambda done: self._stored(frame, done))
        srv.track_write(future)

    def _stored(self, frame: frames.Send, done: asyncio.Future[Stored]) -> None:
        self.inflight -= 1
        self.inflight_room.set()
        try:
            stored = done.result()
        except ProtocolError as exc:
            self.send(
                frames.Error(
                    code=exc.code, message=exc.message, ref=frame.id, retry_after=exc.retry_after
                )
            )
            return
        except Exception:
            log.exception("send failed")
            self.send(
                frames.Error(code=ErrorCode.INTERNAL, message="send failed, retry", ref=frame.id)
            )
            return
        if not stored.duplicate:
            self.srv.publish_message(self.user, self.device, frame, stored)
        self.send(
            frames.Sent(conversation=frame.conversation, id=frame.id, seq=stored.seq, ts=stored.ts)
        )

    def _ack(self, frame: frames.Ack) -> None:
        have = self.delivered.get(frame.conversation)
        if have is None:
            return  # not a conversation of this device: nothing to say
        seq = min(frame.seq, have)
        self.srv.acks.add(self.device, frame.conversation, seq)
        until = self.until.get(frame.conversation)
        if until is not None and seq >= until:
            self.delivered.pop(frame.conversation, None)
            self.until.pop(frame.conversation, None)

    async def _to_device(self, frame: frames.ToDeviceSend) -> None:
        srv = self.srv
        messages = [(m.user, m.device, m.body) for m in frame.messages]
        if srv.federation is not None and any(
            srv.federation.is_remote(domain_of(m.user)) for m in frame.messages
        ):  # some are for devices on other servers
            duplicate, entries = await srv.federation.send_to_devices(
                self.user, self.device, frame.id, messages
            )
        else:
            duplicate, entries = await srv.store.send_to_devices(
                self.user, self.device, frame.id, messages, srv.clock.now_ms()
            )
        if not duplicate:
            srv.publish_queue(entries)
        self.send(frames.ToDeviceSent(id=frame.id))

    async def _ack_queue(self, frame: frames.ToDeviceAck) -> None:
        await self.srv.store.ack_queue(self.device, min(frame.seq, self.queue_sent))

    async def _typing(self, frame: frames.Typing) -> None:
        members = await self.srv.hub.members(frame.conversation)
        if self.user in members:
            event = frames.TypingEvent(
                conversation=frame.conversation, user=self.user, active=frame.active
            )
            self.srv.publish_ephemeral(members, encode(event), skip=self.device)
            if self.srv.federation is not None:
                self.srv.federation.typing(frame.conversation, self.user, frame.active, members)

    # ----------------------------------------------------------- closing

    async def close(self, code: int, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        self.wake.set()
        self.room.set()
        self.out.put_nowait(None)
        # Bounded: a peer that never answers the close must not hold us up.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.ws.close(code=code, message=reason.encode()), 1.0)

    @property
    def too_far_behind(self) -> bool:
        return self.out.qsize() > MAX_QUEUED
