"""IRC fixtures: a private ngIRCd, a taube user whose second device runs
the IRC connector, and a plain IRC client (a raw socket) as the other person."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from taube.client import Client
from taube.connectors.control import State
from taube.connectors.irc.account import SECRET_NAME, IrcAccount
from taube.connectors.irc.connector import IrcNetwork
from taube.connectors.retry import Backoff
from taube.connectors.runner import ConnectorRunner
from taube.connectors.state import ConnectorState
from taube.testing import ServerProcess
from taube.testing.ircd import Ngircd
from tests.conftest import missing_service

PASSWORD = "correct horse battery staple"


async def wait_for(check: Callable[[], object], timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.05)


class Peer:
    """Someone on IRC with a plain client: lines in, lines out, nothing hidden."""

    def __init__(self, port: int, nick: str) -> None:
        self.port = port
        self.nick = nick
        self.lines: list[str] = []
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None

    async def connect(self, password: str = "") -> Peer:
        self._reader, self._writer = await asyncio.open_connection("127.0.0.1", self.port)
        self._task = asyncio.create_task(self._read())
        if password:
            await self.send(f"PASS {password}")
        await self.send(f"NICK {self.nick}", f"USER {self.nick} 0 * :{self.nick}")
        await wait_for(lambda: any(" 001 " in line for line in self.lines))
        return self

    async def _read(self) -> None:
        assert self._reader is not None
        while line := await self._reader.readline():
            text = line.decode("utf-8", "replace").rstrip("\r\n")
            if text.startswith("PING"):
                await self.send("PONG" + text[4:])
            self.lines.append(text)

    async def send(self, *lines: str | bytes) -> None:
        assert self._writer is not None
        for line in lines:
            self._writer.write(line if isinstance(line, bytes) else line.encode() + b"\r\n")
        await self._writer.drain()

    def said(self, command: str = "PRIVMSG", target: str | None = None) -> list[tuple[str, str]]:
        """``(nick, text)`` of every ``command`` to ``target`` (default: us) seen so far."""
        found = []
        for line in self.lines:
            if not line.startswith(":"):
                continue
            source, _, rest = line[1:].partition(" ")
            verb, _, rest = rest.partition(" ")
            to, _, text = rest.partition(" :")
            if verb == command and to.lower() == (target or self.nick).lower():
                found.append((source.partition("!")[0], text))
        return found

    async def close(self) -> None:
        if self._writer is not None:
            with contextlib.suppress(OSError):
                await self.send("QUIT :bye")
            self._writer.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task


@dataclasses.dataclass
class IrcUser:
    """A taube user with a phone and a second device that runs the IRC
    connector for their IRC nick."""

    phone: Client
    device: Client
    account: IrcAccount
    network: IrcNetwork
    runner: ConnectorRunner
    statuses: list[tuple[State, str]]
    task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.task = asyncio.create_task(self.runner.run())
        await wait_for(lambda: self.runner.status[0] is State.CONNECTED)

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(BaseException):
                await self.task
            self.task = None


@pytest.fixture
def ircd(tmp_path: Path) -> Iterator[Ngircd]:
    reason = Ngircd.missing()
    if reason:
        missing_service(reason)
    with Ngircd(tmp_path / "ircd") as running:
        yield running


@pytest.fixture
async def peers(ircd: Ngircd) -> AsyncIterator[Callable[[str], Peer]]:
    made: list[Peer] = []

    def make(nick: str) -> Peer:
        peer = Peer(ircd.port, nick)
        made.append(peer)
        return peer

    yield make
    for peer in made:
        await peer.close()


async def irc_user_for(
    tmp_path: Path, server: ServerProcess, account: IrcAccount
) -> tuple[Client, Client, IrcUser]:
    phone = Client(tmp_path / "alice-phone")
    device = Client(tmp_path / "alice-irc")
    await phone.__aenter__()
    await device.__aenter__()
    code = await phone.register(server.url, "alice@example.org", PASSWORD)
    await device.login(server.url, "alice@example.org", PASSWORD, code)
    await phone.sync()
    await device.sync()
    assert device.profile is not None  # kept as ``taube connect irc`` keeps it
    device.profile.put_secret(SECRET_NAME, account.to_bytes())
    state = ConnectorState(device.profile_dir / "connectors" / "irc.db")
    network = IrcNetwork(account)
    statuses: list[tuple[State, str]] = []
    runner = ConnectorRunner(
        device,
        network,
        state,
        on_status=lambda s, e: statuses.append((s, e)),
        backoff=Backoff(initial=0.2, cap=1.0),
    )
    return phone, device, IrcUser(phone, device, account, network, runner, statuses)


@pytest.fixture
async def irc_user(tmp_path: Path, server: ServerProcess, ircd: Ngircd) -> AsyncIterator[IrcUser]:
    """alice on taube, her IRC connector logged in to the ngIRCd as ``alice``
    and in ``#taube``."""
    account = IrcAccount(
        host="127.0.0.1", port=ircd.port, tls=False, nick="alice", channels=["#taube"]
    )
    phone, device, user = await irc_user_for(tmp_path, server, account)
    try:
        await user.start()
        yield user
        await user.stop()
        user.runner.state.close()
    finally:
        await device.__aexit__(None, None, None)
        await phone.__aexit__(None, None, None)
