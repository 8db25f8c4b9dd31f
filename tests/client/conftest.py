"""SDK fixtures: real clients (real end-to-end crypto) against a real server."""

from __future__ import annotations

import itertools
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from taube.client import Client
from taube.testing import ServerProcess

PASSWORD = "correct horse battery staple"
_names = itertools.count()

#: (client, its recovery code); the factory closes every client it made
SdkFactory = Callable[..., Awaitable[Client]]
#: the ``sdk`` fixture: ``make = sdk(server)``
Sdk = Callable[[ServerProcess], SdkFactory]


@pytest.fixture
async def sdk(tmp_path: Path) -> AsyncIterator[Callable[[ServerProcess], SdkFactory]]:
    opened: list[Client] = []
    codes: dict[str, str] = {}

    def bind(proc: ServerProcess) -> SdkFactory:
        async def make(
            name: str = "user", *, device_of: Client | None = None, connect: bool = True
        ) -> Client:
            client = Client(tmp_path / f"profile-{name}-{next(_names)}")
            await client.__aenter__()
            opened.append(client)
            if device_of is None:
                address = f"{name}{next(_names)}x{os.getpid()}@example.org"
                codes[address] = await client.register(proc.url, address, PASSWORD)
            else:
                await client.login(proc.url, device_of.user, PASSWORD, codes[device_of.user])
            if connect:
                await client.sync()
            return client

        return make

    yield bind
    for client in opened:
        await client.__aexit__(None, None, None)
