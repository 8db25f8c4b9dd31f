"""Portals in the browser: chats with people on e-mail.

An SDK device of the browser user's own account (logged in with the
recovery code) plays the e-mail connector: it claims a portal, brings a
remote person's message in and says how the browser's messages went out.
The browser shows the remote author as such, the e-mail badge, and
"encrypted" / "not encrypted" under its own messages; a chat the browser
starts with an address on another domain is the portal the SDK reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page, expect

from taube.client import Client
from taube.client import events as ev
from taube.client.portals import EMAIL
from taube.proto.ids import ConversationId
from taube.testing import ServerProcess
from tests.web.conftest import ARTIFACTS, PASSWORD, PageFactory
from tests.web.driver import SENT, message, open_conversation, received, send_text, sign_up, tid

JONAS = "jonas.weber@mailbox.example"
REMOTE = {"network": EMAIL, "sender": JONAS, "name": "Jonas Weber", "encrypted": True}
PHONE = (360, 740)
DESKTOP = (1280, 800)


#: ``device = await own_device(address, recovery_code)``
OwnDevice = Callable[[str, str], Awaitable[Client]]


@pytest.fixture
async def own_device(tmp_path: Path, web_server: ServerProcess) -> AsyncIterator[OwnDevice]:
    """An SDK device of the browser user's own account (logged in with the
    recovery code, as a second device): here it plays the e-mail connector."""
    async with contextlib.AsyncExitStack() as stack:

        async def make(address: str, code: str) -> Client:
            client = await stack.enter_async_context(Client(tmp_path / "connector"))
            await client.login(web_server.url, address, PASSWORD, code, "E-mail connector")
            await client.sync()
            return client

        yield make


async def shoot(page: Page, name: str, size: tuple[int, int]) -> Path:
    await page.set_viewport_size({"width": size[0], "height": size[1]})
    await page.mouse.move(size[0] - 1, size[1] - 1)  # no hover effects
    await page.wait_for_timeout(300)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    await page.screenshot(path=path)
    return path


async def test_a_portal_chat_shows_the_remote_sender_and_how_messages_went_out(
    web_server: ServerProcess, new_page: PageFactory, own_device: OwnDevice
) -> None:
    page = await new_page(web_server)
    address, code = await sign_up(page, "mara")
    device = await own_device(address, code)

    # (a) the connector claims a portal and brings Jonas's mail in
    chat = await device.open_portal(ev.Portal(EMAIL, JONAS, (JONAS,), "Jonas Weber", device.device))
    await device.send(chat, ev.TEXT, {"body": "Hi Mara, here are the photos", "remote": REMOTE})
    await device.flush()

    item = tid(page, "conversation").filter(has_text="Jonas Weber")
    await expect(tid(item, "portal-badge")).to_have_text(re.compile("e-mail"))
    await open_conversation(page, "Jonas Weber")
    await expect(tid(page, "chat-subtitle")).to_have_text(JONAS)
    await expect(tid(tid(page, "chat"), "portal-badge")).to_be_visible()
    await expect(tid(page, "portal-waiting")).to_have_count(0)  # the connector serves it
    incoming = message(page, "here are the photos")
    await expect(incoming).to_have_attribute("data-mine", "false")
    await expect(incoming).to_have_attribute("data-remote-sender", JONAS)
    await expect(tid(incoming, "message-sender")).to_have_text(re.compile("Jonas Weber"))
    await expect(tid(incoming, "ticks")).to_have_count(0)
    await tid(page, "chat-info").click()
    await expect(tid(page, "portal-info")).to_contain_text(JONAS)
    await tid(page, "panel-close").click()

    # (b) the browser answers; the connector sends it on, once without
    # encryption (no key of Jonas known), once encrypted, once not at all
    lines: dict[str, dict[str, Any]] = {
        "Thanks, they look great!": {"encrypted": False},
        "Can you send the rest too?": {"encrypted": True},
        "See you on Sunday": {"encrypted": False, "error": "550 mailbox unavailable"},
    }
    for text, how in lines.items():
        await send_text(page, text)
        await expect(message(page, text)).to_have_attribute("data-status", SENT)
        mine = (await received(device, text)).message
        assert mine.conversation == chat
        assert mine.remote is None
        await device.send(chat, ev.RELAY, {"target": mine.id, "network": EMAIL, **how})
    await device.flush()

    plain = tid(message(page, "they look great"), "message-relay")
    await expect(plain).to_have_text(re.compile(r"sent by e-mail · not encrypted$"))
    await expect(plain).to_have_attribute("data-state", "plain")
    encrypted = tid(message(page, "send the rest"), "message-relay")
    await expect(encrypted).to_have_text(re.compile(r"sent by e-mail · encrypted$"))
    failed = tid(message(page, "See you on Sunday"), "message-relay")
    await expect(failed).to_have_text(
        re.compile("could not be sent by e-mail: 550 mailbox unavailable")
    )
    # the SDK sees the same
    relayed = {m.text: m.relayed for m in device.history(chat)}
    assert relayed["Thanks, they look great!"] == ev.Relayed(EMAIL, encrypted=False)

    # a remote reply to the browser's message
    first = next(m for m in device.history(chat) if m.text == "Can you send the rest too?")
    await device.send(
        chat, ev.TEXT, {"body": "Sure, tonight 👍", "remote": REMOTE, "reply_to": first.id}
    )
    reply = message(page, "Sure, tonight")
    await expect(tid(reply, "reply-quote")).to_contain_text("Can you send the rest too?")
    await expect(reply).to_have_attribute("data-mine", "false")

    for size, name in ((PHONE, "portal-chat-360"), (DESKTOP, "portal-chat-desktop")):
        path = await shoot(page, name, size)
        assert path.stat().st_size > 0
    await page.emulate_media(color_scheme="dark")
    await shoot(page, "portal-chat-360-dark", PHONE)
    await page.emulate_media(color_scheme="light")
    await page.go_back()
    await expect(tid(page, "chat")).to_have_count(0)
    await shoot(page, "portal-chat-list-360", PHONE)


async def test_starting_a_chat_with_an_address_elsewhere_opens_an_email_portal(
    web_server: ServerProcess, new_page: PageFactory, own_device: OwnDevice
) -> None:
    page = await new_page(web_server)
    address, code = await sign_up(page, "otto")
    device = await own_device(address, code)
    someone = "someone@elsewhere.example"

    # (c) the dialog says where the chat goes, and opens the portal
    await tid(page, "new-chat").click()
    await tid(page, "new-chat-address").fill(someone)
    await expect(tid(page, "new-chat-hint")).to_have_text(
        re.compile("Not on this server: the chat goes by e-mail through your connector")
    )
    await shoot(page, "portal-new-chat-360", PHONE)
    await tid(page, "new-chat-submit").click()
    await expect(tid(page, "chat-title")).to_have_text(someone)
    await expect(tid(tid(page, "chat"), "portal-badge")).to_be_visible()
    await expect(tid(page, "portal-waiting")).to_contain_text("taube mail connect")
    await shoot(page, "portal-waiting-360", PHONE)

    # the SDK device reads the same portal, unclaimed, in a group of its own
    async with asyncio.timeout(20):
        while (found := device.find_portal(EMAIL, someone)) is None:
            await asyncio.sleep(0.2)
    conversation = ConversationId(found)
    assert device.portal(conversation) == ev.Portal(EMAIL, someone, (someone,), someone, None)
    state = await device.state(conversation)
    assert list(state.members) == [address]
    async with asyncio.timeout(20):
        while device.title(conversation) != someone:
            await asyncio.sleep(0.2)

    # starting it again opens the same chat
    await page.go_back()
    await tid(page, "new-chat").click()
    await tid(page, "new-chat-address").fill(someone.upper())
    await tid(page, "new-chat-submit").click()
    await expect(tid(page, "chat-title")).to_have_text(someone)
    await expect(tid(page, "conversation")).to_have_count(1)

    # the connector claims it: the banner goes
    claimed = ev.Portal(EMAIL, someone, (someone,), someone, device.device)
    await device.update_portal(conversation, claimed)
    await expect(tid(page, "portal-waiting")).to_have_count(0)

    # an address on the user's own domain is still a taube chat
    await page.go_back()
    await tid(page, "new-chat").click()
    await tid(page, "new-chat-address").fill("nobody@example.org")
    await expect(tid(page, "new-chat-hint")).not_to_contain_text("e-mail through")
    await tid(page, "new-chat-submit").click()
    await expect(page.get_by_text("has no taube account here")).to_be_visible()


def test_web_message_types_match_the_sdk() -> None:
    """The web client names portal and relay as taube.client.events does (the
    types come from the generated web/src/gen/proto.ts, drift-checked)."""
    web = Path(__file__).resolve().parents[2] / "web/src"
    generated = (web / "gen/proto.ts").read_text()
    assert f'  portal: "{ev.PORTAL}",' in generated
    assert f'  relay: "{ev.RELAY}",' in generated
    source = (web / "client/portals.ts").read_text()
    assert "export const PORTAL = MESSAGE_TYPE.portal;" in source
    assert f'export const EMAIL = "{EMAIL}";' in source
