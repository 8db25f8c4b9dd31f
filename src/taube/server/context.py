"""``Server``: the running server's parts, and the actions that emit events.

Actions are named ``do_<verb>_<noun>``: they change the store and then tell
the hub, so every state change reaches connected devices the same way.
``publish_*`` hand what a commit advanced to this node's hub (with the
encoded frames, the fast path) and, when there are other nodes, a notice to
the bus; ``receive`` applies the other nodes' notices to this node's hub.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Coroutine
from typing import Any

import msgspec

from taube.proto import frames
from taube.proto.codec import encode
from taube.proto.errors import ErrorCode, ProtocolError
from taube.proto.ids import DeviceId, UserId
from taube.proto.state import StateEvent
from taube.server.acks import AckBuffer
from taube.server.auth import Passwords, token_hash
from taube.server.bus import (
    AnyNotice,
    DeviceRemoved,
    Entry,
    Ephemeral,
    Queued,
    RemoteBus,
    Resync,
)
from taube.server.clock import Clock
from taube.server.config import Config
from taube.server.federation import Federation
from taube.server.frames import queue_frame
from taube.server.hub import Hub
from taube.server.presence import Presence
from taube.server.ratelimit import RateLimiter
from taube.store import Store
from taube.store.accounts import DeviceAuth
from taube.store.conversations import StateAppended
from taube.store.delivery import Stored
from taube.store.queues import QueueEntry

log = logging.getLogger(__name__)

CLOSE_UNAUTHORIZED = 4401
CLOSE_REPLACED = 4409
CLOSE_GOING_AWAY = 1001


class Server:
    def __init__(self, config: Config, clock: Clock, store: Store) -> None:
        self.config = config
        self.clock = clock
        self.store = store
        self.hub = Hub(store.members_of, clock.monotonic)
        self.presence = Presence(store, clock, self.hub)
        self.passwords = Passwords(config.auth, config.limits)
        self.acks = AckBuffer(store, config.retention.ack_flush_s)
        self.ip_limiter = RateLimiter(clock, per_minute=config.limits.auth_per_ip_per_minute)
        self.account_limiter = RateLimiter(
            clock, per_minute=config.limits.auth_per_account_per_minute
        )
        self._background: set[asyncio.Task[None]] = set()
        self._writes: set[asyncio.Future[Stored]] = set()
        self.node_id = config.node_id
        self.trusted_proxies = config.server.trusted_networks
        #: the other nodes, when there are any (``bus.url``)
        self.bus: RemoteBus | None = None
        #: other domains' servers (``federation.enabled``; set by ``serve``)
        self.federation: Federation | None = None

    # ----------------------------------------------------------- auth

    def token_expiry(self, now: int) -> int:
        return now + int(self.config.auth.token_lifetime_s * 1000)

    async def authenticate(self, token: str) -> DeviceAuth:
        """The device a token belongs to; one error for missing, wrong, expired, revoked."""
        auth = await self.store.device_by_token(token_hash(token)) if token else None
        now = self.clock.now_ms()
        if auth is None or auth.expires_ms <= now:
            raise ProtocolError(ErrorCode.UNAUTHORIZED, "invalid or expired token")
        lifetime = int(self.config.auth.token_lifetime_s * 1000)
        if auth.expires_ms - now < lifetime // 2:  # sliding expiry for devices in use
            await self.store.touch_device(auth.device, now, self.token_expiry(now))
        return auth

    def limit(self, limiter: RateLimiter, key: str) -> None:
        wait = limiter.take(key)
        if wait > 0:
            raise ProtocolError(ErrorCode.RATE_LIMITED, "too many attempts", retry_after=wait)

    # ----------------------------------------------------------- actions

    def publish_message(
        self, user: UserId, device: DeviceId, frame: frames.Send, stored: Stored
    ) -> None:
        """Push a committed message to every connected member device."""
        if self.federation is not None:
            self.federation.outbound.wake()
        members = self.hub.cached_members(frame.conversation)
        message = frames.Message(
            conversation=frame.conversation,
            seq=stored.seq,
            id=frame.id,
            sender=user,
            sender_device=device,
            ts=stored.ts,
            body=frame.body,
            blobs=frame.blobs,
            expires_ms=stored.expires_ms,
        )
        full = encode(message)
        echo = encode(
            frames.Message(
                conversation=frame.conversation,
                seq=stored.seq,
                id=frame.id,
                sender=user,
                sender_device=device,
                ts=stored.ts,
                blobs=frame.blobs,
                expires_ms=stored.expires_ms,
            )
        )
        if members is None:
            # Not cached yet: load the members, then push.
            self._publish_later(frame, stored, full, echo, device)
            return
        self.hub.publish_entry(frame.conversation, stored.seq, members, full, device, echo)
        if self.bus is not None:
            self.bus.publish(
                Entry(conversation=frame.conversation, seq=stored.seq, recipients=list(members))
            )

    def _publish_later(
        self, frame: frames.Send, stored: Stored, full: bytes, echo: bytes, device: DeviceId
    ) -> None:
        async def later() -> None:
            with contextlib.suppress(Exception):
                members = await self.hub.members(frame.conversation)
                self.hub.publish_entry(frame.conversation, stored.seq, members, full, device, echo)
                if self.bus is not None:
                    self.bus.publish(
                        Entry(
                            conversation=frame.conversation,
                            seq=stored.seq,
                            recipients=list(members),
                        )
                    )

        self._spawn(later())

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def track_write(self, future: asyncio.Future[Stored]) -> None:
        """A send on its way to the store: shutting down waits for it."""
        self._writes.add(future)
        future.add_done_callback(self._writes.discard)

    async def wait_writes(self, timeout: float) -> None:
        """Wait (at most ``timeout``) for the sends in flight, and what they publish."""
        if self._writes:
            await asyncio.wait(set(self._writes), timeout=timeout)
        if self._background:
            await asyncio.wait(set(self._background), timeout=timeout)

    def publish_state(self, appended: list[StateAppended], device: DeviceId) -> None:
        if self.federation is not None and appended:
            self.federation.outbound.wake()
        for entry in appended:
            conversation = entry.event.conversation
            self.hub.set_members(conversation, entry.members, entry.seq)
            frame = encode(
                frames.State(conversation=conversation, seq=entry.seq, event=entry.event)
            )
            self.hub.publish_entry(conversation, entry.seq, entry.recipients, frame)
            if self.bus is not None:
                self.bus.publish(
                    Entry(
                        conversation=conversation,
                        seq=entry.seq,
                        recipients=list(entry.recipients),
                        members=list(entry.members),
                    )
                )

    def publish_queue(self, entries: list[QueueEntry]) -> None:
        """To-device messages were queued."""
        for entry in entries:
            self.hub.publish_queue(entry.device, entry.seq, queue_frame(entry))
        if self.bus is not None and entries:
            self.bus.publish(Queued(devices=list(dict.fromkeys(e.device for e in entries))))

    def publish_ephemeral(
        self, recipients: frozenset[UserId], frame: bytes, skip: DeviceId | None
    ) -> None:
        """A frame that is not stored (typing): to connected devices only."""
        self.hub.publish_ephemeral(recipients, frame, skip)
        if self.bus is not None:
            self.bus.publish(
                Ephemeral(recipients=list(recipients), frame=msgspec.Raw(frame), skip=skip)
            )

    async def do_append_state(self, event: StateEvent, device: DeviceId) -> int:
        appended = await self.store.append_state(event, device, self.clock.now_ms())
        self.publish_state([appended], device)
        return appended.seq

    def notify_keys_changed(self, devices: list[DeviceId], user: UserId | None = None) -> None:
        """``keys.changed`` was queued for ``devices`` (and, when ``user`` is
        given, for the other servers sharing a conversation with them)."""
        self.hub.wake_queues(devices)
        if self.bus is not None and devices:
            self.bus.publish(Queued(devices=list(devices)))
        if user is not None and devices and self.federation is not None:
            self.federation.outbound.wake()

    async def do_remove_device(self, user: UserId, device: DeviceId) -> bool:
        found, notified = await self.store.remove_device(user, device, self.clock.now_ms())
        if found:
            if self.bus is not None:
                self.bus.publish(DeviceRemoved(device=device))
            await self.hub.close_device(device, CLOSE_UNAUTHORIZED, "device removed")
            self.notify_keys_changed(notified)
            if notified and self.federation is not None:  # after the commit: best effort
                self._spawn(self.federation.announce_keys_changed(user))
        return found

    # ----------------------------------------------------------- other nodes

    def receive(self, node: str, notices: list[AnyNotice]) -> None:
        """Apply another node's notices to the devices connected here."""
        hub = self.hub
        for notice in notices:
            if isinstance(notice, Entry):
                if notice.members is not None:
                    hub.set_members(notice.conversation, frozenset(notice.members), notice.seq)
                hub.wake_entry(notice.conversation, notice.seq, notice.recipients)
            elif isinstance(notice, Queued):
                hub.wake_queues(notice.devices)
            elif isinstance(notice, Ephemeral):
                hub.publish_ephemeral(notice.recipients, bytes(notice.frame), notice.skip)
            elif isinstance(notice, DeviceRemoved):
                if notice.device in hub.by_device:
                    self._spawn(
                        hub.close_device(notice.device, CLOSE_UNAUTHORIZED, "device removed")
                    )
            elif isinstance(notice, Resync):
                log.info("node %s may have lost notices: re-reading", node)
                self.resync()

    def resync(self) -> None:
        """Notices may have been lost: re-read what connected devices may lack."""
        self.hub.resync()
        self._spawn(self.recheck())

    async def recheck(self) -> None:
        """The safety net under the bus: ask the store which connected devices
        have entries they were not sent, and wake those connections."""
        conns = self.hub.connections()
        if not conns:
            return
        try:
            logs, queues = await self.store.pending_heads([c.device for c in conns])
        except ProtocolError as exc:
            log.info("re-check skipped: %s", exc.message)
            return
        by_device = self.hub.by_device
        for device, conversation, seq in logs:
            conn = by_device.get(device)
            if conn is not None:
                conn.notice(conversation, seq)
        for device, seq in queues:
            conn = by_device.get(device)
            if conn is not None:
                conn.notice_queue(seq)

    async def recheck_forever(self, interval: float) -> None:
        while True:
            # jitter spreads the nodes' re-checks over the interval
            await asyncio.sleep(interval * random.uniform(0.8, 1.2))  # noqa: S311 - not a secret
            try:
                await self.recheck()
            except Exception:
                log.exception("re-check failed")
