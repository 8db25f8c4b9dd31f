"""Group administration from the browser, and disappearing messages."""

from __future__ import annotations

import asyncio

from playwright.async_api import expect

from taube.testing import ServerProcess, canary
from tests.web.conftest import PageFactory, SdkFactory
from tests.web.driver import (
    create_group,
    message,
    open_conversation,
    received,
    send_text,
    sign_up,
    tid,
)


async def test_admin_renames_adds_promotes_and_removes(
    web_server: ServerProcess, new_page: PageFactory, sdk: SdkFactory
) -> None:
    admin = await new_page(web_server)
    other = await new_page(web_server)
    await sign_up(admin, "ada")
    other_address, _ = await sign_up(other, "bea")
    carl, dora = await sdk("carl", profile=False), await sdk("dora", profile=False)

    await create_group(admin, "Book club", [other_address, carl.user])
    await send_text(admin, "First meeting on Monday")
    await received(carl, "First meeting on Monday")
    assert carl.title((await carl.conversations())[0][0]) == "Book club"

    await tid(admin, "chat-info").click()
    # rename: a sealed, signed state event the others open with the state key
    await tid(admin, "group-rename").click()
    await tid(admin, "group-title-input").fill("Reading circle")
    await tid(admin, "group-rename-save").click()
    await expect(tid(admin, "chat-title")).to_have_text("Reading circle")
    await open_conversation(other, "Reading circle")

    # add Dora: she reads what is sent after she joined
    await tid(admin, "add-member-input").fill(dora.user)
    await tid(admin, "add-member-submit").click()
    row = admin.locator(f'[data-testid="member"][data-user="{dora.user}"]')
    await expect(row).to_have_attribute("data-role", "member")
    # promote Bea to admin
    bea = admin.locator(f'[data-testid="member"][data-user="{other_address}"]')
    await bea.locator('[data-testid="member-role"]').select_option("admin")
    await expect(bea).to_have_attribute("data-role", "admin")

    # remove Carl: he gets nothing sent after that
    carl_row = admin.locator(f'[data-testid="member"][data-user="{carl.user}"]')
    await carl_row.locator('[data-testid="member-remove"]').click()
    await tid(admin, "confirm-ok").click()
    await expect(carl_row).to_have_count(0)

    await send_text(admin, "Welcome Dora, bye Carl")
    await expect(message(other, "Welcome Dora, bye Carl")).to_be_visible()
    event = await received(dora, "Welcome Dora, bye Carl")
    state = await dora.state(event.message.conversation)
    assert {str(u): r.value for u, r in state.members.items()}[other_address] == "admin"
    assert carl.user not in state.members
    await asyncio.sleep(1.0)
    carl_texts = [m.text for c, _ in await carl.conversations() for m in carl.history(c)]
    assert "Welcome Dora, bye Carl" not in carl_texts
    assert canary.scan([web_server.data_dir], ["Reading circle", "Book club"]) == []


async def test_disappearing_messages_leave_the_browser(
    web_server: ServerProcess, new_page: PageFactory, sdk: SdkFactory
) -> None:
    page = await new_page(web_server)
    address, _ = await sign_up(page, "eve")
    bot = await sdk("finn", profile=False)
    chat = await bot.start_chat(address)
    await bot.send_text(chat, "This one stays")
    await open_conversation(page, bot.user)
    await expect(message(page, "This one stays")).to_be_visible()

    await bot.set_timer(chat, 2)
    await bot.send_text(chat, "This one disappears")
    await expect(message(page, "This one disappears")).to_be_visible()
    await expect(message(page, "This one disappears")).to_have_count(0, timeout=15_000)
    await expect(message(page, "This one stays")).to_have_count(1)
    # and it does not come back after a reload
    await page.reload()
    await open_conversation(page, bot.user)
    await expect(message(page, "This one stays")).to_be_visible()
    await expect(message(page, "This one disappears")).to_have_count(0)
