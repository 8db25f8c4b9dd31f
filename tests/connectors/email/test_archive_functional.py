"""The portable history: ``taube export`` on one server, ``taube import`` on
another under a new address; every message and attachment comes along, and a
chat over e-mail goes on where it was."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest

from taube.client import Client
from taube.client.archive import ArchiveError
from taube.connectors.email.connector import EmailConnector
from taube.testing import ServerProcess
from taube.testing.canary import scan
from taube.testing.mailserver import MailServer
from tests.connectors.conftest import PASSWORD, MailUser
from tests.connectors.email.test_connector_functional import (
    inbox,
    letter,
    received,
    submit,
    wait_for,
)

pytestmark = pytest.mark.services


async def test_history_moves_to_another_server_and_the_mail_chat_goes_on(
    tmp_path: Path, server: ServerProcess, mail: MailServer, mail_user: MailUser
) -> None:
    bob = mail.add_user("bob@plain.example")
    alice = mail_user.phone
    async with Client(tmp_path / "carol") as carol:
        await carol.register(server.url, "carol@example.org", PASSWORD)
        await carol.sync()
        with_carol = await alice.start_chat(carol.user)
        await alice.send_text(with_carol, "Hallo Carol")
        await alice.flush()
        await carol.send_text(with_carol, "Hallo Alice")
        await carol.flush()
    by_mail = await alice.start_chat(bob.addr)
    paper = tmp_path / "plan.pdf"
    paper.write_bytes(b"%PDF-1.4 the plan\n")
    await alice.send_text(by_mail, "before the move")
    await alice.send_file(by_mail, paper, caption="the plan")
    await alice.flush()
    await wait_for(lambda: len(inbox(bob)) == 2)
    await submit(bob, letter(bob.addr, "alice@example.org", "got it", message_id="g@plain"))
    await received(alice, 1)
    device = mail_user.device
    await wait_for(lambda: len(device.history(by_mail)) == 3)
    await mail_user.stop()

    archive = tmp_path / "alice.taube-archive"
    steps: list[tuple[str, int, int]] = []
    code = await device.export_archive(archive, lambda *step: steps.append(step))
    assert steps  # progress was shown
    assert scan([archive], [b"before the move", b"Hallo Carol", b"the plan"]) == []

    with ServerProcess(tmp_path / "server2", env={"TAUBE_SERVER_DOMAIN": "example.net"}) as two:
        async with Client(tmp_path / "moved") as moved:
            await moved.register(two.url, "alice@example.net", PASSWORD)
            with pytest.raises(ArchiveError):
                await moved.import_archive(archive, "0000-0000-0000-0000-0000-0000")
            assert await moved.conversations() == []  # a wrong code changes nothing
            count = await moved.import_archive(archive, code)
            # (annotations count too: receipts, relays, portals)
            assert count >= len(device.history(by_mail)) + len(device.history(with_carol))
            chat = moved.find_portal("email", bob.addr)
            assert chat is not None
            shown = moved.history(chat)
            assert [m.text for m in shown] == ["before the move", "the plan", "got it"]
            assert moved.attachment_path(shown[1]).read_bytes() == paper.read_bytes()
            archived = [c for c, _ in await moved.conversations() if c != chat]
            assert len(archived) == 1
            assert [m.text for m in moved.history(archived[0])] == ["Hallo Carol", "Hallo Alice"]
            assert moved.title(archived[0]) == "carol@example.org (archive)"
            # the connector moved too: same account, same key, same chat
            await moved.sync()
            connector = EmailConnector.open(moved)
            assert connector.key.fingerprint == mail_user.connector.key.fingerprint
            running = asyncio.create_task(connector.run())
            try:
                await submit(
                    bob, letter(bob.addr, "alice@example.org", "after", message_id="a@plain")
                )
                # (the connector reads this client's events: look at the history)
                await wait_for(lambda: moved.history(chat)[-1].text == "after")
                after = moved.history(chat)[-1]
                await moved.send_text(chat, "answer from the new server", reply_to=after.id)
                await wait_for(lambda: len(inbox(bob)) == 3)
                assert inbox(bob)[-1]["In-Reply-To"] == "<a@plain>"
            finally:
                running.cancel()
                with contextlib.suppress(BaseException):
                    await running
                connector.state.close()
            assert scan([two.data_dir, two.log_path], [b"before the move", b"after"]) == []
