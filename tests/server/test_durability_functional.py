"""Durability: SIGKILL the server while clients stream, restart it, retry.

Five clients stream 1000 messages into a group of all five and five 1:1
conversations. Once 400 sends are acknowledged the server is killed with
SIGKILL mid-stream (sends in flight, acknowledgements unflushed), restarted
on the same port and data directory; every client reconnects and writes
every send that had no ``msg.sent`` again with the same message id. Then
nothing acknowledged may be missing, every message reaches every member
device once by message id, and per conversation the order holds.
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from taube.proto import frames
from taube.proto.ids import MessageId
from taube.testing import ServerProcess
from tests.conftest import fresh_address
from tests.server.streams import (
    RecordingClient,
    check_delivery,
    check_outboxes,
    group_and_ring,
    wait_delivered,
)

pytestmark = pytest.mark.slow

PEOPLE = 5
PER_PERSON = 200  #: 1000 messages in all
KILL_AFTER = 400  #: acknowledged sends (across all clients) before SIGKILL
WINDOW = 16  #: unacknowledged sends on the wire per client


async def test_kill_9_mid_stream_loses_nothing_acknowledged(server: ServerProcess) -> None:
    async with contextlib.AsyncExitStack() as stack:
        people: list[RecordingClient] = []
        for i in range(PEOPLE):
            person = RecordingClient(server.url, fresh_address(f"dur{i}"))
            await stack.enter_async_context(person)
            await person.new_account()
            await person.connect()
            people.append(person)
        plan = await group_and_ring(people, PER_PERSON, WINDOW, seed=20240611)
        outboxes = plan.outboxes
        assert plan.total == PEOPLE * PER_PERSON

        # ---- stream, and SIGKILL the server once KILL_AFTER sends are acknowledged
        streams = [asyncio.create_task(outbox.flush(timeout=60)) for outbox in outboxes]
        async with asyncio.timeout(60):
            while sum(len(o.acked) for o in outboxes) < KILL_AFTER:
                assert not all(s.done() for s in streams), "streams ended before the kill"
                await asyncio.sleep(0.001)
        server.kill()
        before_crash = {m: sent for o in outboxes for m, sent in o.acked.items()}
        finished = await asyncio.gather(*streams)
        assert not all(finished), "the kill came after the stream"
        for outbox in outboxes:
            outbox.collect()
        # a Sent that was still in a socket buffer counts as acknowledged too
        before_crash.update({m: sent for o in outboxes for m, sent in o.acked.items()})
        in_flight = {m for o in outboxes for m, w in o.writes.items() if m not in o.acked}
        assert in_flight, "some sends should have been in flight at the kill"
        assert len(before_crash) < PEOPLE * PER_PERSON

        # ---- restart on the same port and data directory; reconnect; retry
        server.restart()
        for outbox in outboxes:
            await outbox.reconnect()
        finished = await asyncio.gather(*(outbox.flush(timeout=60) for outbox in outboxes))
        assert all(finished)
        acked: dict[MessageId, frames.Sent] = check_outboxes(plan)
        retried = {m for o in outboxes for m in o.retried}
        assert retried >= in_flight

        # an acknowledged send survived the crash, at the seq it was given
        for msg_id, sent in before_crash.items():
            assert acked[msg_id].seq == sent.seq, msg_id

        # ---- every member device gets every message of the conversation
        await wait_delivered(plan, timeout=30)
        wire_duplicates = check_delivery(plan, acked)
        print(
            f"acknowledged before the kill: {len(before_crash)}, retried: {len(retried)},"
            f" redelivered frames: {wire_duplicates}"
        )
