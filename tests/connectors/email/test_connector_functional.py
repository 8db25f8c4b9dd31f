"""The e-mail connector against a real Postfix + Dovecot: chats with people on
ordinary mail clients, mails that are not chats, and mail that is malformed,
huge or forged. (Delta Chat itself: ``test_deltachat_functional.py``.)"""

from __future__ import annotations

import asyncio
import email
import email.message
import email.policy
import imaplib
import smtplib
from collections.abc import Callable

import pytest

from taube.client import Client, Received
from taube.client import events as ev
from taube.proto.ids import ConversationId
from taube.testing import ServerProcess
from taube.testing.canary import scan
from taube.testing.mailserver import MailAccount as Mailbox
from taube.testing.mailserver import MailServer
from tests.connectors.conftest import MailUser

pytestmark = pytest.mark.services


def letter(
    sender: str, to: str, body: str, *, message_id: str, chat: bool = False, **headers: str
) -> email.message.EmailMessage:
    message = email.message.EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = "hello"
    message["Message-ID"] = f"<{message_id}>"
    if chat:
        message["Chat-Version"] = "1.0"
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    message.set_content(body)
    return message


async def submit(box: Mailbox, message: email.message.Message | bytes, to: str = "") -> None:
    def run() -> None:
        with smtplib.SMTP(box.smtp_host, box.smtp_port, timeout=30) as smtp:
            smtp.login(box.addr, box.password)
            if isinstance(message, bytes):
                smtp.sendmail(box.addr, [to], message)
            else:
                smtp.send_message(message)

    await asyncio.to_thread(run)


def inbox(box: Mailbox, folder: str = "INBOX") -> list[email.message.EmailMessage]:
    imap = imaplib.IMAP4(box.imap_host, box.imap_port)
    try:
        imap.login(box.addr, box.password)
        imap.select(folder)
        _, data = imap.uid("search", "ALL")
        found = []
        for uid in data[0].split():
            _, parts = imap.uid("fetch", uid.decode(), "(BODY.PEEK[])")
            raw = parts[0][1]
            assert isinstance(raw, bytes)
            parsed = email.message_from_bytes(raw, policy=email.policy.default)
            assert isinstance(parsed, email.message.EmailMessage)
            found.append(parsed)
        return found
    finally:
        imap.logout()


async def wait_for(check: Callable[[], bool], timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.1)


async def received(client: Client, count: int, timeout: float = 20.0) -> list[ev.Message]:
    """The next ``count`` shown (not annotation) messages that arrive."""
    found: list[ev.Message] = []
    async with asyncio.timeout(timeout):
        async for event in client.events():
            if isinstance(event, Received) and event.message.type not in ev.ANNOTATIONS:
                found.append(event.message)
                if len(found) == count:
                    return found
    return found


async def test_a_chat_with_someone_on_an_ordinary_mail_client(
    server: ServerProcess, mail: MailServer, mail_user: MailUser
) -> None:
    bob = mail.add_user("bob@plain.example")
    alice = mail_user.phone
    chat = await alice.start_chat(bob.addr)  # no taube server there: a portal
    sent = await alice.send_text(chat, "Hallo Bob, per Mail")
    await alice.flush()
    await wait_for(lambda: len(inbox(bob)) == 1)
    [letter_to_bob] = inbox(bob)
    assert letter_to_bob["Chat-Version"] == "1.0"
    assert letter_to_bob["Autocrypt"] is not None  # so his next client can encrypt
    assert letter_to_bob.get_content().strip() == "Hallo Bob, per Mail"
    # unencrypted (no key of his is known): every device of alice's shows so
    await wait_for(lambda: alice.history(chat)[0].relayed is not None)
    assert alice.history(chat)[0].relayed == ev.Relayed("email", False, plain_to=(bob.addr,))
    # his answer lands in the same chat, as a reply
    answer = letter(
        "Bob <bob@plain.example>",
        "alice@example.org",
        "Hi Alice!",
        message_id="answer-1@plain.example",
        In_Reply_To=str(letter_to_bob["Message-ID"]),
    )
    await submit(bob, answer)
    [message] = await received(alice, 1)
    assert (message.conversation, message.text, message.reply_to) == (chat, "Hi Alice!", sent)
    assert message.remote == ev.Remote("email", "bob@plain.example", "Bob", encrypted=False)
    # handled mail moved to the DeltaChat folder once taube had it
    await wait_for(lambda: len(inbox(mail_user.mailbox, "DeltaChat")) == 1)
    assert inbox(mail_user.mailbox) == []
    # the server only ever held ciphertext
    assert scan([server.data_dir, server.log_path], [b"Hallo Bob", b"Hi Alice!"]) == []


