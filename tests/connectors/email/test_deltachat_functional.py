"""The e-mail connector against a real Delta Chat core, through a real
Postfix + Dovecot: chats are end-to-end encrypted both ways.

First contact here uses a key the Delta Chat user imported from a vCard
(Delta Chat 2.x takes only encrypted mail); Secure-Join is the other way in.
"""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path

import pytest
from deltachat_rpc_client import Account

from taube.client import events as ev
from taube.connectors.email.openpgp import PublicKey
from taube.testing import ServerProcess
from taube.testing.canary import scan
from taube.testing.deltachat import DeltaChatCore
from taube.testing.mailserver import MailServer
from tests.connectors.conftest import MailUser
from tests.connectors.email.test_connector_functional import received, wait_for

pytestmark = pytest.mark.services

#: a small PNG (1x1 pixel) and a small PDF
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)
PDF = b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"


def vcard_of(addr: str, key: PublicKey) -> str:
    keydata = base64.b64encode(key.to_bytes()).decode()
    return (
        "BEGIN:VCARD\r\nVERSION:4.0\r\n"
        f"EMAIL:{addr}\r\nFN:{addr}\r\n"
        f"KEY:data:application/pgp-keys;base64\\,{keydata}\r\n"
        "END:VCARD\r\n"
    )


async def delta_chat_user(core: DeltaChatCore, mail: MailServer, user: MailUser) -> Account:
    """dora@example.net on Delta Chat, who has alice's key from her vCard."""
    dora = await core.configured_account(mail.add_user("dora@example.net"))
    vcard = vcard_of(user.mailbox.addr, user.connector.key.public_key)
    await core.call(dora.import_vcard, vcard)
    return dora


async def next_text(core: DeltaChatCore, account: Account) -> dict[str, object]:
    """The snapshot of the next message that arrives at ``account``."""
    event = await core.wait_for_event(account, "IncomingMsg")
    message = account.get_message_by_id(event.msg_id)
    return dict(await core.call(message.get_snapshot))


async def test_one_to_one_with_delta_chat_is_encrypted_both_ways(
    tmp_path: Path,
    server: ServerProcess,
    mail: MailServer,
    core: DeltaChatCore,
    mail_user: MailUser,
) -> None:
    dora = await delta_chat_user(core, mail, mail_user)
    contact = await core.call(dora.get_contact_by_addr, mail_user.mailbox.addr)
    assert contact is not None
    chat = await core.call(contact.create_chat)
    await core.call(chat.send_text, "Hallo Alice, from Delta Chat")
    [message] = await received(mail_user.phone, 1, timeout=60)
    assert message.text == "Hallo Alice, from Delta Chat"
    assert message.remote == ev.Remote("email", "dora@example.net", "Dora", encrypted=True)
    conversation = message.conversation
    # an answer goes back encrypted (dora's key came in her Autocrypt header)
    await mail_user.phone.send_text(conversation, "Hallo Dora, from taube", reply_to=message.id)
    snapshot = await next_text(core, dora)
    assert snapshot["text"] == "Hallo Dora, from taube"
    assert snapshot["show_padlock"] is True
    await wait_for(lambda: mail_user.phone.history(conversation)[-1].relayed is not None)
    assert mail_user.phone.history(conversation)[-1].relayed == ev.Relayed("email", True)
    # files both ways: an image and a PDF
    picture, paper = tmp_path / "pixel.png", tmp_path / "paper.pdf"
    picture.write_bytes(PNG)
    paper.write_bytes(PDF)
    await core.call(chat.send_message, text="a picture", file=str(picture))
    await core.call(chat.send_message, text="a paper", file=str(paper))
    arrived = await received(mail_user.phone, 2, timeout=60)
    phone = mail_user.phone
    files = {m.text: phone.attachment_path(m).read_bytes() for m in arrived}
    assert files == {"a picture": PNG, "a paper": PDF}
    await phone.send_file(conversation, paper, caption="your paper back")
    snapshot = await next_text(core, dora)
    assert snapshot["text"] == "your paper back"
    assert Path(str(snapshot["file"])).read_bytes() == PDF
    assert snapshot["show_padlock"] is True
    # none of it in the clear on the taube server
    needles = [b"Hallo Alice", b"Hallo Dora", b"your paper back", PDF]
    assert scan([server.data_dir, server.log_path], needles) == []
    await asyncio.sleep(0)
