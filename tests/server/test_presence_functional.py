"""Presence and the directory through a real server: the privacy settings
are enforced by the server, for each setting."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from taube.proto import people
from taube.testing import RawClient, ServerProcess
from taube.testing.rawclient import HttpError
from tests.conftest import Clients
from tests.server.test_postgres_functional import on_postgres
from tests.server.test_scaleout_functional import Cluster, running


async def presence(viewer: RawClient, user: str) -> dict[str, object]:
    seen: dict[str, object] = await viewer.request("GET", f"/api/v1/presence/{user}")
    return seen


async def set_privacy(client: RawClient, **change: object) -> dict[str, object]:
    now = await client.request("GET", "/api/v1/privacy")
    updated: dict[str, object] = await client.request("PUT", "/api/v1/privacy", {**now, **change})
    return updated


async def test_presence_follows_the_privacy_setting(
    shared_server: ServerProcess, clients: Clients
) -> None:
    make = clients(shared_server)
    alice = await make("alice")
    friend, stranger = await make("friend"), await make("stranger")
    group_only = await make("member")
    await alice.direct(friend.user)
    await alice.group([group_only.user])
    assert await alice.request("GET", "/api/v1/privacy") == {}  # the defaults

    # default: contacts (a direct chat), not people met only in groups
    assert await presence(friend, alice.user) == {
        "user": alice.user,
        "visible": True,
        "online": True,
    }
    assert await presence(stranger, alice.user) == {"user": alice.user}
    assert await presence(group_only, alice.user) == {"user": alice.user}

    await set_privacy(alice, presence="everyone")
    assert (await presence(stranger, alice.user))["online"] is True

    await set_privacy(alice, presence="nobody")
    assert await presence(friend, alice.user) == {"user": alice.user}
    # one's own presence is always visible
    assert (await presence(alice, alice.user))["visible"] is True

    # offline: "last seen", coarse (whole 5 minutes)
    await set_privacy(alice, presence="contacts")
    await alice.disconnect()
    async with asyncio.timeout(10):
        while "online" in (seen := await presence(friend, alice.user)):
            await asyncio.sleep(0.05)
    assert isinstance(seen["last_seen_ms"], int)
    assert seen["last_seen_ms"] % 300_000 == 0

    # unknown users and malformed addresses look like "nobody"
    assert await presence(friend, "nobody-here@example.org") == {"user": "nobody-here@example.org"}
    with pytest.raises(HttpError) as caught:
        await presence(friend, "not an address")
    assert caught.value.status == 404


async def test_bad_privacy_settings_change_nothing(
    shared_server: ServerProcess, clients: Clients
) -> None:
    alice = await clients(shared_server)("alice", connect=False)
    for bad in ({"presence": "friends"}, {"findable": True, "name": ""}, {"colour": "red"}):
        with pytest.raises(HttpError) as caught:
            await alice.request("PUT", "/api/v1/privacy", bad)
        assert caught.value.status == 400
    assert await alice.request("GET", "/api/v1/privacy") == {}


async def test_the_directory_is_opt_in_and_rate_limited(
    server: ServerProcess, clients: Clients
) -> None:
    make = clients(server)
    alice, bob = await make("alice", connect=False), await make("bob", connect=False)
    search = people.DirectoryQuery(query="Zebediah")
    found = await bob.request("POST", "/api/v1/directory/search", search)
    assert found == {"people": []}
    # opting in, under a name
    assert await set_privacy(alice, findable=True, name="Zebediah Quill") == {
        "findable": True,
        "name": "Zebediah Quill",
    }
    found = await bob.request("POST", "/api/v1/directory/search", {"query": "quill"})
    assert found == {"people": [{"user": alice.user, "name": "Zebediah Quill"}]}
    # wildcards are taken literally
    found = await bob.request("POST", "/api/v1/directory/search", {"query": "%%%"})
    assert found == {"people": []}
    # opting out forgets the name
    await set_privacy(alice, findable=False)
    assert await alice.request("GET", "/api/v1/privacy") == {}
    found = await bob.request("POST", "/api/v1/directory/search", {"query": "quill"})
    assert found == {"people": []}
    with pytest.raises(HttpError) as caught:
        await bob.request("POST", "/api/v1/directory/search", {"query": "ab"})
    assert caught.value.status == 400
    # 10 searches a minute: the eleventh within the minute waits
    statuses = []
    for _ in range(10):
        try:
            await bob.request("POST", "/api/v1/directory/search", {"query": "abc"})
            statuses.append(200)
        except HttpError as exc:
            statuses.append(exc.status)
    assert statuses[-1] == 429


async def test_presence_is_the_same_on_every_node(
    tmp_path: Path, postgres_url: str, bus_env: dict[str, str], clients: Clients
) -> None:
    """Two nodes on one database: a user connected to one node is online when
    asked through the other, and offline everywhere once gone."""
    with running(Cluster(tmp_path, 2, {**on_postgres(postgres_url), **bus_env}, nginx=False)) as c:
        one, two = c.nodes
        alice = await clients(one)("alice")
        bob = await clients(two)("bob")
        await alice.direct(bob.user)
        assert await presence(alice, bob.user) == {
            "user": bob.user,
            "visible": True,
            "online": True,
        }
        await bob.disconnect()
        async with asyncio.timeout(10):
            while "online" in (seen := await presence(alice, bob.user)):
                await asyncio.sleep(0.05)
        assert isinstance(seen["last_seen_ms"], int)
        # back: online again on the other node
        await bob.connect()
        async with asyncio.timeout(10):
            while "online" not in await presence(alice, bob.user):
                await asyncio.sleep(0.05)
