"""IMAP with STARTTLS against a real Dovecot that offers it (a self-signed
certificate the test trusts): the connection is TLS before the log-in, a
certificate that is not trusted or a server without STARTTLS is an error,
never a log-in in the clear."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from taube.connectors.email.account import MailAccount, Security
from taube.connectors.email.connector import verify_account
from taube.connectors.email.imap import ImapError, Mailbox
from taube.testing.mailserver import MailServer
from tests.conftest import missing_service
from tests.connectors.conftest import account_of
from tests.connectors.email.test_connector_functional import letter, submit

pytestmark = pytest.mark.services


@pytest.fixture
def tls_mail(tmp_path: Path) -> Iterator[MailServer]:
    reason = MailServer.missing()
    if reason:
        missing_service(reason)
    with MailServer(tmp_path / "mail", tls=True) as server:
        yield server


def starttls(account: MailAccount) -> MailAccount:
    return msgspec.structs.replace(account, imap_security=Security.STARTTLS)


async def test_the_mailbox_is_read_over_starttls(
    tls_mail: MailServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert tls_mail.ca_file is not None
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_mail.ca_file))
    box = tls_mail.add_user("alice@example.org")
    bob = tls_mail.add_user("bob@plain.example")
    await submit(bob, letter(bob.addr, box.addr, "über TLS", message_id="tls-1@plain.example"))
    account = starttls(account_of(box))
    await verify_account(account)
    async with Mailbox(account) as mailbox:
        tls = mailbox.imap.protocol.transport.get_extra_info("ssl_object")
        assert isinstance(tls, ssl.SSLObject)
        assert tls.version() in ("TLSv1.2", "TLSv1.3")
        for _ in range(100):
            if sizes := await mailbox.sizes_after(0):
                break
            await asyncio.sleep(0.1)
        [uid] = sizes
        raw = await mailbox.fetch(uid)
        assert raw is not None
        assert b"tls-1@plain.example" in raw


async def test_an_untrusted_certificate_is_no_log_in(tls_mail: MailServer) -> None:
    box = tls_mail.add_user("alice@example.org")
    with pytest.raises(ssl.SSLCertVerificationError):
        async with Mailbox(starttls(account_of(box))):
            pass


async def test_a_server_without_starttls_is_no_log_in(mail: MailServer) -> None:
    box = mail.add_user("alice@example.org")
    with pytest.raises(ImapError, match="does not offer STARTTLS"):
        async with Mailbox(starttls(account_of(box))):
            pass
