"""Delivery through a real server process: 1:1, groups, offline devices, retries."""

from __future__ import annotations

import asyncio
import functools

from taube.proto import frames
from taube.proto.ids import MessageId
from taube.testing import RawClient, ServerProcess
from tests.conftest import Clients, exchange_both_ways, second_device


def has_messages(client: RawClient, conversation: str, count: int) -> bool:
    return len(client.messages(conversation)) == count


async def test_direct_chat_both_ways(shared_server: ServerProcess, clients: Clients) -> None:
    make = clients(shared_server)
    alice, bob = await make("alice"), await make("bob")
    conversation = await alice.direct(bob.address)
    await exchange_both_ways(alice, bob, conversation)
    # each side also sees its own send, as a body-less echo in the same order
    assert [m.body is None for m in alice.messages(conversation)] == [True, False]
    assert alice.duplicates == bob.duplicates == 0


async def test_group_of_five(shared_server: ServerProcess, clients: Clients) -> None:
    make = clients(shared_server)
    people = [await make(f"member{i}") for i in range(5)]
    owner = people[0]
    conversation = await owner.group([p.address for p in people[1:]])
    for round_ in range(3):
        for person in people:
            await person.send(conversation, f"{person.address} {round_}".encode())
    for person in people:
        await person.wait_for(functools.partial(has_messages, person, conversation, 15))
        seqs = [m.seq for m in person.messages(conversation)]
        assert seqs == sorted(seqs)
        assert len(person.texts(conversation)) == 12  # everyone else's, plus own echoes
        assert person.duplicates == 0
    # everyone saw the same order
    orders = [[m.id for m in p.messages(conversation)] for p in people]
    assert all(order == orders[0] for order in orders)


async def test_offline_device_catches_up_in_order(
    shared_server: ServerProcess, clients: Clients
) -> None:
    make = clients(shared_server)
    alice, bob = await make("alice"), await make("bob")
    conversation = await alice.direct(bob.address)
    await bob.wait_for(lambda: len(bob.entries[conversation]) == 1)  # his own join
    await bob.disconnect()
    sent = [await alice.send(conversation, f"while away {i}".encode()) for i in range(50)]
    await bob.connect()
    await bob.wait_for(lambda: len(bob.messages(conversation)) == 50)
    assert [m.id for m in bob.messages(conversation)] == sent
    assert bob.texts(conversation) == [f"while away {i}".encode() for i in range(50)]
    assert bob.duplicated == []
    await bob.wait_for(lambda: bob.queue_empty >= 1)


async def test_retried_send_is_stored_once(shared_server: ServerProcess, clients: Clients) -> None:
    make = clients(shared_server)
    alice, bob = await make("alice"), await make("bob")
    conversation = await alice.direct(bob.address)
    msg_id = await alice.send(conversation, b"once")
    first = alice.sent()[msg_id]
    alice.others.clear()
    await alice.send(conversation, b"once", msg_id=msg_id)  # the retry
    assert alice.sent()[msg_id].seq == first.seq
    await alice.send(conversation, b"after")
    await bob.wait_for(lambda: len(bob.messages(conversation)) == 2)
    await asyncio.sleep(0.2)
    assert bob.texts(conversation) == [b"once", b"after"]


async def test_second_device_gets_messages_and_own_sends(
    shared_server: ServerProcess, clients: Clients
) -> None:
    make = clients(shared_server)
    alice, bob = await make("alice"), await make("bob")
    bob2 = await second_device(shared_server, bob)
    try:
        conversation = await alice.direct(bob.address)
        await alice.send(conversation, b"to both devices")
        await bob.send(conversation, b"from bob's first device")
        for device in (bob, bob2):
            await device.wait_for(functools.partial(has_messages, device, conversation, 2))
        assert bob2.texts(conversation) == [b"to both devices", b"from bob's first device"]
        assert bob.texts(conversation) == [b"to both devices"]
    finally:
        await bob2.__aexit__(None, None, None)


async def test_to_device_messages(shared_server: ServerProcess, clients: Clients) -> None:
    make = clients(shared_server)
    alice, bob = await make("alice"), await make("bob")
    await bob.disconnect()
    ref = MessageId("A" * 22)
    await alice.send_frame(
        frames.ToDeviceSend(
            id=ref,
            messages=[
                frames.ToDeviceMessage(user=bob.user, device=bob.device, body=b"olm-ciphertext")
            ],
        )
    )
    await alice.wait_for(lambda: any(isinstance(f, frames.ToDeviceSent) for f in alice.others))
    await bob.connect()
    await bob.wait_for(lambda: any(isinstance(f, frames.ToDevice) for f in bob.queue))
    [entry] = [f for f in bob.queue if isinstance(f, frames.ToDevice)]
    assert entry.body == b"olm-ciphertext"
    assert entry.sender_device == alice.device
    # acknowledged entries are deleted: a reconnect does not bring it back
    await asyncio.sleep(0.3)
    await bob.disconnect()
    bob.queue.clear()
    await bob.connect()
    await bob.wait_for(lambda: bob.queue_empty >= 2)
    assert not [f for f in bob.queue if isinstance(f, frames.ToDevice)]
