"""Discovery, server keys and signed requests between real servers; a malicious
remote refused with clear errors and nothing stored."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import stat
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import pytest
from yarl import URL

from taube.proto import http
from taube.proto.federation import (
    FEDERATION_PREFIX,
    HEADER_SIGNATURE,
    HEADER_TIME,
    WELL_KNOWN_KEYS,
    WELL_KNOWN_SERVER,
    FederatedMessage,
    FederatedState,
    Transaction,
)
from taube.proto.ids import (
    ConversationId,
    UserId,
    new_conversation_id,
    new_device_id,
    new_message_id,
)
from taube.proto.state import Kind, Member
from taube.testing import RawClient, ServerProcess, seal
from taube.testing.rawclient import HttpError
from taube.testing.services import free_port
from tests.federation.conftest import RogueServer, Servers, UserFactory

QUERY = FEDERATION_PREFIX + "/keys/query"


async def _get(url: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, json.loads(await response.read())


async def test_a_server_publishes_where_it_is_and_its_keys(servers: Servers) -> None:
    servers.start(["a.test"])
    a = servers["a.test"]
    status, found = await _get(a.url + WELL_KNOWN_SERVER)
    assert (status, found) == (200, {"server": a.url})
    status, keys = await _get(a.url + WELL_KNOWN_KEYS)
    assert (status, keys["domain"]) == (200, "a.test")
    [key] = keys["keys"]
    assert "valid_until_ms" not in key  # the current key
    ring = a.data_dir / "federation" / "server_keys.json"
    assert stat.S_IMODE(ring.stat().st_mode) == 0o600


async def test_a_rotated_key_is_listed_with_its_validity(servers: Servers) -> None:
    servers.start(["a.test"])
    a = servers["a.test"]
    _, before = await _get(a.url + WELL_KNOWN_KEYS)
    a.stop()
    rotate = [sys.executable, "-m", "taube.server.federation.keyring", "rotate"]
    subprocess.run([*rotate, "--data-dir", str(a.data_dir)], check=True, capture_output=True)
    a.start()
    _, after = await _get(a.url + WELL_KNOWN_KEYS)
    old, new = after["keys"]
    assert old["key_id"] == before["keys"][0]["key_id"]
    assert old["valid_until_ms"] > old["valid_from_ms"]
    assert "valid_until_ms" not in new


async def test_servers_look_up_each_others_users_keys(servers: Servers, users: UserFactory) -> None:
    """A client asks its own server; that server asks the other, signed."""
    servers.start(["a.test", "b.test"])
    alice = await users(servers["a.test"], "alice", connect=False)
    bob = await users(servers["b.test"], "bob", connect=False)
    found = await alice.request(
        "POST",
        "/api/v1/keys/query",
        http.QueryKeys(users=[bob.user, alice.user, UserId("nobody@b.test")]),
    )
    by_user = {entry["user"]: entry for entry in found["users"]}
    assert set(by_user) == {alice.address, bob.address}  # unknown users are left out
    [device] = by_user[bob.address]["devices"]
    assert device["device"] == bob.device


async def test_each_remote_one_time_key_is_claimed_once(
    servers: Servers, users: UserFactory
) -> None:
    servers.start(["a.test", "b.test"])
    alice = await users(servers["a.test"], "alice", connect=False)
    bob = await users(servers["b.test"], "bob", connect=False)
    ref = http.ClaimKeys(devices=[http.DeviceRef(user=bob.user, device=bob.device)])
    claims = await asyncio.gather(
        *(alice.request("POST", "/api/v1/keys/claim", ref) for _ in range(7))
    )
    ids = [claim["keys"][0]["key_id"] for claim in claims]
    assert sorted(ids) == sorted([*(i for i in ids if i != "fb"), "fb", "fb"])
    assert len({i for i in ids if i != "fb"}) == 5  # five one-time keys, each once
    assert (await bob.request("GET", "/api/v1/keys/count"))["one_time_keys"] == 0


async def test_a_domain_without_a_server_has_no_users(servers: Servers, users: UserFactory) -> None:
    servers.start(["a.test"], extra_hosts={"nowhere.test": free_port()})  # nothing listens
    alice = await users(servers["a.test"], "alice", connect=False)
    found = await alice.request(
        "POST", "/api/v1/keys/query", http.QueryKeys(users=[UserId("bob@nowhere.test")])
    )
    assert found == {"users": []}


async def test_an_unreachable_server_is_unavailable_not_empty(
    servers: Servers, users: UserFactory
) -> None:
    servers.start(["a.test", "b.test"])
    alice = await users(servers["a.test"], "alice", connect=False)
    bob = await users(servers["b.test"], "bob", connect=False)
    await alice.request("POST", "/api/v1/keys/query", http.QueryKeys(users=[bob.user]))
    servers["b.test"].stop()
    # an unreachable server must not look like a user without devices
    with pytest.raises(HttpError) as refused:
        await alice.request("POST", "/api/v1/keys/query", http.QueryKeys(users=[bob.user]))
    assert (refused.value.status, refused.value.code) == (503, "unavailable")


# ----------------------------------------------------------- the malicious remote


@pytest.fixture
async def rogue(tmp_path: Path) -> AsyncIterator[RogueServer]:
    async with RogueServer("evil.test", tmp_path / "rogue") as running:
        yield running


def _start_b(servers: Servers, rogue: RogueServer, **env: str) -> ServerProcess:
    """b.test, which finds evil.test at the rogue's port."""
    servers.start(["b.test"], extra_hosts={"evil.test": rogue.port}, env={"b.test": env})
    return servers["b.test"]


