"""The mail test bed itself: a private Postfix + Dovecot, and a real Delta Chat core.

Ordinary clients (``smtplib``, ``imaplib``) deliver between the local
domains, mail for any other domain never leaves the machine, and two Delta
Chat accounts exchange an encrypted message through the whole stack.
Skipped (failed under ``TAUBE_REQUIRE_SERVICES=1``) when Postfix, Dovecot or
the Delta Chat core is not installed (``scripts/services start``).
"""

from __future__ import annotations

import email
import email.message
import email.policy
import imaplib
import re
import smtplib
import time
from pathlib import Path

import pytest

from taube.testing.deltachat import DeltaChatCore
from taube.testing.mailserver import MailAccount, MailServer

pytestmark = pytest.mark.services


def letter(sender: str, to: str, subject: str, body: str) -> email.message.EmailMessage:
    message = email.message.EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message.set_content(body)
    return message


def submit(account: MailAccount, message: email.message.EmailMessage) -> None:
    with smtplib.SMTP(account.smtp_host, account.smtp_port, timeout=10) as smtp:
        smtp.login(account.addr, account.password)
        smtp.send_message(message)


def inbox(
    account: MailAccount, count: int = 1, timeout: float = 10.0
) -> list[email.message.EmailMessage]:
    """The messages in ``account``'s INBOX once there are ``count`` of them."""
    deadline = time.monotonic() + timeout
    with imaplib.IMAP4(account.imap_host, account.imap_port, timeout=10) as imap:
        imap.login(account.addr, account.password)
        while True:
            imap.select("INBOX")
            _, found = imap.search(None, "ALL")
            numbers = found[0].split()
            if len(numbers) >= count or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        messages = []
        for number in numbers:
            _, data = imap.fetch(number, "(RFC822)")
            raw = data[0]
            assert isinstance(raw, tuple)
            parsed = email.message_from_bytes(raw[1], policy=email.policy.default)
            assert isinstance(parsed, email.message.EmailMessage)
            messages.append(parsed)
        return messages


def test_a_mail_goes_from_one_local_domain_to_another(mail: MailServer) -> None:
    alice = mail.add_user("alice@example.org")
    bob = mail.add_user("bob@example.net")

    submit(alice, letter(alice.addr, bob.addr, "hello", "hello bob"))

    [received] = inbox(bob)
    assert received["From"] == alice.addr
    assert received["Subject"] == "hello"
    assert received.get_content().strip() == "hello bob"
    assert inbox(alice, count=0) == []


def test_submission_needs_the_users_password(mail: MailServer) -> None:
    alice = mail.add_user("alice@example.org")
    with smtplib.SMTP(alice.smtp_host, alice.smtp_port, timeout=10) as smtp:
        smtp.ehlo()
        # one mechanism: login() would try each, and Dovecot slows every failure down more
        smtp.user, smtp.password = alice.addr, "not the password"
        with pytest.raises(smtplib.SMTPAuthenticationError):
            smtp.auth("PLAIN", smtp.auth_plain)
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            smtp.sendmail(alice.addr, ["bob@example.net"], b"Subject: no\r\n\r\nno\r\n")


def test_mail_to_other_domains_never_leaves_the_machine(mail: MailServer) -> None:
    alice = mail.add_user("alice@example.org")

    # the MX port refuses to relay, whoever asks
    with (
        smtplib.SMTP(mail.host, mail.smtp_port, timeout=10) as smtp,
        pytest.raises(smtplib.SMTPRecipientsRefused),
    ):
        smtp.sendmail(alice.addr, ["someone@example.com"], b"Subject: out\r\n\r\nout\r\n")

    # submission takes it from a user, and it bounces back to her at once
    submit(alice, letter(alice.addr, "someone@example.com", "outside", "to the world"))
    [bounce] = inbox(alice)
    assert "MAILER-DAEMON" in bounce["From"]
    assert "nothing leaves this machine" in bounce.as_string()
    log = mail.logs().splitlines()
    outward = [line for line in log if "to=<someone@example.com>" in line and "status=" in line]
    assert outward, log
    assert all("relay=none" in line and "status=bounced" in line for line in outward)
    # the only deliveries made were to Dovecot on loopback (the bounce)
    assert not [line for line in log if re.search(r"relay=(?!none,|127\.0\.0\.1\[)", line)]


def test_users_added_while_running_can_log_in(mail: MailServer) -> None:
    first = mail.add_user("first@plain.example")
    assert inbox(first, count=0) == []
    later = mail.add_user("later@plain.example")
    submit(later, letter(later.addr, first.addr, "late", "added while running"))
    assert [m["Subject"] for m in inbox(first)] == ["late"]


def test_two_mail_servers_run_side_by_side(mail: MailServer, tmp_path: Path) -> None:
    with MailServer(tmp_path / "second") as second:
        assert {second.imap_port, second.smtp_port}.isdisjoint({mail.imap_port, mail.smtp_port})
        here = mail.add_user("alice@example.org")
        there = second.add_user("alice@example.org")
        submit(there, letter(there.addr, there.addr, "to myself", "on the second server"))
        assert [m["Subject"] for m in inbox(there)] == ["to myself"]
        assert inbox(here, count=0) == []


async def test_delta_chat_accounts_exchange_an_encrypted_message(
    mail: MailServer, core: DeltaChatCore
) -> None:
    alice = await core.configured_account(mail.add_user("alice@example.org"))
    bob = await core.configured_account(mail.add_user("bob@example.net"))

    # Bob scans Alice's Secure-Join QR code: afterwards each has the other's key
    qr = await core.call(alice.get_qr_code)
    await core.call(bob.secure_join, qr)
    await core.wait_for_event(alice, "SecurejoinInviterProgress", progress=1000)
    await core.wait_for_event(bob, "SecurejoinJoinerProgress", progress=1000)

    chat = await core.call(bob.create_chat, alice)
    await core.call(chat.send_text, "hello alice")
    event = await core.wait_for_event(alice, "IncomingMsg")
    message = await core.call(alice.get_message_by_id, event.msg_id)
    snapshot = await core.call(message.get_snapshot)

    assert snapshot.text == "hello alice"
    assert snapshot.show_padlock  # end-to-end encrypted and signed by a verified key
    sender = await core.call(snapshot.sender.get_snapshot)
    assert sender.address == "bob@example.net"


def test_a_30_mb_attachment_gets_through(mail: MailServer) -> None:
    alice = mail.add_user("alice@example.org")
    bob = mail.add_user("bob@example.net")
    payload = bytes(range(256)) * (30 * 1024 * 1024 // 256)
    message = letter(alice.addr, bob.addr, "big", "a file")
    message.add_attachment(payload, maintype="application", subtype="octet-stream")

    submit(alice, message)

    [received] = inbox(bob, timeout=30)
    [attachment] = received.iter_attachments()
    assert attachment.get_content() == payload
