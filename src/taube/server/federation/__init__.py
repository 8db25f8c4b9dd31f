"""Federation: this server talking to the taube servers of other domains.

``Federation`` holds the parts: the server's keys (``keyring``), the
directory of other servers (``discovery``), signed requests out
(``request``) and the checks on signed requests in (``authenticate``, see
``signing``), the allow/deny list and the per-server rate limits. The
routes other servers call are in ``routes``; what the client API asks of
other servers (key look-ups) is in ``keys``.

Clients never talk to a foreign server: their own server asks for them and
hands back what it got; the clients still check every device certificate
and signed state event themselves, so a lying server can make them trust
nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any, TypeVar

import aiohttp
import msgspec
from aiohttp import web
from yarl import URL

from taube.proto.codec import encode
from taube.proto.errors import ErrorCode, ProtocolError
from taube.proto.federation import (
    FEDERATION_PREFIX,
    FRESHNESS_MS,
    Empty,
    FederationError,
    TypingNotice,
)
from taube.proto.ids import BlobId, ConversationId, DeviceId, MessageId, UserId, domain_of
from taube.server.clock import Clock
from taube.server.config import Config
from taube.server.federation.discovery import Directory, NoServer
from taube.server.federation.keyring import ServerKeyring
from taube.server.federation.outbound import Outbound
from taube.server.federation.signing import SignedRequest, signed_headers
from taube.server.proxies import client_ip
from taube.server.ratelimit import RateLimiter
from taube.store import Store
from taube.store import federation as stored
from taube.store.blobstore import BlobStore, too_large
from taube.store.queues import QueueEntry

log = logging.getLogger(__name__)

T = TypeVar("T")

_error = msgspec.json.Decoder(FederationError)

#: typing notices on their way to other servers at once (more are dropped)
MAX_TYPING_IN_FLIGHT = 256
#: how often transaction ids older than the freshness window are forgotten
PRUNE_INTERVAL_S = 60.0


class Federation:
    def __init__(self, config: Config, clock: Clock, store: Store) -> None:
        self.config = config
        self.settings = config.federation
        self.domain = config.server.domain
        self.clock = clock
        self.store = store
        self.keyring = ServerKeyring.open(config.data_dir / "federation", clock.now_ms())
        rotated = self.keyring.rotate_if_older(
            int(self.settings.key_rotation_days * 86400 * 1000), clock.now_ms()
        )
        if rotated:
            log.info("rotated the server key", extra={"key": rotated})
        self.limiter = RateLimiter(clock, per_minute=self.settings.requests_per_minute)
        self.failures = RateLimiter(clock, per_minute=self.settings.failures_per_minute)
        self._session: aiohttp.ClientSession | None = None
        self._directory: Directory | None = None
        self.outbound = Outbound(self, store)
        self._typing: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> Federation:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit_per_host=32, ttl_dns_cache=300)
        )
        self._directory = Directory(self.settings, self.clock, self._session)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    @property
    def directory(self) -> Directory:
        if self._directory is None:
            raise RuntimeError("federation is not started")
        return self._directory

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("federation is not started")
        return self._session

    # ----------------------------------------------------------- policy

    def allowed(self, domain: str) -> bool:
        """Whether this server talks to ``domain`` at all."""
        settings = self.settings
        if not settings.enabled or domain == self.domain:
            return False
        if settings.allow and domain not in settings.allow:
            return False
        return domain not in settings.deny

    def is_remote(self, domain: str) -> bool:
        return domain != self.domain

    # ----------------------------------------------------------- out

    async def request(self, domain: str, method: str, path: str, body: Any, response: type[T]) -> T:
        """A signed request to ``domain``'s server; its answer decoded as ``response``.

        Raises ``NoServer`` (the domain has no taube server), or
        ``ProtocolError``: ``forbidden`` (not allowed here), ``unavailable``
        (unreachable, or it failed), or the remote's own error.
        """
        if not self.allowed(domain):
            raise ProtocolError(ErrorCode.FORBIDDEN, f"this server does not federate with {domain}")
        server = await self.directory.server(domain)
        full = FEDERATION_PREFIX + path
        data = encode(body) if body is not None else b""
        headers = signed_headers(
            self.keyring, self.domain, domain, method, full, data, self.clock.now_ms()
        )
        headers["Content-Type"] = "application/json"
        timeout = aiohttp.ClientTimeout(total=self.settings.timeout_s)
        try:
            async with self.session.request(
                method,
                URL(server + full, encoded=True),
                data=data,
                headers=headers,
                timeout=timeout,
                allow_redirects=False,
            ) as answer:
                content = await answer.content.read(self.settings.max_body_bytes + 1)
                status = answer.status
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise ProtocolError(ErrorCode.UNAVAILABLE, f"cannot reach {domain}: {exc}") from exc
        if len(content) > self.settings.max_body_bytes:
            raise ProtocolError(ErrorCode.UNAVAILABLE, f"{domain} answered with too much")
        if status >= 400:
            raise _remote_error(domain, status, content)
        try:
            return msgspec.json.decode(content, type=response)
        except msgspec.DecodeError as exc:
            raise ProtocolError(ErrorCode.UNAVAILABLE, f"{domain} answered garbage") from exc

    async def fetch_blob(
        self, domain: str, blob: BlobId, blobs: BlobStore, limit: int, now: int
    ) -> int:
        """Copy an attachment from ``domain``'s server into ``blobs`` (at most
        ``limit`` bytes: more is ``payload_too_large`` and leaves nothing)."""
        if not self.allowed(domain):
            raise ProtocolError(ErrorCode.FORBIDDEN, f"this server does not federate with {domain}")
        server = await self.directory.server(domain)
        path = f"{FEDERATION_PREFIX}/blobs/{blob}"
        headers = signed_headers(self.keyring, self.domain, domain, "GET", path, b"", now)
        timeout = aiohttp.ClientTimeout(
            sock_connect=self.settings.timeout_s, sock_read=self.settings.timeout_s
        )
        try:
            async with self.session.get(
                URL(server + path, encoded=True),
                headers=headers,
                timeout=timeout,
                allow_redirects=False,
            ) as answer:
                if answer.status != 200:
                    content = await answer.content.read(self.settings.max_body_bytes)
                    raise _remote_error(domain, answer.status, content)
                if answer.content_length is not None and answer.content_length > limit:
                    raise too_large(limit)

                async def chunks() -> AsyncIterator[bytes]:
                    async for chunk in answer.content.iter_chunked(1 << 16):
                        yield chunk

                return await blobs.receive(blob, chunks(), limit, now)
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise ProtocolError(
                ErrorCode.UNAVAILABLE, f"cannot fetch from {domain}: {exc}"
            ) from exc

    # ----------------------------------------------------------- in

    async def authenticate(self, request: web.Request, body: bytes) -> str:
        """Check a signed request (``signing``); returns the origin domain.

        Every refusal also takes from the sender address's failure budget:
        a server (or anyone) sending garbage is throttled with ``429``
        before any work is done for it.
        """
        ip = client_ip(request.remote, request.headers.get("X-Forwarded-For"), [])
        try:
            origin = await self._check(request, body)
        except ProtocolError as exc:
            if exc.code != ErrorCode.RATE_LIMITED:
                self.failures.take(ip)
                log.info(
                    "refused a federation request",
                    extra={"ip": ip, "path": request.path, "error": exc.message},
                )
            raise
        return origin

    def _throttled(self, ip: str) -> bool:
        """Whether ``ip`` has used up its budget of refused requests."""
        bucket = self.failures.buckets.get(ip)
        if bucket is None:
            return False
        refill = (self.clock.monotonic() - bucket.updated) * bucket.rate
        return min(bucket.burst, bucket.tokens + refill) < 1

    async def _check(self, request: web.Request, body: bytes) -> str:
        ip = client_ip(request.remote, request.headers.get("X-Forwarded-For"), [])
        if self._throttled(ip):
            raise ProtocolError(
                ErrorCode.RATE_LIMITED, "too many refused requests", retry_after=60.0
            )
        if not self.settings.enabled:
            raise ProtocolError(ErrorCode.FORBIDDEN, "this server does not federate")
        signed = SignedRequest(request.headers)
        if signed.destination != self.domain:
            raise ProtocolError(ErrorCode.UNAUTHORIZED, "the request is for another server")
        if not self.allowed(signed.origin):
            raise ProtocolError(
                ErrorCode.FORBIDDEN, f"this server does not federate with {signed.origin}"
            )
        wait = self.limiter.take(signed.origin)
        if wait > 0:
            raise ProtocolError(ErrorCode.RATE_LIMITED, "too many requests", retry_after=wait)
        signed.check_fresh(self.clock.now_ms())
        try:
            await signed.check_signature(self.directory, request.method, request.path_qs, body)
        except NoServer as exc:
            raise ProtocolError(ErrorCode.UNAUTHORIZED, exc.message) from exc
        fresh = await self.store.engine.write(
            stored.remember_txn, signed.origin, signed.txn, self.clock.now_ms()
        )
        if not fresh:
            raise ProtocolError(ErrorCode.CONFLICT, "replayed transaction")
        self.outbound.heard_from(signed.origin)
        return signed.origin

    async def run(self) -> None:
        """The background work: pushing to other servers, forgetting old txn ids."""
        async with asyncio.TaskGroup() as group:
            group.create_task(self.outbound.run())
            group.create_task(self._prune_forever())

    async def send_to_devices(
        self,
        sender: UserId,
        sender_device: DeviceId,
        ref: MessageId,
        messages: list[tuple[UserId, DeviceId, bytes]],
    ) -> tuple[bool, list[QueueEntry]]:
        """``todevice.send``: local devices' queues, and other servers' outboxes."""
        duplicate, entries, domains = await self.store.engine.write(
            stored.send_to_devices_anywhere,
            self.domain,
            sender,
            sender_device,
            ref,
            messages,
            self.clock.now_ms(),
        )
        if domains:
            self.outbound.wake()
        return duplicate, entries

    async def announce_keys_changed(self, user: UserId) -> None:
        """Tell the servers sharing a conversation with ``user`` that their keys changed."""
        try:
            domains = await self.store.engine.write(
                stored.announce_keys_changed, user, self.clock.now_ms()
            )
        except ProtocolError as exc:
            log.warning("key change of %s not announced to other servers: %s", user, exc.message)
            return
        if domains:
            self.outbound.wake()

    def typing(
        self, conversation: ConversationId, user: UserId, active: bool, members: frozenset[UserId]
    ) -> None:
        """Pass a typing notice to the other servers with members (never
        stored, never retried: a lost one is a missed indicator)."""
        domains = {domain_of(m) for m in members} - {self.domain}
        for domain in domains:
            if len(self._typing) >= MAX_TYPING_IN_FLIGHT:
                return
            notice = TypingNotice(conversation=conversation, user=user, active=active)
            task = asyncio.get_running_loop().create_task(
                self._send_typing(domain, notice), name=f"typing to {domain}"
            )
            self._typing.add(task)
            task.add_done_callback(self._typing.discard)

    async def _send_typing(self, domain: str, notice: TypingNotice) -> None:
        try:
            await self.request(domain, "POST", "/typing", notice, Empty)
        except ProtocolError as exc:
            log.debug("typing notice to %s lost: %s", domain, exc.message)

    async def _prune_forever(self) -> None:
        """Forget transaction ids once their requests would be refused for
        age, and to-device messages no server took within the retention."""
        while True:
            await asyncio.sleep(PRUNE_INTERVAL_S)
            now = self.clock.now_ms()
            try:
                await self.store.engine.write(stored.forget_txns, now - 2 * FRESHNESS_MS)
                await self.store.engine.write(
                    stored.forget_to_devices, now - int(self.config.retention.max_age_s * 1000)
                )
            except Exception as exc:
                log.info("federation clean-up failed: %s", exc)


def _remote_error(domain: str, status: int, content: bytes) -> ProtocolError:
    try:
        error = _error.decode(content)
        code = ErrorCode(error.error)
    except (msgspec.DecodeError, ValueError):
        return ProtocolError(ErrorCode.UNAVAILABLE, f"{domain} answered HTTP {status}")
    if code in (ErrorCode.UNAUTHORIZED, ErrorCode.BAD_SIGNATURE, ErrorCode.CONFLICT):
        # it refused our signature: our key may be new to it, a retry may help
        return ProtocolError(ErrorCode.UNAVAILABLE, f"{domain} refused us: {error.message}")
    return ProtocolError(code, f"{domain}: {error.message}", retry_after=error.retry_after)
