"""Finding other servers: which server serves a domain, and which keys it signs with.

``https://DOMAIN/.well-known/taube/server`` names the domain's server
(``ServerDiscovery``); ``SERVER/.well-known/taube/keys`` lists its keys
(``ServerKeys``, whose ``domain`` must be the domain asked about). Both are
cached for ``federation.cache_s``; a domain without a taube server is
remembered for ``federation.negative_cache_s``. ``federation.hosts`` maps a
domain to where ``https://DOMAIN`` is reached instead (tests on loopback,
private networks): discovery still asks that host, so the same path runs.

A key id the cache does not know makes the keys be fetched again (a
rotation), at most once per ``KEY_REFETCH_S`` per domain, so that forged
key ids cannot make us hammer a server.

DNS SRV records are not consulted (the well-known document is the one way).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import Generic, TypeVar

import aiohttp
import msgspec

from taube.proto.errors import ErrorCode, ProtocolError
from taube.proto.federation import (
    WELL_KNOWN_KEYS,
    WELL_KNOWN_SERVER,
    ServerDiscovery,
    ServerKey,
    ServerKeys,
)
from taube.server.clock import Clock
from taube.server.config import FederationSection

log = logging.getLogger(__name__)

KEY_REFETCH_S = 30.0
#: a discovery or key document is small
MAX_DOCUMENT_BYTES = 64 << 10

_discovery = msgspec.json.Decoder(ServerDiscovery)
_keys = msgspec.json.Decoder(ServerKeys)


class NoServer(ProtocolError):
    """The domain has no (reachable) taube server."""

    def __init__(self, domain: str, why: str) -> None:
        super().__init__(ErrorCode.NOT_FOUND, f"{domain} has no taube server ({why})")
        self.domain = domain


T = TypeVar("T")


@dataclasses.dataclass
class _Cached(Generic[T]):
    value: T
    expires: float


class Directory:
    """Discovered servers and their keys, cached with expiry."""

    def __init__(
        self, config: FederationSection, clock: Clock, session: aiohttp.ClientSession
    ) -> None:
        self.config = config
        self.clock = clock
        self.session = session
        self._servers: dict[str, _Cached[str | None]] = {}
        self._keys: dict[str, _Cached[dict[str, ServerKey]]] = {}
        self._fetched_keys: dict[str, float] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def _lock(self, name: str) -> asyncio.Lock:
        lock = self._locks.get(name)
        if lock is None:
            if len(self._locks) > 10_000:
                self._locks = {k: v for k, v in self._locks.items() if v.locked()}
            lock = self._locks[name] = asyncio.Lock()
        return lock

    def _origin_of(self, domain: str) -> str:
        """Where ``https://domain`` is reached."""
        return self.config.hosts.get(domain, f"https://{domain}").rstrip("/")

    async def _get(self, url: str) -> bytes:
        """The document at ``url``: ``NOT_FOUND`` when the server says there is
        none, ``UNAVAILABLE`` when it cannot be reached or fails (try again later)."""
        timeout = aiohttp.ClientTimeout(total=self.config.timeout_s)
        try:
            async with self.session.get(url, timeout=timeout, allow_redirects=False) as response:
                body = await response.content.read(MAX_DOCUMENT_BYTES + 1)
                status = response.status
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise ProtocolError(ErrorCode.UNAVAILABLE, f"cannot reach {url}: {exc}") from exc
        if status >= 500 or status == 429:
            raise ProtocolError(ErrorCode.UNAVAILABLE, f"{url}: HTTP {status}")
        if status != 200:
            raise ProtocolError(ErrorCode.NOT_FOUND, f"{url}: HTTP {status}")
        if len(body) > MAX_DOCUMENT_BYTES:
            raise ProtocolError(ErrorCode.NOT_FOUND, f"{url}: document too large")
        return body

    async def server(self, domain: str) -> str:
        """The base URL of ``domain``'s taube server; raises ``NoServer``."""
        now = self.clock.monotonic()
        cached = self._servers.get(domain)
        if cached is None or cached.expires <= now:
            async with self._lock("server:" + domain):
                cached = self._servers.get(domain)
                if cached is None or cached.expires <= self.clock.monotonic():
                    found, transient = await self._discover(domain)
                    if transient and cached is not None and cached.value is not None:
                        # known, and unreachable for now: keep it (the caller
                        # gets "unavailable" and retries), look again soon
                        found = _Cached(cached.value, self.clock.monotonic() + 60.0)
                    cached = self._servers[domain] = found
        if cached.value is None:
            raise NoServer(domain, "no well-known document")
        return cached.value

    async def _discover(self, domain: str) -> tuple[_Cached[str | None], bool]:
        """What the domain says; and whether a failure may be transient.

        A domain that cannot be asked at all (no web server, nothing
        listening) is taken to have no taube server, for
        ``negative_cache_s``: most domains of e-mail addresses are like that."""
        url = self._origin_of(domain) + WELL_KNOWN_SERVER
        negative = self.clock.monotonic() + self.config.negative_cache_s
        try:
            found = _discovery.decode(await self._get(url)).server.rstrip("/")
        except ProtocolError as exc:
            log.info("no taube server found for %s: %s", domain, exc.message)
            return _Cached(None, negative), exc.retryable
        except msgspec.DecodeError as exc:
            log.info("bad discovery document for %s: %s", domain, exc)
            return _Cached(None, negative), False
        if found.startswith("http://") and not self.config.allow_http:
            log.warning("%s names a server without TLS (%s): refused", domain, found)
            return _Cached(None, negative), False
        return _Cached(found, self.clock.monotonic() + self.config.cache_s), False

    async def key(self, domain: str, key_id: str) -> ServerKey:
        """The key ``key_id`` of ``domain``'s server, as that server publishes it."""
        now = self.clock.monotonic()
        cached = self._keys.get(domain)
        if cached is not None and cached.expires > now and key_id in cached.value:
            return cached.value[key_id]
        async with self._lock("keys:" + domain):
            cached = self._keys.get(domain)
            fresh = cached is not None and cached.expires > self.clock.monotonic()
            if fresh and cached is not None and key_id in cached.value:
                return cached.value[key_id]
            last = self._fetched_keys.get(domain)
            if not fresh or last is None or self.clock.monotonic() - last >= KEY_REFETCH_S:
                cached = await self._fetch_keys(domain)
        if cached is None or key_id not in cached.value:
            raise ProtocolError(ErrorCode.UNAUTHORIZED, f"{domain} has no key {key_id!r}")
        return cached.value[key_id]

    async def _fetch_keys(self, domain: str) -> _Cached[dict[str, ServerKey]]:
        server = await self.server(domain)
        self._fetched_keys[domain] = self.clock.monotonic()
        try:
            document = _keys.decode(await self._get(server + WELL_KNOWN_KEYS))
        except msgspec.DecodeError as exc:
            raise ProtocolError(ErrorCode.UNAUTHORIZED, f"bad key document of {domain}") from exc
        except ProtocolError as exc:
            if exc.retryable:
                raise
            raise ProtocolError(ErrorCode.UNAUTHORIZED, f"no key document of {domain}") from exc
        if document.domain != domain:
            raise ProtocolError(
                ErrorCode.UNAUTHORIZED, f"the server of {domain} publishes keys of another domain"
            )
        cached = _Cached(
            {key.key_id: key for key in document.keys}, self.clock.monotonic() + self.config.cache_s
        )
        self._keys[domain] = cached
        return cached
