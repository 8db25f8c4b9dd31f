"""SIGKILL during a burst of 1,000 messages across servers: every acknowledged
message arrives exactly once (one log entry per message id), in order."""

from __future__ import annotations

import asyncio
from collections import defaultdict

from taube.proto import frames
from taube.proto.ids import MessageId
from taube.testing import RawClient, unseal
from taube.testing.outbox import Outbox
from tests.federation.conftest import Servers, UserFactory, chat_across

BURST = 1000


def _received(client: RawClient, conversation: str) -> dict[MessageId, set[int]]:
    """Message id -> the seqs it arrived under (more than one: stored twice)."""
    seqs: dict[MessageId, set[int]] = defaultdict(set)
    for entry in client.entries[conversation]:
        if isinstance(entry, frames.Message) and entry.body is not None:
            seqs[entry.id].add(entry.seq)
    return seqs


async def _reconnect(client: RawClient) -> None:
    await Outbox(client).reconnect(timeout=30)


async def _burst_with_a_kill(servers: Servers, users: UserFactory, victim: str) -> None:
    alice, bob, chat = await chat_across(servers, users)
    await bob.wait_for(lambda: bool(bob.entries[chat]), 30)
    outbox = Outbox(alice, window=64)
    for n in range(BURST):
        outbox.add(chat, f"burst {n:04d}".encode())
    sending = asyncio.create_task(outbox.flush(120))
    if victim == "b.test":
        await bob.wait_for(lambda: len(_received(bob, chat)) >= BURST // 3, 60)
    else:
        await alice.wait_for(lambda: len(outbox.acked) >= BURST // 3, 60)
    servers[victim].kill()
    await asyncio.sleep(0.5)
    servers[victim].start()
    if victim == "a.test":
        assert not await sending  # the socket died under it
        while not await outbox.flush(120):
            await outbox.reconnect()
        await _reconnect(alice)
    else:
        assert await sending
    await _reconnect(bob)
    assert not outbox.failed
    assert len(outbox.acked) == BURST
    await bob.wait_for(lambda: len(_received(bob, chat)) >= BURST, 120)
    received = _received(bob, chat)
    assert set(received) == set(outbox.acked)
    assert all(len(seqs) == 1 for seqs in received.values()), "a message was stored twice"
    in_order = sorted(received, key=lambda m: min(received[m]))
    assert [unseal(outbox.frames[m].body) for m in in_order] == [
        f"burst {n:04d}".encode() for n in range(BURST)
    ]


async def test_the_receiving_server_killed_mid_burst(servers: Servers, users: UserFactory) -> None:
    await _burst_with_a_kill(servers, users, "b.test")


async def test_the_sending_server_killed_mid_burst(servers: Servers, users: UserFactory) -> None:
    await _burst_with_a_kill(servers, users, "a.test")
