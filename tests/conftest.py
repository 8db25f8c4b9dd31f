"""Shared fixtures: a real server process on loopback, and raw clients."""

from __future__ import annotations

import itertools
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from taube.testing import RawClient, ServerProcess

_names = itertools.count()

#: in CI every service a test needs must be there; a skip is a failure
REQUIRE_SERVICES = os.environ.get("TAUBE_REQUIRE_SERVICES") == "1"


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


def fresh_address(prefix: str = "user") -> str:
    return f"{prefix}{next(_names)}x{os.getpid()}@example.org"


@pytest.fixture
async def clients() -> AsyncIterator[Callable[[ServerProcess], Callable[..., Awaitable[RawClient]]]]:
    """``make = clients(server)``; ``alice = await make("alice")`` registers,
    publishes keys and connects."""
    opened: list[RawClient] = []

    def bind(proc: ServerProcess) -> Callable[..., Awaitable[RawClient]]:
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


async def second_device(proc: ServerProcess, first: RawClient, *, connect: bool = True) -> RawClient:
    client = RawClient(proc.url, first.address)
    await client.__aenter__()
    client.identity = first.identity
    await client.login()
    await client.setup_keys()
    if connect:
        await client.connect()
    return client
