"""``taube mail`` in a terminal: connect an account, relay, and survive a
SIGKILL in the middle of fetching 200 mails with each shown exactly once."""

from __future__ import annotations

import asyncio
import email.message
import os
import signal
import smtplib
import subprocess
import sys
import time
from pathlib import Path

import pytest

from taube.client import Client
from taube.proto.ids import ConversationId
from taube.testing import ServerProcess
from taube.testing.deltachat import DeltaChatCore
from taube.testing.mailserver import MailServer
from tests.connectors.conftest import PASSWORD
from tests.connectors.email.test_connector_functional import inbox, wait_for

pytestmark = [pytest.mark.services, pytest.mark.slow]

MAILS = 200


def taube(profile: Path, *args: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "taube", "--profile", str(profile), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **(env or {})},
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def run_connector(profile: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "taube", "--profile", str(profile), "mail", "run", "--progress"],
            stdout=subprocess.DEVNULL,
            stderr=sink,
        )


def brought_in(log: Path) -> int:
    """The last "N in" count the connector printed."""
    counts = [
        int(line.split(" in,")[0].rsplit(" ", 1)[1])
        for line in log.read_text().splitlines()
        if line.startswith("mail: ") and " in," in line
    ]
    return counts[-1] if counts else 0


async def test_sigkill_during_a_fetch_of_200_mails_loses_nothing_and_shows_nothing_twice(
    tmp_path: Path, server: ServerProcess, mail: MailServer
) -> None:
    box = mail.add_user("alice@example.org")
    erin = mail.add_user("erin@plain.example")
    async with Client(tmp_path / "phone") as phone:
        code = await phone.register(server.url, box.addr, PASSWORD)
        async with Client(tmp_path / "device") as device:
            await device.login(server.url, box.addr, PASSWORD, code)
        out = taube(
            tmp_path / "device",
            "mail",
            "connect",
            box.addr,
            "--imap-host",
            box.imap_host,
            "--imap-port",
            str(box.imap_port),
            "--imap-security",
            "plain",
            "--smtp-host",
            box.smtp_host,
            "--smtp-port",
            str(box.smtp_port),
            "--smtp-security",
            "plain",
            env={"TAUBE_MAIL_PASSWORD": box.password},
        )
        assert "its OpenPGP key is" in out

        def send_all() -> None:
            with smtplib.SMTP(erin.smtp_host, erin.smtp_port, timeout=60) as smtp:
                smtp.login(erin.addr, erin.password)
                for i in range(MAILS):
                    message = email.message.EmailMessage()
                    message["From"] = erin.addr
                    message["To"] = box.addr
                    message["Subject"] = f"mail {i}"
                    message["Message-ID"] = f"<{i}@plain.example>"
                    message["Chat-Version"] = "1.0"
                    message.set_content(f"mail number {i}")
                    smtp.send_message(message)

        await asyncio.to_thread(send_all)
        await wait_for(lambda: len(inbox(box)) == MAILS, timeout=60)
        log = tmp_path / "connector.log"
        connector = run_connector(tmp_path / "device", log)
        try:
            deadline = time.monotonic() + 60
            while brought_in(log) < MAILS // 4 and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            assert 0 < brought_in(log) < MAILS, log.read_text()
            connector.send_signal(signal.SIGKILL)  # mid-fetch: some sent, none marked
            assert connector.wait(10) == -signal.SIGKILL
            connector = run_connector(tmp_path / "device", log)
            await wait_for(lambda: len(inbox(box, "DeltaChat")) == MAILS, timeout=120)
        finally:
            connector.terminate()
            connector.wait(10)
        assert inbox(box) == []
        await phone.sync(timeout=30)
        conversation = ConversationId(phone.find_portal("email", erin.addr) or "")
        texts = [m.text for m in phone.history(conversation, limit=1000)]
        assert sorted(texts) == sorted(f"mail number {i}" for i in range(MAILS))


async def test_a_delta_chat_user_joins_the_invite_from_the_terminal(
    tmp_path: Path, server: ServerProcess, mail: MailServer, core: DeltaChatCore
) -> None:
    box = mail.add_user("alice@example.org")
    async with Client(tmp_path / "phone") as phone:
        code = await phone.register(server.url, box.addr, PASSWORD)
        async with Client(tmp_path / "device") as device:
            await device.login(server.url, box.addr, PASSWORD, code)
        taube(
            tmp_path / "device",
            "mail",
            "connect",
            box.addr,
            *("--imap-host", box.imap_host, "--imap-port", str(box.imap_port)),
            *("--imap-security", "plain", "--smtp-host", box.smtp_host),
            *("--smtp-port", str(box.smtp_port), "--smtp-security", "plain"),
            env={"TAUBE_MAIL_PASSWORD": box.password},
        )
        link = taube(tmp_path / "device", "mail", "invite").strip().splitlines()[0]
        assert link.startswith("https://i.delta.chat/#")
        connector = run_connector(tmp_path / "device", tmp_path / "connector.log")
        try:
            dora = await core.configured_account(mail.add_user("dora@example.net"))
            await core.call(dora.secure_join, link)
            await core.wait_for_event(dora, "SecurejoinJoinerProgress", progress=1000)
            await phone.sync(timeout=30)
            await wait_for(lambda: phone.find_portal("email", "dora@example.net") is not None)
        finally:
            connector.terminate()
            connector.wait(10)