async def test_a_mail_that_is_no_chat_stays_in_the_mailbox(
    mail: MailServer, mail_user: MailUser
) -> None:
    carol = mail.add_user("carol@plain.example")
    await submit(carol, letter(carol.addr, "alice@example.org", "newsletter", message_id="n@x"))
    # a chat mail after it is brought in, the newsletter is left alone
    await submit(
        carol, letter(carol.addr, "alice@example.org", "chat", message_id="c@x", chat=True)
    )
    [message] = await received(mail_user.phone, 1)
    assert message.text == "chat"
    await wait_for(lambda: len(inbox(mail_user.mailbox, "DeltaChat")) == 1)
    assert [m["Message-ID"] for m in inbox(mail_user.mailbox)] == ["<n@x>"]
    # once carol is a contact, her ordinary mails are chat messages too
    await submit(carol, letter(carol.addr, "alice@example.org", "plain", message_id="p@x"))
    [message] = await received(mail_user.phone, 1)
    assert message.text == "plain"
    assert message.conversation == mail_user.phone.find_portal("email", carol.addr)


async def test_garbage_mail_leaves_the_connector_running(
    mail: MailServer, mail_user: MailUser
) -> None:
    mallory = mail.add_user("mallory@plain.example")
    to = "alice@example.org"
    truncated = (
        b"From: mallory@plain.example\r\nTo: alice@example.org\r\nMessage-ID: <t@x>\r\n"
        b"Chat-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=zzz\r\n\r\n"
        b"--zzz\r\nContent-Type: text/plain\r\n\r\nhalf a mess"
    )
    charset = (
        b"From: mallory@plain.example\r\nTo: alice@example.org\r\nMessage-ID: <w@x>\r\n"
        b"Chat-Version: 1.0\r\nContent-Type: text/plain; charset=x-no-such-charset\r\n\r\n"
        b"gr\xfc\xdfe\r\n"
    )
    # claims to come from alice herself: not shown, left in the mailbox
    forged = (
        b"From: alice@example.org\r\nTo: alice@example.org\r\nMessage-ID: <f@x>\r\n"
        b"Chat-Version: 1.0\r\n\r\nit is me, honestly\r\n"
    )
    two_froms = (
        b"From: a@plain.example, b@plain.example\r\nTo: alice@example.org\r\n"
        b"Message-ID: <two@x>\r\nChat-Version: 1.0\r\n\r\nus\r\n"
    )
    fake_encrypted = (
        b"From: mallory@plain.example\r\nTo: alice@example.org\r\nMessage-ID: <e@x>\r\n"
        b'Content-Type: multipart/encrypted; protocol="application/pgp-encrypted";'
        b" boundary=b\r\n\r\n--b\r\nContent-Type: application/pgp-encrypted\r\n\r\n"
        b"Version: 1\r\n--b\r\nContent-Type: application/octet-stream\r\n\r\n"
        b"-----BEGIN PGP MESSAGE-----\r\n\r\nnot really\r\n-----END PGP MESSAGE-----\r\n--b--\r\n"
    )
    huge = letter(mallory.addr, to, "big", message_id="big@x", chat=True)
    huge.add_attachment(b"\0" * (30 * 1024 * 1024), "application", "octet-stream", filename="b")
    for raw in (truncated, charset, forged, two_froms, fake_encrypted, huge.as_bytes()):
        await submit(mallory, raw, to)
    await submit(mallory, letter(mallory.addr, to, "still here?", message_id="ok@x", chat=True))
    shown = await received(mail_user.phone, 3, timeout=60)
    assert sorted(m.text for m in shown) == ["gr\ufffd\ufffde", "half a mess", "still here?"]
    assert mail_user.task is not None
    assert not mail_user.task.done()
    # two Froms, not decryptable, 30 MB (which may arrive last: it is big)
    await wait_for(lambda: len(mail_user.connector.state.aside("email")) == 3, timeout=60)
    aside = dict(mail_user.connector.state.aside("email"))
    assert any("25 MB" in reason for reason in aside.values())
    assert "<f@x>" in [m["Message-ID"] for m in inbox(mail_user.mailbox)]


async def test_nothing_twice_after_a_restart_mid_fetch(
    mail: MailServer, mail_user: MailUser
) -> None:
    """Mails brought in but not yet moved (the connector stopped between) are
    fetched again on restart and shown once."""
    dora = mail.add_user("dora@plain.example")
    for i in range(5):
        await submit(
            dora, letter(dora.addr, "alice@example.org", f"m{i}", message_id=f"{i}@x", chat=True)
        )
    await received(mail_user.phone, 5)
    await mail_user.stop()
    # as if the connector had died before it marked them handled and moved them
    state = mail_user.connector.state
    state.put("imap:INBOX:last", "0")
    state._db.execute("DELETE FROM handled")
    for i in range(5, 7):
        await submit(
            dora, letter(dora.addr, "alice@example.org", f"m{i}", message_id=f"{i}@x", chat=True)
        )
    await mail_user.start()
    shown = await received(mail_user.phone, 2)
    assert sorted(m.text for m in shown) == ["m5", "m6"]
    conversation = ConversationId(mail_user.phone.find_portal("email", dora.addr) or "")
    await asyncio.sleep(1)
    # (in the order the mails reached the mailbox)
    shown_once = sorted(m.text for m in mail_user.phone.history(conversation))
    assert shown_once == [f"m{i}" for i in range(7)]
