"""Bad input against a real server process: every refusal has a clear error
code, the server keeps serving, and nothing of the refused input is stored."""

from __future__ import annotations

import asyncio
import base64
import io
import os
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from taube.proto import frames, http
from taube.proto.codec import encode
from taube.proto.errors import ErrorCode
from taube.proto.ids import ConversationId, new_conversation_id, new_message_id
from taube.proto.keys import DeviceKeys, OneTimeKey
from taube.proto.signing import DOMAIN_DEVICE, DOMAIN_ONE_TIME_KEY, DOMAIN_STATE, b64encode
from taube.proto.state import Create, Kind, Member, Role, Timer
from taube.proto.version import PROTOCOL_VERSION
from taube.testing import RawClient, ServerProcess
from taube.testing.rawclient import HttpError, seal
from tests.conftest import fresh_address

Make = Callable[..., Awaitable[RawClient]]
Clients = Callable[[ServerProcess], Make]
MakeRaw = Callable[[ServerProcess, str], Awaitable[RawClient]]

# ----------------------------------------------------------------- helpers


def db_rows(server: ServerProcess, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
    """Query the server's SQLite database read-only, next to the running server."""
    path = server.data_dir / "taube.db"
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


async def conversation_seq(client: RawClient, conversation: str) -> int:
    info = await client.request("GET", f"/api/v1/conversations/{conversation}")
    return int(info["seq"])


async def next_error(client: RawClient, count_before: int) -> frames.Error:
    await client.wait_for(lambda: len(client.errors()) > count_before)
    return client.errors()[count_before]


async def still_serving(alice: RawClient, bob: RawClient, conversation: str) -> None:
    """A normal send goes through afterwards, and it is all ``bob`` ever gets."""
    before = len(bob.messages(conversation))
    marker = f"still serving {new_message_id()}".encode()
    await alice.send(conversation, marker)
    await bob.wait_for(lambda: len(bob.messages(conversation)) > before)
    await asyncio.sleep(0.1)  # anything refused before the marker would have come first
    assert bob.texts(conversation)[before:] == [marker]


async def pair(make: Make) -> tuple[RawClient, RawClient, ConversationId]:
    alice, bob = await make("alice"), await make("bob")
    conversation = await alice.direct(bob.address)
    await bob.wait_for(lambda: len(bob.entries[conversation]) >= 1)  # his own join
    return alice, bob, conversation


def zero_key() -> str:
    return b64encode(bytes(32))


#: Curve25519 public keys of small order: a Diffie-Hellman exchange with any
#: of them gives the all-zero secret (0, 1, two points of order 8, p-1, p, p+1).
_LOW_ORDER = [
    "0000000000000000000000000000000000000000000000000000000000000000",
    "0100000000000000000000000000000000000000000000000000000000000000",
    "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
    "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
]


def _with_top_bit(point: str) -> bytes:
    """X25519 ignores bit 255 (RFC 7748), so these are the same points."""
    raw = bytearray(bytes.fromhex(point))
    raw[31] |= 0x80
    return bytes(raw)


LOW_ORDER_POINTS = [bytes.fromhex(p) for p in _LOW_ORDER] + [_with_top_bit(p) for p in _LOW_ORDER]


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
async def raw_clients() -> AsyncIterator[MakeRaw]:
    """Clients with no account yet (``clients`` registers and connects)."""
    opened: list[RawClient] = []

    async def make(proc: ServerProcess, address: str) -> RawClient:
        client = RawClient(proc.url, address)
        await client.__aenter__()
        opened.append(client)
        return client

    yield make
    for client in opened:
        await client.__aexit__(None, None, None)


# ----------------------------------------------------------------- bad frames


async def test_malformed_json_frame(shared_server: ServerProcess, clients: Clients) -> None:
    alice, bob, conversation = await pair(clients(shared_server))
    seq = await conversation_seq(alice, conversation)
    for garbage in (
        '{"type": "msg.send", "conversation": ',
        "not json at all",
        "[1, 2, 3]",
        '"a string"',
        "{}",
        "\x00\x01",
    ):
        count = len(alice.errors())
        await alice.send_raw(garbage)
        error = await next_error(alice, count)
        assert error.code is ErrorCode.BAD_REQUEST, garbage
        assert error.message
    assert await conversation_seq(alice, conversation) == seq
    assert alice.is_open
    await still_serving(alice, bob, conversation)


async def test_unknown_frame_type(shared_server: ServerProcess, clients: Clients) -> None:
    alice, bob, conversation = await pair(clients(shared_server))
    seq = await conversation_seq(alice, conversation)
    frame = msgspec.json.decode(
        encode(
            frames.Send(conversation=conversation, id=new_message_id(), body=seal(b"teleported"))
        )
    )
    frame["type"] = "msg.teleport"
    await alice.send_raw(msgspec.json.encode(frame))
    error = await next_error(alice, 0)
    assert error.code is ErrorCode.UNKNOWN_TYPE
    assert await conversation_seq(alice, conversation) == seq
    await still_serving(alice, bob, conversation)


async def test_frame_with_unknown_field(shared_server: ServerProcess, clients: Clients) -> None:
    alice, bob, conversation = await pair(clients(shared_server))
    seq = await conversation_seq(alice, conversation)
    msg_id = new_message_id()
    frame = msgspec.json.decode(
        encode(frames.Send(conversation=conversation, id=msg_id, body=seal(b"with extras")))
    )
    frame["priority"] = "urgent"
    await alice.send_raw(msgspec.json.encode(frame))
    error = await next_error(alice, 0)
    assert error.code is ErrorCode.BAD_REQUEST
    assert "priority" in error.message
    assert await conversation_seq(alice, conversation) == seq
    assert db_rows(shared_server, "SELECT * FROM sent WHERE msg_id = ?", (msg_id,)) == []
    await still_serving(alice, bob, conversation)
    assert msg_id not in [m.id for m in bob.messages(conversation)]


async def test_field_of_the_wrong_shape(shared_server: ServerProcess, clients: Clients) -> None:
    alice, bob, conversation = await pair(clients(shared_server))
    seq = await conversation_seq(alice, conversation)
    good = msgspec.json.decode(
        encode(frames.Send(conversation=conversation, id=new_message_id(), body=seal(b"x")))
    )
    bad_frames = [
        {**good, "id": "short"},  # not a message id
        {**good, "conversation": "../../etc/passwd"},
        {**good, "body": "not base64!"},
        {**good, "expire_ms": -1},
        {k: v for k, v in good.items() if k != "body"},  # missing field
    ]
    for bad in bad_frames:
        count = len(alice.errors())
        await alice.send_raw(msgspec.json.encode(bad))
        assert (await next_error(alice, count)).code is ErrorCode.BAD_REQUEST, bad
    assert await conversation_seq(alice, conversation) == seq
    await still_serving(alice, bob, conversation)


async def test_oversize_frame(tmp_path: Path, clients: Clients) -> None:
    with ServerProcess(tmp_path / "s", env={"TAUBE_LIMITS_MAX_FRAME_BYTES": "4096"}) as server:
        alice, bob, conversation = await pair(clients(server))
        seq = await conversation_seq(alice, conversation)
        msg_id = new_message_id()
        frame = encode(
            frames.Send(conversation=conversation, id=msg_id, body=seal(os.urandom(3500)))
        )
        assert 4096 < len(frame) < 8192
        await alice.send_raw(frame)
        error = await next_error(alice, 0)
        assert error.code is ErrorCode.FRAME_TOO_LARGE
        assert "4096" in error.message
        # the connection stays open and the frame was not stored
        await asyncio.sleep(0.1)
        assert alice.is_open
        assert await conversation_seq(alice, conversation) == seq
        assert db_rows(server, "SELECT * FROM sent WHERE msg_id = ?", (msg_id,)) == []
        await still_serving(alice, bob, conversation)
        assert msg_id not in [m.id for m in bob.messages(conversation)]
        # the server says what its limit is
        info = await alice.request("GET", "/api/v1/info")
        assert info["max_frame_bytes"] == 4096


async def test_frame_far_over_the_limit_closes_the_socket(tmp_path: Path, clients: Clients) -> None:
    with ServerProcess(tmp_path / "s", env={"TAUBE_LIMITS_MAX_FRAME_BYTES": "4096"}) as server:
        alice, bob, conversation = await pair(clients(server))
        seq = await conversation_seq(alice, conversation)
        await alice.send_frame(
            frames.Send(
                conversation=conversation, id=new_message_id(), body=seal(os.urandom(64 * 1024))
            )
        )
        assert await alice.wait_closed() == 1009
        assert await conversation_seq(alice, conversation) == seq
        # the device can come back and carry on
        await alice.connect()
        await still_serving(alice, bob, conversation)


# ----------------------------------------------------------------- HTTP bodies


async def test_bad_http_bodies(
    shared_server: ServerProcess, clients: Clients, session: aiohttp.ClientSession
) -> None:
    alice = await clients(shared_server)("alice", connect=False)
    before = await alice.request("GET", "/api/v1/keys/count")
    good = msgspec.json.decode(encode(http.UploadKeys(one_time_keys=[alice.one_time_key("extra")])))
    for raw in (
        b"",
        b"{",
        b"null",
        b"[]",
        msgspec.json.encode({**good, "bonus": 1}),
        msgspec.json.encode({"one_time_keys": "k1"}),
    ):
        with pytest.raises(HttpError) as caught:
            await alice.request("POST", "/api/v1/keys/upload", raw=raw)
        assert (caught.value.status, caught.value.code) == (400, ErrorCode.BAD_REQUEST), raw
        assert caught.value.body["message"]
    # over the body limit (1 MiB by default)
    async with session.post(
        shared_server.url + "/api/v1/keys/upload",
        data=io.BytesIO(b" " * (1 << 20) + b"{}"),
        headers={"Authorization": f"Bearer {alice.token}"},
    ) as resp:
        assert resp.status == 413
        assert (await resp.json())["error"] == ErrorCode.PAYLOAD_TOO_LARGE
    # unknown paths and methods are refused in the same JSON shape
    with pytest.raises(HttpError) as caught:
        await alice.request("GET", "/api/v1/nothing-here")
    assert (caught.value.status, caught.value.code) == (404, ErrorCode.NOT_FOUND)
    with pytest.raises(HttpError) as caught:
        await alice.request("PUT", "/api/v1/keys/count")
    assert caught.value.status in (400, 405)
    assert caught.value.code == ErrorCode.BAD_REQUEST
    assert await alice.request("GET", "/api/v1/keys/count") == before
    await alice.request("POST", "/api/v1/keys/upload", raw=msgspec.json.encode(good))


# ----------------------------------------------------------------- blobs


async def test_oversize_blob_upload(
    tmp_path: Path, clients: Clients, session: aiohttp.ClientSession
) -> None:
    env = {"TAUBE_LIMITS_MAX_BLOB_BYTES": "10000"}
    with ServerProcess(tmp_path / "s", env=env) as server:
        alice = await clients(server)("alice", connect=False)
        # announced by Content-Length
        with pytest.raises(HttpError) as caught:
            await alice.upload(os.urandom(10001))
        assert caught.value.status == 413
        assert caught.value.code == ErrorCode.PAYLOAD_TOO_LARGE

        # streamed without a length: refused once the stream passes the limit
        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(20):
                yield os.urandom(1000)

        async with session.post(
            server.url + "/api/v1/blobs",
            data=chunks(),
            headers={"Authorization": f"Bearer {alice.token}"},
        ) as resp:
            assert resp.status == 413
            assert (await resp.json())["error"] == ErrorCode.PAYLOAD_TOO_LARGE

        # nothing was kept, and uploads within the limit still work
        assert db_rows(server, "SELECT COUNT(*) FROM blobs") == [(0,)]
        assert db_rows(server, "SELECT blob_bytes FROM users WHERE user_id = ?", (alice.user,)) == [
            (0,)
        ]
        assert not any((server.data_dir / "blobs" / "tmp").iterdir())
        data = os.urandom(10000)
        blob = await alice.upload(data)
        assert await alice.download(blob) == data


async def test_blob_quota(tmp_path: Path, clients: Clients) -> None:
    env = {"TAUBE_LIMITS_BLOB_QUOTA_BYTES": "25000"}
    with ServerProcess(tmp_path / "s", env=env) as server:
        make = clients(server)
        alice, bob = await make("alice", connect=False), await make("bob", connect=False)
        first = await alice.upload(os.urandom(20000))
        with pytest.raises(HttpError) as caught:
            await alice.upload(os.urandom(6000))
        assert caught.value.status == 507
        assert caught.value.code == ErrorCode.QUOTA_EXCEEDED
        # the refused upload left nothing behind
        assert db_rows(server, "SELECT blob FROM blobs WHERE owner = ?", (alice.user,)) == [
            (first,)
        ]
        assert db_rows(server, "SELECT blob_bytes FROM users WHERE user_id = ?", (alice.user,)) == [
            (20000,)
        ]
        files = [p.name for p in (server.data_dir / "blobs").rglob("*") if p.is_file()]
        assert files == [first]
        # what still fits is accepted; the quota is per account
        await alice.upload(os.urandom(5000))
        await bob.upload(os.urandom(20000))
        # concurrent uploads cannot overshoot it
        carol = await make("carol", connect=False)
        results = await asyncio.gather(
            *(carol.upload(os.urandom(4000)) for _ in range(10)), return_exceptions=True
        )
        accepted = [r for r in results if isinstance(r, str)]
        assert len(accepted) == 6
        assert all(
            isinstance(r, HttpError) and r.code == ErrorCode.QUOTA_EXCEEDED
            for r in results
            if not isinstance(r, str)
        )
        assert db_rows(server, "SELECT blob_bytes FROM users WHERE user_id = ?", (carol.user,)) == [
            (24000,)
        ]


async def test_blob_of_others_is_not_found(shared_server: ServerProcess, clients: Clients) -> None:
    make = clients(shared_server)
    alice, bob, _conversation = await pair(make)
    mallory = await make("mallory")
    private = await bob.upload(b"bob's attachment")
    answers = []
    for blob in (private, "A" * 32, "not-a-blob-id"):
        with pytest.raises(HttpError) as caught:
            await mallory.download(blob)
        answers.append((caught.value.status, caught.value.body))
    assert answers[0] == answers[1] == answers[2]
    assert answers[0][0] == 404
    assert answers[0][1]["error"] == ErrorCode.NOT_FOUND
    # nor can she attach it to a message of her own
    own = await mallory.direct(alice.address)
    seq = await conversation_seq(mallory, own)
    msg_id = await mallory.send(own, b"look", wait=False, blobs=[private])
    error = await next_error(mallory, 0)
    assert (error.code, error.ref) == (ErrorCode.NOT_FOUND, msg_id)
    assert await conversation_seq(mallory, own) == seq
    await still_serving(mallory, alice, own)


# ----------------------------------------------------------------- tokens


async def _ws_refused(client: RawClient, hello: Any) -> tuple[int | None, list[frames.Error]]:
    await client.connect(hello=False)
    if isinstance(hello, (str, bytes)):
        await client.send_raw(hello)
    else:
        await client.send_frame(hello)
    code = await client.wait_closed()
    return code, client.errors()


async def assert_token_refused(client: RawClient, token: str) -> None:
    """``token`` is refused on HTTP (401) and on the WebSocket (4401)."""
    with pytest.raises(HttpError) as caught:
        await client.request("GET", "/api/v1/devices", token=token)
    assert caught.value.status == 401
    assert caught.value.code == ErrorCode.UNAUTHORIZED
    with pytest.raises(HttpError) as caught:
        await client.request(
            "POST", "/api/v1/keys/query", http.QueryKeys(users=[client.user]), token=token
        )
    assert caught.value.status == 401
    saved, client.token = client.token, token
    client.others.clear()
    try:
        code, errors = await _ws_refused(
            client, frames.Hello(protocol=PROTOCOL_VERSION, token=token)
        )
    finally:
        client.token = saved
        await client.disconnect()
    assert code == 4401
    assert [e.code for e in errors] == [ErrorCode.UNAUTHORIZED]


async def test_wrong_token(shared_server: ServerProcess, clients: Clients) -> None:
    alice = await clients(shared_server)("alice", connect=False)
    await assert_token_refused(alice, "x" * 43)
    await assert_token_refused(alice, alice.token[:-2] + "AA")
    # no Authorization header, or another scheme
    with pytest.raises(HttpError) as caught:
        await alice.request("GET", "/api/v1/devices", token="")
    assert (caught.value.status, caught.value.code) == (401, ErrorCode.UNAUTHORIZED)
    with pytest.raises(HttpError) as caught:
        await alice.request(
            "GET", "/api/v1/devices", token="", headers={"Authorization": f"Basic {alice.token}"}
        )
    assert (caught.value.status, caught.value.code) == (401, ErrorCode.UNAUTHORIZED)
    # the right token still works
    await alice.request("GET", "/api/v1/devices")
    await alice.connect()


async def test_expired_token(tmp_path: Path, raw_clients: MakeRaw) -> None:
    with ServerProcess(tmp_path / "s", env={"TAUBE_AUTH_TOKEN_LIFETIME_S": "2"}) as server:
        alice = await raw_clients(server, fresh_address("alice"))
        await alice.register()
        await alice.request("GET", "/api/v1/devices")  # valid at first
        await asyncio.sleep(2.2)
        await assert_token_refused(alice, alice.token)
        # logging in again gives a fresh token
        await alice.login()
        await alice.request("GET", "/api/v1/devices")


async def test_token_of_removed_device(
    shared_server: ServerProcess, clients: Clients, raw_clients: MakeRaw
) -> None:
    alice = await clients(shared_server)("alice", connect=False)
    other = await raw_clients(shared_server, alice.address)
    await other.login()
    await alice.request(
        "DELETE", f"/api/v1/devices/{other.device}", http.RemoveDevice(password=alice.password)
    )
    await assert_token_refused(other, other.token)


async def test_token_after_logout(shared_server: ServerProcess, clients: Clients) -> None:
    alice = await clients(shared_server)("alice", connect=False)
    token = alice.token
    await alice.request("DELETE", "/api/v1/sessions/current")
    await assert_token_refused(alice, token)


# ----------------------------------------------------------------- hello


async def test_first_frame_not_hello(shared_server: ServerProcess, clients: Clients) -> None:
    alice, bob, conversation = await pair(clients(shared_server))
    seq = await conversation_seq(alice, conversation)
    await alice.disconnect()
    for first, expected in (
        (frames.Ping(ref="p"), ErrorCode.UNAUTHORIZED),
        (
            frames.Send(conversation=conversation, id=new_message_id(), body=seal(b"before hello")),
            ErrorCode.UNAUTHORIZED,
        ),
        ("not json", ErrorCode.BAD_REQUEST),
        ('{"type": "hello", "protocol": 1, "token": "' + "t" * 200 + '"}', ErrorCode.BAD_REQUEST),
    ):
        alice.others.clear()
        code, errors = await _ws_refused(alice, first)
        await alice.disconnect()
        assert code == 4401, first
        assert [e.code for e in errors] == [expected], first
    assert await conversation_seq(alice, conversation) == seq
    alice.others.clear()
    await alice.connect()
    await still_serving(alice, bob, conversation)


async def test_second_hello(shared_server: ServerProcess, clients: Clients) -> None:
    alice, bob, conversation = await pair(clients(shared_server))
    await alice.send_frame(frames.Hello(protocol=PROTOCOL_VERSION, token=bob.token))
    error = await next_error(alice, 0)
    assert error.code is ErrorCode.BAD_REQUEST
    # still alice's connection, still open
    await still_serving(alice, bob, conversation)
    assert [m.sender for m in bob.messages(conversation)] == [alice.user]


async def test_no_hello_in_time(tmp_path: Path, clients: Clients) -> None:
    env = {"TAUBE_LIMITS_HELLO_TIMEOUT_S": "0.5"}
    with ServerProcess(tmp_path / "s", env=env) as server:
        alice = await clients(server)("alice", connect=False)
        await alice.connect(hello=False)
        assert await alice.wait_closed() == 4401
        assert [e.code for e in alice.errors()] == [ErrorCode.UNAUTHORIZED]
        await alice.disconnect()
        alice.others.clear()
        await alice.connect()  # a prompt hello is fine


async def test_wrong_protocol_version(shared_server: ServerProcess, clients: Clients) -> None:
    alice = await clients(shared_server)("alice", connect=False)
    for version in (PROTOCOL_VERSION + 1, 0, -1, 2**40):
        alice.others.clear()
        code, errors = await _ws_refused(alice, frames.Hello(protocol=version, token=alice.token))
        await alice.disconnect()
        assert code == 4400, version
        assert [e.code for e in errors] == [ErrorCode.PROTOCOL_VERSION]
        assert str(PROTOCOL_VERSION) in errors[0].message
    alice.others.clear()
    await alice.connect()


# ----------------------------------------------------------------- origin


async def test_foreign_origin(
    shared_server: ServerProcess, clients: Clients, session: aiohttp.ClientSession
) -> None:
    alice = await clients(shared_server)("alice", connect=False)
    headers = {
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
    }
    port = shared_server.port
    for origin in (
        "https://evil.example",
        "null",
        f"http://127.0.0.1:{port}.evil.example",
        f"http://127.0.0.1:{port + 1}",
        f"ftp://127.0.0.1:{port}",
    ):
        async with session.get(
            shared_server.ws_url.replace("ws://", "http://", 1),
            headers={**headers, "Origin": origin},
        ) as resp:
            assert resp.status == 403, origin
            assert (await resp.json())["error"] == ErrorCode.ORIGIN_FORBIDDEN
        with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
            await alice.connect(origin=origin)
        assert caught.value.status == 403
    # the server's own origin, and no Origin (not a browser), are let in
    allowed: list[str | None] = [shared_server.url, f"https://127.0.0.1:{port}", None]
    for ok in allowed:
        alice.others.clear()
        await alice.connect(origin=ok)
        await alice.disconnect()


async def test_configured_origin(tmp_path: Path, clients: Clients) -> None:
    env = {"TAUBE_SERVER_ORIGINS": '["https://app.example"]'}
    with ServerProcess(tmp_path / "s", env=env) as server:
        alice = await clients(server)("alice", connect=False)
        await alice.connect(origin="https://app.example")
        await alice.disconnect()
        with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
            await alice.connect(origin="https://other.example")
        assert caught.value.status == 403


# ----------------------------------------------------------------- keys


async def test_one_time_key_claim_race(
    shared_server: ServerProcess, clients: Clients, raw_clients: MakeRaw
) -> None:
    make = clients(shared_server)
    alice = await raw_clients(shared_server, fresh_address("alice"))
    await alice.new_account(one_time_keys=30)
    count = await alice.request("GET", "/api/v1/keys/count")
    total = count["one_time_keys"]
    assert total == 30
    assert count["fallback_key"] is True
    claimers = [await make(f"claimer{i}", connect=False) for i in range(5)]
    claim = http.ClaimKeys(devices=[http.DeviceRef(user=alice.user, device=alice.device)])
    answers = await asyncio.gather(
        *(claimers[i % 5].request("POST", "/api/v1/keys/claim", claim) for i in range(total + 20))
    )
    keys = [OneTimeKey(**k) for a in answers for k in a["keys"]]
    assert all(len(a["keys"]) == 1 for a in answers)
    one_time = [k for k in keys if not k.fallback]
    fallback = [k for k in keys if k.fallback]
    assert len(one_time) == total
    assert len({k.key_id for k in one_time}) == total  # no key handed out twice
    assert len({k.key for k in one_time}) == total
    assert len(fallback) == 20
    assert {k.key_id for k in fallback} == {"fb"}
    count = await alice.request("GET", "/api/v1/keys/count")
    assert count == {"one_time_keys": 0, "fallback_key": True}
    assert db_rows(
        shared_server, "SELECT COUNT(*) FROM one_time_keys WHERE device = ?", (alice.device,)
    ) == [(0,)]


async def test_claim_names_a_device_once(shared_server: ServerProcess, clients: Clients) -> None:
    make = clients(shared_server)
    alice, bob = await make("alice", connect=False), await make("bob", connect=False)
    before = (await alice.request("GET", "/api/v1/keys/count"))["one_time_keys"]
    ref = http.DeviceRef(user=alice.user, device=alice.device)
    answer = await bob.request(
        "POST", "/api/v1/keys/claim", http.ClaimKeys(devices=[ref, ref, ref])
    )
    assert len(answer["keys"]) == 1
    # a device named with the wrong user is left out, and costs its owner nothing
    wrong = http.DeviceRef(user=bob.user, device=alice.device)
    answer = await bob.request("POST", "/api/v1/keys/claim", http.ClaimKeys(devices=[wrong]))
    assert answer["keys"] == []
    assert (await alice.request("GET", "/api/v1/keys/count"))["one_time_keys"] == before - 1


def _signed_otk(client: RawClient, key_id: str, key: str, *, fallback: bool = False) -> OneTimeKey:
    otk = OneTimeKey(
        user=client.user,
        device=client.device,
        key_id=key_id,
        key=key,
        fallback=fallback,
        signature="A" * 86,
    )
    return msgspec.structs.replace(
        otk, signature=client.sign(DOMAIN_ONE_TIME_KEY, otk, client.device_key)
    )


async def test_low_order_curve25519_keys(shared_server: ServerProcess, clients: Clients) -> None:
    make = clients(shared_server)
    alice = await make("alice", connect=False)
    before = await alice.request("GET", "/api/v1/keys/count")
    good = alice.one_time_key("good1")

    async def refused(body: http.UploadKeys) -> None:
        with pytest.raises(HttpError) as caught:
            await alice.request("POST", "/api/v1/keys/upload", body)
        assert caught.value.status == 400
        assert caught.value.code == ErrorCode.BAD_KEY

    for i, point in enumerate(LOW_ORDER_POINTS):
        key = b64encode(point)
        # as a one-time key, even next to a good one: the whole upload is refused
        await refused(http.UploadKeys(one_time_keys=[good, _signed_otk(alice, f"bad{i}", key)]))
        # as a fallback key
        await refused(
            http.UploadKeys(fallback_key=_signed_otk(alice, f"fb{i}", key, fallback=True))
        )
    # as the device's own Curve25519 key
    device_keys = DeviceKeys(
        user=alice.user,
        device=alice.device,
        curve25519=zero_key(),
        ed25519=b64encode(alice.device_key.public_key().public_bytes_raw()),
        signature="A" * 86,
    )
    device_keys = msgspec.structs.replace(
        device_keys, signature=alice.sign(DOMAIN_DEVICE, device_keys)
    )
    await refused(http.UploadKeys(device_keys=device_keys))
    # nothing of that was stored; the good key alone is accepted
    assert await alice.request("GET", "/api/v1/keys/count") == before
    assert db_rows(
        shared_server,
        "SELECT COUNT(*) FROM one_time_keys WHERE device = ? AND key_id NOT LIKE 'k%'",
        (alice.device,),
    ) == [(0,)]
    after = await alice.request(
        "POST", "/api/v1/keys/upload", http.UploadKeys(one_time_keys=[good])
    )
    assert after["one_time_keys"] == before["one_time_keys"] + 1


async def test_one_time_key_signed_by_another_key(
    shared_server: ServerProcess, clients: Clients
) -> None:
    alice = await clients(shared_server)("alice", connect=False)
    before = await alice.request("GET", "/api/v1/keys/count")
    otk = alice.one_time_key("forged")
    forged = msgspec.structs.replace(
        otk, signature=alice.sign(DOMAIN_ONE_TIME_KEY, otk, Ed25519PrivateKey.generate())
    )
    with pytest.raises(HttpError) as caught:
        await alice.request("POST", "/api/v1/keys/upload", http.UploadKeys(one_time_keys=[forged]))
    assert (caught.value.status, caught.value.code) == (400, ErrorCode.BAD_SIGNATURE)
    assert await alice.request("GET", "/api/v1/keys/count") == before


# ----------------------------------------------------------------- sends


async def test_replayed_send(shared_server: ServerProcess, clients: Clients) -> None:
    alice, bob, conversation = await pair(clients(shared_server))
    seq = await conversation_seq(alice, conversation)
    msg_id = new_message_id()
    frame = frames.Send(conversation=conversation, id=msg_id, body=seal(b"only once"))
    # the first send and two retries in flight at once
    for _ in range(3):
        await alice.send_frame(frame)
    await alice.wait_for(lambda: len([f for f in alice.others if isinstance(f, frames.Sent)]) == 3)
    sents = [f for f in alice.others if isinstance(f, frames.Sent)]
    assert {(s.id, s.seq, s.ts) for s in sents} == {(msg_id, seq + 1, sents[0].ts)}
    # a retry after a reconnect, once bob has it
    await bob.wait_for(lambda: msg_id in [m.id for m in bob.messages(conversation)])
    await alice.disconnect()
    alice.others.clear()
    await alice.connect()
    await alice.send_frame(frame)
    assert (await alice.wait_sent(msg_id)).seq == seq + 1
    assert alice.errors() == []
    await still_serving(alice, bob, conversation)
    assert [m.id for m in bob.messages(conversation)].count(msg_id) == 1
    assert bob.texts(conversation)[0] == b"only once"
    assert bob.duplicates == 0
    assert await conversation_seq(alice, conversation) == seq + 2
    assert db_rows(
        shared_server,
        "SELECT seq FROM sent WHERE device = ? AND msg_id = ?",
        (alice.device, msg_id),
    ) == [(seq + 1,)]


async def test_message_id_reused_for_another_conversation(
    shared_server: ServerProcess, clients: Clients
) -> None:
    make = clients(shared_server)
    alice, _bob, conversation = await pair(make)
    carol = await make("carol")
    other = await alice.direct(carol.address)
    msg_id = await alice.send(conversation, b"first use")
    other_seq = await conversation_seq(alice, other)
    await alice.send_frame(frames.Send(conversation=other, id=msg_id, body=seal(b"second use")))
    error = await next_error(alice, 0)
    assert (error.code, error.ref) == (ErrorCode.CONFLICT, msg_id)
    assert await conversation_seq(alice, other) == other_seq
    await still_serving(alice, carol, other)


async def test_send_to_foreign_conversation_is_not_found(
    shared_server: ServerProcess, clients: Clients
) -> None:
    make = clients(shared_server)
    alice, bob, conversation = await pair(make)
    mallory = await make("mallory")
    seq = await conversation_seq(alice, conversation)
    foreign, missing = new_message_id(), new_message_id()
    await mallory.send(conversation, b"let me in", msg_id=foreign, wait=False)
    await mallory.send(new_conversation_id(), b"anyone there?", msg_id=missing, wait=False)
    await mallory.wait_for(lambda: len(mallory.errors()) == 2)
    by_ref = {e.ref: e for e in mallory.errors()}
    assert by_ref[foreign].code is ErrorCode.NOT_FOUND
    # indistinguishable from a conversation that does not exist
    assert (by_ref[foreign].code, by_ref[foreign].message) == (
        by_ref[missing].code,
        by_ref[missing].message,
    )
    # the same over HTTP
    answers = []
    for target in (conversation, new_conversation_id()):
        for path in (f"/api/v1/conversations/{target}", f"/api/v1/conversations/{target}/state"):
            with pytest.raises(HttpError) as caught:
                await mallory.request("GET", path)
            answers.append((caught.value.status, caught.value.body))
    assert answers[0] == answers[2]
    assert answers[1] == answers[3]
    assert answers[0][0] == 404
    assert answers[0][1]["error"] == ErrorCode.NOT_FOUND
    # typing into it reaches nobody
    await mallory.send_frame(frames.Typing(conversation=conversation, active=True))
    assert await conversation_seq(alice, conversation) == seq
    assert db_rows(
        shared_server, "SELECT COUNT(*) FROM sent WHERE msg_id IN (?, ?)", (foreign, missing)
    ) == [(0,)]
    await still_serving(alice, bob, conversation)
    assert not any(isinstance(f, frames.TypingEvent) for f in bob.others)


async def test_state_event_from_non_member_is_not_found(
    shared_server: ServerProcess, clients: Clients
) -> None:
    make = clients(shared_server)
    alice, _bob, conversation = await pair(make)
    mallory = await make("mallory", connect=False)
    info = await alice.request("GET", f"/api/v1/conversations/{conversation}")
    answers = []
    for target in (conversation, new_conversation_id()):
        event = mallory.event(
            target, info["depth"] + 1, info["head"], Member(target=mallory.user, membership="join")
        )
        with pytest.raises(HttpError) as caught:
            await mallory.request("POST", f"/api/v1/conversations/{target}/state", event)
        answers.append((caught.value.status, caught.value.body))
    assert answers[0] == answers[1]
    assert answers[0][0] == 404
    assert await conversation_seq(alice, conversation) == info["seq"]


# ----------------------------------------------------------------- state signatures


async def test_state_events_with_bad_signatures(
    shared_server: ServerProcess, clients: Clients
) -> None:
    make = clients(shared_server)
    alice, bob, conversation = await pair(make)
    carol = await make("carol", connect=False)
    stranger = Ed25519PrivateKey.generate()

    def refused_with(expected: ErrorCode) -> Callable[[HttpError], None]:
        def check(exc: HttpError) -> None:
            assert (exc.status, exc.code) == (400, expected), exc.body

        return check

    # creating a conversation: signed by another key, tampered after signing,
    # signature of the right shape but garbage, signed for another purpose
    chain = alice.chain(Kind.GROUP, [carol.address])
    create = chain[0]
    forged_create = msgspec.structs.replace(
        create, signature=b64encode(stranger.sign(create.signed_bytes()))
    )
    tampered_join = msgspec.structs.replace(
        chain[1], content=Member(target=carol.user, membership="join", role=Role.ADMIN)
    )
    garbage = msgspec.structs.replace(chain[1], signature="B" * 86)
    wrong_domain = msgspec.structs.replace(create, signature=alice.sign(DOMAIN_DEVICE, create))
    for events in (
        [forged_create, chain[1]],
        [create, tampered_join],
        [create, garbage],
        [wrong_domain],
    ):
        with pytest.raises(HttpError) as caught:
            await alice.request(
                "POST", "/api/v1/conversations", http.CreateConversation(events=events)
            )
        refused_with(ErrorCode.BAD_SIGNATURE)(caught.value)
    with pytest.raises(HttpError) as caught:
        await alice.request("GET", f"/api/v1/conversations/{create.conversation}")
    assert caught.value.status == 404
    assert db_rows(
        shared_server,
        "SELECT COUNT(*) FROM state_events WHERE conversation = ?",
        (create.conversation,),
    ) == [(0,)]

    # appending to an existing conversation
    info = await alice.request("GET", f"/api/v1/conversations/{conversation}")
    event = alice.event(conversation, info["depth"] + 1, info["head"], Timer(seconds=60))
    bad_events = [
        msgspec.structs.replace(event, signature=b64encode(stranger.sign(event.signed_bytes()))),
        msgspec.structs.replace(event, content=Timer(seconds=1)),  # changed after signing
        msgspec.structs.replace(event, ts=event.ts + 1),
    ]
    for bad in bad_events:
        with pytest.raises(HttpError) as caught:
            await alice.request("POST", f"/api/v1/conversations/{conversation}/state", bad)
        refused_with(ErrorCode.BAD_SIGNATURE)(caught.value)
    # an event of alice's signed with bob's identity key
    impostor = msgspec.structs.replace(
        event, signature=alice.sign(DOMAIN_STATE, event, bob.identity)
    )
    with pytest.raises(HttpError) as caught:
        await alice.request("POST", f"/api/v1/conversations/{conversation}/state", impostor)
    refused_with(ErrorCode.BAD_SIGNATURE)(caught.value)

    after = await alice.request("GET", f"/api/v1/conversations/{conversation}")
    assert (after["seq"], after["depth"], after["head"]) == (
        info["seq"],
        info["depth"],
        info["head"],
    )
    assert after.get("timer_seconds", 0) == 0
    # the correctly signed event is accepted
    assert await alice.append(conversation, Timer(seconds=60)) == info["seq"] + 1
    await still_serving(alice, bob, conversation)


async def test_create_event_without_create_content(
    shared_server: ServerProcess, clients: Clients
) -> None:
    """Sanity: a well-signed chain that breaks the rules is refused too, and stores nothing."""
    alice = await clients(shared_server)("alice", connect=False)
    conversation = new_conversation_id()
    event = alice.event(conversation, 0, "", Timer(seconds=5))
    with pytest.raises(HttpError) as caught:
        await alice.request(
            "POST", "/api/v1/conversations", http.CreateConversation(events=[event])
        )
    assert (caught.value.status, caught.value.code) == (403, ErrorCode.FORBIDDEN)
    assert db_rows(
        shared_server, "SELECT COUNT(*) FROM conversations WHERE conversation = ?", (conversation,)
    ) == [(0,)]
    good = alice.event(conversation, 0, "", Create(kind=Kind.GROUP))
    await alice.request("POST", "/api/v1/conversations", http.CreateConversation(events=[good]))


# ----------------------------------------------------------------- rate limits


async def test_login_flood(
    tmp_path: Path, raw_clients: MakeRaw, session: aiohttp.ClientSession
) -> None:
    env = {"TAUBE_LIMITS_AUTH_PER_ACCOUNT_PER_MINUTE": "5"}
    with ServerProcess(tmp_path / "s", env=env) as server:
        alice = await raw_clients(server, fresh_address("alice"))
        await alice.register()
        wrong = encode(http.Credentials(address=alice.address, password="wrong password"))
        statuses = []
        limited: dict[str, Any] = {}
        for _ in range(12):
            async with session.post(server.url + "/api/v1/sessions", data=wrong) as resp:
                statuses.append(resp.status)
                if resp.status == 429:
                    limited = {
                        "retry_after": resp.headers.get("Retry-After"),
                        "body": await resp.json(),
                    }
                else:
                    assert (await resp.json())["error"] == ErrorCode.INVALID_CREDENTIALS
        assert statuses[:5] == [401] * 5
        assert 429 in statuses
        assert limited["body"]["error"] == ErrorCode.RATE_LIMITED
        assert int(limited["retry_after"]) >= 1
        assert limited["body"]["retry_after"] > 0
        # while limited, even the right password is turned away
        with pytest.raises(HttpError) as caught:
            await alice.login()
        assert caught.value.status == 429
        # removing a device (which asks for the password) counts against it too
        with pytest.raises(HttpError) as caught:
            await alice.request(
                "DELETE",
                f"/api/v1/devices/{alice.device}",
                http.RemoveDevice(password="wrong password"),
            )
        assert (caught.value.status, caught.value.code) == (429, ErrorCode.RATE_LIMITED)
        # the limit is per account: another account logs in fine
        bob = await raw_clients(server, fresh_address("bob"))
        await bob.register()
        await bob.login()
        # no device was created by any of the refused attempts
        assert db_rows(server, "SELECT COUNT(*) FROM devices WHERE user_id = ?", (alice.user,)) == [
            (1,)
        ]


async def test_websocket_frame_rate_limit(tmp_path: Path, clients: Clients) -> None:
    env = {"TAUBE_LIMITS_WS_RATE": "4", "TAUBE_LIMITS_WS_BURST": "4"}
    with ServerProcess(tmp_path / "s", env=env) as server:
        alice, bob, conversation = await pair(clients(server))
        await asyncio.sleep(1.2)  # let the bucket fill after the acks of the setup
        for i in range(40):
            await alice.send_frame(frames.Ping(ref=str(i)))

        def answered() -> int:
            return len([f for f in alice.others if isinstance(f, frames.Pong)]) + len(
                [e for e in alice.errors() if e.code is ErrorCode.RATE_LIMITED]
            )

        await alice.wait_for(lambda: answered() >= 40)
        limited = [e for e in alice.errors() if e.code is ErrorCode.RATE_LIMITED]
        assert limited
        assert all(e.retry_after is not None and e.retry_after > 0 for e in limited)
        assert all(e.code is ErrorCode.RATE_LIMITED for e in alice.errors())
        # the connection survives; once the bucket refills, frames go through again
        assert alice.is_open
        await asyncio.sleep(1.2)
        await still_serving(alice, bob, conversation)
        assert alice.is_open
