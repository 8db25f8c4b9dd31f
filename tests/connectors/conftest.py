"""Connector fixtures: a private mail server, a real Delta Chat core, and a
taube user whose second device runs the e-mail connector."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from taube.client import Client
from taube.connectors.email.account import SECRET_NAME, MailAccount
from taube.connectors.email.connector import EmailConnector
from taube.connectors.state import ConnectorState
from taube.testing import ServerProcess
from taube.testing.mailserver import MailAccount as Mailbox
from taube.testing.mailserver import MailServer

PASSWORD = "correct horse battery staple"


def account_of(box: Mailbox) -> MailAccount:
    """The connector's settings for a mailbox of the test mail server."""
    return MailAccount.on_loopback(
        box.addr, box.password, box.imap_host, box.imap_port, box.smtp_port
    )


@dataclasses.dataclass
class MailUser:
    """A taube user with a phone (where they chat) and a second device that
    runs the e-mail connector for their mailbox of the same address."""

    phone: Client
    device: Client
    mailbox: Mailbox
    connector: EmailConnector
    task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.task = asyncio.create_task(self.connector.run())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(BaseException):
                await self.task
            self.task = None


@pytest.fixture
async def mail_user(
    tmp_path: Path, server: ServerProcess, mail: MailServer
) -> AsyncIterator[MailUser]:
    """alice@example.org on taube and on the mail server, her connector running."""
    mailbox = mail.add_user("alice@example.org")
    phone = Client(tmp_path / "alice-phone")
    device = Client(tmp_path / "alice-connector")
    await phone.__aenter__()
    await device.__aenter__()
    try:
        code = await phone.register(server.url, mailbox.addr, PASSWORD)
        await device.login(server.url, mailbox.addr, PASSWORD, code)
        await phone.sync()
        await device.sync()
        account = account_of(mailbox)
        assert device.profile is not None  # kept as ``taube mail connect`` keeps it
        device.profile.put_secret(SECRET_NAME, account.to_bytes())
        state = ConnectorState(device.profile_dir / "connectors" / "email.db")
        user = MailUser(phone, device, mailbox, EmailConnector(device, account, state))
        await user.start()
        yield user
        await user.stop()
        state.close()
    finally:
        await device.__aexit__(None, None, None)
        await phone.__aexit__(None, None, None)