async def test_a_correctly_signed_request_is_answered(
    servers: Servers, users: UserFactory, rogue: RogueServer
) -> None:
    _start_b(servers, rogue)
    bob = await users(servers["b.test"], "bob", connect=False)
    status, found = await rogue.call(
        servers["b.test"], "b.test", "/keys/query", http.QueryKeys(users=[bob.user])
    )
    assert status == 200, found
    assert found["users"][0]["user"] == bob.address


async def test_forged_replayed_stale_and_misdirected_requests_are_refused(
    servers: Servers, users: UserFactory, rogue: RogueServer
) -> None:
    b = _start_b(servers, rogue)
    bob = await users(b, "bob", connect=False)
    body = json.dumps({"users": [bob.address]}).encode()
    good = rogue.headers("b.test", "POST", QUERY, body)

    # forged: the body was changed after signing
    other = json.dumps({"users": [bob.address, "x@b.test"]}).encode()
    status, error = await rogue.send(b, QUERY, other, good)
    assert (status, error["error"]) == (400, "bad_signature")

    # forged: signed by a key the origin does not publish
    forged = dict(good, **{HEADER_SIGNATURE: "A" * 86})
    status, error = await rogue.send(b, QUERY, body, forged)
    assert (status, error["error"]) == (400, "bad_signature")

    # the genuine request goes through once...
    status, _ = await rogue.send(b, QUERY, body, good)
    assert status == 200
    # ... and its replay is refused
    status, error = await rogue.send(b, QUERY, body, good)
    assert (status, error["error"]) == (409, "conflict"), error
    assert "replayed" in error["message"]

    # stale: ten minutes old (re-signed, so only the time is wrong)
    stale_ms = int(good[HEADER_TIME]) - 10 * 60 * 1000
    stale = rogue.headers("b.test", "POST", QUERY, body, now_ms=stale_ms)
    status, error = await rogue.send(b, QUERY, body, stale)
    assert (status, error["error"]) == (401, "unauthorized")
    assert "freshness" in error["message"]

    # misdirected: signed for another server
    elsewhere = rogue.headers("c.test", "POST", QUERY, body)
    status, error = await rogue.send(b, QUERY, body, elsewhere)
    assert (status, error["error"]) == (401, "unauthorized")

    # unsigned
    status, error = await rogue.send(b, QUERY, body, {})
    assert (status, error["error"]) == (401, "unauthorized")

    # asking for another domain's users through b
    status, error = await rogue.call(
        b, "b.test", "/keys/query", http.QueryKeys(users=[UserId("a@a.test")])
    )
    assert (status, error["error"]) == (400, "bad_request")


async def test_a_replay_is_refused_after_a_restart(
    servers: Servers, users: UserFactory, rogue: RogueServer
) -> None:
    b = _start_b(servers, rogue)
    bob = await users(b, "bob", connect=False)
    body = json.dumps({"users": [bob.address]}).encode()
    headers = rogue.headers("b.test", "POST", QUERY, body)
    assert (await rogue.send(b, QUERY, body, headers))[0] == 200
    b.kill()
    b.start()
    status, error = await rogue.send(b, QUERY, body, headers)
    assert (status, error["error"]) == (409, "conflict")


async def test_oversize_bodies_are_refused_unread(
    servers: Servers, users: UserFactory, rogue: RogueServer
) -> None:
    b = _start_b(servers, rogue, TAUBE_FEDERATION_MAX_BODY_BYTES="4096")
    body = b'{"users": ["' + b"x" * 10_000 + b'@b.test"]}'
    status, error = await rogue.send(b, QUERY, body, rogue.headers("b.test", "POST", QUERY, body))
    assert (status, error["error"]) == (413, "payload_too_large")


async def test_a_denied_domain_is_refused(
    servers: Servers, users: UserFactory, rogue: RogueServer
) -> None:
    b = _start_b(servers, rogue, TAUBE_FEDERATION_DENY='["evil.test"]')
    bob = await users(b, "bob", connect=False)
    status, error = await rogue.call(b, "b.test", "/keys/query", http.QueryKeys(users=[bob.user]))
    assert (status, error["error"]) == (403, "forbidden")
    # and b does not ask evil.test either: its users do not exist for b's clients
    found = await bob.request(
        "POST", "/api/v1/keys/query", http.QueryKeys(users=[UserId("eve@evil.test")])
    )
    assert found == {"users": []}


