"""Setting the connector up from another device (``taube mail run`` without an
account, configured by the user's phone over Olm to-device messages), against
a real taube server and a real Postfix + Dovecot. The web app's settings
screen speaks the same messages (``tests/web/test_mail_settings_browser.py``)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from taube.client import Client
from taube.connectors import control
from taube.connectors.control import State
from taube.connectors.email.account import SECRET_NAME
from taube.connectors.email.service import MailService
from taube.crypto import VerifiedDevice
from taube.testing import ServerProcess
from taube.testing.canary import scan
from taube.testing.mailserver import MailAccount as Mailbox
from taube.testing.mailserver import MailServer
from tests.connectors.conftest import PASSWORD, account_of
from tests.connectors.email.test_connector_functional import inbox, letter, submit, wait_for

pytestmark = pytest.mark.services


class Screen:
    """What a settings screen on a device of the user's sees: the statuses
    the connector devices send it."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.heard: list[tuple[str, dict[str, Any]]] = []
        client.handle_to_device(control.PREFIX, self._on)

    async def _on(self, sender: VerifiedDevice, type_: str, content: dict[str, Any]) -> None:
        if type_ == control.STATUS:
            self.heard.append((sender.device, content))

    async def ask(self, device: VerifiedDevice, type_: str, content: dict[str, Any]) -> None:
        await self.client.send_to_device(device, type_, content)

    async def answer(self, request: str, outcome: str, timeout: float = 30.0) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                for _, status in self.heard:
                    if status.get("request") == request and status.get("outcome") == outcome:
                        return status
                await asyncio.sleep(0.05)

    async def state(self, state: str, timeout: float = 30.0) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                if self.heard and self.heard[-1][1]["state"] == state:
                    return self.heard[-1][1]
                await asyncio.sleep(0.05)


@pytest.fixture
async def clients(tmp_path: Path) -> AsyncIterator[contextlib.AsyncExitStack]:
    async with contextlib.AsyncExitStack() as stack:
        yield stack


def settings_of(box: Mailbox, password: str) -> dict[str, Any]:
    """What a settings screen sends for a mailbox of the test mail server."""
    return {
        "address": box.addr,
        "password": password,
        "imap_host": box.imap_host,
        "imap_port": box.imap_port,
        "imap_security": "plain",
        "smtp_host": box.smtp_host,
        "smtp_port": box.smtp_port,
        "smtp_security": "plain",
    }


@contextlib.asynccontextmanager
async def serving(service: MailService) -> AsyncIterator[MailService]:
    """``service`` running (what ``taube mail run`` runs) until the block ends."""
    running = asyncio.create_task(service.run())
    try:
        yield service
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running


async def test_the_phone_sets_up_the_connector_and_a_wrong_password_changes_nothing(
    tmp_path: Path, server: ServerProcess, mail: MailServer, clients: contextlib.AsyncExitStack
) -> None:
    box = mail.add_user("alice@example.org")
    bob = mail.add_user("bob@plain.example")
    phone = await clients.enter_async_context(Client(tmp_path / "phone"))
    device = await clients.enter_async_context(Client(tmp_path / "connector"))
    code = await phone.register(server.url, box.addr, PASSWORD)
    await device.login(server.url, box.addr, PASSWORD, code, "Mail connector")
    screen = Screen(phone)
    await phone.sync()
    await device.sync()
    async with serving(MailService(device)) as service:
        # the connector says hello to the user's devices: not set up yet
        hello = await screen.state(State.UNCONFIGURED)
        assert hello["network"] == "email"
        assert "address" not in hello
        [connector] = await phone.own_devices()
        assert connector.device == device.device

        settings = settings_of(box, "not the password")
        # (a) a wrong password: "auth failed", and nothing kept
        await screen.ask(
            connector, control.CONFIGURE, {"request": "r1", "network": "email", "account": settings}
        )
        refused = await screen.answer("r1", State.AUTH_FAILED)
        assert refused["state"] == State.UNCONFIGURED
        assert "refused" in refused["reason"]
        assert device.profile is not None
        assert device.profile.get_secret(SECRET_NAME) is None

        # (b) bad requests: a clear answer, nothing changed
        await screen.ask(
            connector,
            control.CONFIGURE,
            {"request": "r2", "network": "email", "account": {**settings, "sneaky": 1}},
        )
        assert "bad request" in (await screen.answer("r2", State.FAILED))["reason"]
        await screen.ask(
            connector,
            control.CONFIGURE,
            {"request": "r3", "network": "email", "account": {**settings, "imap_port": 70000}},
        )
        assert "not a port" in (await screen.answer("r3", State.FAILED))["reason"]
        await screen.ask(connector, control.PREFIX + "launch", {"request": "r4"})
        assert "unknown request" in (await screen.answer("r4", State.FAILED))["reason"]
        assert device.profile.get_secret(SECRET_NAME) is None

        # (c) the right one: checked, kept, connected
        settings["password"] = box.password
        await screen.ask(
            connector, control.CONFIGURE, {"request": "r5", "network": "email", "account": settings}
        )
        done = await screen.answer("r5", State.CONNECTED)
        assert done["address"] == box.addr
        status = await screen.state(State.CONNECTED)
        assert status["fingerprint"]

        # (d) a wrong password now still changes nothing: the old account stays
        await screen.ask(
            connector,
            control.CONFIGURE,
            {"request": "r6", "network": "email", "account": {**settings, "password": "x"}},
        )
        assert (await screen.answer("r6", State.AUTH_FAILED))["state"] == State.CONNECTED
        assert service.connector is not None
        assert service.connector.account.password == box.password

        # (e) mail goes out and comes back through the connector set up so
        chat = await phone.start_chat(bob.addr)
        await phone.send_text(chat, "Grüße aus dem Zug")
        await phone.flush()
        await wait_for(lambda: len(inbox(bob)) == 1, timeout=30)
        assert inbox(bob)[0].get_content().strip() == "Grüße aus dem Zug"

        # (f) disconnect: the account is forgotten
        await screen.ask(connector, control.DISCONNECT, {"request": "r7", "network": "email"})
        await screen.answer("r7", State.UNCONFIGURED)
        await screen.state(State.UNCONFIGURED)
        assert device.profile.get_secret(SECRET_NAME) is None
        # the password never reached the taube server in the clear
        assert scan([server.data_dir, server.log_path], [box.password.encode()]) == []


