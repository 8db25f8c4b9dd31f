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
from taube.testing.ircd import IrcPeer as Peer
from taube.testing.ircd import Ngircd
from tests.conftest import missing_service

PASSWORD = "correct horse battery staple"


async def wait_for(check: Callable[[], object], timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.05)


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
