"""Devices and trust in the browser: linking by code (with the SDK and
between browsers), the safety number, and emoji verification with the SDK."""

from __future__ import annotations

import asyncio

from playwright.async_api import Page, expect

from taube.client import Received, VerificationDone, VerificationEmoji
from taube.testing import ServerProcess
from tests.web.conftest import PageFactory, SdkFactory
from tests.web.driver import log_in, message, open_conversation, send_text, sign_up, tid


async def open_devices(page: Page) -> None:
    await tid(page, "open-settings").click()
    await expect(tid(page, "devices-list")).to_be_visible()


async def test_sdk_device_links_a_browser_with_history(
    web_server: ServerProcess, new_page: PageFactory, sdk: SdkFactory
) -> None:
    friend = await sdk("fred")
    me = await sdk("mia")
    chat = await friend.start_chat(me.user)
    await friend.send_text(chat, "Written before the browser existed")
    async with asyncio.timeout(20):
        async for event in me.events():
            if isinstance(event, Received) and "before the browser" in event.message.text:
                break

    page = await new_page(web_server)
    code = me.link_start()
    await log_in(page, me.user, code, "Laptop browser", method="link")
    request = await me.link_wait(timeout=30)
    assert request.name == "Laptop browser"
    await me.link_confirm(request, share_history=True)

    await expect(tid(page, "new-chat")).to_be_visible(timeout=30_000)
    await open_conversation(page, "Fred")
    await expect(message(page, "Written before the browser existed")).to_have_count(1)
    # the linked browser is a full device: it reads and writes from now on
    await friend.send_text(chat, "Hello to every device of yours")
    await expect(message(page, "Hello to every device of yours")).to_be_visible()
    await send_text(page, "Sent from the linked browser")
    async with asyncio.timeout(20):
        async for event in friend.events():
            if isinstance(event, Received) and "linked browser" in event.message.text:
                break


async def test_browser_links_another_browser(
    web_server: ServerProcess, new_page: PageFactory
) -> None:
    first = await new_page(web_server)
    address, _ = await sign_up(first, "lea")
    await open_devices(first)
    await tid(first, "link-device").click()
    code = (await tid(first, "link-code").inner_text()).strip()

    second = await new_page(web_server)
    await log_in(second, address, code, "Phone browser", method="link")
    await expect(tid(first, "link-request")).to_contain_text("Phone browser")
    await tid(first, "link-confirm").click()
    await expect(tid(first, "link-done")).to_be_visible()
    await expect(tid(second, "new-chat")).to_be_visible(timeout=30_000)

    await open_devices(second)
    await expect(tid(second, "device")).to_have_count(2)


async def test_safety_number_and_emoji_verification_with_sdk(
    web_server: ServerProcess, new_page: PageFactory, sdk: SdkFactory
) -> None:
    page = await new_page(web_server)
    address, _ = await sign_up(page, "vera")
    bot = await sdk("victor")
    chat = await bot.start_chat(address)
    await bot.send_text(chat, "Let us verify")
    await open_conversation(page, "Victor")

    # the browser shows the same safety number as the SDK
    await tid(page, "chat-info").click()
    number = await tid(page, "safety-number").get_attribute("data-value")
    assert number == (await bot.safety_number(address)).replace(" ", "")

    # emoji verification started by the SDK, accepted in the browser
    transaction = await bot.verify_start(address)
    await tid(page, "verify-accept").click()
    emoji: VerificationEmoji | None = None
    async with asyncio.timeout(20):
        async for event in bot.events():
            if isinstance(event, VerificationEmoji) and event.transaction == transaction:
                emoji = event
                break
    assert emoji is not None
    grid = tid(page, "verify-emoji-grid")
    await expect(grid).to_be_visible()
    for symbol, _name in emoji.emoji:
        await expect(grid).to_contain_text(symbol)
    await tid(page, "verify-match").click()
    await bot.verify_confirm(transaction)
    async with asyncio.timeout(20):
        async for event in bot.events():
            if isinstance(event, VerificationDone) and event.transaction == transaction:
                assert event.verified, event.reason
                break
    await expect(tid(page, "verify-result")).to_have_attribute("data-verified", "true")
