"""The browser and the Python SDK speak the same protocol and crypto.

Browser ↔ SDK in a direct chat and in a mixed group (two browsers, one SDK
client) with an image and a voice message; after a member is removed both
implementations start a new Megolm session, and the removed browser gets
nothing sent after that.
"""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

from PIL import Image
from playwright.async_api import Page, expect

from taube.client import Client, Received
from taube.testing import ServerProcess, canary
from tests.web.conftest import PageFactory, SdkFactory
from tests.web.driver import (
    SENT,
    message,
    open_conversation,
    received,
    send_text,
    sign_up,
    start_chat,
    tid,
)


async def received_attachment(client: Client, kind: str, timeout: float = 30.0) -> Received:
    async with asyncio.timeout(timeout):
        async for event in client.events():
            if isinstance(event, Received):
                entries = event.message.content.get("attachments", [])
                if any(e.get("kind") == kind for e in entries):
                    return event
    raise AssertionError(f"no {kind} attachment")


def png(path: Path, colour: tuple[int, int, int], size: tuple[int, int] = (640, 480)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, "PNG")
    path.write_bytes(out.getvalue())
    return out.getvalue()


async def send_image(page: Page, path: Path, caption: str) -> None:
    await tid(page, "file-input").set_input_files(str(path))
    await tid(page, "photo-caption").fill(caption)
    await tid(page, "photo-send").click()
    await expect(message(page, caption)).to_have_attribute("data-status", SENT, timeout=30_000)


async def record_voice(page: Page, seconds: float = 1.2) -> None:
    await tid(page, "voice-record").click()
    await expect(tid(page, "voice-recorder")).to_be_visible()
    await page.wait_for_timeout(seconds * 1000)
    await tid(page, "voice-send").click()


async def test_direct_chat_browser_and_sdk_both_ways(
    web_server: ServerProcess, new_page: PageFactory, sdk: SdkFactory, tmp_path: Path
) -> None:
    page = await new_page(web_server)
    address, _ = await sign_up(page, "web")
    bot = await sdk("sam")

    # SDK → browser, in a chat the SDK starts
    chat = await bot.start_chat(address)
    await bot.send_text(chat, "Hello from Python")
    await open_conversation(page, "Sam")
    await expect(message(page, "Hello from Python")).to_have_count(1)

    # browser → SDK, a reply in the same chat
    await send_text(page, "Hello from the browser")
    event = await received(bot, "Hello from the browser")
    assert event.message.conversation == chat
    # the SDK's delivery receipt reaches the browser
    await expect(message(page, "Hello from the browser")).to_have_attribute(
        "data-status", "delivered"
    )

    # an image from the browser: the SDK decrypts the same bytes
    png(tmp_path / "photo.png", (200, 30, 90))
    await send_image(page, tmp_path / "photo.png", "a red photo")
    got = await received_attachment(bot, "image")
    entry = got.message.content["attachments"][0]
    assert entry["mime"].startswith("image/")
    decrypted = bot.attachment_path(got.message).read_bytes()
    assert decrypted.startswith((b"\x89PNG", b"\xff\xd8\xff")), "neither PNG nor JPEG"
    assert len(decrypted) > 100

    # an image from the SDK: the browser shows it
    png(tmp_path / "green.png", (20, 160, 60))
    await bot.send_file(chat, tmp_path / "green.png", caption="a green square")
    green = message(page, "a green square")
    await expect(tid(green, "attachment-image")).to_be_visible()

    # a voice message recorded in the browser (Chromium's fake microphone)
    await record_voice(page)
    voice = await received_attachment(bot, "voice")
    assert bot.attachment_path(voice.message).stat().st_size > 0

    # a chat the browser starts with the SDK user
    other = await sdk("olga")
    await start_chat(page, other.user)
    await send_text(page, "Browser starts this one")
    await received(other, "Browser starts this one")

    assert canary.scan([web_server.data_dir], ["Hello from Python", "Hello from the browser"]) == []


async def test_mixed_group_and_key_rotation_after_removal(
    web_server: ServerProcess, new_page: PageFactory, sdk: SdkFactory
) -> None:
    ann = await new_page(web_server)
    ben = await new_page(web_server)
    ann_address, _ = await sign_up(ann, "ann")
    ben_address, _ = await sign_up(ben, "ben")
    bot = await sdk("sid")

    group = await bot.create_group([ann_address, ben_address])
    await bot.rename(group, "Mixed crew")
    await bot.send_text(group, "Welcome, browsers")
    for page in (ann, ben):
        await open_conversation(page, "Mixed crew")
        await expect(message(page, "Welcome, browsers")).to_have_count(1)

    await send_text(ann, "Ann here")
    await expect(message(ben, "Ann here")).to_be_visible()
    before = await received(bot, "Ann here")

    # the SDK owner removes Ben: both implementations rotate their sessions
    await bot.remove_member(group, ben_address)
    await expect(tid(ann, "chat-subtitle")).not_to_contain_text("3")
    await bot.send_text(group, "Ben has left us")
    await expect(message(ann, "Ben has left us")).to_be_visible()
    await send_text(ann, "Only two of us now")
    after = await received(bot, "Only two of us now")

    assert bot.profile is not None
    rows = bot.profile.execute(
        "SELECT id, session FROM messages WHERE id IN (?, ?)", before.message.id, after.message.id
    )
    sessions = {row[0]: row[1] for row in rows}
    assert sessions[before.message.id] != sessions[after.message.id], "the browser did not rotate"

    # Ben's browser sees neither message sent after his removal
    await ben.wait_for_timeout(1500)
    await expect(message(ben, "Ben has left us")).to_have_count(0)
    await expect(message(ben, "Only two of us now")).to_have_count(0)
