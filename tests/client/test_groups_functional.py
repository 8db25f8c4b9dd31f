"""Group title and picture: signed state events whose content the server cannot read."""

from __future__ import annotations

import asyncio
from pathlib import Path

from taube.client import Client, statekey
from taube.proto.ids import ConversationId
from taube.proto.state import Title
from taube.testing import ServerProcess
from taube.testing.canary import canary, scan
from tests.client.conftest import Sdk


async def title_of(client: Client, conversation: ConversationId, timeout: float = 10) -> str:
    async with asyncio.timeout(timeout):
        while True:
            await client.state(conversation)
            title = client.title(conversation)
            if title is not None:
                return title
            await asyncio.sleep(0.05)


async def test_title_and_avatar_are_sealed_state(tmp_path: Path, sdk: Sdk) -> None:
    with ServerProcess(tmp_path / "server") as server:
        make = sdk(server)
        alice, bob, carol = await make("alice"), await make("bob"), await make("carol")
        group = await alice.create_group([bob.user])
        name = canary("Book club")
        await alice.rename(group, name)
        await alice.flush()
        assert alice.title(group) == name
        assert await title_of(bob, group) == name
        picture = tmp_path / "club.png"
        picture.write_bytes(b"\x89PNG " + canary("picture").encode())
        await alice.set_avatar(group, picture)
        await alice.flush()
        async with asyncio.timeout(10):
            while (path := await bob.avatar(group)) is None:
                await asyncio.sleep(0.05)
        assert path.read_bytes() == picture.read_bytes()
        # a member added later reads the current title
        await alice.add_member(group, carol.user)
        await alice.flush()
        assert await title_of(carol, group) == name
        # the chain carries it as a signed event of alice's
        events, _ = await bob._conversations.chain(group, refresh=True)
        kinds = [e.content.__class__.__name__ for e in events]
        assert kinds[2:5] == ["Title", "Avatar", "Member"]
        assert scan([server.data_dir, server.log_path], [name.encode()]) == []


async def test_a_removed_member_cannot_read_later_titles(
    shared_server: ServerProcess, sdk: Sdk
) -> None:
    make = sdk(shared_server)
    alice, bob, carol = await make("alice"), await make("bob"), await make("carol")
    group = await alice.create_group([bob.user, carol.user])
    await alice.rename(group, "before")
    await alice.flush()
    assert await title_of(carol, group) == "before"
    await alice.remove_member(group, carol.user)
    await alice.rename(group, "after carol left")
    await alice.flush()
    async with asyncio.timeout(10):
        while bob.title(group) != "after carol left":
            await bob.state(group)
            await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)
    # carol may still hold the chain up to her removal; no later key reaches her
    carol_keys = carol._conversations.state_keys(group)
    events, _ = await alice._conversations.chain(group)
    latest = events[-1].content
    assert isinstance(latest, Title)
    assert statekey.key_id_of(latest.sealed) not in carol_keys