async def test_only_the_users_own_devices_may_configure_the_connector(
    tmp_path: Path, server: ServerProcess, mail: MailServer, clients: contextlib.AsyncExitStack
) -> None:
    box = mail.add_user("alice@example.org")
    phone = await clients.enter_async_context(Client(tmp_path / "phone"))
    device = await clients.enter_async_context(Client(tmp_path / "connector"))
    mallory = await clients.enter_async_context(Client(tmp_path / "mallory"))
    code = await phone.register(server.url, box.addr, PASSWORD)
    await device.login(server.url, box.addr, PASSWORD, code, "Mail connector")
    await mallory.register(server.url, "mallory@example.org", PASSWORD)
    spy = Screen(mallory)
    await device.sync()
    await mallory.sync()
    async with serving(MailService(device)) as service:
        await wait_for(lambda: service.state == State.UNCONFIGURED)
        found = await mallory.keys.devices_of([device.user])
        target = next(d for d in found if d.device == device.device)
        settings = settings_of(box, box.password)
        for type_, content in (
            (control.QUERY, {"request": "m1"}),
            (control.CONFIGURE, {"request": "m2", "network": "email", "account": settings}),
            (control.DISCONNECT, {"request": "m3", "network": "email"}),
        ):
            await spy.ask(target, type_, content)
        await asyncio.sleep(2)
        assert spy.heard == []  # no answer, not even "who is there"
        assert device.profile is not None
        assert device.profile.get_secret(SECRET_NAME) is None
        assert service.state == State.UNCONFIGURED


class CuttableLine:
    """A TCP relay to the IMAP server that the test can cut and mend, as a
    network that drops a connection (the server does not say goodbye)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def open(self) -> int:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream = await asyncio.open_connection("127.0.0.1", self.target_port)
        self._writers += [writer, upstream]

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.IncompleteReadError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            sink.close()

        await asyncio.gather(pipe(reader, upstream), pipe(upstream_reader, writer))

    async def cut(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()
        self._writers = []
        await self._server.wait_closed()


async def test_a_dropped_mailbox_shows_as_reconnecting_and_nothing_is_lost(
    tmp_path: Path, server: ServerProcess, mail: MailServer, clients: contextlib.AsyncExitStack
) -> None:
    """A connection that drops during IDLE is noticed at once (not after the
    IDLE renewal), the status says so, and the connector comes back."""
    box = mail.add_user("alice@example.org")
    bob = mail.add_user("bob@plain.example")
    line = CuttableLine(box.imap_port)
    port = await line.open()
    device = await clients.enter_async_context(Client(tmp_path / "connector"))
    await device.register(server.url, box.addr, PASSWORD)
    assert device.profile is not None
    account = msgspec.structs.replace(account_of(box), imap_port=port)
    device.profile.put_secret(SECRET_NAME, account.to_bytes())
    await device.sync()
    seen: list[tuple[State, str]] = []
    service = MailService(device, on_status=lambda s: seen.append((s.state, s.error)))
    try:
        async with serving(service):
            await wait_for(lambda: service.state == State.CONNECTED, 30)
            chat = await device.start_chat(bob.addr)
            await line.cut()
            await wait_for(lambda: service.state == State.RECONNECTING, 10)
            assert (State.RECONNECTING, "the IMAP server closed the connection") in seen
            away = "while you were away"
            await submit(bob, letter(bob.addr, box.addr, away, message_id="w@plain"))
            await line.open()  # the network is back
            await wait_for(lambda: service.state == State.CONNECTED, 90)
            await wait_for(lambda: any(m.text == away for m in device.history(chat)), 30)
            assert [m.text for m in device.history(chat)].count(away) == 1
            # (each failed attempt meanwhile may say why, as a reconnecting of its own)
            states = [state for state, _ in seen]
            changes = [b for a, b in zip([None, *states], states, strict=False) if a != b]
            assert changes[-3:] == [State.CONNECTED, State.RECONNECTING, State.CONNECTED]
    finally:
        await line.cut()
