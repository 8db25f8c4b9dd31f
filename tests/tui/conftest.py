"""The terminal UI against a real server, with real SDK clients as the peers.

``TaubeApp`` runs under Textual's pilot in the test's event loop, on a
client the ``sdk`` fixture made (so the app and the peers share the loop,
as the app and its client do in ``taube tui``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from taube.client import Client
from taube.proto.ids import ConversationId
from taube.tui import TaubeApp
from taube.tui.widgets import ChatItem, MessageItem
from tests.client.conftest import SdkFactory, sdk
from tests.client.test_messaging_functional import texts_of

__all__ = ["sdk"]

#: a person's terminal over SSH
SIZE = (80, 24)

#: the ``tui`` fixture: ``async with tui(client) as (app, pilot)``
RunTui = Callable[[Client], AbstractAsyncContextManager[tuple["CountingApp", Pilot[None]]]]


@pytest.fixture
def tui(tmp_path: Path) -> RunTui:
    """``async with tui(client) as (app, pilot)``: the app at 80x24, files
    saved under ``tmp_path/saved``, the bell counted in ``app.rung``."""

    @asynccontextmanager
    async def run(client: Client) -> AsyncIterator[tuple[CountingApp, Pilot[None]]]:
        saved = tmp_path / "saved"
        saved.mkdir(exist_ok=True)
        app = CountingApp(client, save_dir=saved)
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            await pilot.pause()
            yield app, pilot

    return run


class CountingApp(TaubeApp):
    """The app, with the terminal bell counted (the pilot has no terminal)
    and every note (toast) kept as ``title|text`` in ``notes``."""

    def __init__(self, client: Client, save_dir: Path) -> None:
        super().__init__(client, save_dir=save_dir)
        self.rung = 0
        self.notes: list[str] = []

    def bell(self) -> None:
        self.rung += 1
        super().bell()

    def notify(self, message: str, *, title: str = "", **kwargs: Any) -> None:
        self.notes.append(f"{title}|{message}")
        super().notify(message, title=title, **kwargs)


async def until(
    pilot: Pilot[None], condition: Callable[[], object], timeout: float = 15.0, what: str = ""
) -> None:
    """Let the app run until ``condition()`` holds."""
    try:
        async with asyncio.timeout(timeout):
            while not condition():
                await pilot.pause(0.05)
    except TimeoutError:
        raise AssertionError(f"not within {timeout} s: {what or condition}") from None


def shown_texts(app: TaubeApp) -> list[str]:
    """The messages on screen, oldest first (their text)."""
    return [item.message.text for item in app.message_list.query(MessageItem)]


def chat_rows(app: TaubeApp) -> list[tuple[str, str, int]]:
    """The chat list: (title, badge, unread) per row, top first."""
    return [(item.chat.title, item.chat.badge, item.chat.unread) for item in app.query(ChatItem)]


async def chat_with_alice(
    make: SdkFactory, *texts: str, alice: Client | None = None
) -> tuple[Client, Client, ConversationId]:
    """alice (or the given one), bob, and their chat with ``texts`` from
    bob in it, which alice has."""
    alice = alice or await make("alice")
    bob = await make("bob")
    chat = await bob.start_chat(alice.user)
    for text in texts:
        await bob.send_text(chat, text)
    await bob.flush()
    await texts_of(alice, chat, len(texts))
    return alice, bob, chat
