"""SDK clients on different servers: real end-to-end encryption across federation."""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from taube.client import Client
from taube.proto.ids import ConversationId
from taube.testing import ServerProcess
from taube.testing.services import free_port
from tests.federation.conftest import Servers

PASSWORD = "correct horse battery staple"
_names = itertools.count()

SdkFactory = Callable[[ServerProcess, str], Awaitable[Client]]


@pytest.fixture
async def sdk(tmp_path: Path) -> AsyncIterator[SdkFactory]:
    opened: list[Client] = []

    async def make(proc: ServerProcess, name: str) -> Client:
        client = Client(tmp_path / f"profile-{name}-{next(_names)}")
        await client.__aenter__()
        opened.append(client)
        domain = proc.env["TAUBE_SERVER_DOMAIN"]
        await client.register(proc.url, f"{name}{next(_names)}x{os.getpid()}@{domain}", PASSWORD)
        await client.sync()
        return client

    yield make
    for client in opened:
        await client.__aexit__(None, None, None)


async def texts_of(
    client: Client, conversation: ConversationId, count: int, timeout: float = 30.0
) -> list[str]:
    async with asyncio.timeout(timeout):
        while len(client.history(conversation, limit=count)) < count:
            await asyncio.sleep(0.05)
    return [m.text for m in client.history(conversation, limit=count)]


async def test_a_chat_with_someone_on_another_taube_server(
    servers: Servers, sdk: SdkFactory
) -> None:
    servers.start(["a.test", "b.test"])
    alice = await sdk(servers["a.test"], "alice")
    bob = await sdk(servers["b.test"], "bob")
    chat = await alice.start_chat(bob.user)
    assert alice.portal(chat) is None  # a native chat, not e-mail
    await alice.send_text(chat, "hello from a.test")
    await alice.flush()
    assert await texts_of(bob, chat, 1) == ["hello from a.test"]
    await bob.send_text(chat, "hello from b.test")
    await bob.flush()
    assert await texts_of(alice, chat, 2) == ["hello from a.test", "hello from b.test"]
    assert await bob.start_chat(alice.user) == chat  # the same chat from the other side


async def test_a_group_over_three_servers(servers: Servers, sdk: SdkFactory) -> None:
    servers.start(["a.test", "b.test", "c.test"])
    alice = await sdk(servers["a.test"], "alice")
    bob = await sdk(servers["b.test"], "bob")
    carol = await sdk(servers["c.test"], "carol")
    group = await alice.create_group([bob.user, carol.user])
    assert alice.portal(group) is None
    await alice.send_text(group, "one")
    await alice.flush()
    assert await texts_of(bob, group, 1) == ["one"]
    assert await texts_of(carol, group, 1) == ["one"]
    await carol.send_text(group, "two")
    await carol.flush()
    assert await texts_of(alice, group, 2) == ["one", "two"]
    assert await texts_of(bob, group, 2) == ["one", "two"]


async def test_an_address_without_a_taube_server_is_reached_by_mail(
    servers: Servers, sdk: SdkFactory
) -> None:
    servers.start(["a.test"], extra_hosts={"mail.test": free_port()})  # nothing listens there
    alice = await sdk(servers["a.test"], "alice")
    chat = await alice.start_chat("someone@mail.test")
    portal = alice.portal(chat)
    assert portal is not None
    assert portal.chat == "someone@mail.test"
