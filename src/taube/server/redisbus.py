"""``RedisBus``: notices between nodes over Redis pub/sub (``taube[redis]``).

Every node of a deployment publishes to and subscribes to one channel,
``<bus.channel>:notices``. Pub/sub delivers at most once: a node that is not
subscribed at the moment a batch is published never sees it. So:

- a publisher keeps what it could not publish and sends it once Redis is
  back (``MAX_PENDING`` notices at most; past that it drops the oldest and
  follows up with a ``Resync``);
- a subscriber that lost its subscription tells the server when it has a new
  one (``on_lost``), and the server re-reads what its devices may have
  missed in between;
- notices are batched: while one ``PUBLISH`` is on its way, the next batch
  fills up, so a busy node sends few large messages rather than many small
  ones (the same idea as the store's group commit).

Redis holds nothing that matters: restarting it, or losing it for a while,
delays deliveries and loses none.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import secrets
from typing import Any

import msgspec

from taube.server.bus import AnyNotice, Batch, LostHandler, Receiver, Resync, decode_batch
from taube.server.bus import encode_batch as _encode

log = logging.getLogger(__name__)

#: notices kept while Redis cannot be reached; older ones are dropped beyond
MAX_PENDING = 100_000
#: notices in one ``PUBLISH`` at most
MAX_BATCH = 1000
#: reconnection back-off, seconds
FIRST_DELAY = 0.05
MAX_DELAY = 1.0
#: the subscriber pings Redis when idle this long, and reconnects when it
#: has heard nothing (not even the pong) for three times as long
PING_INTERVAL = 5.0


class RedisBus:
    """Publish and subscribe on one Redis channel. Use as an async context manager."""

    def __init__(
        self,
        url: str,
        channel: str,
        node: str,
        receive: Receiver,
        on_lost: LostHandler,
    ) -> None:
        try:
            import redis.asyncio as redis
            from redis.asyncio.retry import Retry
            from redis.backoff import NoBackoff
        except ImportError as exc:
            raise RuntimeError(
                f'the Redis bus needs redis-py: pip install "taube[redis]" ({exc})'
            ) from None
        self._url = url  # may hold a password: never logged
        self.channel = f"{channel}:notices"
        self.node = node
        self.instance = secrets.token_hex(8)
        self._receive = receive
        self._on_lost = on_lost
        options: dict[str, Any] = {
            "socket_connect_timeout": 2.0,
            "socket_timeout": 5.0,
            "socket_keepalive": True,
            # this class does its own reconnecting and backing off
            "retry": Retry(NoBackoff(), 0),
        }
        self._publisher: Any = redis.Redis.from_url(url, **options)
        self._subscriber: Any = redis.Redis.from_url(url, **{**options, "socket_timeout": None})
        self._pending: collections.deque[AnyNotice] = collections.deque()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._dropped = False
        self._tasks: list[asyncio.Task[None]] = []
        self.subscribed = asyncio.Event()
        self.published = 0  #: batches
        self.received = 0  #: batches from other nodes

    # ----------------------------------------------------------- lifecycle

    async def __aenter__(self) -> RedisBus:
        self._tasks = [
            asyncio.create_task(self._publish_forever(), name="bus-publish"),
            asyncio.create_task(self._subscribe_forever(), name="bus-subscribe"),
        ]
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        for client in (self._publisher, self._subscriber):
            with contextlib.suppress(Exception):
                await client.aclose()

    async def wait_subscribed(self, timeout: float) -> bool:
        try:
            async with asyncio.timeout(timeout):
                await self.subscribed.wait()
        except TimeoutError:
            return False
        return True

    # ----------------------------------------------------------- publishing

    def publish(self, notice: AnyNotice) -> None:
        if len(self._pending) >= MAX_PENDING:
            self._pending.popleft()
            self._dropped = True
        self._pending.append(notice)
        self._idle.clear()
        self._wake.set()

    async def flush(self, timeout: float) -> bool:
        try:
            async with asyncio.timeout(timeout):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True

    async def _publish_forever(self) -> None:
        delay = FIRST_DELAY
        failing = False
        while True:
            if not self._pending:
                self._idle.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            if self._dropped:
                self._dropped = False
                self._pending.appendleft(Resync())
            count = min(MAX_BATCH, len(self._pending))
            notices = [self._pending[i] for i in range(count)]
            payload = _encode(Batch(instance=self.instance, node=self.node, notices=notices))
            try:
                await self._publisher.publish(self.channel, payload)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not failing:
                    log.warning("cannot publish on the bus, retrying: %s", _describe(exc))
                failing = True
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_DELAY)
                continue
            for _ in range(count):
                self._pending.popleft()
            self.published += 1
            if failing:
                log.info("publishing on the bus again")
                failing = False
                delay = FIRST_DELAY

    # ----------------------------------------------------------- subscribing

    async def _subscribe_forever(self) -> None:
        delay = FIRST_DELAY
        lost = False
        while True:
            pubsub = self._subscriber.pubsub()
            try:
                await pubsub.subscribe(self.channel)
                await self._confirmed(pubsub)
                self.subscribed.set()
                if lost:
                    log.info("subscribed to the bus again; re-reading what may have been missed")
                    self._on_lost()
                lost = False
                delay = FIRST_DELAY
                await self._listen(pubsub)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not lost:
                    log.warning("lost the bus subscription, retrying: %s", _describe(exc))
                lost = True
            finally:
                self.subscribed.clear()
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_DELAY)

    async def _confirmed(self, pubsub: Any) -> None:
        """Wait for Redis to confirm the subscription."""
        async with asyncio.timeout(5.0):
            while True:
                message = await pubsub.get_message(timeout=1.0)
                if message is not None and message.get("type") == "subscribe":
                    return

    async def _listen(self, pubsub: Any) -> None:
        loop = asyncio.get_running_loop()
        heard = loop.time()
        pinged = heard
        while True:
            message = await pubsub.get_message(timeout=PING_INTERVAL)
            now = loop.time()
            if message is not None:
                heard = now
                kind = message.get("type")
                if kind == "message":
                    self._handle(message["data"])
                elif kind == "subscribe":
                    # redis-py re-subscribed on a new connection by itself:
                    # what was published in between is lost
                    log.info("the bus subscription was renewed; re-reading what may be missed")
                    self._on_lost()
                continue
            if now - heard > 3 * PING_INTERVAL:
                raise ConnectionError("no answer from Redis")
            if now - pinged >= PING_INTERVAL:
                pinged = now
                await pubsub.ping()

    def _handle(self, data: bytes) -> None:
        try:
            batch = decode_batch(data)
        except msgspec.DecodeError as exc:
            log.warning("ignoring an unreadable bus message: %s", exc)
            return
        if batch.instance == self.instance:
            return
        self.received += 1
        try:
            self._receive(batch.node, batch.notices)
        except Exception:
            log.exception("handling notices from node %s failed", batch.node)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"
