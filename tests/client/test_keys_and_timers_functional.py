"""Key rotation on removal, and disappearing messages, through the SDK."""

from __future__ import annotations

import asyncio

from taube.client import Client, Undecryptable
from taube.testing import ServerProcess
from taube.testing.canary import canary, scan
from tests.client.conftest import Sdk
from tests.client.test_messaging_functional import texts_of


def session_ids(client: Client) -> set[str]:
    return {info.session_id for info in client.keys.inbound.sessions()}


async def test_removed_member_cannot_read_what_follows(
    shared_server: ServerProcess, sdk: Sdk
) -> None:
    make = sdk(shared_server)
    alice, bob, carol = await make("alice"), await make("bob"), await make("carol")
    group = await alice.create_group([bob.user, carol.user])
    await alice.send_text(group, "all three")
    await alice.flush()
    assert await texts_of(carol, group, 1) == ["all three"]
    before = alice.keys.outbound[group].session_id
    await alice.remove_member(group, carol.user)
    for i in range(50):
        await alice.send_text(group, f"without carol {i}")
    await alice.flush()
    assert alice.keys.outbound[group].session_id != before  # rotated on removal
    await texts_of(bob, group, 51)
    await asyncio.sleep(0.5)
    assert [m.text for m in carol.history(group)] == ["all three"]
    assert alice.keys.outbound[group].session_id not in session_ids(carol)
    # re-added, carol reads what comes next, never what was sent while she was out
    await alice.add_member(group, carol.user)
    await alice.send_text(group, "welcome back")
    await alice.flush()
    texts = await texts_of(carol, group, 2)
    assert texts == ["all three", "welcome back"]


async def test_disappearing_messages_leave_no_plaintext(
    shared_server: ServerProcess, sdk: Sdk
) -> None:
    make = sdk(shared_server)
    alice, bob = await make("alice"), await make("bob")
    chat = await alice.start_chat(bob.user)
    await alice.set_timer(chat, 2)
    secret = canary("disappearing")
    await alice.send_text(chat, f"gone soon {secret}")
    await alice.flush()
    assert await texts_of(bob, chat, 1) == [f"gone soon {secret}"]
    assert bob.history(chat)[0].expires_ms is not None
    await asyncio.sleep(2.5)
    for client in (alice, bob):
        assert client.history(chat) == []
        assert client.search(secret) == []
    # the keys went with the text: bob holds no session of this chat any more,
    # and alice's next message starts a new one
    assert [s for s in bob.keys.inbound.sessions() if s.conversation == chat] == []
    old = alice.keys.outbound[chat].session_id
    await alice.send_text(chat, "after")
    await alice.flush()
    assert alice.keys.outbound[chat].session_id != old
    assert await texts_of(bob, chat, 1) == ["after"]
    assert scan([alice.profile_dir, bob.profile_dir], [secret.encode()]) == []


async def test_room_key_goes_to_member_devices_only(shared_server: ServerProcess, sdk: Sdk) -> None:
    """The room key goes to the certified devices of members, nobody else."""
    make = sdk(shared_server)
    alice, bob = await make("alice"), await make("bob")
    chat = await alice.start_chat(bob.user)
    await alice.send_text(chat, "hi")
    await alice.flush()
    await texts_of(bob, chat, 1)
    shared = {ref[1] for ref in alice.keys.outbound[chat].shared_with}
    assert shared == {bob.device}
    assert not [e for e in bob.pending_events() if isinstance(e, Undecryptable)]
