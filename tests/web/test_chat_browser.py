"""Two browsers sign up and chat, 1:1 and in a group, through the screens."""

from __future__ import annotations

from playwright.async_api import expect

from taube.testing import ServerProcess, canary
from tests.web.conftest import PageFactory
from tests.web.driver import (
    create_group,
    edit,
    message,
    message_action,
    open_conversation,
    react,
    send_text,
    sign_up,
    start_chat,
    tid,
)


async def test_direct_chat_text_reaction_edit_delete_receipt(
    web_server: ServerProcess, new_page: PageFactory
) -> None:
    alice = await new_page(web_server)
    bob = await new_page(web_server)
    alice_address, _ = await sign_up(alice, "alice")
    bob_address, _ = await sign_up(bob, "bob")

    await start_chat(alice, bob_address)
    secret = "a canary that must never reach the server in clear 7c1f"
    await send_text(alice, f"Hello Bob! {secret}")
    # Bob's browser has it (he has not opened the chat): two grey ticks
    await expect(message(alice, secret)).to_have_attribute("data-status", "delivered")

    await open_conversation(bob, alice_address)
    await expect(message(bob, secret)).to_have_count(1)

    # a reply from Bob, read by Alice: Bob sees the read ticks
    await send_text(bob, "Hi Alice, nice to see you here")
    await expect(message(alice, "nice to see you here")).to_be_visible()
    await expect(message(bob, "nice to see you here")).to_have_attribute("data-status", "read")

    # a reaction, an edit and a delete for everyone, seen on the other side
    await react(bob, secret, "👍")
    reaction = message(alice, secret).locator('[data-testid="reaction"]')
    await expect(reaction).to_have_attribute("data-emoji", "👍")
    await expect(reaction).to_have_attribute("data-count", "1")

    await edit(alice, secret, "Hello Bob! (edited greeting)")
    edited = message(bob, "(edited greeting)")
    await expect(edited.locator('[data-testid="message-edited"]')).to_be_visible()

    await message_action(alice, "(edited greeting)", "delete")
    confirm = tid(alice, "confirm-ok")
    if await confirm.count():
        await confirm.click()
    await expect(message(bob, "(edited greeting)")).to_have_count(0)
    await expect(tid(bob, "message-deleted")).to_have_count(1)

    # nothing shown twice after a reload (the profile is in IndexedDB)
    await bob.reload()
    await open_conversation(bob, alice_address)
    await expect(message(bob, "nice to see you here")).to_have_count(1)

    # no plaintext at rest on the server
    assert canary.scan([web_server.data_dir], [secret, "nice to see you here"]) == []


async def test_group_chat_between_browsers(
    web_server: ServerProcess, new_page: PageFactory
) -> None:
    pages = [await new_page(web_server) for _ in range(3)]
    addresses = [(await sign_up(page, name))[0] for page, name in zip(pages, "abc", strict=True)]
    owner, ben, cat = pages

    await create_group(owner, "Weekend trip", addresses[1:])
    await send_text(owner, "Who brings the tent?")
    for page in (ben, cat):
        await open_conversation(page, "Weekend trip")
        await expect(message(page, "Who brings the tent?")).to_have_count(1)
    await send_text(cat, "I do")
    await expect(message(owner, "I do")).to_be_visible()
    await expect(message(ben, "I do")).to_be_visible()
    assert canary.scan([web_server.data_dir], ["Who brings the tent?", "Weekend trip"]) == []


async def test_a_second_tab_does_not_run_a_second_engine(
    web_server: ServerProcess, new_page: PageFactory
) -> None:
    """Two engines on one profile would both send from the outbox."""
    first = await new_page(web_server)
    await sign_up(first, "tab")
    second = await first.context.new_page()
    await second.goto(web_server.url + "/")
    await expect(second.get_by_text("already open in another tab")).to_be_visible()
    await second.close()
    await expect(tid(first, "new-chat")).to_be_visible()
