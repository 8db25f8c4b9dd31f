"""Settings → E-mail in the browser, with a real connector device, a real
Postfix + Dovecot and a real taube server.

The browser user's second device runs the connector (``MailService``, what
``taube mail run`` runs) with no account. The settings screen finds it,
hands it the account end-to-end encrypted, and shows what it answers: a
wrong password is "Login refused" and changes nothing, the right one
connects, and a mail round trip then works. The mail password is never on
the taube server in the clear (its database, its files, its log).
"""

from __future__ import annotations

import asyncio
import contextlib
import email.message
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Page, expect

from taube.client import Client
from taube.connectors import control
from taube.connectors.control import State, Status
from taube.connectors.email.account import SECRET_NAME
from taube.connectors.email.service import MailService
from taube.testing import ServerProcess
from taube.testing.canary import scan
from taube.testing.mailserver import MailAccount as Mailbox
from taube.testing.mailserver import MailServer
from tests.connectors.email.test_connector_functional import inbox, submit, wait_for
from tests.web.conftest import ARTIFACTS, PASSWORD, PageFactory
from tests.web.driver import SENT, message, send_text, sign_up, start_chat, tid

pytestmark = pytest.mark.services

PHONE = (360, 740)
DESKTOP = (1280, 800)


@contextlib.asynccontextmanager
async def connector_device(
    profile: Path, server: ServerProcess, address: str, code: str
) -> AsyncIterator[tuple[Client, MailService]]:
    """A device of the user's, logged in with the recovery code, running the
    connector with no mail account yet."""
    async with Client(profile) as device:
        await device.login(server.url, address, PASSWORD, code, "Home server")
        await device.sync()
        service = MailService(device)
        running = asyncio.create_task(service.run())
        try:
            yield device, service
        finally:
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running


async def fill_account(page: Page, box: Mailbox, password: str) -> None:
    await tid(page, "mail-address").fill(box.addr)
    await tid(page, "mail-password").fill(password)
    if not await tid(page, "mail-servers").get_attribute("open"):
        await tid(page, "mail-servers").locator("summary").click()
    await tid(page, "mail-imap-host").fill(box.imap_host)
    await tid(page, "mail-imap-port").fill(str(box.imap_port))
    await tid(page, "mail-imap-security").select_option("plain")
    await tid(page, "mail-smtp-host").fill(box.smtp_host)
    await tid(page, "mail-smtp-port").fill(str(box.smtp_port))
    await tid(page, "mail-smtp-security").select_option("plain")


async def shoot(page: Page, name: str, size: tuple[int, int]) -> None:
    await page.set_viewport_size({"width": size[0], "height": size[1]})
    await tid(page, "mail-settings").evaluate("e => e.scrollIntoView({block: 'start'})")
    await page.mouse.move(size[0] - 1, size[1] - 1)  # no hover effects
    await page.wait_for_timeout(300)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=ARTIFACTS / f"{name}.png")


async def test_the_mail_account_is_set_up_from_the_settings_screen(
    tmp_path: Path, web_server: ServerProcess, new_page: PageFactory, mail: MailServer
) -> None:
    page = await new_page(web_server)
    address, code = await sign_up(page, "nora")
    box = mail.add_user(address)
    bob = mail.add_user("bob@plain.example")
    wrong = "wrong-password-4711"

    async with connector_device(tmp_path / "connector", web_server, address, code) as (
        device,
        service,
    ):
        await tid(page, "open-settings").click()
        card = tid(page, "mail-connector")
        await expect(card).to_have_attribute("data-device", device.device)
        await expect(tid(card, "mail-state")).to_have_text("Not set up")
        await expect(card).to_contain_text("Home server")
        await shoot(page, "mail-settings-empty-360", PHONE)

        # (a) a wrong password: "Login refused", and nothing changes
        await fill_account(page, box, wrong)
        await shoot(page, "mail-settings-form-360", PHONE)
        await tid(page, "mail-connect").click()
        await expect(tid(page, "mail-error")).to_contain_text("refused the login")
        await expect(tid(card, "mail-state")).to_have_text("Not set up")
        assert device.profile is not None
        assert device.profile.get_secret(SECRET_NAME) is None
        await expect(tid(page, "mail-password")).to_have_value("")  # not kept in the page

        # (b) the right one: the connector logs in and says so
        await tid(page, "mail-password").fill(box.password)
        await tid(page, "mail-connect").click()
        await expect(tid(card, "mail-state")).to_have_text("Connected", timeout=30_000)
        await expect(tid(card, "mail-connector-address")).to_have_text(box.addr)
        await expect(tid(page, "mail-form")).to_have_count(0)
        assert service.connector is not None
        assert service.connector.account.address == box.addr
        await shoot(page, "mail-settings-connected-360", PHONE)
        await shoot(page, "mail-settings-connected-desktop", DESKTOP)

        # (c) a mail round trip through the connector set up so
        await tid(page, "panel-back").click()
        await start_chat(page, bob.addr)
        await send_text(page, "Hallo Bob, per Mail aus dem Browser")
        await expect(message(page, "per Mail aus dem Browser")).to_have_attribute(
            "data-status", SENT
        )
        await wait_for(lambda: len(inbox(bob)) == 1, timeout=30)
        [letter] = inbox(bob)
        assert letter.get_content().strip() == "Hallo Bob, per Mail aus dem Browser"
        answer = email.message.EmailMessage()
        answer["From"] = f"Bob <{bob.addr}>"
        answer["To"] = box.addr
        answer["Subject"] = "Re: hello"
        answer["Message-ID"] = "<answer-1@plain.example>"
        answer["In-Reply-To"] = str(letter["Message-ID"])
        answer.set_content("Hallo zurück!")
        await submit(bob, answer)
        reply = message(page, "Hallo zurück!")
        await expect(reply).to_have_attribute("data-mine", "false", timeout=30_000)
        await expect(reply).to_have_count(1)  # nothing twice
        await expect(tid(reply, "reply-quote")).to_contain_text("aus dem Browser")

        # (d) disconnect from the screen
        await tid(page, "open-settings").click()
        await tid(card, "mail-disconnect").click()
        await tid(page, "confirm-ok").click()
        await expect(tid(card, "mail-state")).to_have_text("Not set up")
        profile = device.profile
        await wait_for(lambda: profile.get_secret(SECRET_NAME) is None)

    # neither password, nor the mail, ever reached the taube server in the clear
    secrets = [box.password.encode(), wrong.encode(), b"Hallo zur", b"aus dem Browser"]
    assert scan([web_server.data_dir, web_server.log_path], secrets) == []


