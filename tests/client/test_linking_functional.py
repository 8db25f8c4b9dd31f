"""Linking a new device with a code shown on an existing one."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from taube.client import Client
from taube.client.linking import LinkError, make_code
from taube.testing import ServerProcess
from tests.client.conftest import PASSWORD, Sdk
from tests.client.test_messaging_functional import texts_of


async def test_a_new_device_links_with_a_code(
    tmp_path: Path, shared_server: ServerProcess, sdk: Sdk
) -> None:
    make = sdk(shared_server)
    alice, bob = await make("alice"), await make("bob")
    chat = await alice.start_chat(bob.user)
    code = bob.link_start()
    async with Client(tmp_path / "bob-new") as new:
        linking = asyncio.create_task(
            new.link(shared_server.url, bob.user, PASSWORD, code, device_name="laptop")
        )
        request = await bob.link_wait(timeout=10)
        assert request.name == "laptop"
        await bob.link_confirm(request)
        await asyncio.wait_for(linking, 10)
        assert new.keys.identity.public_key == bob.keys.identity.public_key
        await new.sync()
        await alice.send_text(chat, "to all of bob's devices")
        await alice.flush()
        assert await texts_of(new, chat, 1) == ["to all of bob's devices"]
        assert await texts_of(bob, chat, 1) == ["to all of bob's devices"]


async def test_a_code_for_another_identity_is_refused(
    tmp_path: Path, shared_server: ServerProcess, sdk: Sdk
) -> None:
    make = sdk(shared_server)
    bob = await make("bob")
    forged, _ = make_code("not bob's identity key")
    async with Client(tmp_path / "bob-new") as new:
        with pytest.raises(LinkError, match="identity key"):
            await new.link(shared_server.url, bob.user, PASSWORD, forged)
    assert bob.link_start()  # nothing was consumed


async def test_a_wrong_secret_is_not_offered_for_confirmation(
    tmp_path: Path, shared_server: ServerProcess, sdk: Sdk
) -> None:
    """A request carrying another secret (an old code, a guess) never reaches the user."""
    make = sdk(shared_server)
    bob = await make("bob")
    bob.link_start()
    other_code = bob.link_start()  # replaces the first code
    stale, _ = make_code(bob.keys.identity.public_key)  # same account, other secret
    async with Client(tmp_path / "bob-new") as new:
        attempt = asyncio.create_task(
            new.link(shared_server.url, bob.user, PASSWORD, stale, timeout=3)
        )
        with pytest.raises(TimeoutError):
            await bob.link_wait(timeout=2)
        with pytest.raises((LinkError, TimeoutError)):
            await attempt
    assert other_code


async def test_a_linked_device_can_be_given_the_history(
    tmp_path: Path, shared_server: ServerProcess, sdk: Sdk
) -> None:
    make = sdk(shared_server)
    alice, bob = await make("alice"), await make("bob")
    chat = await alice.start_chat(bob.user)
    for text in ("one", "two", "three"):
        await alice.send_text(chat, text)
    await alice.flush()
    await texts_of(bob, chat, 3)
    await bob.react(chat, bob.history(chat)[0].id, "❤️")
    await bob.flush()
    code = bob.link_start()
    async with Client(tmp_path / "bob-new") as new:
        linking = asyncio.create_task(new.link(shared_server.url, bob.user, PASSWORD, code))
        await bob.link_confirm(await bob.link_wait(timeout=10), share_history=True)
        await asyncio.wait_for(linking, 10)
        history = new.history(chat)
        assert [m.text for m in history] == ["one", "two", "three"]
        assert history[0].reactions == {"❤️": [bob.user]}
        assert new.search("two")[0].text == "two"
        # and the chain it imported verifies: it can send into the chat
        await new.sync()
        await new.send_text(chat, "from the new device")
        await new.flush()
        assert (await texts_of(alice, chat, 4))[-1] == "from the new device"
