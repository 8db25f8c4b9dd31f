"""Several ``taube serve`` processes on loopback, each with a domain of its own.

Domains such as ``a.test`` do not resolve; each server's configuration
maps the others' domains to their loopback ports (``federation.hosts``),
and ``federation.allow_http`` lets discovery accept the ``http://`` URLs
the servers name for themselves. Discovery, key fetches and signatures run
exactly as between public servers; only name resolution and TLS are left
out (docs/design.md, *Federation*).

``RogueServer`` is a server of our own in the test process (a real HTTP
server on loopback) that serves the well-known documents of a domain and
signs requests with its own key: it plays the malicious remote.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import AsyncIterator, Awaitable, Iterator
from pathlib import Path
from typing import Any, Protocol

import aiohttp
import pytest
from aiohttp import web
from yarl import URL

from taube.proto.codec import encode
from taube.proto.federation import (
    FEDERATION_PREFIX,
    WELL_KNOWN_KEYS,
    WELL_KNOWN_SERVER,
    ServerDiscovery,
)
from taube.server.federation.keyring import ServerKeyring
from taube.server.federation.signing import signed_headers
from taube.testing import RawClient, ServerProcess
from taube.testing.services import free_port

_count = iter(range(1, 1_000_000))


def hosts_env(ports: dict[str, int]) -> dict[str, str]:
    """``TAUBE_FEDERATION_HOSTS`` naming every domain's loopback port."""
    table = ", ".join(f'"{d}" = "http://127.0.0.1:{p}"' for d, p in ports.items())
    return {
        "TAUBE_FEDERATION_ENABLED": "true",
        "TAUBE_FEDERATION_HOSTS": "{" + table + "}",
        "TAUBE_FEDERATION_ALLOW_HTTP": "true",
    }


class Servers:
    """``servers = make(["a.test", "b.test"], rogue=["evil.test"])``; ``servers["a.test"]``."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.procs: dict[str, ServerProcess] = {}
        self.ports: dict[str, int] = {}

    def start(
        self,
        domains: list[str],
        extra_hosts: dict[str, int] | None = None,
        env: dict[str, dict[str, str]] | None = None,
    ) -> None:
        self.ports = {d: free_port() for d in domains} | (extra_hosts or {})
        for domain in domains:
            proc = ServerProcess(
                self.base / domain,
                env={
                    "TAUBE_SERVER_DOMAIN": domain,
                    **hosts_env(self.ports),
                    **((env or {}).get(domain, {})),
                },
                port=self.ports[domain],
            )
            self.procs[domain] = proc
            proc.start()

    def __getitem__(self, domain: str) -> ServerProcess:
        return self.procs[domain]

    def stop(self) -> None:
        for proc in self.procs.values():
            proc.stop()


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Servers]:
    running = Servers(tmp_path)
    try:
        yield running
    finally:
        running.stop()


class UserFactory(Protocol):
    def __call__(
        self, proc: ServerProcess, name: str, *, connect: bool = True
    ) -> Awaitable[RawClient]: ...


@pytest.fixture
async def users() -> AsyncIterator[UserFactory]:
    """``alice = await users(servers["a.test"], "alice")``: registered, keys up, connected."""
    opened: list[RawClient] = []

    async def make(proc: ServerProcess, name: str, *, connect: bool = True) -> RawClient:
        domain = proc.env["TAUBE_SERVER_DOMAIN"]
        client = RawClient(proc.url, f"{name}{next(_count)}x{os.getpid()}@{domain}")
        await client.__aenter__()
        opened.append(client)
        await client.new_account()
        if connect:
            await client.connect()
        return client

    yield make
    for client in opened:
        await client.__aexit__(None, None, None)


class RogueServer:
    """A server we control for ``domain``: well-known documents and a key of its own."""

    def __init__(self, domain: str, directory: Path) -> None:
        self.domain = domain
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.keyring = ServerKeyring.open(directory, int(time.time() * 1000))
        self.runner: web.AppRunner | None = None
        self.session: aiohttp.ClientSession | None = None
        #: what the rogue answers to signed requests made to it, by path
        self.answers: dict[str, Any] = {}

    async def __aenter__(self) -> RogueServer:
        app = web.Application()
        app.router.add_get(WELL_KNOWN_SERVER, self._discovery)
        app.router.add_get(WELL_KNOWN_KEYS, self._keys)
        app.router.add_route("*", FEDERATION_PREFIX + "/{tail:.*}", self._signed)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.session is not None:
            await self.session.close()
        if self.runner is not None:
            await self.runner.cleanup()

    async def _discovery(self, _: web.Request) -> web.Response:
        return web.Response(body=encode(ServerDiscovery(server=self.url)))

    async def _keys(self, _: web.Request) -> web.Response:
        now = int(time.time() * 1000)
        return web.Response(body=encode(self.keyring.published(self.domain, now)))

    async def _signed(self, request: web.Request) -> web.Response:
        answer = self.answers.get(request.path.removeprefix(FEDERATION_PREFIX))
        if answer is None:
            return web.Response(status=404, body=b'{"error":"not_found","message":"no"}')
        return web.Response(body=json.dumps(answer).encode(), content_type="application/json")

    def headers(
        self, destination: str, method: str, path: str, body: bytes, *, now_ms: int | None = None
    ) -> dict[str, str]:
        return signed_headers(
            self.keyring,
            self.domain,
            destination,
            method,
            path,
            body,
            int(time.time() * 1000) if now_ms is None else now_ms,
        )

    async def send(
        self, target: ServerProcess, path: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int, dict[str, Any]]:
        """POST ``body`` to ``target``'s federation ``path`` with ``headers`` as given."""
        assert self.session is not None
        async with self.session.post(
            URL(target.url + path, encoded=True), data=body, headers=headers
        ) as response:
            content = await response.read()
            return response.status, json.loads(content) if content else {}

    async def call(
        self, target: ServerProcess, destination: str, path: str, body: Any
    ) -> tuple[int, dict[str, Any]]:
        """A correctly signed request from this rogue."""
        data = encode(body)
        full = FEDERATION_PREFIX + path
        return await self.send(target, full, data, self.headers(destination, "POST", full, data))


async def chat_across(
    servers: Servers,
    users: UserFactory,
    *,
    env: dict[str, dict[str, str]] | None = None,
    connect_bob: bool = True,
) -> tuple[RawClient, RawClient, str]:
    """a.test and b.test running, alice on a, bob on b, and alice's direct chat with bob."""
    servers.start(["a.test", "b.test"], env=env)
    alice = await users(servers["a.test"], "alice")
    bob = await users(servers["b.test"], "bob", connect=connect_bob)
    return alice, bob, await alice.direct(bob.address)
