"""``taube tui`` as a person runs it: the real command in a real terminal
(tmux, 80x24), keys typed with ``send-keys``, the screen read with
``capture-pane``; the other person is an SDK client."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from taube.client import Client
from taube.testing import ServerProcess
from taube.tui.widgets import KEYS
from tests.client.conftest import PASSWORD, Sdk
from tests.conftest import missing_service

pytestmark = pytest.mark.services


class Tmux:
    """A tmux server of the test's own (its own socket), stopped at the end."""

    def __init__(self, socket: str) -> None:
        self.socket = socket

    def __call__(self, *args: str) -> str:
        done = subprocess.run(
            ["tmux", "-L", self.socket, "-f", "/dev/null", *args],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        return done.stdout

    def screen(self) -> str:
        return self("capture-pane", "-p", "-t", "tui")

    def alive(self) -> bool:
        try:
            self("has-session", "-t", "tui")
        except subprocess.CalledProcessError:
            return False
        return True

    async def wait_for(self, text: str, timeout: float = 60.0) -> str:
        """The screen once it shows ``text`` (a program starting on a busy
        machine may take a while); on timeout, the screen as it was."""
        screen = ""
        try:
            async with asyncio.timeout(timeout):
                while text not in (screen := self.screen()):
                    await asyncio.sleep(0.1)
        except TimeoutError:
            raise AssertionError(f"{text!r} never showed; the screen:\n{screen}") from None
        return screen

    def stop(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, check=False)


async def next_text(client: Client, conversation: str, count: int) -> str:
    async with asyncio.timeout(20):
        while len(found := client.history(conversation)) < count:  # type: ignore[arg-type]
            await asyncio.sleep(0.05)
    return found[-1].text


async def test_a_person_chats_in_tmux_at_80x24(
    shared_server: ServerProcess, sdk: Sdk, tmp_path: Path
) -> None:
    if shutil.which("tmux") is None:
        missing_service("tmux is not installed (scripts/services start installs it)")
    # an address longer than the chat list is wide: the row cuts it, not wraps it
    bob = await sdk(shared_server)("bob-long")
    profile = tmp_path / "alice"
    address = f"alice{os.getpid()}tmux@example.org"
    async with Client(profile) as alice:
        await alice.register(shared_server.url, address, PASSWORD)
    chat = await bob.start_chat(address)
    await bob.send_text(chat, "hello from bob")
    await bob.flush()

    tmux = Tmux(f"taube-test-{os.getpid()}")
    command = f"{sys.executable} -m taube --profile {profile} tui"
    try:
        tmux("new-session", "-d", "-s", "tui", "-x", "80", "-y", "24", command)
        assert tmux("display", "-p", "-t", "tui", "#{pane_width}x#{pane_height}").strip() == "80x24"
        screen = await tmux.wait_for("hello from bob")
        assert KEYS in screen.splitlines()[-1]  # the keys, whole, at the bottom
        assert address in screen
        tmux("send-keys", "-t", "tui", "Enter")  # open the chat the list highlights
        await tmux.wait_for(": hello from bob")
        tmux("send-keys", "-t", "tui", "-l", "hi from tmux")
        tmux("send-keys", "-t", "tui", "Enter")
        assert await next_text(bob, chat, 2) == "hi from tmux"
        tmux("send-keys", "-t", "tui", "-l", "line one")
        tmux("send-keys", "-t", "tui", "C-j")
        tmux("send-keys", "-t", "tui", "-l", "line two")
        tmux("send-keys", "-t", "tui", "Enter")
        assert await next_text(bob, chat, 3) == "line one\nline two"
        screen = await tmux.wait_for("you: line one")
        assert "you: hi from tmux" in screen
        assert screen.index("you: hi from tmux") < screen.index("you: line one")
        # the second line of that message on the screen line below it
        below = screen.split("you: line one", 1)[1].splitlines()[1]
        assert below.split("│")[-1].strip().startswith("line two")
        await bob.send_text(chat, "bye")
        await bob.flush()
        await tmux.wait_for(": bye")
        tmux("send-keys", "-t", "tui", "C-q")
        async with asyncio.timeout(10):
            while tmux.alive():
                await asyncio.sleep(0.1)
    finally:
        tmux.stop()
