"""Invite links between SDK clients, through a real server: the first
contact is verified on both sides, and a bad link changes nothing."""

from __future__ import annotations

import dataclasses

import pytest

from taube.client import Client, Received, VerificationDone
from taube.client.invites import InviteError, InviteLink, fingerprint, invite_id, proof
from taube.proto.ids import UserId
from taube.testing import ServerProcess
from tests.client.conftest import Sdk


async def verified_by_invite(client: Client, timeout: float = 10.0) -> VerificationDone:
    async for event in client.events(timeout=timeout):
        if isinstance(event, VerificationDone) and event.transaction.startswith("invite:"):
            return event
    raise AssertionError("no invite verification")


def test_links_round_trip_and_damaged_links_are_refused() -> None:
    link = InviteLink(
        "https://chat.example.org",
        UserId("alice@example.org"),
        "A" * 22,
        "B" * 22,
        "Alice Ä/1",
    )
    assert link.url.startswith("https://chat.example.org/#/invite/alice@example.org/")
    assert InviteLink.parse(link.url) == link
    assert len(link.id) == 43
    assert link.id == invite_id("B" * 22)
    for bad in (
        "https://chat.example.org/#/join/x",
        "https://chat.example.org/#/invite/alice@example.org/short/" + "B" * 22,
        "https://chat.example.org/#/invite/not-an-address/" + "A" * 22 + "/" + "B" * 22,
        "ftp://x/#/invite/alice@example.org/" + "A" * 22 + "/" + "B" * 22,
    ):
        with pytest.raises(InviteError):
            InviteLink.parse(bad)
    # the proof binds both users and both keys
    a, b = UserId("a@x.org"), UserId("b@x.org")
    one = proof("B" * 22, a, "ka", b, "kb")
    assert one != proof("B" * 22, a, "ka", b, "kc")
    assert one != proof("C" * 22, a, "ka", b, "kb")
    assert one != proof("B" * 22, b, "ka", a, "kb")


async def test_joining_an_invite_verifies_both_sides(
    shared_server: ServerProcess, sdk: Sdk
) -> None:
    make = sdk(shared_server)
    alice, bob = await make("alice"), await make("bob")
    link = await alice.create_invite("Alice")
    assert link.fingerprint == fingerprint(alice.keys.identity.public_key)
    conversation = await bob.join_invite(link.url)
    assert bob.keys.pinned(alice.user) == (alice.keys.identity.public_key, True)
    done = await verified_by_invite(alice)
    assert (done.user, done.verified) == (bob.user, True)
    assert alice.keys.pinned(bob.user) == (bob.keys.identity.public_key, True)
    await bob.send_text(conversation, "hello via the invite")
    async for event in alice.events(timeout=10):
        if isinstance(event, Received) and event.message.text == "hello via the invite":
            break
    assert [m.text for m in alice.history(conversation)][-1] == "hello via the invite"


async def test_used_forged_and_revoked_links_change_nothing(
    shared_server: ServerProcess, sdk: Sdk
) -> None:
    make = sdk(shared_server)
    alice, bob, carol = await make("alice"), await make("bob"), await make("carol")
    link = await alice.create_invite()
    # a fingerprint that is not alice's key: refused before the link is used
    forged = dataclasses.replace(link, fingerprint=fingerprint(carol.keys.identity.public_key))
    with pytest.raises(InviteError, match="forged"):
        await carol.join_invite(forged)
    assert carol.keys.pinned(alice.user) == (alice.keys.identity.public_key, False)
    # a secret that is not alice's: the server knows no such invite
    with pytest.raises(InviteError, match="not valid"):
        await carol.join_invite(dataclasses.replace(link, secret="C" * 22))
    await bob.join_invite(link)
    with pytest.raises(InviteError, match="already used"):
        await carol.join_invite(link)
    assert await carol.conversations() == []
    revoked = await alice.create_invite()
    await alice.revoke_invite(revoked)
    with pytest.raises(InviteError, match="revoked"):
        await carol.join_invite(revoked)
    with pytest.raises(InviteError, match="your own"):
        await alice.join_invite(await alice.create_invite())
