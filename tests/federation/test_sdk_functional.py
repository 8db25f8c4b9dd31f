"""SDK clients on different servers: real end-to-end encryption across federation."""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import msgspec
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from taube.client import Client
from taube.proto import http
from taube.proto.ids import ConversationId, UserId, new_device_id
from taube.proto.keys import DeviceKeys, IdentityKey
from taube.proto.signing import DOMAIN_DEVICE, DOMAIN_IDENTITY
from taube.testing import RawClient, ServerProcess
from taube.testing.rawclient import _public
from taube.testing.services import free_port
from tests.federation.conftest import RogueServer, Servers

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


async def test_a_lying_remote_server_adds_no_trusted_device(
    servers: Servers, sdk: SdkFactory, tmp_path: Path
) -> None:
    """evil.test answers key queries with a forged device certificate, a device
    of someone else and an entry for a user of another domain: the user's own
    server drops what names others, and the client trusts only certificates
    that verify under the identity key."""
    async with RogueServer("evil.test", tmp_path / "rogue") as rogue:
        servers.start(["a.test"], extra_hosts={"evil.test": rogue.port})
        alice = await sdk(servers["a.test"], "alice")
        eve = RawClient("http://unused", "eve@evil.test")
        identity = IdentityKey(
            user=eve.user, identity_key=_public(eve.identity), signature="A" * 86
        )
        identity = msgspec.structs.replace(identity, signature=eve.sign(DOMAIN_IDENTITY, identity))

        def device(user: str, signer: Ed25519PrivateKey) -> DeviceKeys:
            keys = DeviceKeys(
                user=UserId(user),
                device=new_device_id(),
                curve25519=_public(X25519PrivateKey.generate()),
                ed25519=_public(Ed25519PrivateKey.generate()),
                signature="A" * 86,
            )
            return msgspec.structs.replace(keys, signature=eve.sign(DOMAIN_DEVICE, keys, signer))

        genuine = device(eve.address, eve.identity)
        forged = device(eve.address, Ed25519PrivateKey.generate())
        someone_elses = device(alice.user, eve.identity)
        rogue.answers["/keys/query"] = msgspec.to_builtins(
            http.KeysResponse(
                users=[
                    http.UserKeys(
                        user=eve.user, identity=identity, devices=[genuine, forged, someone_elses]
                    ),
                    http.UserKeys(user=UserId(alice.user), identity=identity, devices=[genuine]),
                ]
            )
        )
        trusted = await alice.keys.devices_of([eve.user])
        assert [d.device for d in trusted] == [genuine.device]
        # alice's own entry came from her own server, not from evil.test
        own = await alice.keys.devices_of([UserId(alice.user)])
        assert genuine.device not in {d.device for d in own}
