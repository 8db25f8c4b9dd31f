"""1:1 calls between SDK clients (aiortc) through a real server and a real coturn."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import msgspec
import pytest

from taube.client import Client
from taube.client import events as ev
from taube.client.calls import CallState, EndReason
from taube.client.calls import signalling as sig
from taube.client.calls.media import Media
from taube.proto import http
from taube.proto.ids import ConversationId
from taube.testing import ServerProcess
from tests.calls.conftest import Sdk

E = TypeVar("E", bound=ev.Event)


async def next_event(client: Client, kind: type[E], timeout: float = 20.0) -> E:
    async for event in client.events(timeout=timeout):
        if isinstance(event, kind):
            return event
    raise AssertionError(f"no {kind.__name__} within {timeout} s")


async def wait_history_call(client: Client, conversation: ConversationId) -> ev.Message:
    async with asyncio.timeout(20):
        while True:
            found = [m for m in client.history(conversation) if m.type == ev.CALL]
            if found:
                assert len(found) == 1, "a call is shown once"
                return found[0]
            await asyncio.sleep(0.05)


def assert_no_sdp_on_server(server: ServerProcess) -> None:
    """Neither the log nor any table of the database holds SDP or ICE in the clear."""
    for marker in (b"v=0", b"a=candidate", b"a=fingerprint", b"a=ice-ufrag", b"typ host"):
        assert marker not in server.log_path.read_bytes()
    db = sqlite3.connect(server.data_dir / "taube.db")
    try:
        for (table,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'"):
            for row in db.execute(f"SELECT * FROM {table}"):
                for value in row:
                    raw = value if isinstance(value, bytes) else str(value).encode()
                    assert b"a=candidate" not in raw
                    assert b"ice-ufrag" not in raw
    finally:
        db.close()


@pytest.mark.services
@pytest.mark.parametrize("relay_only", [False, True], ids=["direct", "relayed"])
async def test_call_rings_answers_and_media_flows(
    call_server: ServerProcess, sdk: Sdk, relay_only: bool
) -> None:
    make = sdk(call_server)
    alice, bob = await make("alice"), await make("bob")
    for client in (alice, bob):
        client.calls.relay_only = relay_only
    chat = await alice.start_chat(bob.user)
    await alice.flush()

    call = await alice.call(chat, Media.tone(video=True), video=True)
    ring = await next_event(bob, ev.IncomingCall)
    assert (ring.caller, ring.conversation, ring.video) == (alice.user, chat, True)
    answered = await bob.answer_call(ring.call, Media.tone(video=True))
    await call.wait_media()
    await answered.wait_media()
    assert call.state is CallState.CONNECTED
    assert answered.state is CallState.CONNECTED
    for side in (call, answered):
        assert side.peer_conn is not None
        stats = await side.peer_conn.stats()
        assert stats["audio"]["packets"] > 0
        assert stats["video"]["packets"] > 0
        await asyncio.sleep(0.3)
        assert side.peer_conn.frames.get("video", 0) > 0
        assert side.peer_conn.frames.get("audio", 0) > 0

    await alice.hang_up(call.id)
    assert await answered.wait_ended() == EndReason.HANGUP
    for client in (alice, bob):
        event = await wait_history_call(client, chat)
        assert event.content["outcome"] == "answered"
        assert event.content["duration_ms"] > 0
    assert_no_sdp_on_server(call_server)


@pytest.mark.services
async def test_every_device_rings_and_the_first_answer_wins(
    call_server: ServerProcess, sdk: Sdk
) -> None:
    make = sdk(call_server)
    alice, bob = await make("alice"), await make("bob")
    bob2 = await make(device_of=bob)
    chat = await alice.start_chat(bob.user)
    await alice.flush()

    call = await alice.call(chat)
    rings = await asyncio.gather(
        next_event(bob, ev.IncomingCall), next_event(bob2, ev.IncomingCall)
    )
    assert rings[0].call == rings[1].call == call.id
    answered = await bob2.answer_call(call.id)
    await call.wait_media()
    # the other device stops ringing: answered elsewhere
    assert await bob.get_call(call.id).wait_ended() == EndReason.ANSWERED_ELSEWHERE
    with pytest.raises(Exception, match="not a ringing"):
        await bob.answer_call(call.id)
    await bob2.hang_up(answered.id)
    assert await call.wait_ended() == EndReason.HANGUP


@pytest.mark.services
async def test_reject_stops_every_device_and_shows_in_history(
    call_server: ServerProcess, sdk: Sdk
) -> None:
    make = sdk(call_server)
    alice, bob = await make("alice"), await make("bob")
    bob2 = await make(device_of=bob)
    chat = await alice.start_chat(bob.user)
    await alice.flush()

    call = await alice.call(chat)
    ring = await next_event(bob, ev.IncomingCall)
    await next_event(bob2, ev.IncomingCall)
    await bob.reject_call(ring.call)
    assert await call.wait_ended() == EndReason.DECLINED
    assert await bob2.get_call(call.id).wait_ended() == EndReason.DECLINED
    for client in (alice, bob, bob2):
        event = await wait_history_call(client, chat)
        assert event.content["outcome"] == EndReason.DECLINED


@pytest.mark.services
async def test_caller_gives_up_the_callee_sees_a_missed_call(
    call_server: ServerProcess, sdk: Sdk
) -> None:
    make = sdk(call_server)
    alice, bob = await make("alice"), await make("bob")
    chat = await alice.start_chat(bob.user)
    await alice.flush()
    call = await alice.call(chat)
    ring = await next_event(bob, ev.IncomingCall)
    await alice.hang_up(call.id)
    assert await bob.get_call(ring.call).wait_ended() == EndReason.MISSED
    assert (await wait_history_call(bob, chat)).content["outcome"] == EndReason.MISSED


@pytest.mark.services
async def test_busy_callee_and_peer_vanishing(call_server: ServerProcess, sdk: Sdk) -> None:
    make = sdk(call_server)
    alice, bob, carol = await make("alice"), await make("bob"), await make("carol")
    chat = await alice.start_chat(bob.user)
    carol_chat = await carol.start_chat(bob.user)
    await alice.flush()
    await carol.flush()

    call = await alice.call(chat)
    await next_event(bob, ev.IncomingCall)
    answered = await bob.answer_call(call.id)
    await call.wait_media()

    # bob is in a call: carol's call gets "busy" and never rings
    busy = await carol.call(carol_chat)
    assert await busy.wait_ended() == EndReason.BUSY
    assert not [e for e in bob.pending_events() if isinstance(e, ev.IncomingCall)]

    # alice's device vanishes (no hang-up sent): bob's side ends by itself
    assert call.peer_conn is not None
    await call.peer_conn.close()
    assert await answered.wait_ended(timeout=60) in (EndReason.GONE, EndReason.HANGUP)


async def send_signal(sender: Client, to: Client, type_: str, content: dict[str, object]) -> None:
    """A call message as any device could send it (the tests' bad peer)."""
    for device in await sender.keys.devices_of([to.user]):
        await sender.send_to_device(device, type_, content)


@pytest.mark.services
async def test_replayed_stale_and_non_member_invites_never_ring(
    call_server: ServerProcess, sdk: Sdk
) -> None:
    make = sdk(call_server)
    alice, bob, mallory = await make("alice"), await make("bob"), await make("mallory")
    chat = await alice.start_chat(bob.user)
    await alice.flush()
    call = await alice.call(chat)
    ring = await next_event(bob, ev.IncomingCall)
    await alice.hang_up(call.id)
    await bob.get_call(ring.call).wait_ended()

    now = alice.clock()
    base = {"conversation": chat, "sdp": "v=0\r\n", "video": False}
    # the same call id again (a replay), a stale invite, one from the future
    await send_signal(alice, bob, sig.INVITE, {**base, "call": call.id, "ts": now})
    await send_signal(
        alice, bob, sig.INVITE, {**base, "call": sig.new_call_id(), "ts": now - 2 * sig.RING_MS}
    )
    await send_signal(
        alice, bob, sig.INVITE, {**base, "call": sig.new_call_id(), "ts": now + 3_600_000}
    )
    # mallory is no member of alice and bob's chat
    await mallory.start_chat(bob.user)
    await send_signal(mallory, bob, sig.INVITE, {**base, "call": sig.new_call_id(), "ts": now})
    # malformed: no SDP; and an answer for a call bob never made
    await send_signal(alice, bob, sig.INVITE, {"call": sig.new_call_id(), "ts": now})
    await send_signal(alice, bob, sig.ANSWER, {"call": sig.new_call_id(), "sdp": "v=0\r\n"})

    second = await alice.call(chat)  # a genuine call behind them still rings
    ring = await next_event(bob, ev.IncomingCall)
    assert ring.call == second.id
    assert [c.id for c in bob.calls.active()] == [second.id]
    await alice.hang_up(second.id)


@pytest.mark.services
async def test_ice_that_never_connects_ends_the_call(call_server: ServerProcess, sdk: Sdk) -> None:
    make = sdk(call_server)
    alice, bob = await make("alice"), await make("bob")
    chat = await alice.start_chat(bob.user)
    await alice.flush()
    # relay only on both sides, but bob has no relay: no pair connects
    alice.calls.relay_only = bob.calls.relay_only = True
    call = await alice.call(chat)
    ring = await next_event(bob, ev.IncomingCall)
    bob.calls.turn = broken_turn(bob)  # type: ignore[method-assign]
    answered = await bob.answer_call(ring.call)
    assert await answered.wait_ended(timeout=60) == EndReason.ICE_FAILED
    assert await call.wait_ended(timeout=60) in (EndReason.ICE_FAILED, EndReason.HANGUP)
    assert not alice.calls.active()
    assert not bob.calls.active()


def broken_turn(client: Client) -> Callable[[], Coroutine[Any, Any, http.TurnCredentials]]:
    """``client.calls.turn`` as if the server had no TURN: with ``relay_only``
    the client then has no candidate at all. (Credentials coturn refuses
    would do too, but aioice then leaves its TURN socket open.)"""
    real = client.calls.turn

    async def turn() -> http.TurnCredentials:
        return msgspec.structs.replace(await real(), urls=[])

    return turn


@pytest.mark.services
async def test_callee_with_no_device_online_gets_a_missed_call_and_nothing_rings_later(
    call_server: ServerProcess, sdk: Sdk
) -> None:
    make = sdk(call_server)
    alice, bob = await make("alice"), await make("bob")
    chat = await alice.start_chat(bob.user)
    await alice.flush()
    await bob.sync()
    await bob.disconnect()  # bob's only device is offline

    call = await alice.call(chat, ring_ms=1500)
    assert await call.wait_ended() == EndReason.MISSED
    await alice.flush()

    await bob.sync()  # back online: the invite is stale by now, nothing rings
    assert (await wait_history_call(bob, chat)).content["outcome"] == EndReason.MISSED
    assert not bob.calls.active()
    assert not [e for e in bob.pending_events() if isinstance(e, ev.IncomingCall)]
