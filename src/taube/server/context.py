"""``Server``: the running server's parts, and the actions that emit events.

Actions are named ``do_<verb>_<noun>``: they change the store and then tell
the hub, so every state change reaches connected devices the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from taube.proto import frames
from taube.proto.codec import encode
from taube.proto.errors import ErrorCode, ProtocolError
from taube.proto.ids import DeviceId, UserId
from taube.proto.state import StateEvent
from taube.server.acks import AckBuffer
from taube.server.auth import Passwords, token_hash
from taube.server.clock import Clock
from taube.server.config import Config
from taube.server.hub import Hub
from taube.server.ratelimit import RateLimiter
from taube.store import Store
from taube.store.accounts import DeviceAuth
from taube.store.conversations import StateAppended
from taube.store.delivery import Stored

log = logging.getLogger(__name__)

CLOSE_UNAUTHORIZED = 4401
CLOSE_REPLACED = 4409
CLOSE_GOING_AWAY = 1001


class Server:
    def __init__(self, config: Config, clock: Clock, store: Store) -> None:
        self.config = config
        self.clock = clock
        self.store = store
        self.hub = Hub(store.members_of)
        self.passwords = Passwords(config.auth, config.limits)
        self.acks = AckBuffer(store, config.retention.ack_flush_s)
        self.ip_limiter = RateLimiter(clock, per_minute=config.limits.auth_per_ip_per_minute)
        self.account_limiter = RateLimiter(
            clock, per_minute=config.limits.auth_per_account_per_minute
        )
        self._background: set[asyncio.Task[None]] = set()

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
            # Not cached yet: have every connection of the sender read it, and
            # load the members for the others.
            self._publish_later(frame, stored, full, echo, device)
            return
        self.hub.publish_entry(frame.conversation, stored.seq, members, full, device, echo)

    def _publish_later(
        self, frame: frames.Send, stored: Stored, full: bytes, echo: bytes, device: DeviceId
    ) -> None:
        async def later() -> None:
            with contextlib.suppress(Exception):
                members = await self.hub.members(frame.conversation)
                self.hub.publish_entry(frame.conversation, stored.seq, members, full, device, echo)

        task = asyncio.get_running_loop().create_task(later())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def publish_state(self, appended: list[StateAppended], device: DeviceId) -> None:
        for entry in appended:
            self.hub.set_members(entry.event.conversation, entry.members)
            frame = encode(
                frames.State(
                    conversation=entry.event.conversation, seq=entry.seq, event=entry.event
                )
            )
            self.hub.publish_entry(entry.event.conversation, entry.seq, entry.recipients, frame)

    async def do_append_state(self, event: StateEvent, device: DeviceId) -> int:
        appended = await self.store.append_state(event, device, self.clock.now_ms())
        self.publish_state([appended], device)
        return appended.seq

    def notify_keys_changed(self, devices: list[DeviceId]) -> None:
        self.hub.wake_queues(devices)

    async def do_remove_device(self, user: UserId, device: DeviceId) -> bool:
        found, notified = await self.store.remove_device(user, device, self.clock.now_ms())
        if found:
            await self.hub.close_device(device, CLOSE_UNAUTHORIZED, "device removed")
            self.notify_keys_changed(notified)
        return found
