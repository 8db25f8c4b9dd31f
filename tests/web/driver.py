"""Driving the web app as a person would: through its screens.

Every helper finds elements by their ``data-testid`` (stable names the web
app keeps for tests) and waits for what a user would wait for.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import TracebackType

from playwright.async_api import BrowserContext, Locator, Page, WebSocketRoute, expect

from taube.client import Client, Received
from taube.testing import ServerProcess
from tests.web.conftest import PASSWORD, STEP_TIMEOUT_MS

_names = itertools.count()

#: a message the server has: sent, delivered to the other device, or read there
SENT = re.compile(r"^(sent|delivered|read)$")


def new_address(name: str) -> str:
    return f"{name}{next(_names)}w{os.getpid()}@example.org"


def code_group(code: str) -> str:
    """The last group of a recovery code (typed back to confirm it was kept)."""
    return code.strip().rsplit("-", 1)[-1]


def tid(page: Page | Locator, name: str) -> Locator:
    return page.locator(f'[data-testid="{name}"]')


async def sign_up(page: Page, name: str, device: str = "Browser") -> tuple[str, str]:
    """Create an account on this page; returns (address, recovery code)."""
    address = new_address(name)
    await tid(page, "tab-signup").click()
    await tid(page, "signup-address").fill(address)
    await tid(page, "signup-password").fill(PASSWORD)
    await tid(page, "signup-device").fill(device)
    await tid(page, "signup-submit").click()
    code = (await tid(page, "recovery-code").inner_text(timeout=STEP_TIMEOUT_MS)).strip()
    await tid(page, "recovery-typeback").fill(code_group(code))
    await tid(page, "recovery-confirm").click()
    await expect(tid(page, "new-chat")).to_be_visible()
    return address, code


async def log_in(
    page: Page, address: str, code: str, device: str = "Second browser", method: str = "recovery"
) -> None:
    """Log in with the recovery code, or (``method="link"``) with a link code
    from another device: then this returns while the page waits for it."""
    await tid(page, "tab-login").click()
    await tid(page, "login-address").fill(address)
    await tid(page, "login-password").fill(PASSWORD)
    await tid(page, f"login-method-{method}").click()
    await tid(page, "login-code").fill(code)
    await tid(page, "login-device").fill(device)
    await tid(page, "login-submit").click()
    await expect(tid(page, "new-chat" if method == "recovery" else "login-waiting")).to_be_visible()


async def start_chat(page: Page, address: str, title: str | None = None) -> None:
    """Start a direct chat; ``title``: the name the chat shows (else the address)."""
    await tid(page, "new-chat").click()
    await tid(page, "new-chat-address").fill(address)
    await tid(page, "new-chat-submit").click()
    await expect(tid(page, "new-chat-dialog")).to_have_count(0)
    # the previous chat may still be on screen: wait for this one
    await expect(tid(page, "chat-title")).to_have_text(title or address)


async def create_group(page: Page, title: str, members: list[str]) -> None:
    await tid(page, "new-group").click()
    await tid(page, "new-group-title").fill(title)
    await tid(page, "new-group-members").fill(", ".join(members))
    await tid(page, "new-group-submit").click()
    await expect(tid(page, "chat-title")).to_have_text(title)


async def open_conversation(page: Page, title: str) -> None:
    """Open the conversation whose list entry shows ``title`` (waits for it)."""
    item = tid(page, "conversation").filter(has=page.get_by_text(title, exact=True))
    await item.first.click()
    await expect(tid(page, "chat-title")).to_have_text(title)


async def send_text(page: Page, text: str) -> None:
    composer = tid(page, "composer")
    await composer.fill(text)
    await composer.press("Enter")
    await expect(message(page, text)).to_be_visible()


def message(page: Page, text: str) -> Locator:
    """The bubbles that show ``text``."""
    return tid(page, "message").filter(has_text=text)


async def message_texts(page: Page) -> list[str]:
    """The text of every bubble in the open chat, top to bottom."""
    return await tid(page, "message-text").all_inner_texts()


async def message_action(page: Page, text: str, action: str) -> None:
    """Open a message's menu and pick ``action`` (reply, copy, edit, delete)."""
    bubble = message(page, text).first
    await bubble.hover()
    await tid(bubble, "message-menu").click()
    await tid(page, f"menu-{action}").click()


async def react(page: Page, text: str, emoji: str) -> None:
    bubble = message(page, text).first
    await bubble.hover()
    await tid(bubble, "message-menu").click()
    await page.locator(f'[data-testid="reaction-pick"][data-emoji="{emoji}"]').click()


async def edit(page: Page, text: str, new_text: str) -> None:
    await message_action(page, text, "edit")
    box = tid(page, "edit-input")
    await box.fill(new_text)
    await box.press("Enter")
    await expect(message(page, new_text)).to_be_visible()


@asynccontextmanager
async def sdk_user(
    server: ServerProcess, directory: Path, name: str, *, profile: bool = True
) -> AsyncIterator[Client]:
    """A Python SDK client with a new account on ``server``, synced, shown to
    others as ``name.capitalize()`` (unless ``profile=False``); its profile
    lives in ``directory``."""
    async with Client(directory) as client:
        await client.register(server.url, new_address(name), PASSWORD)
        await client.sync()
        if profile:
            await client.set_profile(name.capitalize())
        yield client


async def received(client: Client, text: str, timeout: float = 20.0) -> Received:
    """Wait until the SDK ``client`` receives a message containing ``text``."""
    async with asyncio.timeout(timeout):
        async for event in client.events():
            if isinstance(event, Received) and text in event.message.text:
                return event
    raise AssertionError(f"no message with {text!r}")


class NetworkSwitch:
    """Takes one browser context off the network and back.

    Chromium's offline emulation (``BrowserContext.set_offline``) fails new
    requests but does not close a WebSocket that is already open: its frames
    stop until the emulation ends, and the page never learns it was cut off
    (seen with Chromium 156). So the switch also routes the page's WebSocket
    through Playwright: cutting the network closes the open socket (both
    ends, as a lost connection would) and refuses new ones until the network
    is back; HTTP requests go through the offline emulation.

    Install it before the page opens its WebSocket (before signing up, or
    reload after): sockets opened earlier are not routed.
    """

    def __init__(self, context: BrowserContext) -> None:
        self.context = context
        self.offline = False
        self._open: list[tuple[WebSocketRoute, WebSocketRoute]] = []

    async def __aenter__(self) -> NetworkSwitch:
        await self.context.route_web_socket(re.compile(r"/api/v1/ws$"), self._route)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.offline:
            await self.restore()

    async def _route(self, page_side: WebSocketRoute) -> None:
        if self.offline:
            await page_side.close(code=1001, reason="offline")
            return
        self._open.append((page_side, page_side.connect_to_server()))

    async def cut(self) -> None:
        """Close the open WebSocket and fail every new request."""
        self.offline = True
        await self.context.set_offline(True)
        opened, self._open = self._open, []
        for page_side, server_side in opened:
            await server_side.close(code=1001, reason="offline")
            await page_side.close(code=1001, reason="offline")

    async def restore(self) -> None:
        """The network is back: the page reconnects by itself."""
        self.offline = False
        await self.context.set_offline(False)


async def wait_offline(page: Page) -> None:
    await expect(tid(page, "connection-banner").first).to_have_attribute("data-state", "offline")


async def wait_online(page: Page) -> None:
    """The banner goes once the server has welcomed the page again."""
    await expect(tid(page, "connection-banner")).to_have_count(0)
