"""Offline and back: the backlog arrives in order, what was typed goes out once.

The network is cut with ``driver.NetworkSwitch``: Chromium's offline
emulation alone leaves an open WebSocket open (its frames merely stall), so
the switch also closes the page's socket and refuses new ones until the
network is back.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from PIL import Image
from playwright.async_api import Page, expect

from taube.testing import ServerProcess
from tests.web.conftest import PageFactory, SdkFactory
from tests.web.driver import (
    SENT,
    NetworkSwitch,
    message,
    message_texts,
    open_conversation,
    send_text,
    sign_up,
    start_chat,
    tid,
    wait_offline,
    wait_online,
)

BACKLOG = 30


def numbered(texts: list[str], prefix: str) -> list[str]:
    """The ``prefix NN`` parts of ``texts``, in their order (the bubbles'
    texts also hold the time)."""
    found = (re.search(rf"{prefix} \d+", text) for text in texts)
    return [match.group(0) for match in found if match]


async def chat_between(alice: Page, bob: Page) -> tuple[str, str]:
    """Both sign up; Bob starts a chat with Alice and says hello; Alice opens
    it. Their addresses."""
    alice_address, _ = await sign_up(alice, "alice")
    bob_address, _ = await sign_up(bob, "bob")
    await start_chat(bob, alice_address)
    await send_text(bob, "online 00")
    await open_conversation(alice, bob_address)
    return alice_address, bob_address


@pytest.mark.parametrize("away", ["network cut", "tab closed"])
async def test_backlog_arrives_in_order_after_being_away(
    web_server: ServerProcess, new_page: PageFactory, sdk: SdkFactory, away: str
) -> None:
    bob = await new_page(web_server)
    alice = await sdk("alice")
    errors: list[str] = []  # of a page opened here (new_page watches its own)
    async with NetworkSwitch(bob.context) as network:
        bob_address, _ = await sign_up(bob, "bob")
        chat = await alice.start_chat(bob_address)
        await alice.send_text(chat, "before you left")
        await open_conversation(bob, "Alice")
        await expect(message(bob, "before you left")).to_have_count(1)

        if away == "network cut":
            await network.cut()
            await wait_offline(bob)
        else:
            await bob.close()

        expected = [f"backlog {n:02d}" for n in range(1, BACKLOG + 1)]
        for text in expected:
            await alice.send_text(chat, text)
        await alice.flush()

        if away == "network cut":
            assert numbered(await message_texts(bob), "backlog") == [], "got through the cut"
            await network.restore()
        else:
            bob = await bob.context.new_page()
            bob.on("pageerror", lambda exc: errors.append(str(exc)))
            await bob.goto(web_server.url + "/")
            await open_conversation(bob, "Alice")
        await wait_online(bob)
        await expect(tid(bob, "message")).to_have_count(BACKLOG + 1)
        assert numbered(await message_texts(bob), "backlog") == expected

        # a reload shows the same: nothing lost, nothing twice
        await bob.reload()
        await open_conversation(bob, "Alice")
        await expect(tid(bob, "message")).to_have_count(BACKLOG + 1)
        assert numbered(await message_texts(bob), "backlog") == expected
    assert errors == []


async def test_message_typed_offline_is_pending_then_sent_once(
    web_server: ServerProcess, new_page: PageFactory
) -> None:
    alice = await new_page(web_server)
    bob = await new_page(web_server)
    async with NetworkSwitch(bob.context) as network:
        alice_address, bob_address = await chat_between(alice, bob)

        await network.cut()
        await wait_offline(bob)
        typed = [f"offline {n:02d}" for n in range(1, 4)]
        for text in typed:
            await send_text(bob, text)
            await expect(message(bob, text)).to_have_attribute("data-status", "pending")
        await alice.wait_for_timeout(500)  # a moment in which nothing may arrive
        await expect(message(alice, "offline")).to_have_count(0)

        await network.restore()
        await wait_online(bob)
        for text in typed:
            await expect(message(bob, text)).to_have_attribute("data-status", SENT)
        await expect(message(alice, "offline")).to_have_count(len(typed))
        assert numbered(await message_texts(alice), "offline") == typed

    # once each after a reload of either side, and still sent
    for page, other in ((alice, bob_address), (bob, alice_address)):
        await page.reload()
        await open_conversation(page, other)
        await expect(message(page, "offline")).to_have_count(len(typed))
        assert numbered(await message_texts(page), "offline") == typed
    for text in typed:
        await expect(message(bob, text)).to_have_attribute("data-status", SENT)


async def test_message_typed_offline_survives_a_reload_while_offline(
    web_server: ServerProcess, new_page: PageFactory
) -> None:
    alice = await new_page(web_server)
    bob = await new_page(web_server)
    async with NetworkSwitch(bob.context) as network:
        alice_address, _ = await chat_between(alice, bob)
        # the service worker keeps the app's shell: the page opens offline
        assert await bob.evaluate("navigator.serviceWorker.ready.then(() => true)")

        await network.cut()
        await send_text(bob, "offline 01")
        await bob.reload()
        await open_conversation(bob, alice_address)
        await wait_offline(bob)
        await expect(message(bob, "offline 01")).to_have_attribute("data-status", "pending")

        await network.restore()
        await expect(message(bob, "offline 01")).to_have_attribute("data-status", SENT)
        await expect(message(alice, "offline 01")).to_have_count(1)


async def test_photo_sent_offline_goes_out_when_back(
    web_server: ServerProcess, new_page: PageFactory, tmp_path: Path
) -> None:
    """A file goes through the outbox too: kept in the profile, uploaded and
    sent once the network is back (also after a reload)."""
    alice = await new_page(web_server)
    bob = await new_page(web_server)
    async with NetworkSwitch(bob.context) as network:
        await chat_between(alice, bob)

        await network.cut()
        await wait_offline(bob)
        photo = tmp_path / "photo.png"
        Image.new("RGB", (320, 240), (30, 120, 200)).save(photo)
        await tid(bob, "file-input").set_input_files(str(photo))
        await tid(bob, "photo-caption").fill("photo taken offline")
        await tid(bob, "photo-send").click()
        # the photo waits in the outbox to be uploaded and sent, like a text
        await expect(message(bob, "photo taken offline")).to_have_attribute(
            "data-status", "pending"
        )

        await network.restore()
        await wait_online(bob)
        await expect(message(bob, "photo taken offline")).to_have_attribute("data-status", SENT)
        received = message(alice, "photo taken offline")
        await expect(received).to_have_count(1)
        await expect(tid(received, "attachment-image")).to_have_attribute("data-loaded", "true")
