"""Conversations across servers: 1:1, a group over three servers, to-device
messages, deletion after delivery, a remote that is down, and no plaintext
on any server's disk."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import Callable

import aiohttp
from aiohttp import web
from yarl import URL

from taube.proto import frames, http
from taube.proto.ids import ConversationId, DeviceId, UserId, new_message_id
from taube.proto.state import Kind, Member, Role
from taube.testing import RawClient, ServerProcess, seal
from taube.testing.canary import canary, scan
from taube.testing.services import free_port
from tests.conftest import second_device
from tests.federation.conftest import Servers, UserFactory, chat_across, hosts_env


async def _texts(client: RawClient, conversation: str, count: int, timeout: float = 60.0) -> None:
    await client.wait_for(lambda: len(client.texts(conversation)) >= count, timeout)


async def _joined(client: RawClient, conversation: str, timeout: float = 30.0) -> None:
    """The client's server has the conversation (its join came): it may send."""
    await client.wait_for(
        lambda: any(isinstance(e, frames.State) for e in client.entries[conversation]), timeout
    )


async def _group(owner: RawClient, admin: RawClient, members: list[RawClient]) -> str:
    """A group of ``owner``'s with ``admin`` as an admin."""
    events = owner.chain(Kind.GROUP, [])
    for user, role in [(admin, Role.ADMIN), *((m, Role.MEMBER) for m in members)]:
        last = events[-1]
        content = Member(target=UserId(user.address), membership="join", role=role)
        events.append(owner.event(last.conversation, last.depth + 1, last.event_hash(), content))
    await owner.request("POST", "/api/v1/conversations", http.CreateConversation(events=events))
    return events[0].conversation


