"""Conversations through a real server: signed state, roles, routing by membership."""

from __future__ import annotations

import asyncio

import pytest

from taube.proto import frames
from taube.proto.ids import UserId
from taube.proto.state import Kind, Member, Role, Timer, Title
from taube.testing import ServerProcess
from taube.testing.rawclient import HttpError
from tests.conftest import Clients


async def test_state_chain_is_served_in_order(
    shared_server: ServerProcess, clients: Clients
) -> None:
    make = clients(shared_server)
    alice, bob, carol = await make("alice"), await make("bob"), await make("carol")
    conversation = await alice.group([bob.address])
    await alice.add(conversation, carol.address, Role.ADMIN)
    await alice.append(conversation, Title(sealed=b"sealed title"))
    chain = await bob.request("GET", f"/api/v1/conversations/{conversation}/state")
    events = chain["events"]
    assert [e["depth"] for e in events] == [0, 1, 2, 3]
    assert [e["content"]["type"] for e in events] == ["create", "member", "member", "title"]
    info = await carol.request("GET", f"/api/v1/conversations/{conversation}")
    assert info["members"] == {
        alice.address: "owner",
        bob.address: "member",
        carol.address: "admin",
    }
    listed = await bob.request("GET", "/api/v1/conversations")
    assert conversation in [c["conversation"] for c in listed["conversations"]]


async def test_roles_decide_who_changes_what(
    shared_server: ServerProcess, clients: Clients
) -> None:
    make = clients(shared_server)
    owner, admin = await make("owner"), await make("admin")
    member, outsider = await make("member"), await make("outsider")
    conversation = await owner.group([member.address])
    await owner.add(conversation, admin.address, Role.ADMIN)
    with pytest.raises(HttpError) as refused:
        await member.add(conversation, outsider.address)
    assert refused.value.code == "forbidden"
    with pytest.raises(HttpError) as refused:
        await member.remove(conversation, admin.address)  # a member cannot remove an admin
    assert refused.value.code == "forbidden"
    with pytest.raises(HttpError) as refused:
        await member.append(conversation, Timer(seconds=60))
    assert refused.value.code == "forbidden"
    await admin.add(conversation, outsider.address)
    await admin.remove(conversation, outsider.address)
    await member.remove(conversation, member.address)  # anyone may leave
    info = await owner.request("GET", f"/api/v1/conversations/{conversation}")
    assert set(info["members"]) == {owner.address, admin.address}


async def test_outsider_sees_nothing(shared_server: ServerProcess, clients: Clients) -> None:
    make = clients(shared_server)
    alice, bob, eve = await make("alice"), await make("bob"), await make("eve")
    conversation = await alice.direct(bob.address)
    for path in (
        f"/api/v1/conversations/{conversation}",
        f"/api/v1/conversations/{conversation}/state",
        "/api/v1/conversations/AAAAAAAAAAAAAAAAAAAAAA",
    ):
        with pytest.raises(HttpError) as hidden:
            await eve.request("GET", path)
        assert (hidden.value.status, hidden.value.code) == (404, "not_found")
    with pytest.raises(HttpError) as refused:  # nor can she add herself
        await eve.append(conversation, join(eve.address))
    assert refused.value.code == "not_found"
    msg_id = await eve.send(conversation, b"let me in", wait=False)
    await eve.wait_for(lambda: any(e.ref == msg_id for e in eve.errors()))
    assert [e.code for e in eve.errors() if e.ref == msg_id] == ["not_found"]


def join(address: str) -> Member:
    return Member(target=UserId(address), membership="join")


async def test_direct_chat_has_two_members(shared_server: ServerProcess, clients: Clients) -> None:
    make = clients(shared_server)
    alice, bob, carol = await make("alice"), await make("bob"), await make("carol")
    conversation = await alice.direct(bob.address)
    with pytest.raises(HttpError) as refused:
        await alice.add(conversation, carol.address)
    assert refused.value.code == "forbidden"
    with pytest.raises(HttpError) as refused:
        await alice.create(Kind.DIRECT, [bob.address, carol.address])
    assert refused.value.code == "forbidden"


async def test_removed_member_gets_the_removal_and_nothing_after(
    shared_server: ServerProcess, clients: Clients
) -> None:
    make = clients(shared_server)
    alice, bob, carol = await make("alice"), await make("bob"), await make("carol")
    conversation = await alice.group([bob.address, carol.address])
    await alice.send(conversation, b"before")
    removal = await alice.remove(conversation, carol.address)
    await alice.send(conversation, b"after")
    await bob.wait_for(lambda: len(bob.messages(conversation)) == 2)
    await carol.wait_for(lambda: any(e.seq == removal for e in carol.entries[conversation]))
    await asyncio.sleep(0.3)
    assert carol.texts(conversation) == [b"before"]
    assert max(e.seq for e in carol.entries[conversation]) == removal
    # she is gone from routing: her sends are refused like a stranger's
    msg_id = await carol.send(conversation, b"still here?", wait=False)
    await carol.wait_for(lambda: any(e.ref == msg_id for e in carol.errors()))
    # re-added, she gets what comes next but not what she missed
    await alice.send(conversation, b"while carol was out")
    await alice.add(conversation, carol.address)
    await alice.send(conversation, b"welcome back")
    await carol.wait_for(lambda: b"welcome back" in carol.texts(conversation))
    assert carol.texts(conversation) == [b"before", b"welcome back"]


async def test_stale_state_event_conflicts(shared_server: ServerProcess, clients: Clients) -> None:
    make = clients(shared_server)
    alice, bob, carol = await make("alice"), await make("bob"), await make("carol")
    conversation = await alice.group([bob.address])
    info = await alice.request("GET", f"/api/v1/conversations/{conversation}")
    stale = alice.event(conversation, info["depth"] + 1, info["head"], join(carol.address))
    await alice.append(conversation, Title(sealed=b"first"))
    with pytest.raises(HttpError) as conflict:
        await alice.request("POST", f"/api/v1/conversations/{conversation}/state", stale)
    assert (conflict.value.status, conflict.value.code) == (409, "conflict")


async def test_typing_reaches_other_members_only(
    shared_server: ServerProcess, clients: Clients
) -> None:
    make = clients(shared_server)
    alice, bob, eve = await make("alice"), await make("bob"), await make("eve")
    conversation = await alice.direct(bob.address)
    await eve.send_frame(frames.Typing(conversation=conversation, active=True))
    await alice.send_frame(frames.Typing(conversation=conversation, active=True))
    await bob.wait_for(lambda: any(isinstance(f, frames.TypingEvent) for f in bob.others))
    [typing] = [f for f in bob.others if isinstance(f, frames.TypingEvent)]
    assert (typing.user, typing.active) == (alice.address, True)
    assert not [f for f in alice.others if isinstance(f, frames.TypingEvent)]