async def test_garbage_is_throttled_and_the_server_stays_up(
    servers: Servers, users: UserFactory, rogue: RogueServer
) -> None:
    b = _start_b(servers, rogue, TAUBE_FEDERATION_FAILURES_PER_MINUTE="20")
    statuses = []
    for i in range(40):
        garbage = os.urandom(64 + i)
        status, _ = await rogue.send(b, QUERY, garbage, {"Taube-Origin": "evil.test"})
        statuses.append(status)
    assert statuses[0] == 401
    assert statuses[-1] == 429  # throttled before any work is done
    # the server still serves its own users
    bob = await users(b, "bob", connect=False)
    assert (await bob.request("GET", "/api/v1/keys/count"))["one_time_keys"] == 5


async def test_a_remote_cannot_post_into_conversations_it_has_no_member_in(
    servers: Servers, users: UserFactory, rogue: RogueServer
) -> None:
    b = _start_b(servers, rogue)
    bob = await users(b, "bob")
    carol = await users(b, "carol")
    chat = await bob.direct(carol.address)
    await bob.send(chat, b"ours")
    await carol.wait_for(lambda: len(carol.texts(chat)) == 1)

    def message(sender: str, conversation: str) -> FederatedMessage:
        return FederatedMessage(
            conversation=ConversationId(conversation),
            id=new_message_id(),
            sender=UserId(sender),
            sender_device=new_device_id(),
            ts=0,
            body=seal(b"injected"),
        )

    stranger = new_conversation_id()
    state = bob.event(chat, 5, "A" * 43, Member(target=UserId("eve@evil.test"), membership="join"))
    transaction = Transaction(
        entries=[
            message("eve@evil.test", chat),  # not a member
            message(bob.address, chat),  # not a user of evil.test
            message("eve@evil.test", stranger),  # evil.test shows no such conversation
            FederatedState(conversation=ConversationId(chat), event=state),  # not its home
        ]
    )
    status, result = await rogue.call(b, "b.test", "/send", transaction)
    assert status == 200, result
    assert [r["error"] for r in result["entries"]] == [
        "not_found",
        "forbidden",
        "not_found",
        "forbidden",
    ]
    await asyncio.sleep(0.5)
    assert carol.texts(chat) == [b"ours"]  # nothing arrived
    info = await carol.request("GET", f"/api/v1/conversations/{chat}")
    assert set(info["members"]) == {bob.address, carol.address}
    with pytest.raises(HttpError):
        await carol.request("GET", f"/api/v1/conversations/{stranger}")

    # the chain of a conversation is shown only to servers with a member in it
    path = FEDERATION_PREFIX + f"/conversations/{chat}/state"
    headers = rogue.headers("b.test", "GET", path, b"")
    assert rogue.session is not None
    async with rogue.session.get(URL(b.url + path, encoded=True), headers=headers) as answer:
        assert answer.status == 404


async def test_a_transaction_over_the_limits_is_refused_whole(
    servers: Servers, users: UserFactory, rogue: RogueServer
) -> None:
    b = _start_b(servers, rogue)
    entry = {
        "type": "msg",
        "conversation": new_conversation_id(),
        "id": new_message_id(),
        "sender": "eve@evil.test",
        "sender_device": new_device_id(),
        "ts": 0,
        "body": "",
    }
    body = json.dumps({"entries": [entry] * 501}).encode()
    path = FEDERATION_PREFIX + "/send"
    status, error = await rogue.send(b, path, body, rogue.headers("b.test", "POST", path, body))
    assert (status, error["error"]) == (400, "bad_request")
    body = json.dumps({"entries": [{**entry, "surprise": 1}]}).encode()
    status, error = await rogue.send(b, path, body, rogue.headers("b.test", "POST", path, body))
    assert (status, error["error"]) == (400, "bad_request")


async def test_a_remote_cannot_make_a_server_keep_conversations_of_others(
    servers: Servers, users: UserFactory, rogue: RogueServer
) -> None:
    """evil.test serves a well-formed chain of its own users only and pushes a
    message into it: b.test has nobody there, so it stores nothing."""
    b = _start_b(servers, rogue)
    bob = await users(b, "bob")
    eve = RawClient("http://unused", "eve@evil.test")
    mallory = RawClient("http://unused", "mallory@evil.test")
    chain = eve.chain(Kind.DIRECT, [mallory.address])
    conversation = chain[0].conversation
    rogue.answers[f"/conversations/{conversation}/state"] = msgspec.to_builtins(
        http.StateChain(events=chain)
    )
    message = FederatedMessage(
        conversation=conversation,
        id=new_message_id(),
        sender=eve.user,
        sender_device=new_device_id(),
        ts=0,
        body=seal(b"spam"),
    )
    status, result = await rogue.call(b, "b.test", "/send", Transaction(entries=[message]))
    assert status == 200, result
    assert result["entries"] == [
        {"error": "not_found", "message": "no member of that conversation is here"}
    ]
    with sqlite3.connect(b.data_dir / "taube.db") as db:
        assert db.execute("SELECT COUNT(*) FROM conversations").fetchone()[0] == 0
        assert db.execute("SELECT COUNT(*) FROM log").fetchone()[0] == 0
    assert bob.errors() == []
