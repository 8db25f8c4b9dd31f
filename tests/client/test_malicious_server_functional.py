"""The SDK against a malicious server (DESIGN §4-6): real clients, real crypto.

Clients talk to ``taube.testing.evilproxy.EvilProxy``, a proxy in front of a
real server that lies for it: it adds devices and swaps identity keys in the
key directory, drops, repeats, reorders, replaces and injects frames. Every
test also checks the honest path (a real message arrives), so that none
passes by nothing working at all.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TypeVar

import msgspec
import pytest

from taube.client import (
    Client,
    Event,
    KeyChanged,
    MissingMessages,
    Received,
    SendingBlocked,
    Undecryptable,
    waiting,
)
from taube.crypto import (
    TYPE_ROOM_KEY,
    DeviceAccount,
    IdentityKeyPair,
    MessagePayload,
    OutboundGroup,
    ToDevicePayload,
    encode_payload,
)
from taube.proto import frames, http
from taube.proto.codec import decode
from taube.proto.ids import ConversationId, DeviceId, MessageId, UserId, new_device_id
from taube.proto.ids import new_message_id as new_id
from taube.testing import ServerProcess
from taube.testing.datadir import eventually
from taube.testing.evilproxy import Connection, EvilProxy, Hold

PASSWORD = "correct horse battery staple"
KEYS_QUERY = "/api/v1/keys/query"
E = TypeVar("E")
_names = itertools.count()


class Net:
    """Real SDK clients, each talking to the server directly or through a proxy."""

    def __init__(self, server: ServerProcess, root: Path) -> None:
        self.server = server
        self.root = root
        self.clients: list[Client] = []
        self.proxies: list[EvilProxy] = []
        self._events: dict[int, list[Event]] = {}

    async def proxy(self) -> EvilProxy:
        proxy = EvilProxy(self.server.url)
        await proxy.start()
        self.proxies.append(proxy)
        return proxy

    async def client(self, name: str, *, via: EvilProxy | None = None) -> Client:
        client = Client(self.root / f"{name}-{next(_names)}")
        await client.__aenter__()
        self.clients.append(client)
        address = f"{name}{next(_names)}x{os.getpid()}@example.org"
        await client.register(via.url if via else self.server.url, address, PASSWORD)
        await client.sync()
        return client

    async def reopen(self, client: Client, *, connect: bool = True) -> Client:
        """Close ``client`` and open its profile again (a restart of the app)."""
        await client.__aexit__(None, None, None)
        again = Client(client.profile_dir)
        await again.__aenter__()
        self.clients.append(again)
        if connect:
            await again.sync()
        return again

    def events(self, client: Client, kind: type[E]) -> list[E]:
        """Every event of ``kind`` the client emitted so far (kept across calls)."""
        seen = self._events.setdefault(id(client), [])
        seen.extend(client.pending_events())
        return [e for e in seen if isinstance(e, kind)]

    async def close(self) -> None:
        for client in self.clients:
            await client.__aexit__(None, None, None)
        for proxy in self.proxies:
            await proxy.close()


@pytest.fixture
async def net(shared_server: ServerProcess, tmp_path: Path) -> AsyncIterator[Net]:
    world = Net(shared_server, tmp_path)
    yield world
    await world.close()


# ---------------------------------------------------------------- helpers


def texts(client: Client, conversation: ConversationId) -> list[str]:
    return [m.text for m in client.history(conversation)]


async def wait_texts(client: Client, conversation: ConversationId, count: int) -> list[str]:
    await eventually(
        lambda: len(client.history(conversation)) >= count,
        15.0,
        what=f"{count} messages at {client.user}",
    )
    return texts(client, conversation)


def is_msg(frame: frames.ServerFrame, conversation: str | None = None) -> bool:
    """A conversation message with a body (not the sender's own echo)."""
    return (
        isinstance(frame, frames.Message)
        and frame.body is not None
        and conversation in (None, frame.conversation)
    )


def users_keys(
    change: Callable[[http.UserKeys], http.UserKeys], user: UserId
) -> Callable[[http.KeysResponse], http.KeysResponse]:
    """A ``/keys/query`` rewrite that changes ``user``'s entry."""

    def rewrite(found: http.KeysResponse) -> http.KeysResponse:
        return http.KeysResponse(users=[change(e) if e.user == user else e for e in found.users])

    return rewrite


def forged(entry: http.UserKeys, impostor: IdentityKeyPair) -> http.UserKeys:
    """``entry`` under the impostor's identity key, every device re-certified by it."""
    return http.UserKeys(
        user=entry.user,
        identity=impostor.identity_key(UserId(entry.user)),
        devices=[impostor.certify(d) for d in entry.devices],
    )


def megolm_from_server(
    conversation: ConversationId, sender: Client, msg_id: MessageId, text: str
) -> tuple[bytes, OutboundGroup]:
    """A well-formed Megolm message claiming to be ``sender``'s, encrypted by
    the server with a session of its own."""
    group = OutboundGroup.create(conversation, sender.clock())
    payload = MessagePayload(
        sender=sender.user,
        sender_device=sender.device,
        conversation=conversation,
        message_id=msg_id,
        type="text",
        content={"body": text},
    )
    return group.encrypt_payload(payload, now_ms=sender.clock()), group


def fake_message(
    conversation: ConversationId,
    sender: UserId,
    device: DeviceId,
    body: bytes,
    msg_id: MessageId | None = None,
    seq: int = 10**6,
) -> frames.Message:
    return frames.Message(
        conversation=conversation,
        seq=seq,
        id=msg_id or new_id(),
        sender=sender,
        sender_device=device,
        ts=0,
        body=body,
    )


def room_key_devices(proxy: EvilProxy, device: str) -> set[str]:
    """The devices that ``device`` sent to-device messages (room keys) to."""
    return {m.device for send in proxy.sent_by(device, frames.ToDeviceSend) for m in send.messages}


def received_ids(net: Net, *clients: Client) -> list[MessageId]:
    return [e.message.id for c in clients for e in net.events(c, Received)]


# ---------------------------------------------------------------- 1. devices


async def test_device_without_valid_certificate_gets_no_keys(net: Net) -> None:
    """A device the server adds to bob's list gets no room key, alice is warned,
    and messages claiming to come from it are refused."""
    proxy = await net.proxy()
    alice, bob = await net.client("alice", via=proxy), await net.client("bob")
    stranger, evil = IdentityKeyPair.generate(), DeviceAccount.create()
    signed_by_stranger = new_device_id()
    swapped_curve = new_device_id()

    def add_devices(entry: http.UserKeys) -> http.UserKeys:
        [real] = entry.devices
        return http.UserKeys(
            user=entry.user,
            identity=entry.identity,
            devices=[
                real,
                stranger.certify(evil.device_keys(UserId(entry.user), signed_by_stranger)),
                # bob's real certificate (signature and all) with the server's Curve25519 key
                msgspec.structs.replace(real, device=swapped_curve, curve25519=evil.curve25519),
            ],
        )

    proxy.rewrite(KEYS_QUERY, http.KeysResponse, users_keys(add_devices, bob.user))
    chat = await alice.start_chat(bob.user)
    await alice.send_text(chat, "for bob's real device only")
    await alice.flush()
    assert await wait_texts(bob, chat, 1) == ["for bob's real device only"]

    bob_curve = bob.keys.olm.account.curve25519
    assert alice.keys.outbound[chat].shared_with == {(bob.user, bob.device, bob_curve)}
    assert room_key_devices(proxy, alice.device) == {bob.device}
    claimed = [
        decode(x.request_body, http.ClaimKeys)
        for x in proxy.exchanges
        if x.path == "/api/v1/keys/claim"
    ]
    assert {d.device for c in claimed for d in c.devices} == {bob.device}
    await eventually(lambda: len(net.events(alice, KeyChanged)) >= 2, what="warnings")
    warned = net.events(alice, KeyChanged)
    assert {e.user for e in warned} == {bob.user}
    assert all("certificate" in e.reason and not e.verified for e in warned)
    assert {
        d for d in (signed_by_stranger, swapped_curve) if any(d in e.reason for e in warned)
    } == {signed_by_stranger, swapped_curve}

    # a message "from" the uncertified device (its Megolm key can never arrive)
    body, _ = megolm_from_server(chat, bob, new_id(), "from the server's device")
    forged_msg = fake_message(chat, bob.user, DeviceId(signed_by_stranger), body)
    await proxy.inject(forged_msg, device=alice.device)
    await eventually(lambda: any(e.id == forged_msg.id for e in net.events(alice, Undecryptable)))
    [refused] = [e for e in net.events(alice, Undecryptable) if e.id == forged_msg.id]
    assert "certificate" in refused.reason
    await bob.send_text(chat, "reply")
    await bob.flush()
    assert await wait_texts(alice, chat, 2) == ["for bob's real device only", "reply"]


async def test_device_of_another_user_is_not_accepted(net: Net) -> None:
    """Bob's real, validly signed identity key and devices served as carol's:
    alice neither pins them for carol nor gives bob's device carol's keys; a
    device certified in another user's name is nobody's."""
    proxy = await net.proxy()
    alice = await net.client("alice", via=proxy)
    bob, carol = await net.client("bob"), await net.client("carol")
    assert alice.api is not None
    query = http.QueryKeys(users=[bob.user])
    [bobs] = (await alice.api.post("/keys/query", query, http.KeysResponse)).users
    proxy.rewrite(
        KEYS_QUERY,
        http.KeysResponse,
        users_keys(
            lambda e: http.UserKeys(user=e.user, identity=bobs.identity, devices=bobs.devices),
            carol.user,
        ),
    )
    chat = await alice.start_chat(carol.user)
    await alice.send_text(chat, "for carol")
    await alice.flush()
    assert alice.keys.pinned(carol.user) is None
    assert alice.keys.outbound[chat].shared_with == frozenset()
    assert bob.device not in room_key_devices(proxy, alice.device)
    await eventually(lambda: any(e.user == carol.user for e in net.events(alice, KeyChanged)))
    assert {e.reason for e in net.events(alice, KeyChanged)} == {"identity key of another user"}

    # a device that bob's identity key certified in carol's name is not carol's, nor bob's
    in_carols_name = bob.keys.identity.certify(
        DeviceAccount.create().device_keys(carol.user, new_device_id())
    )
    proxy.rewrite(
        KEYS_QUERY,
        http.KeysResponse,
        users_keys(
            lambda e: http.UserKeys(
                user=e.user, identity=e.identity, devices=[*e.devices, in_carols_name]
            ),
            bob.user,
        ),
    )
    await alice.start_chat(bob.user)
    assert [d.device for d in await alice.keys.devices_of([bob.user])] == [bob.device]
    assert any(
        e.user == bob.user and in_carols_name.device in e.reason
        for e in net.events(alice, KeyChanged)
    )


# ---------------------------------------------------------------- 2. identity keys


@pytest.mark.parametrize("verified", [True, False], ids=["verified", "unverified"])
async def test_swapped_identity_key(net: Net, verified: bool) -> None:
    """The server serves another identity key for bob (with devices it
    certified): a key change is shown; for a verified bob sending stops until
    alice verifies again, else sending goes on after the warning."""
    proxy = await net.proxy()
    alice, bob = await net.client("alice", via=proxy), await net.client("bob")
    chat = await alice.start_chat(bob.user)
    await alice.send_text(chat, "before")
    await alice.flush()
    await wait_texts(bob, chat, 1)
    if verified:
        await alice.verify(bob.user)
    number = await alice.safety_number(bob.user)

    impostor = IdentityKeyPair.generate()
    proxy.rewrite(
        KEYS_QUERY, http.KeysResponse, users_keys(lambda e: forged(e, impostor), bob.user)
    )
    await proxy.inject(frames.KeysChanged(seq=0, user=bob.user), device=alice.device)
    await eventually(lambda: bool(net.events(alice, KeyChanged)), what="key change shown")
    [change] = net.events(alice, KeyChanged)
    assert (change.user, change.verified) == (bob.user, verified)
    assert "identity key changed" in change.reason
    assert await alice.safety_number(bob.user) != number

    if verified:
        with pytest.raises(SendingBlocked) as blocked:
            await alice.send_text(chat, "must not go out")
        assert blocked.value.users == [bob.user]
        assert texts(alice, chat) == ["before"]
        await alice.verify(bob.user)  # compared the new safety number
    await alice.send_text(chat, "after")
    await alice.flush()
    assert await wait_texts(bob, chat, 2) == ["before", "after"]


async def test_queued_message_waits_for_reverification(net: Net) -> None:
    """A message written before the change is noticed (in the outbox of a
    restarted app) is not encrypted for the new key's devices either."""
    proxy = await net.proxy()
    alice, bob = await net.client("alice", via=proxy), await net.client("bob")
    chat = await alice.start_chat(bob.user)
    await alice.send_text(chat, "before")
    await alice.flush()
    await wait_texts(bob, chat, 1)
    await alice.verify(bob.user)

    impostor = IdentityKeyPair.generate()
    proxy.rewrite(
        KEYS_QUERY, http.KeysResponse, users_keys(lambda e: forged(e, impostor), bob.user)
    )
    alice = await net.reopen(alice, connect=False)
    queued = await alice.send_text(chat, "queued")  # nothing known has changed yet
    await alice.connect()  # the outbox looks bob's devices up and finds the change
    await eventually(lambda: bool(net.events(alice, KeyChanged)), what="key change shown")
    assert [(e.user, e.verified) for e in net.events(alice, KeyChanged)] == [(bob.user, True)]
    with pytest.raises(TimeoutError):
        await alice.flush(timeout=1.0)  # the outbox is woken again and again: it waits
    assert queued not in {s.id for s in proxy.sent_by(alice.device, frames.Send)}
    assert alice.history(chat)[-1].status == "pending"

    await alice.verify(bob.user)
    await alice.flush()
    assert await wait_texts(bob, chat, 2) == ["before", "queued"]


# ---------------------------------------------------------------- 3. delivery


async def test_replayed_messages_are_shown_once(net: Net) -> None:
    """Every message delivered twice, again after a reconnect, again after a
    restart, and re-posted under a new id: each is shown once."""
    proxy = await net.proxy()
    alice, bob = await net.client("alice"), await net.client("bob", via=proxy)
    chat = await alice.start_chat(bob.user)
    proxy.on_server_frame(lambda _conn, f: [f, f] if is_msg(f, chat) else None)
    for i in range(3):
        await alice.send_text(chat, f"m{i}")
    await alice.flush()
    assert await wait_texts(bob, chat, 3) == ["m0", "m1", "m2"]
    old = [f for f in proxy.sent_to(bob.device, frames.Message) if is_msg(f, chat)]
    assert len(old) == 3

    first = (await proxy.connection(bob.device)).number
    await proxy.disconnect(bob.device)
    conn = await proxy.connection(bob.device)
    assert conn.number > first
    for frame in old:
        await conn.send(frame)
    await alice.send_text(chat, "m3")  # frames are handled in order: a barrier
    await alice.flush()
    assert await wait_texts(bob, chat, 4) == ["m0", "m1", "m2", "m3"]

    bob_before = bob
    bob = await net.reopen(bob)
    for frame in old:
        await proxy.inject(frame, device=bob.device)
        await proxy.inject(
            msgspec.structs.replace(frame, id=new_id(), seq=frame.seq + 100), device=bob.device
        )
    await alice.send_text(chat, "m4")
    await alice.flush()
    assert await wait_texts(bob, chat, 5) == ["m0", "m1", "m2", "m3", "m4"]
    ids = received_ids(net, bob_before, bob)
    assert len(ids) == len(set(ids)) == 5
    seqs = [m.seq or 0 for m in bob.history(chat)]
    assert seqs == sorted(set(seqs))
    # the copies under a new id are Megolm replays: dropped without a word
    assert net.events(bob, Undecryptable) == []
    assert net.events(bob, MissingMessages) == []


async def test_reordered_and_withheld_messages(net: Net) -> None:
    """History follows the server's order; a withheld message leaves a
    "missing message" marker, once; a late one fills its place."""
    proxy = await net.proxy()
    alice, bob = await net.client("alice"), await net.client("bob", via=proxy)
    chat = await alice.start_chat(bob.user)
    await alice.send_text(chat, "m0")
    await alice.flush()
    await wait_texts(bob, chat, 1)
    await bob.disconnect()  # the backlog comes through the hooks on reconnect

    ids = [await alice.send_text(chat, f"m{i}") for i in range(1, 8)]
    await alice.flush()
    late: list[frames.ServerFrame] = []

    def misbehave(_conn: Connection, frame: frames.ServerFrame) -> list[frames.ServerFrame] | None:
        if not isinstance(frame, frames.Message):
            return None
        if frame.id == ids[1]:  # m2: held back until m3 went out
            late.append(frame)
            return []
        if frame.id == ids[2]:
            return [frame, *late]
        if frame.id == ids[4]:  # m5: withheld for good
            return []
        return None

    proxy.on_server_frame(misbehave)
    await bob.sync()
    await wait_texts(bob, chat, 7)
    assert texts(bob, chat) == ["m0", "m1", "m2", "m3", "m4", "m6", "m7"]
    seqs = [m.seq or 0 for m in bob.history(chat)]
    assert seqs == sorted(seqs)
    arrived = [e.message.text for e in net.events(bob, Received)]
    assert arrived == ["m0", "m1", "m3", "m2", "m4", "m6", "m7"]
    # m2 was missing until it came late, m5 for good; each gap is told once
    assert [(e.sender, e.count, e.before) for e in net.events(bob, MissingMessages)] == [
        (alice.user, 1, ids[2]),
        (alice.user, 1, ids[5]),
    ]
    assert {e.conversation for e in net.events(bob, MissingMessages)} == {chat}

    await alice.send_text(chat, "m8")
    await alice.flush()
    await wait_texts(bob, chat, 8)
    bob = await net.reopen(bob)  # the seen indexes survive a restart
    await alice.send_text(chat, "m9")
    await alice.flush()
    assert (await wait_texts(bob, chat, 9))[-2:] == ["m8", "m9"]
    assert len(net.events(bob, MissingMessages)) == 0
    assert net.events(bob, Undecryptable) == []


async def test_messages_waiting_for_their_key_are_not_missing(net: Net) -> None:
    """Messages that arrive before their room key wait; they are shown when
    the key comes, and are not reported as missing."""
    proxy = await net.proxy()
    alice, bob = await net.client("alice"), await net.client("bob", via=proxy)
    group = await alice.create_group([bob.user])
    key = Hold(proxy, lambda f: isinstance(f, frames.ToDevice), device=bob.device)
    for i in range(3):
        await alice.send_text(group, f"g{i}")
    await alice.flush()
    await eventually(
        lambda: (
            len(key.held) == 1
            and len([f for f in proxy.sent_to(bob.device, frames.Message) if is_msg(f, group)]) == 3
        ),
        what="messages and key at the proxy",
    )
    await alice.send_text(group, "g3")  # a barrier: once it is in, the rest was seen too
    await alice.flush()
    await eventually(
        lambda: (
            bob.profile is not None
            and bob.profile.execute(
                "SELECT count(*) FROM undecrypted WHERE conversation = ?", group
            ).fetchone()[0]
            == 4
        )
    )
    assert bob.history(group) == []
    assert await key.release() == 1
    assert await wait_texts(bob, group, 4) == ["g0", "g1", "g2", "g3"]
    assert net.events(bob, MissingMessages) == []
    assert net.events(bob, Undecryptable) == []


async def _held_group(net: Net, count: int) -> tuple[Client, Client, ConversationId, Hold]:
    """alice sends ``count`` messages into a group with bob while a server
    withholds the room key from bob: they wait at bob's for their key."""
    proxy = await net.proxy()
    alice, bob = await net.client("alice"), await net.client("bob", via=proxy)
    group = await alice.create_group([bob.user])
    key = Hold(proxy, lambda f: isinstance(f, frames.ToDevice), device=bob.device)
    for i in range(count):
        await alice.send_text(group, f"w{i}")
    await alice.flush()
    await eventually(
        lambda: (
            len(key.held) == 1
            and len([f for f in proxy.sent_to(bob.device, frames.Message) if is_msg(f, group)])
            == count
        ),
        what="messages and key at the proxy",
    )
    return alice, bob, group, key


def _waiting(client: Client) -> int:
    assert client.profile is not None
    return int(client.profile.execute("SELECT count(*) FROM undecrypted").fetchone()[0])


async def test_a_server_cannot_make_endless_messages_wait(
    net: Net, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Messages that cannot be decrypted yet wait, but only so many per
    sending device: beyond that one is refused at once, with a warning."""
    monkeypatch.setattr(waiting, "PER_DEVICE", 3)
    alice, bob, group, key = await _held_group(net, 5)
    await eventually(lambda: len(net.events(bob, Undecryptable)) == 2, what="two refused at bob's")
    assert _waiting(bob) == 3
    assert {e.reason for e in net.events(bob, Undecryptable)} == {waiting.TOO_MANY}
    assert await key.release() == 1
    # the three that waited are shown once, the two refused are not shown
    assert await wait_texts(bob, group, 3) == ["w0", "w1", "w2"]
    await alice.send_text(group, "after")
    assert (await wait_texts(bob, group, 4))[-1] == "after"
    assert _waiting(bob) == 0
    assert len(net.events(bob, Undecryptable)) == 2


async def test_a_key_that_never_comes_ends_the_wait(
    net: Net, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A message waits at most ``KEEP_MS``; then it is dropped and said so."""
    _, bob, group, key = await _held_group(net, 2)
    await eventually(lambda: _waiting(bob) == 2, what="two waiting at bob's")
    monkeypatch.setattr(waiting, "KEEP_MS", -1)  # everything waited too long
    assert await key.release() == 1
    await eventually(lambda: len(net.events(bob, Undecryptable)) == 2, what="both said to be lost")
    assert {e.reason for e in net.events(bob, Undecryptable)} == {waiting.NEVER_CAME}
    assert _waiting(bob) == 0
    assert bob.history(group) == []


async def test_disappearing_timer_holds_without_the_servers_expiry(net: Net) -> None:
    """The server strips ``expires_ms``: the signed timer still sets the expiry."""
    proxy = await net.proxy()
    alice, bob = await net.client("alice"), await net.client("bob", via=proxy)
    chat = await alice.start_chat(bob.user)
    await alice.set_timer(chat, 60)
    proxy.on_server_frame(
        lambda _conn, f: [msgspec.structs.replace(f, expires_ms=None)] if is_msg(f) else None
    )
    await alice.send_text(chat, "gone in a minute")
    await alice.flush()
    await wait_texts(bob, chat, 1)
    assert [f.expires_ms for f in proxy.sent_to(bob.device, frames.Message)] != [None]
    [message] = bob.history(chat)
    assert message.expires_ms is not None
    assert message.expires_ms <= bob.clock() + 60_000


# ---------------------------------------------------------------- 4. plaintext


async def test_plaintext_is_refused(net: Net) -> None:
    """A plaintext body in an encrypted conversation, and a to-device message
    that is not Olm-encrypted (a room key from the server), are refused."""
    proxy = await net.proxy()
    alice, bob = await net.client("alice"), await net.client("bob", via=proxy)
    chat = await alice.start_chat(bob.user)
    await alice.send_text(chat, "m0")
    await alice.flush()
    await wait_texts(bob, chat, 1)

    plain_id = new_id()
    plaintext = encode_payload(
        MessagePayload(
            sender=alice.user,
            sender_device=alice.device,
            conversation=chat,
            message_id=plain_id,
            type="text",
            content={"body": "plaintext from the server"},
        )
    )
    await proxy.inject(
        fake_message(chat, alice.user, alice.device, plaintext, plain_id), device=bob.device
    )

    server_id = new_id()
    body, group = megolm_from_server(chat, alice, server_id, "the server's own session")
    bob_keys = bob.keys.olm.account
    unencrypted_key = encode_payload(
        ToDevicePayload(
            sender=alice.user,
            sender_device=alice.device,
            sender_key=alice.keys.olm.account.ed25519,
            recipient=bob.user,
            recipient_device=bob.device,
            recipient_key=bob_keys.curve25519,
            type=TYPE_ROOM_KEY,
            content=msgspec.to_builtins(group.room_key()),
        )
    )
    garbled_olm = msgspec.json.encode({"type": 0, "body": "AAAA" * 40})
    for to_device in (unencrypted_key, garbled_olm):
        await proxy.inject(
            frames.ToDevice(
                seq=0, sender=alice.user, sender_device=alice.device, ts=0, body=to_device
            ),
            device=bob.device,
        )
    await proxy.inject(
        fake_message(chat, alice.user, alice.device, body, server_id), device=bob.device
    )
    await alice.send_text(chat, "m1")  # frames are handled in order: a barrier
    await alice.flush()
    assert await wait_texts(bob, chat, 2) == ["m0", "m1"]

    [refused] = net.events(bob, Undecryptable)
    assert (refused.id, refused.sender) == (plain_id, alice.user)
    assert "Megolm" in refused.reason
    assert group.session_id not in {s.session_id for s in bob.keys.inbound.sessions()}
    assert [e.message.text for e in net.events(bob, Received)] == ["m0", "m1"]
    assert bob.search("server") == []


# ---------------------------------------------------------------- 5. Megolm sessions


async def test_message_in_a_session_never_shared_is_not_shown(net: Net) -> None:
    """The server replaces alice's message by its own Megolm encryption of a
    message in her name: it is not shown, and alice's is missing."""
    proxy = await net.proxy()
    alice, bob = await net.client("alice"), await net.client("bob", via=proxy)
    chat = await alice.start_chat(bob.user)

    def replace(_conn: Connection, frame: frames.ServerFrame) -> list[frames.ServerFrame] | None:
        if is_msg(frame, chat) and isinstance(frame, frames.Message) and frame.seq == target:
            body, _ = megolm_from_server(chat, alice, frame.id, "written by the server")
            return [msgspec.structs.replace(frame, body=body)]
        return None

    await alice.send_text(chat, "m0")
    await alice.flush()
    await wait_texts(bob, chat, 1)
    target = (bob.history(chat)[0].seq or 0) + 1
    proxy.on_server_frame(replace)
    await alice.send_text(chat, "m1")
    await alice.send_text(chat, "m2")
    await alice.flush()
    await eventually(lambda: texts(bob, chat)[-1:] == ["m2"])
    assert texts(bob, chat) == ["m0", "m2"]
    assert [(e.sender, e.count) for e in net.events(bob, MissingMessages)] == [(alice.user, 1)]


async def test_room_key_from_another_device_does_not_decrypt(net: Net) -> None:
    """Carol, a member, passes alice's room key on to bob (really Olm-encrypted
    from her device) while the server withholds alice's own share: alice's
    messages stay unreadable, and a copy relabelled as carol's is refused."""
    proxy = await net.proxy()
    alice, carol = await net.client("alice"), await net.client("carol")
    bob = await net.client("bob", via=proxy)
    group = await alice.create_group([bob.user, carol.user])
    await carol.send_text(group, "hi from carol")  # olm sessions carol -> alice, bob
    await carol.flush()
    await wait_texts(bob, group, 1)

    alices_share = Hold(
        proxy,
        lambda f: isinstance(f, frames.ToDevice) and f.sender == alice.user,
        device=bob.device,
    )
    first = await alice.send_text(group, "first")
    await alice.flush()
    room_key = alice.keys.outbound[group].room_key()  # at index 1: what carol has
    second = await alice.send_text(group, "second")
    await alice.flush()
    await wait_texts(carol, group, 3)
    await eventually(
        lambda: (
            len(alices_share.held) == 1
            and second in {f.id for f in proxy.sent_to(bob.device, frames.Message)}
        ),
        what="alice's share and message at the proxy",
    )

    bob_device = await carol.keys.find_device(bob.user, bob.device)
    assert bob_device is not None
    relayed = carol.keys.olm.encrypt_to_device(
        bob_device, TYPE_ROOM_KEY, msgspec.to_builtins(room_key)
    )
    await proxy.inject(
        frames.ToDevice(seq=0, sender=carol.user, sender_device=carol.device, ts=0, body=relayed),
        device=bob.device,
    )
    await eventually(
        lambda: any(s.session_id == room_key.session_id for s in bob.keys.inbound.sessions())
    )
    [filed] = [s for s in bob.keys.inbound.sessions() if s.session_id == room_key.session_id]
    assert (filed.creator, filed.creator_device) == (carol.user, carol.device)

    [real] = [f for f in proxy.sent_to(bob.device, frames.Message) if f.id == second]
    relabelled = msgspec.structs.replace(
        real, sender=carol.user, sender_device=carol.device, seq=real.seq + 100
    )
    await proxy.inject(relabelled, device=bob.device)
    await eventually(lambda: bool(net.events(bob, Undecryptable)))
    [refused] = net.events(bob, Undecryptable)
    assert (refused.id, refused.sender) == (second, carol.user)
    assert "sender" in refused.reason
    assert texts(bob, group) == ["hi from carol"]

    assert await alices_share.release() == 1  # alice's own key: now both are readable
    assert await wait_texts(bob, group, 3) == ["hi from carol", "first", "second"]
    assert [m.sender for m in bob.history(group)] == [carol.user, alice.user, alice.user]
    assert {first, second} <= set(received_ids(net, bob))
    assert net.events(bob, MissingMessages) == []
