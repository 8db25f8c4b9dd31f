"""Portals in the SDK: who may speak for people on another network."""

from __future__ import annotations

import asyncio

from taube.client import Client, Received
from taube.client import events as ev
from taube.testing import ServerProcess
from tests.client.conftest import Sdk


async def next_shown(client: Client) -> ev.Message:
    async with asyncio.timeout(10):
        async for event in client.events():
            if isinstance(event, Received) and event.message.type == ev.TEXT:
                return event.message
    raise AssertionError("nothing arrived")


async def test_only_the_users_own_devices_or_the_serving_connector_speak_for_remote_people(
    shared_server: ServerProcess, sdk: Sdk
) -> None:
    make = sdk(shared_server)
    alice = await make("alice")
    connector = await make(device_of=alice)
    bob = await make("bob")
    group = await alice.create_group([bob.user, "dora@elsewhere.example"])
    portal = alice.portal(group)
    assert portal == ev.Portal("email", portal.chat if portal else "", ("dora@elsewhere.example",))
    dora = {"network": "email", "sender": "dora@elsewhere.example", "name": "Dora"}
    # a member who is not the connector cannot pass a message off as dora's
    await bob.send(group, ev.TEXT, {"body": "it is me, dora", "remote": dora})
    await bob.flush()
    forged = await next_shown(alice)
    assert (forged.sender, forged.remote) == (bob.user, None)
    # the user's own connector device claims the portal and speaks for her
    assert portal is not None
    await connector.update_portal(
        group, ev.Portal(portal.network, portal.chat, portal.peers, "", connector.device)
    )
    await connector.send(group, ev.TEXT, {"body": "hallo", "remote": dora})
    await connector.flush()
    for client in (alice, bob):
        shown = await next_shown(client)
        assert shown.remote == ev.Remote("email", "dora@elsewhere.example", "Dora")