async def test_the_screen_explains_when_no_connector_answers(
    web_server: ServerProcess, new_page: PageFactory
) -> None:
    page = await new_page(web_server, viewport=PHONE)
    await sign_up(page, "olga")
    await tid(page, "open-settings").click()
    await expect(tid(page, "mail-looking")).to_be_visible()
    await expect(tid(page, "mail-none")).to_contain_text("taube mail run", timeout=15_000)
    await expect(tid(page, "mail-connector")).to_have_count(0)
    await shoot(page, "mail-settings-none-360", PHONE)
    assert re.search("relays e-mail", await tid(page, "mail-none").inner_text())


def test_web_connector_payloads_match_the_connector() -> None:
    """The web app names the to-device payloads and states as
    taube.connectors.control does (they are not in the generated types)."""
    from taube.connectors import control

    web = (Path(__file__).resolve().parents[2] / "web/src/client/connectors.ts").read_text()
    for name in (control.QUERY, control.CONFIGURE, control.DISCONNECT, control.STATUS):
        assert f'"{name}"' in web
    states = re.search(r"CONNECTOR_STATES = \[(.*?)\]", web)
    assert states is not None
    assert [s.strip(' "') for s in states.group(1).split(",")] == [s.value for s in control.State]
    fields = set(control.MailSettings.__struct_fields__)
    settings = re.search(r"export interface MailSettings \{(.*?)\n\}", web, re.S)
    assert settings is not None
    assert set(re.findall(r"^\s+(\w+)\??:", settings.group(1), re.M)) == fields


async def test_a_connector_that_does_not_answer_is_said_so(
    tmp_path: Path, web_server: ServerProcess, new_page: PageFactory, mail: MailServer
) -> None:
    """A device that said it relays mail, and then is gone (no `taube mail run`
    answers): the screen stops waiting and says so."""
    page = await new_page(web_server, viewport=PHONE)
    address, code = await sign_up(page, "pia")
    box = mail.add_user(address)
    async with Client(tmp_path / "gone") as device:
        await device.login(web_server.url, address, PASSWORD, code, "Old laptop")
        await device.sync()
        hello = Status(network="email", state=State.UNCONFIGURED)
        for other in await device.own_devices():
            await device.send_to_device(other, control.STATUS, hello.to_content())
        await device.disconnect()
    await tid(page, "open-settings").click()
    card = tid(page, "mail-connector")
    await expect(tid(card, "mail-state")).to_have_text("Not set up")
    await page.clock.install()
    await fill_account(page, box, box.password)
    await tid(page, "mail-connect").click()
    await expect(tid(page, "mail-connect")).to_have_text("Checking the login…")
    # the page's effects are scheduled on the (installed) clock too: the
    # timer starts only once they ran, so first let a second pass
    await page.clock.fast_forward(1_000)
    await page.clock.fast_forward(91_000)
    await expect(tid(page, "mail-error")).to_contain_text("did not answer")
    await expect(tid(page, "mail-connect")).to_be_enabled()
