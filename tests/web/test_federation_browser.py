"""The web app on a.test chats with an SDK user on b.test (federation)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.async_api import Page, expect

from taube.client import Client
from tests.federation.conftest import Servers
from tests.web.conftest import ARTIFACTS, PASSWORD, PageFactory
from tests.web.driver import code_group, message, received, send_text, tid

PHONE = (360, 740)
DESKTOP = (1280, 800)


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Servers]:
    running = Servers(tmp_path)
    try:
        yield running
    finally:
        running.stop()


async def _sign_up(page: Page, address: str) -> None:
    await tid(page, "tab-signup").click()
    await tid(page, "signup-address").fill(address)
    await tid(page, "signup-password").fill(PASSWORD)
    await tid(page, "signup-device").fill("Browser")
    await tid(page, "signup-submit").click()
    code = (await tid(page, "recovery-code").inner_text()).strip()
    await tid(page, "recovery-typeback").fill(code_group(code))
    await tid(page, "recovery-confirm").click()
    await expect(tid(page, "new-chat")).to_be_visible()


async def _shoot(page: Page, name: str, size: tuple[int, int]) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.set_viewport_size({"width": size[0], "height": size[1]})
    await page.screenshot(path=ARTIFACTS / f"{name}.png")


async def test_the_web_app_chats_with_someone_on_another_server(
    servers: Servers, new_page: PageFactory, tmp_path: Path
) -> None:
    servers.start(["a.test", "b.test"])
    page = await new_page(servers["a.test"])
    await _sign_up(page, f"ana{os.getpid()}@a.test")
    async with Client(tmp_path / "bob") as bob:
        await bob.register(servers["b.test"].url, f"bob{os.getpid()}@b.test", PASSWORD)
        await bob.sync()
        await bob.set_profile("Bob")

        await tid(page, "new-chat").click()
        await tid(page, "new-chat-address").fill(bob.user)
        hint = tid(page, "new-chat-hint")
        await expect(hint).to_have_text(
            "On another taube server (…@b.test): a chat like any other."
        )
        await expect(hint).to_have_attribute("data-network", "taube")
        await _shoot(page, "federation-new-chat-360", PHONE)
        await tid(page, "new-chat-submit").click()
        await expect(tid(page, "new-chat-dialog")).to_have_count(0)
        await expect(tid(tid(page, "chat"), "portal-badge")).to_have_count(0)  # not e-mail

        await send_text(page, "hello b.test")
        first = await received(bob, "hello b.test", timeout=30)
        await bob.send_text(first.message.conversation, "hello a.test")
        await bob.flush()
        await expect(message(page, "hello a.test")).to_be_visible(timeout=30_000)
        await _shoot(page, "federation-chat-360", PHONE)
        await _shoot(page, "federation-chat-desktop", DESKTOP)
