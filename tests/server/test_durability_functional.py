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
import random
from collections import Counter, defaultdict
from functools import partial

import pytest

from taube.proto import frames
from taube.proto.ids import MessageId
from taube.testing import RawClient, ServerProcess, unseal
from taube.testing.outbox import Outbox
from tests.conftest import fresh_address

pytestmark = pytest.mark.slow

PEOPLE = 5
PER_PERSON = 200  #: 1000 messages in all
KILL_AFTER = 400  #: acknowledged sends (across all clients) before SIGKILL
WINDOW = 16  #: unacknowledged sends on the wire per client


class RecordingClient(RawClient):
    """A raw client that also keeps every message frame as it came off the
    wire, duplicates included."""

    def __init__(self, base_url: str, address: str) -> None:
        super().__init__(base_url, address)
        self.wire: list[frames.Message] = []

    async def _on_frame(self, frame: frames.ServerFrame) -> None:
        if isinstance(frame, frames.Message):
            self.wire.append(frame)
        await super()._on_frame(frame)


async def test_kill_9_mid_stream_loses_nothing_acknowledged(server: ServerProcess) -> None:
    rng = random.Random(20240611)
    async with contextlib.AsyncExitStack() as stack:
        people: list[RecordingClient] = []
        for i in range(PEOPLE):
            person = RecordingClient(server.url, fresh_address(f"dur{i}"))
            await stack.enter_async_context(person)
            await person.new_account()
            await person.connect()
            people.append(person)

        # a group of all five, and a ring of 1:1 conversations
        group = await people[0].group([p.address for p in people[1:]])
        members: dict[str, list[int]] = {group: list(range(PEOPLE))}
        mine: dict[int, list[str]] = {i: [group, group] for i in range(PEOPLE)}
        for i in range(PEOPLE):
            j = (i + 1) % PEOPLE
            direct = await people[i].direct(people[j].address)
            members[direct] = [i, j]
            mine[i].append(direct)
            mine[j].append(direct)

        outboxes = [Outbox(person, window=WINDOW) for person in people]
        sender_of: dict[MessageId, int] = {}
        planned: dict[str, dict[int, list[MessageId]]] = defaultdict(lambda: defaultdict(list))
        for i, outbox in enumerate(outboxes):
            for n in range(PER_PERSON):
                conversation = rng.choice(mine[i])
                msg_id = outbox.add(conversation, f"{people[i].address} #{n}".encode())
                sender_of[msg_id] = i
                planned[conversation][i].append(msg_id)
        assert len(sender_of) == PEOPLE * PER_PERSON

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
        acked: dict[MessageId, frames.Sent] = {}
        for outbox in outboxes:
            assert outbox.failed == {}
            assert outbox.mismatched == []
            acked.update(outbox.acked)
        assert set(acked) == set(sender_of)
        retried = {m for o in outboxes for m in o.retried}
        assert retried >= in_flight

        # an acknowledged send survived the crash, at the seq it was given
        for msg_id, sent in before_crash.items():
            assert acked[msg_id].seq == sent.seq, msg_id

        # ---- every member device gets every message of the conversation
        expected = {
            c: {m for ids in by_sender.values() for m in ids} for c, by_sender in planned.items()
        }

        def complete(person: RecordingClient, conversation: str) -> bool:
            have = {m.id for m in person.messages(conversation)}
            return have >= expected[conversation]

        for conversation, indices in members.items():
            for i in indices:
                person, conv = people[i], conversation
                await person.wait_for(partial(complete, person, conv), timeout=30)

        wire_duplicates = 0
        for conversation, indices in members.items():
            for i in indices:
                person = people[i]
                received = person.messages(conversation)  # first arrival of each seq
                # exactly once by message id: no id under two seqs, none missing
                counts = Counter(m.id for m in received)
                assert {m for m, n in counts.items() if n > 1} == set()
                assert set(counts) == expected[conversation]
                # in order: seqs increase in arrival order ...
                seqs = [m.seq for m in received]
                assert seqs == sorted(seqs)
                assert len(set(seqs)) == len(seqs)
                # ... each at the seq its sender was acknowledged with ...
                for m in received:
                    assert m.seq == acked[m.id].seq
                    assert m.sender == people[sender_of[m.id]].user
                    if sender_of[m.id] == i:
                        assert m.body is None  # the echo of its own send
                    else:
                        assert m.body is not None
                        assert unseal(m.body) == outboxes[sender_of[m.id]].plaintexts[m.id]
                # ... and each sender's messages in the order they were sent
                for sender, ids in planned[conversation].items():
                    assert [m.id for m in received if sender_of[m.id] == sender] == ids
                # a redelivered frame (ack lost in the crash) is the same entry
                first = {m.seq: m.id for m in received}
                for frame in person.wire:
                    if frame.conversation == conversation:
                        assert first[frame.seq] == frame.id
                wire_duplicates += sum(
                    1 for f in person.wire if f.conversation == conversation
                ) - len(received)
        print(
            f"acknowledged before the kill: {len(before_crash)}, retried: {len(retried)},"
            f" redelivered frames: {wire_duplicates}"
        )
