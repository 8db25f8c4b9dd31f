"""Streams of messages between raw clients, and the checks every run must pass.

Used by the durability test (kill -9 one server) and the scale-out tests
(kill a node, restart Redis, restart PostgreSQL): a group of everyone and a
ring of 1:1 conversations, each person's sends spread over them at random,
sent through an ``Outbox``; then every acknowledged message must reach every
member device exactly once by message id, at the seq it was acknowledged
with, and in order per conversation.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections import Counter, defaultdict
from functools import partial

from taube.proto import frames
from taube.proto.ids import MessageId
from taube.testing import RawClient, unseal
from taube.testing.outbox import Outbox


class RecordingClient(RawClient):
    """A raw client that also keeps every message frame as it came off the
    wire, duplicates included, with the time it arrived."""

    def __init__(self, base_url: str, address: str) -> None:
        super().__init__(base_url, address)
        self.wire: list[frames.Message] = []
        self.arrived: dict[MessageId, float] = {}

    async def _on_frame(self, frame: frames.ServerFrame) -> None:
        if isinstance(frame, frames.Message):
            self.wire.append(frame)
            self.arrived.setdefault(frame.id, asyncio.get_running_loop().time())
        await super()._on_frame(frame)


@dataclasses.dataclass
class Plan:
    """Who is in which conversation, and who sends what where."""

    people: list[RecordingClient]
    outboxes: list[Outbox]
    #: conversation -> indices of its members
    members: dict[str, list[int]]
    #: conversation -> sender index -> message ids in the order sent
    planned: dict[str, dict[int, list[MessageId]]]
    sender_of: dict[MessageId, int]

    @property
    def total(self) -> int:
        return len(self.sender_of)

    def expected(self) -> dict[str, set[MessageId]]:
        return {
            c: {m for ids in by_sender.values() for m in ids}
            for c, by_sender in self.planned.items()
        }

    def acked(self) -> dict[MessageId, frames.Sent]:
        acked: dict[MessageId, frames.Sent] = {}
        for outbox in self.outboxes:
            outbox.collect()
            acked.update(outbox.acked)
        return acked


async def group_and_ring(
    people: list[RecordingClient], per_person: int, window: int, seed: int
) -> Plan:
    """A group of everyone and a ring of 1:1 conversations; ``per_person``
    sends each, queued in outboxes (nothing is written yet)."""
    rng = random.Random(seed)
    group = await people[0].group([p.address for p in people[1:]])
    members: dict[str, list[int]] = {group: list(range(len(people)))}
    mine: dict[int, list[str]] = {i: [group, group] for i in range(len(people))}
    for i in range(len(people)):
        j = (i + 1) % len(people)
        direct = await people[i].direct(people[j].address)
        members[direct] = [i, j]
        mine[i].append(direct)
        mine[j].append(direct)
    outboxes = [Outbox(person, window=window) for person in people]
    sender_of: dict[MessageId, int] = {}
    planned: dict[str, dict[int, list[MessageId]]] = defaultdict(lambda: defaultdict(list))
    for i, outbox in enumerate(outboxes):
        for n in range(per_person):
            conversation = rng.choice(mine[i])
            msg_id = outbox.add(conversation, f"{people[i].address} #{n}".encode())
            sender_of[msg_id] = i
            planned[conversation][i].append(msg_id)
    return Plan(people, outboxes, members, planned, sender_of)


async def wait_delivered(plan: Plan, timeout: float) -> None:
    """Until every member device has every message of its conversations."""
    expected = plan.expected()

    def complete(person: RecordingClient, conversation: str) -> bool:
        have = {m.id for m in person.messages(conversation)}
        return have >= expected[conversation]

    async with asyncio.timeout(timeout):
        for conversation, indices in plan.members.items():
            for i in indices:
                person = plan.people[i]
                await person.wait_for(partial(complete, person, conversation), timeout=timeout)


def check_delivery(plan: Plan, acked: dict[MessageId, frames.Sent]) -> int:
    """Every member device got every message once by id, at its acknowledged
    seq, in order; returns how many frames came again (acks lost in a crash)."""
    expected = plan.expected()
    people, outboxes, sender_of = plan.people, plan.outboxes, plan.sender_of
    wire_duplicates = 0
    for conversation, indices in plan.members.items():
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
            for sender, ids in plan.planned[conversation].items():
                assert [m.id for m in received if sender_of[m.id] == sender] == ids
            # a frame that came again (an ack lost on the way) is the same entry
            first = {m.seq: m.id for m in received}
            for frame in person.wire:
                if frame.conversation == conversation:
                    assert first[frame.seq] == frame.id
            wire_duplicates += sum(1 for f in person.wire if f.conversation == conversation) - len(
                received
            )
    return wire_duplicates


def check_outboxes(plan: Plan) -> dict[MessageId, frames.Sent]:
    """Every send was acknowledged, none refused, none under two seqs."""
    acked = plan.acked()
    for outbox in plan.outboxes:
        assert outbox.failed == {}
        assert outbox.mismatched == []
    assert set(acked) == set(plan.sender_of)
    return acked
