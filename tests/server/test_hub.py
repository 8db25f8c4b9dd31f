"""The hub's membership cache and wake-ups from other nodes, without sockets."""

from __future__ import annotations

from typing import Any, cast

from taube.proto.ids import ConversationId, DeviceId, UserId
from taube.server.hub import Hub

C = ConversationId("conv")
ALICE, BOB, CAROL = UserId("alice@x"), UserId("bob@x"), UserId("carol@x")


class FakeConnection:
    def __init__(self, user: UserId, device: str) -> None:
        self.user = user
        self.device = DeviceId(device)
        self.forgotten: list[ConversationId] = []
        self.noticed: list[tuple[ConversationId, int]] = []
        self.resynced = 0

    def forget(self, conversation: ConversationId) -> None:
        self.forgotten.append(conversation)

    def notice(self, conversation: ConversationId, seq: int) -> None:
        self.noticed.append((conversation, seq))

    def resync(self) -> None:
        self.resynced += 1


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def hub_with(members: frozenset[UserId], clock: FakeClock | None = None) -> tuple[Hub, list[int]]:
    loads: list[int] = []

    async def load(conversation: ConversationId) -> frozenset[UserId]:
        loads.append(1)
        return members

    return Hub(load, clock or FakeClock()), loads


def attach(hub: Hub, user: UserId, device: str) -> FakeConnection:
    conn = FakeConnection(user, device)
    hub.attach(cast(Any, conn))
    return conn


async def test_a_late_membership_notice_does_not_undo_a_newer_one() -> None:
    hub, _ = hub_with(frozenset())
    carol = attach(hub, CAROL, "c1")
    hub.set_members(C, frozenset({ALICE, CAROL}), seq=5)
    hub.set_members(C, frozenset({ALICE}), seq=9)  # carol left at 9
    hub.set_members(C, frozenset({ALICE, CAROL}), seq=5)  # the old news again
    assert hub.cached_members(C) == frozenset({ALICE})
    assert carol.forgotten == [C, C]  # joined, left; the late notice changed nothing


async def test_a_no_from_the_cache_is_checked_in_the_store() -> None:
    clock = FakeClock()
    hub, loads = hub_with(frozenset({ALICE, BOB}), clock)
    hub.set_members(C, frozenset({ALICE}), seq=3)  # stale: bob was added elsewhere
    assert await hub.is_member(C, ALICE)
    assert loads == []  # a yes needs no query
    assert await hub.is_member(C, BOB)
    assert loads == [1]
    assert hub.cached_members(C) == frozenset({ALICE, BOB})
    # a non-member trying again and again costs one query a second
    for _ in range(5):
        assert not await hub.is_member(C, CAROL)
    assert loads == [1]
    clock.now += 1.5
    assert not await hub.is_member(C, CAROL)
    assert loads == [1, 1]


async def test_wake_ups_from_other_nodes_reach_every_device_of_the_recipients() -> None:
    hub, _ = hub_with(frozenset())
    phone, laptop = attach(hub, BOB, "b1"), attach(hub, BOB, "b2")
    alice = attach(hub, ALICE, "a1")
    hub.wake_entry(C, 12, [BOB, CAROL])
    assert phone.noticed == laptop.noticed == [(C, 12)]
    assert alice.noticed == []
    hub.set_members(C, frozenset({BOB}), seq=4)
    hub.resync()
    assert hub.cached_members(C) is None
    assert phone.resynced == laptop.resynced == alice.resynced == 1
