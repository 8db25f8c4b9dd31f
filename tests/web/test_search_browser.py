"""Search in the web app across all conversations (issue 16): a result
opens its chat at the message (scrolled to it, highlighted); a message
deleted for everyone is no longer found. Real server, Chromium, SDK senders."""

from __future__ import annotations

import re

from playwright.async_api import expect

from taube.testing import ServerProcess
from tests.web.conftest import ARTIFACTS, PageFactory, SdkFactory
from tests.web.driver import message, open_conversation, sign_up, tid

FILLER = 40


async def test_search_result_opens_the_chat_at_the_message(
    web_server: ServerProcess, new_page: PageFactory, sdk: SdkFactory
) -> None:
    page = await new_page(web_server)
    address, _ = await sign_up(page, "bob")
    alice, carol = await sdk("alice"), await sdk("carol")
    with_alice = await alice.start_chat(address)
    await alice.send_text(with_alice, "Meet me at the harbour at dawn")
    for i in range(FILLER):
        await alice.send_text(with_alice, f"filler line {i}")
    with_carol = await carol.start_chat(address)
    lights = await carol.send_text(with_carol, "The harbour lights are on")
    await open_conversation(page, "Carol")
    await expect(message(page, "harbour lights")).to_have_count(1)
    await open_conversation(page, "Alice")
    await expect(message(page, f"filler line {FILLER - 1}")).to_have_count(1)

    search = tid(page, "search")
    await search.fill("harb")
    results = tid(page, "search-result")
    await expect(results).to_have_count(2)
    await expect(results.first).to_contain_text("harbour lights")  # newest first
    await expect(results.last).to_contain_text("harbour at dawn")
    await expect(tid(results.last, "search-snippet").locator("mark")).to_have_text("harbour")
    await page.screenshot(path=ARTIFACTS / "search-results-1280.png")
    await results.last.click()
    await expect(tid(page, "chat-title")).to_have_text("Alice")
    found = message(page, "harbour at dawn")
    await expect(found).to_be_in_viewport()
    await expect(found).to_have_class(re.compile(r"\bmessage--flash\b"))  # highlighted a moment
    await expect(message(page, f"filler line {FILLER - 1}")).not_to_be_in_viewport()
    await page.screenshot(path=ARTIFACTS / "search-jump-1280.png")

    # deleted for everyone: never found again (the results follow at once)
    await search.fill("harbour")
    await expect(results).to_have_count(2)
    await carol.delete(with_carol, lights)
    await expect(results).to_have_count(1)
    await search.fill("")
    await open_conversation(page, "Carol")
    await expect(message(page, "harbour lights")).to_have_count(0)
    await search.fill("harbour")
    await expect(results).to_have_count(1)
    await expect(results.first).to_contain_text("harbour at dawn")
    # on a phone: the results, then the chat at the message
    await page.set_viewport_size({"width": 360, "height": 740})
    await tid(page, "back").click()
    await expect(results.first).to_be_visible()
    await page.screenshot(path=ARTIFACTS / "search-results-360.png")
    await results.first.click()
    await expect(found).to_be_in_viewport()
    await page.screenshot(path=ARTIFACTS / "search-jump-360.png")
