"""Shared fixtures: a real server process on loopback, raw clients, PostgreSQL, Redis."""

from __future__ import annotations

import asyncio
import itertools
import os
import secrets
import socket
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NoReturn, Protocol

import pytest

from taube.testing import RawClient, ServerProcess
from taube.testing.deltachat import DeltaChatCore
from taube.testing.mailserver import MailServer

_names = itertools.count()

#: in CI every service a test needs must be there; a skip is a failure
REQUIRE_SERVICES = os.environ.get("TAUBE_REQUIRE_SERVICES") == "1"

#: a PostgreSQL server the tests may use: they create a database of their own
#: in it (``taube_test_<random>``) and drop it at the end
POSTGRES_URL = os.environ.get(
    "TAUBE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)

#: a Redis server the tests may use: each test publishes on channels of its
#: own (a random ``bus.channel`` prefix) and never deletes anything
REDIS_URL = os.environ.get("TAUBE_TEST_REDIS", "redis://127.0.0.1:6379/0")


def missing_service(reason: str) -> NoReturn:
    """Skip for ``reason``, or fail where every service must be there (CI)."""
    if REQUIRE_SERVICES:
        pytest.fail(reason)
    pytest.skip(reason)


class Endpoint(Protocol):
    """Something clients connect to: a node, or the load balancer in front."""

    @property
    def url(self) -> str: ...


@pytest.fixture
def mail(tmp_path: Path) -> Iterator[MailServer]:
    """A private Postfix + Dovecot on loopback (``taube.testing.mailserver``)."""
    reason = MailServer.missing()
    if reason:
        missing_service(reason)
    with MailServer(tmp_path / "mail") as server:
        yield server


@pytest.fixture
async def core(tmp_path: Path) -> AsyncIterator[DeltaChatCore]:
    """A real Delta Chat core (``taube.testing.deltachat``)."""
    reason = DeltaChatCore.missing()
    if reason:
        missing_service(reason)
    async with DeltaChatCore(tmp_path / "deltachat") as running:
        yield running


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    with ServerProcess(tmp_path / "server") as proc:
        yield proc


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server for a module's tests that do not restart or reconfigure it."""
    with ServerProcess(tmp_path_factory.mktemp("shared") / "server") as proc:
        yield proc


ClientFactory = Callable[..., Awaitable[RawClient]]
#: the ``clients`` fixture: ``make = clients(server)``
Clients = Callable[[Endpoint], ClientFactory]


def fresh_address(prefix: str = "user") -> str:
    return f"{prefix}{next(_names)}x{os.getpid()}@example.org"


@pytest.fixture
async def clients() -> AsyncIterator[Clients]:
    """``make = clients(server)``; ``alice = await make("alice")`` registers,
    publishes keys and connects."""
    opened: list[RawClient] = []

    def bind(proc: Endpoint) -> Callable[..., Awaitable[RawClient]]:
        async def make(prefix: str = "user", *, connect: bool = True) -> RawClient:
            client = RawClient(proc.url, fresh_address(prefix))
            await client.__aenter__()
            opened.append(client)
            await client.new_account()
            if connect:
                await client.connect()
            return client

        return make

    yield bind
    for client in opened:
        await client.__aexit__(None, None, None)


async def second_device(proc: Endpoint, first: RawClient, *, connect: bool = True) -> RawClient:
    client = RawClient(proc.url, first.address)
    await client.__aenter__()
    client.identity = first.identity
    await client.login()
    await client.setup_keys()
    if connect:
        await client.connect()
    return client


def _postgres(url: str, *statements: str) -> None:
    """Run ``statements`` on ``url`` from a thread with its own loop (fixtures are sync)."""

    async def run() -> None:
        import asyncpg

        conn = await asyncpg.connect(url, timeout=5)
        try:
            for statement in statements:
                await conn.execute(statement)
        finally:
            await conn.close()

    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, run()).result()


def _with_database(url: str, name: str) -> str:
    return urllib.parse.urlsplit(url)._replace(path=f"/{name}").geturl()


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """The URL of a database of this run's own; skipped (failed under
    ``TAUBE_REQUIRE_SERVICES=1``) when PostgreSQL cannot be reached."""
    name = f"taube_test_{secrets.token_hex(4)}"
    try:
        _postgres(POSTGRES_URL, f"CREATE DATABASE {name}")
    except Exception as exc:
        missing_service(
            f"PostgreSQL is not reachable at {POSTGRES_URL} ({type(exc).__name__}: {exc});"
            " run scripts/services start or point TAUBE_TEST_POSTGRES at one"
        )
    try:
        yield _with_database(POSTGRES_URL, name)
    finally:
        _postgres(POSTGRES_URL, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def postgres_url(postgres_database: str) -> Iterator[str]:
    """A fresh, empty schema for one test: the URL selects it with ``search_path``."""
    schema = f"taube_{secrets.token_hex(6)}"
    _postgres(postgres_database, f"CREATE SCHEMA {schema}")
    try:
        yield f"{postgres_database}?search_path={schema}"
    finally:
        _postgres(postgres_database, f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def _redis_ping(url: str) -> None:
    parts = urllib.parse.urlsplit(url)
    with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), 2) as sock:
        sock.sendall(b"PING\r\n")
        answer = sock.recv(64)
    if not answer.startswith((b"+PONG", b"-NOAUTH")):
        raise ConnectionError(f"unexpected answer {answer!r}")


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The URL of the machine's Redis; skipped (failed under
    ``TAUBE_REQUIRE_SERVICES=1``) when it cannot be reached."""
    try:
        import redis  # noqa: F401 - the bus needs redis-py
    except ImportError as exc:
        missing_service(f'redis-py is not installed ({exc}): pip install -e ".[test]"')
    try:
        _redis_ping(REDIS_URL)
    except OSError as exc:
        missing_service(
            f"Redis is not reachable at {REDIS_URL} ({type(exc).__name__}: {exc});"
            " run scripts/services start or point TAUBE_TEST_REDIS at one"
        )
    return REDIS_URL


@pytest.fixture
def bus_env(redis_url: str) -> dict[str, str]:
    """Server settings for a bus of this test's own: a random channel prefix
    on the shared Redis (pub/sub channels ignore the database number)."""
    return {"TAUBE_BUS_URL": redis_url, "TAUBE_BUS_CHANNEL": f"taube-test-{secrets.token_hex(6)}"}


async def exchange_both_ways(alice: RawClient, bob: RawClient, conversation: str) -> None:
    """Alice and Bob each send one message and each receives the other's."""
    await alice.send(conversation, b"hello bob")
    await bob.send(conversation, b"hello alice")
    await bob.wait_for(lambda: len(bob.texts(conversation)) == 1)
    await alice.wait_for(lambda: len(alice.texts(conversation)) == 1)
    assert bob.texts(conversation) == [b"hello bob"]
    assert alice.texts(conversation) == [b"hello alice"]
