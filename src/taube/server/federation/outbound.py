"""Pushing to other servers: one worker per destination, from durable queues.

The queue of a destination is the conversation log itself, read from that
server's cursor ``@<domain>`` (``store.conversations.server_cursor``), plus
``federation_todevice``. So each entry goes to each server once (not once
per remote device), in log order per conversation, and is deleted only
once every server and every local device has it.

What is forwarded: messages sent by this server's users (each server
forwards its own users' messages), and state events if this server is the
conversation's *home* (its creator's server: it orders the chain). The
other entries are passed over (their own server forwards them).

A worker pushes a transaction (``POST /_federation/v1/send``), and when the
remote answers, advances the cursors and drops the to-device messages it
took; refused entries are logged and not retried. While the remote cannot
be reached it retries with exponential backoff (0.5 s doubling to
``MAX_BACKOFF_S``, with jitter), so a server that was down for an hour gets
everything once it is back, in order, and nothing twice (the receiver
stores each entry once, however often it comes).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import msgspec

from taube.proto.errors import ProtocolError
from taube.proto.federation import (
    FederatedMessage,
    FederatedState,
    FederatedToDevice,
    Transaction,
    TransactionResult,
)
from taube.proto.frames import ToDeviceMessage
from taube.proto.ids import ConversationId, DeviceId, UserId, domain_of
from taube.proto.state import StateEvent
from taube.server.clock import Clock
from taube.store import delivery
from taube.store import federation as stored
from taube.store.conversations import KIND_STATE, server_cursor

if TYPE_CHECKING:
    from taube.store import Store

T = TypeVar("T")

log = logging.getLogger(__name__)

_event = msgspec.json.Decoder(StateEvent)

#: entries per transaction, and to-device rows read at a time
MAX_ENTRIES = 200
MAX_TO_DEVICE = 200
MAX_BACKOFF_S = 60.0
#: a worker looks again this often even without a wake-up (entries committed
#: by another node, or a wake-up lost)
IDLE_RECHECK_S = 5.0
#: how often the list of destinations is read again (other nodes may add some)
RESCAN_S = 10.0


class Signed(Protocol):
    """What a worker needs of ``Federation``: signed requests out."""

    domain: str
    clock: Clock

    async def request(
        self, domain: str, method: str, path: str, body: Any, response: type[T]
    ) -> T: ...


class Outbound:
    def __init__(self, federation: Signed, store: Store) -> None:
        self.federation = federation
        self.store = store
        self._wake: dict[str, asyncio.Event] = {}
        self._alive: dict[str, asyncio.Event] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._homes: dict[ConversationId, bool] = {}
        self._rescan = asyncio.Event()

    def wake(self) -> None:
        """Something was committed that other servers may be owed."""
        for event in self._wake.values():
            event.set()
        self._rescan.set()

    async def run(self) -> None:
        try:
            while True:
                try:
                    for domain in await self.store.engine.read(stored.destinations):
                        self._ensure(domain)
                except ProtocolError as exc:
                    log.info("cannot read the federation destinations: %s", exc.message)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._rescan.wait(), RESCAN_S)
                self._rescan.clear()
        finally:
            for task in self._workers.values():
                task.cancel()
            await asyncio.gather(*self._workers.values(), return_exceptions=True)

    def _ensure(self, domain: str) -> None:
        if domain in self._workers:
            return
        self._wake[domain] = asyncio.Event()
        self._wake[domain].set()
        self._workers[domain] = asyncio.create_task(self._worker(domain), name=f"to {domain}")

    def heard_from(self, domain: str) -> None:
        """``domain``'s server just made a signed request here: it is up, so a
        worker waiting out its backoff for it tries again at once."""
        alive = self._alive.get(domain)
        if alive is not None:
            alive.set()

    async def _worker(self, domain: str) -> None:
        wake = self._wake[domain]
        alive = self._alive[domain] = asyncio.Event()
        backoff = 0.0
        # The first push goes even when empty: it tells the other server that
        # this one is (back) up, so it sends what it kept for us at once.
        announce = True
        while True:
            wake.clear()
            alive.clear()
            try:
                busy = await self.push(domain, announce=announce)
                announce = False
            except Exception as exc:
                backoff = min(MAX_BACKOFF_S, max(0.5, backoff * 2))
                if isinstance(exc, ProtocolError):
                    log.info("cannot push to %s: %s; again in %.1f s", domain, exc.message, backoff)
                else:
                    log.exception("pushing to %s failed", domain)
                with contextlib.suppress(TimeoutError):
                    delay = backoff * random.uniform(0.75, 1.25)  # noqa: S311 - not a secret
                    await asyncio.wait_for(alive.wait(), delay)
                continue
            backoff = 0.0
            if not busy:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), IDLE_RECHECK_S)

    async def _is_home(self, conversation: ConversationId) -> bool:
        home = self._homes.get(conversation)
        if home is None:
            creator = await self.store.engine.read(stored.conversation_creator, conversation)
            home = creator is not None and domain_of(creator) == self.federation.domain
            if len(self._homes) > 100_000:
                self._homes.clear()
            self._homes[conversation] = home
        return home

    async def push(self, domain: str, *, announce: bool = False) -> bool:
        """Push one transaction to ``domain``; ``False`` if nothing was waiting
        (``announce``: send one anyway, empty if need be)."""
        store = self.store
        cursor = server_cursor(domain)
        own = self.federation.domain
        now = self.federation.clock.now_ms()
        entries: list[FederatedMessage | FederatedState] = []
        passed: dict[ConversationId, int] = {}
        heads = await store.engine.read(delivery.pending_heads, [cursor])
        for _, conversation, head in sorted(heads, key=lambda h: h[1]):
            room = MAX_ENTRIES - len(entries)
            if room <= 0:
                break
            position = await store.device_cursor(cursor, conversation)
            if position is None:
                continue
            home = await self._is_home(conversation)
            log_entries = await store.fetch_log(
                conversation, position.seq, position.until_seq, room, now
            )
            for entry in log_entries:
                passed[conversation] = entry.seq
                if entry.kind == KIND_STATE:
                    if home:
                        entries.append(
                            FederatedState(
                                conversation=conversation, event=_event.decode(entry.body)
                            )
                        )
                elif domain_of(entry.sender) == own:
                    entries.append(
                        FederatedMessage(
                            conversation=conversation,
                            id=entry.msg_id,
                            sender=entry.sender,
                            sender_device=entry.sender_device,
                            ts=entry.ts,
                            body=entry.body,
                            blobs=list(entry.blobs),
                            expire_ms=None
                            if entry.expires_ms is None
                            else max(0, entry.expires_ms - now),
                        )
                    )
            if len(log_entries) < room:
                # everything up to the head was read: what is missing expired
                passed[conversation] = max(passed.get(conversation, 0), head)
        to_device = await store.engine.read(stored.fetch_to_devices, domain, MAX_TO_DEVICE)
        if not entries and not to_device and not passed and not announce:
            return False
        if entries or to_device or announce:
            batches: dict[tuple[str, str], FederatedToDevice] = {}
            changed: list[UserId] = []
            for row in to_device:
                if not row.device:  # a key change, not a message
                    changed.append(row.sender)
                    continue
                key = (row.sender_device, row.ref)
                if key not in batches:
                    batches[key] = FederatedToDevice(
                        id=row.ref, sender=row.sender, sender_device=row.sender_device, messages=[]
                    )
                batches[key].messages.append(
                    ToDeviceMessage(user=row.user, device=row.device, body=row.body)
                )
            result = await self.federation.request(
                domain,
                "POST",
                "/send",
                Transaction(
                    entries=entries,
                    to_device=list(batches.values()),
                    keys_changed=list(dict.fromkeys(changed)),
                ),
                TransactionResult,
            )
            for sent, outcome in zip(entries, result.entries, strict=False):
                if outcome.error is not None:
                    log.warning(
                        "%s refused an entry of %s: %s %s",
                        domain,
                        sent.conversation,
                        outcome.error,
                        outcome.message,
                    )
        if passed:
            await store.ack([(DeviceId(cursor), c, seq) for c, seq in passed.items()])
        if to_device:
            await store.engine.write(stored.drop_to_devices, domain, [row.seq for row in to_device])
        return True