async def _until(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    """Poll ``predicate`` (a server's database: no frame says when it changes)."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.1)


def _log_rows(proc: ServerProcess) -> int:
    with sqlite3.connect(proc.data_dir / "taube.db") as db:
        return int(db.execute("SELECT COUNT(*) FROM log").fetchone()[0])


async def test_a_chat_between_two_servers(servers: Servers, users: UserFactory) -> None:
    alice, bob, chat = await chat_across(servers, users)
    for n in range(20):
        await alice.send(chat, f"hello {n}".encode())
    await _texts(bob, chat, 20)
    assert bob.texts(chat) == [f"hello {n}".encode() for n in range(20)]
    for n in range(5):
        await bob.send(chat, f"hi {n}".encode())
    await _texts(alice, chat, 5)
    assert alice.texts(chat) == [f"hi {n}".encode() for n in range(5)]
    # bob's server has the chain: create, alice's join (implicit), bob's join
    states = [e for e in bob.entries[chat] if isinstance(e, frames.State)]
    assert [s.event.depth for s in states] == [1]  # bob starts at his own join
    assert alice.duplicates == 0
    assert bob.duplicates == 0


async def test_a_group_over_three_servers(servers: Servers, users: UserFactory) -> None:
    servers.start(["a.test", "b.test", "c.test"])
    alice = await users(servers["a.test"], "alice")
    bob = await users(servers["b.test"], "bob")
    carol = await users(servers["c.test"], "carol")
    group = await _group(alice, admin=bob, members=[carol])
    everyone = (alice, bob, carol)
    await _joined(bob, group)
    await _joined(carol, group)
    for round_ in range(10):
        for client in everyone:
            await client.send(group, f"{client.address} {round_}".encode())
    for client in everyone:
        others = [c for c in everyone if c is not client]
        await _texts(client, group, 10 * len(others))
        got = client.texts(group)
        for other in others:  # each sender's messages arrive in the order sent
            mine = [t for t in got if t.startswith(other.address.encode())]
            assert mine == [f"{other.address} {r}".encode() for r in range(10)]
        assert client.duplicates == 0

    # bob (not at the home server) adds dave, also on c.test; the home orders it
    dave = await users(servers["c.test"], "dave")
    await bob.add(group, dave.address)
    await _joined(dave, group)
    await alice.send(group, b"welcome dave")
    await _texts(dave, group, 1)
    assert dave.texts(group) == [b"welcome dave"]

    # removing carol: she gets the leave event and nothing after it
    await alice.remove(group, carol.address)
    await alice.send(group, b"after carol")
    await _texts(dave, group, 2)
    await asyncio.sleep(0.5)
    assert b"after carol" not in carol.texts(group)


async def test_to_device_messages_cross_servers(servers: Servers, users: UserFactory) -> None:
    servers.start(["a.test", "b.test"])
    alice = await users(servers["a.test"], "alice")
    bob = await users(servers["b.test"], "bob")
    await alice.send_frame(
        frames.ToDeviceSend(
            id=new_message_id(),
            messages=[
                frames.ToDeviceMessage(
                    user=UserId(bob.address), device=DeviceId(bob.device), body=seal(b"key share")
                )
            ],
        )
    )
    await bob.wait_for(lambda: any(isinstance(q, frames.ToDevice) for q in bob.queue), 20)
    [share] = [q for q in bob.queue if isinstance(q, frames.ToDevice)]
    assert share.sender == alice.address


async def test_delivered_means_deleted_on_both_servers(
    servers: Servers, users: UserFactory
) -> None:
    alice, bob, chat = await chat_across(servers, users)
    for n in range(10):
        await alice.send(chat, f"m{n}".encode())
    await _texts(bob, chat, 10)

    await _until(lambda: _log_rows(servers["a.test"]) == _log_rows(servers["b.test"]) == 0)


async def test_a_server_that_was_down_gets_everything_once(
    servers: Servers, users: UserFactory
) -> None:
    alice, bob, chat = await chat_across(servers, users)
    await alice.send(chat, b"before")
    await _texts(bob, chat, 1)
    await bob.disconnect()
    servers["b.test"].stop()
    for n in range(50):
        await alice.send(chat, f"while down {n}".encode())
    assert _log_rows(servers["a.test"]) >= 50  # kept for b.test
    servers["b.test"].start()
    await bob.connect()
    await _texts(bob, chat, 51, timeout=60)
    assert bob.texts(chat) == [b"before", *(f"while down {n}".encode() for n in range(50))]
    assert bob.duplicates == 0


async def test_no_plaintext_on_either_server(servers: Servers, users: UserFactory) -> None:
    alice, bob, chat = await chat_across(servers, users, connect_bob=False)  # keeps it on b's disk
    markers = [canary("fed") for _ in range(20)]
    for marker in markers:
        await alice.send(chat, marker.encode())
    await asyncio.sleep(2)  # forwarded to b.test (b keeps it: bob is offline)
    for proc in (servers["a.test"], servers["b.test"]):
        assert scan([proc.data_dir], markers) == []
    await bob.connect()
    await _texts(bob, chat, 20)
    assert bob.texts(chat) == [m.encode() for m in markers]


async def test_attachments_come_through_the_recipients_own_server(
    servers: Servers, users: UserFactory
) -> None:
    alice, bob, chat = await chat_across(
        servers, users, env={"b.test": {"TAUBE_LIMITS_MAX_BLOB_BYTES": "100000"}}
    )
    bob.auto_ack = False  # a client downloads attachments before it acknowledges
    picture = seal(os.urandom(50_000))
    blob = await alice.upload(picture)
    await alice.send(chat, b"a picture", blobs=[blob])
    await _texts(bob, chat, 1)
    [message] = bob.messages(chat)
    assert message.blobs == [blob]
    assert await bob.download(blob) == picture  # from b.test, bob's own server

    # over b.test's size limit: b refuses the entry, bob never sees it
    huge = await alice.upload(seal(os.urandom(200_000)))
    await alice.send(chat, b"too big", blobs=[huge])
    await alice.send(chat, b"after it")
    await _texts(bob, chat, 2)
    assert bob.texts(chat) == [b"a picture", b"after it"]
    # a.test logs the refusal once the transaction's answer is in (maybe just after)
    await _until(lambda: "payload_too_large" in servers["a.test"].logs())


async def test_a_new_device_is_announced_to_contacts_on_other_servers(
    servers: Servers, users: UserFactory
) -> None:
    alice, bob, chat = await chat_across(servers, users)
    await _joined(bob, chat)
    before = len(alice.queue)
    bob2 = await second_device(servers["b.test"], bob, connect=False)
    try:

        def told() -> bool:
            return any(
                isinstance(q, frames.KeysChanged) and q.user == bob.address
                for q in alice.queue[before:]
            )

        await alice.wait_for(told, 30)
    finally:
        await bob2.__aexit__(None, None, None)


async def test_a_chat_between_postgresql_and_sqlite_servers(
    servers: Servers, users: UserFactory, postgres_url: str
) -> None:
    """The federation tables and jobs on both engines: a.test on PostgreSQL."""
    alice, bob, chat = await chat_across(
        servers, users, env={"a.test": {"TAUBE_STORAGE_DATABASE": postgres_url}}
    )
    await _joined(bob, chat)
    for n in range(10):
        await alice.send(chat, f"from postgres {n}".encode())
        await bob.send(chat, f"from sqlite {n}".encode())
    await _texts(bob, chat, 10)
    await _texts(alice, chat, 10)
    assert alice.texts(chat) == [f"from sqlite {n}".encode() for n in range(10)]
    assert bob.texts(chat) == [f"from postgres {n}".encode() for n in range(10)]


async def test_typing_crosses_servers(servers: Servers, users: UserFactory) -> None:
    alice, bob, chat = await chat_across(servers, users)
    await _joined(bob, chat)
    await alice.send_frame(frames.Typing(conversation=ConversationId(chat), active=True))

    def typing() -> bool:
        return any(
            isinstance(f, frames.TypingEvent) and f.user == alice.address and f.active
            for f in bob.others
        )

    await bob.wait_for(typing, 20)


class DroppingProxy:
    """Stands for b.test towards a.test: passes discovery, keys and key
    queries on to b.test, and drops every push (``/send``): a.test's pushes
    to b.test fail while everything else works."""

    def __init__(self, target: ServerProcess) -> None:
        self.target = target
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.runner: web.AppRunner | None = None

    async def __aenter__(self) -> DroppingProxy:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        if request.path == "/.well-known/taube/server":
            return web.json_response({"server": self.url})
        if request.path.endswith("/send"):
            return web.json_response({"error": "unavailable", "message": "dropped"}, status=503)
        headers = {k: v for k, v in request.headers.items() if k.lower().startswith("taube-")}
        async with (
            aiohttp.ClientSession() as session,
            session.request(
                request.method,
                URL(self.target.url + request.path_qs, encoded=True),
                data=await request.read(),
                headers=headers,
            ) as answer,
        ):
            return web.Response(
                body=await answer.read(), status=answer.status, content_type="application/json"
            )


async def test_a_replica_that_missed_a_join_catches_up_from_the_sender(
    servers: Servers, users: UserFactory
) -> None:
    """a.test (the home) cannot push to b.test when alice adds carol; carol's
    message reaches b through c.test, and b learns of carol's join from c's
    chain before it stores the message: nothing is lost."""
    servers.start(["a.test", "b.test", "c.test"])
    alice = await users(servers["a.test"], "alice")
    bob = await users(servers["b.test"], "bob")
    carol = await users(servers["c.test"], "carol")
    group = await alice.group([bob.address])
    await _joined(bob, group)

    async with DroppingProxy(servers["b.test"]) as proxy:
        a = servers["a.test"]
        await alice.disconnect()
        a.stop()
        ports = dict(servers.ports, **{"b.test": proxy.port})
        a.env["TAUBE_FEDERATION_HOSTS"] = hosts_env(ports)["TAUBE_FEDERATION_HOSTS"]
        a.start()
        await alice.connect()
        await alice.add(group, carol.address)
        await _joined(carol, group)
        await carol.send(group, b"hello from c")
        await _texts(bob, group, 1)
        assert bob.texts(group) == [b"hello from c"]
