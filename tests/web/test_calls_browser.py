"""Calls in the web app: two Chromium instances (and the Python SDK) calling
each other through a real server and a real coturn."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, expect

from taube.client import Client
from taube.client import events as ev
from taube.client.calls import CallState, EndReason
from taube.client.calls import signalling as sig
from taube.client.calls.media import Media
from taube.proto.ids import UserId
from taube.testing import ServerProcess
from taube.testing.coturn import Coturn
from tests.calls.test_calls_functional import assert_no_sdp_on_server, broken_turn, next_event
from tests.conftest import missing_service
from tests.web.conftest import (
    ARTIFACTS,
    STEP_TIMEOUT_MS,
    PageFactory,
    SdkFactory,
    launch,
)
from tests.web.driver import sign_up, start_chat, tid

pytestmark = pytest.mark.services

#: every RTCPeerConnection the page makes, for getStats() from the test
RECORD_PEER_CONNECTIONS = """
(() => {
  const Original = window.RTCPeerConnection;
  window.__pcs = [];
  window.RTCPeerConnection = function (...args) {
    const pc = new Original(...args);
    window.__pcs.push(pc);
    return pc;
  };
  window.RTCPeerConnection.prototype = Original.prototype;
})();
"""

INBOUND = """
async () => {
  const pc = window.__pcs.at(-1);
  const out = { bytesReceived: 0, framesDecoded: 0, relayed: false };
  if (!pc) return out;
  const stats = await pc.getStats();
  const candidates = {};
  stats.forEach((s) => {
    const candidate = s.type === "local-candidate" || s.type === "remote-candidate";
    if (candidate) candidates[s.id] = s.candidateType;
  });
  stats.forEach((s) => {
    if (s.type === "inbound-rtp") {
      out.bytesReceived += s.bytesReceived || 0;
      out.framesDecoded += s.framesDecoded || 0;
    }
    if (s.type === "candidate-pair" && s.nominated && s.state === "succeeded") {
      const types = [candidates[s.localCandidateId], candidates[s.remoteCandidateId]];
      out.relayed = out.relayed || types.includes("relay");
    }
  });
  return out;
}
"""


@pytest.fixture
def coturn(tmp_path: Path) -> Iterator[Coturn]:
    reason = Coturn.missing()
    if reason:
        missing_service(reason)
    with Coturn(tmp_path / "coturn") as running:
        yield running


@pytest.fixture
def web_server(tmp_path: Path, coturn: Coturn) -> Iterator[ServerProcess]:
    """The web tests' server, handing out ``coturn``'s credentials."""
    env = {"TAUBE_TURN_URLS": json.dumps(coturn.urls), "TAUBE_TURN_SECRET": coturn.secret}
    with ServerProcess(tmp_path / "server", env=env) as proc:
        yield proc


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """Chromium as the other web tests run it, plus what WebRTC needs on a
    loopback-only machine (``notes/interop.md``)."""
    async with launch(
        "--allow-loopback-in-peer-connection", "--disable-features=WebRtcHideLocalIpsWithMdns"
    ) as chromium:
        yield chromium


async def caller_page(
    new_page: PageFactory, server: ServerProcess, name: str, viewport: tuple[int, int] = (1280, 800)
) -> tuple[Page, str]:
    page = await new_page(server, viewport=viewport)
    await page.context.add_init_script(RECORD_PEER_CONNECTIONS)
    await page.reload()
    address, _ = await sign_up(page, name)
    return page, address


async def inbound(page: Page) -> dict[str, Any]:
    result: dict[str, Any] = await page.evaluate(INBOUND)
    return result


async def wait_media(page: Page, video: bool = True) -> dict[str, Any]:
    """Until bytes arrive and (for video) frames are decoded."""
    async with asyncio.timeout(30):
        while True:
            stats = await inbound(page)
            if stats["bytesReceived"] > 0 and (not video or stats["framesDecoded"] > 0):
                return stats
            await asyncio.sleep(0.2)


async def test_two_browsers_video_call(web_server: ServerProcess, new_page: PageFactory) -> None:
    alice, alice_address = await caller_page(new_page, web_server, "alice")
    bob, bob_address = await caller_page(new_page, web_server, "bob", viewport=(360, 740))
    await start_chat(alice, bob_address)

    await tid(alice, "call-video").click()
    await expect(tid(alice, "call-screen")).to_have_attribute("data-state", "ringing")
    await expect(tid(bob, "call-screen")).to_have_attribute(
        "data-state", "ringing", timeout=STEP_TIMEOUT_MS
    )
    await expect(tid(bob, "call-peer")).to_have_text(alice_address.split("@")[0])
    await expect(tid(bob, "call-status")).to_have_text("Incoming video call")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await bob.screenshot(path=ARTIFACTS / "call-incoming-360.png")
    await tid(bob, "call-accept").click()
    for page in (alice, bob):
        await expect(tid(page, "call-screen")).to_have_attribute("data-state", "connected")
    for page in (alice, bob):
        stats = await wait_media(page)
        assert stats["bytesReceived"] > 0
        assert stats["framesDecoded"] > 0
    await expect(tid(alice, "call-status")).to_have_text("0:02", timeout=5000)
    await bob.screenshot(path=ARTIFACTS / "call-video-360.png")
    await alice.screenshot(path=ARTIFACTS / "call-video-1280.png")

    # mute and camera off are the user's: the call goes on
    await tid(alice, "call-mute").click()
    await expect(tid(alice, "call-mute")).to_have_attribute("aria-pressed", "true")
    await tid(alice, "call-camera").click()
    await expect(tid(alice, "call-camera")).to_have_attribute("aria-pressed", "true")

    await tid(bob, "call-hangup").click()
    await expect(tid(alice, "call-status")).to_have_text("Call ended")
    for page in (alice, bob):
        await expect(tid(page, "call-screen")).to_have_count(0, timeout=10_000)
        if page is bob:  # bob's chat list was open
            await tid(bob, "conversation").first.click()
        event = tid(page, "call-event")
        await expect(event).to_have_count(1)
        await expect(event).to_have_attribute("data-outcome", "answered")
        await expect(event).to_contain_text("Video call, 0:0")
    assert_no_sdp_on_server(web_server)


async def test_rejected_and_missed_calls_leave_nothing_ringing(
    web_server: ServerProcess, new_page: PageFactory
) -> None:
    alice, _ = await caller_page(new_page, web_server, "alice")
    bob, bob_address = await caller_page(new_page, web_server, "bob")
    await start_chat(alice, bob_address)

    await tid(alice, "call-voice").click()
    await expect(tid(bob, "call-screen")).to_have_attribute(
        "data-state", "ringing", timeout=STEP_TIMEOUT_MS
    )
    await tid(bob, "call-reject").click()
    await expect(tid(alice, "call-status")).to_have_text("Declined")
    await expect(tid(bob, "call-screen")).to_have_count(0, timeout=10_000)
    await expect(tid(alice, "call-screen")).to_have_count(0, timeout=10_000)

    # the caller gives up: the callee's ringing stops, "missed call" in the chat
    await tid(alice, "call-voice").click()
    await expect(tid(bob, "call-screen")).to_have_attribute(
        "data-state", "ringing", timeout=STEP_TIMEOUT_MS
    )
    await tid(alice, "call-hangup").click()
    await expect(tid(bob, "call-status")).to_have_text("No answer")
    await expect(tid(bob, "call-screen")).to_have_count(0, timeout=10_000)
    await tid(bob, "conversation").first.click()
    events = tid(bob, "call-event")
    await expect(events).to_have_count(2)
    await expect(events.nth(1)).to_contain_text("Missed call")


async def test_browser_and_sdk_call_each_other(
    web_server: ServerProcess, new_page: PageFactory, sdk: SdkFactory
) -> None:
    page, address = await caller_page(new_page, web_server, "alice")
    bot: Client = await sdk("bot", profile=False)
    bot.calls.relay_only = True  # aioice never offers loopback: media through coturn
    await start_chat(page, bot.user)

    # browser → SDK
    await tid(page, "call-voice").click()
    ring = await next_event(bot, ev.IncomingCall, timeout=30)
    assert ring.caller == address
    answered = await bot.answer_call(ring.call, Media.tone())
    await expect(tid(page, "call-screen")).to_have_attribute("data-state", "connected")
    await answered.wait_media()
    stats = await wait_media(page, video=False)
    assert stats["relayed"]
    await bot.hang_up(answered.id)
    await expect(tid(page, "call-status")).to_have_text("Call ended")

    # SDK → browser (video)
    await expect(tid(page, "call-screen")).to_have_count(0, timeout=10_000)
    call = await bot.call(address, Media.tone(video=True), video=True)
    await expect(tid(page, "call-screen")).to_have_attribute(
        "data-state", "ringing", timeout=STEP_TIMEOUT_MS
    )
    await tid(page, "call-accept").click()
    await call.wait_media()
    assert call.state is CallState.CONNECTED
    await wait_media(page, video=True)
    await tid(page, "call-hangup").click()
    assert await call.wait_ended() == EndReason.HANGUP


async def test_forged_stale_replayed_and_non_member_invites_never_ring(
    web_server: ServerProcess, new_page: PageFactory, sdk: SdkFactory
) -> None:
    page, address = await caller_page(new_page, web_server, "alice")
    bot: Client = await sdk("bot", profile=False)
    mallory: Client = await sdk("mallory", profile=False)
    await start_chat(page, bot.user)
    chat = await bot.start_chat(address)
    await mallory.start_chat(address)
    now = bot.clock()
    base = {"conversation": chat, "sdp": "v=0\r\n", "video": False}
    once = {**base, "call": sig.new_call_id(), "ts": now}
    bad = [
        (bot, {**base, "call": sig.new_call_id(), "ts": now - 2 * sig.RING_MS}),  # stale
        (bot, {**base, "call": sig.new_call_id(), "ts": now + 3_600_000}),  # from the future
        (bot, {**base, "call": "no", "ts": now}),  # malformed id
        (bot, {**base, "call": sig.new_call_id(), "ts": now, "sdp": "not an offer"}),
        (mallory, {**base, "call": sig.new_call_id(), "ts": now}),  # not a member
        (bot, once),  # fine: it rings
    ]
    for sender, content in bad:
        for device in await sender.keys.devices_of([UserId(address)]):
            await sender.send_to_device(device, sig.INVITE, content)
    await expect(tid(page, "call-screen")).to_have_attribute("data-state", "ringing")
    await tid(page, "call-reject").click()
    await expect(tid(page, "call-screen")).to_have_count(0, timeout=10_000)
    for device in await bot.keys.devices_of([UserId(address)]):
        await bot.send_to_device(device, sig.INVITE, once)  # replayed: never rings again
    call = await bot.call(chat)  # a genuine call behind them rings
    await expect(tid(page, "call-screen")).to_have_attribute("data-state", "ringing")
    await expect(tid(page, "call-status")).to_have_text("Incoming call")
    await tid(page, "call-reject").click()
    assert await call.wait_ended() == EndReason.DECLINED


async def test_ice_failing_and_a_vanished_peer_end_the_call_clearly(
    web_server: ServerProcess, new_page: PageFactory, sdk: SdkFactory
) -> None:
    page, address = await caller_page(new_page, web_server, "alice")
    bot: Client = await sdk("bot", profile=False)
    bot.calls.relay_only = True
    await start_chat(page, bot.user)

    # ICE never connects: the bot relays only and has no relay, so no candidate
    real_turn = bot.calls.turn
    bot.calls.turn = broken_turn(bot)  # type: ignore[method-assign]
    await tid(page, "call-voice").click()
    ring = await next_event(bot, ev.IncomingCall, timeout=30)
    await bot.answer_call(ring.call)
    await expect(tid(page, "call-status")).to_have_text("Could not connect", timeout=40_000)
    await expect(tid(page, "call-screen")).to_have_count(0, timeout=10_000)
    bot.calls.turn = real_turn  # type: ignore[method-assign]

    # the bot vanishes mid-call: no hang-up, its connection and its media just stop
    call = await bot.call(address, Media.tone())
    await tid(page, "call-accept").click()
    await call.wait_media()
    await bot._connection.stop()  # the device is gone (tests only reach in)
    assert call.peer_conn is not None
    await call.peer_conn.close()
    await expect(tid(page, "call-status")).to_have_text("Connection lost", timeout=40_000)
    await expect(tid(page, "call-screen")).to_have_count(0, timeout=10_000)
