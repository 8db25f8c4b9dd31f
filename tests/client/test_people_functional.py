"""Presence, privacy and the directory through the SDK, against a real
server (the server's enforcement of every setting is tested in
tests/server/test_presence_functional.py)."""

from __future__ import annotations

import pytest

from taube.client import ServerError
from taube.client.people import Visibility
from taube.testing import ServerProcess
from tests.client.conftest import Sdk


async def test_presence_privacy_and_the_directory(shared_server: ServerProcess, sdk: Sdk) -> None:
    make = sdk(shared_server)
    alice, bob, carol = await make("alice"), await make("bob"), await make("carol")
    await alice.start_chat(bob.user)
    assert (await alice.privacy()).presence is Visibility.CONTACTS
    seen = await bob.presence(alice.user)
    assert (seen.visible, seen.online) == (True, True)
    assert not (await carol.presence(alice.user)).visible
    await alice.set_privacy(presence=Visibility.NOBODY)
    assert not (await bob.presence(alice.user)).visible
    assert await carol.search_directory("Alice Example") == []
    with pytest.raises(ServerError):
        await alice.set_privacy(findable=True)  # a name is needed
    settings = await alice.set_privacy(findable=True, name="Alice Example")
    assert (settings.presence, settings.findable) == (Visibility.NOBODY, True)
    found = await carol.search_directory("ice exa")
    assert [(p.user, p.name) for p in found] == [(alice.user, "Alice Example")]
    await alice.set_privacy(findable=False)
    assert await carol.search_directory("ice exa") == []
