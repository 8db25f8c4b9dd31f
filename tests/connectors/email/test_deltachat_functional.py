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

from taube.client import Client
from taube.client import events as ev
from taube.connectors.email.openpgp import PublicKey
from taube.testing import ServerProcess
from taube.testing.canary import scan
from taube.testing.deltachat import DeltaChatCore
from taube.testing.mailserver import MailServer
from tests.connectors.conftest import PASSWORD, MailUser
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
    # read receipts both ways
    await mail_user.phone.mark_read(conversation, [message.id])
    await core.wait_for_event(dora, "MsgRead")
    answer = dora.get_message_by_id(int(str(snapshot["id"])))
    await core.call(dora.mark_seen_messages, [answer])
    await wait_for(
        lambda: "dora@example.net" in mail_user.phone.history(conversation)[-1].read_by,
        timeout=30,
    )
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


async def test_a_group_of_taube_delta_chat_and_plain_mail_members(
    tmp_path: Path,
    server: ServerProcess,
    mail: MailServer,
    core: DeltaChatCore,
    mail_user: MailUser,
) -> None:
    from tests.connectors.email.test_connector_functional import inbox

    alice = mail_user.phone
    async with Client(tmp_path / "bob") as bob:
        await bob.register(server.url, "bob@example.org", PASSWORD)
        await bob.sync()
        dora = await delta_chat_user(core, mail, mail_user)
        carol = mail.add_user("carol@plain.example")
        # dora wrote to alice before: her key is known
        contact = await core.call(dora.get_contact_by_addr, mail_user.mailbox.addr)
        assert contact is not None
        await core.call((await core.call(contact.create_chat)).send_text, "hi")
        await received(alice, 1, timeout=60)

        group = await alice.create_group([bob.user, "dora@example.net", carol.addr])
        await alice.rename(group, "Ausflug")
        assert alice.portal(group) is not None
        await alice.send_text(group, "Wer kommt mit?")
        [at_bob] = await received(bob, 1)
        assert (at_bob.conversation, at_bob.text) == (group, "Wer kommt mit?")
        snapshot = await next_text(core, dora)
        assert snapshot["text"] == "Wer kommt mit?"
        assert snapshot["show_padlock"] is True
        dc_group = dora.get_chat_by_id(int(str(snapshot["chat_id"])))
        assert (await core.call(dc_group.get_basic_snapshot)).name == "Ausflug"
        await wait_for(lambda: len(inbox(carol)) == 1)
        [at_carol] = inbox(carol)
        assert at_carol.get_content_type() != "multipart/encrypted"
        assert at_carol["Chat-Group-Name"] == "Ausflug"
        # every device of alice's says who got it unencrypted
        await wait_for(lambda: alice.history(group)[-1].relayed is not None)
        assert alice.history(group)[-1].relayed == ev.Relayed(
            "email", False, plain_to=(carol.addr,)
        )
        # dora answers in the group: alice and bob read it in the same conversation
        await core.call(dc_group.send_text, "Ich!")
        [from_dora] = await received(bob, 1, timeout=60)
        assert (from_dora.conversation, from_dora.text) == (group, "Ich!")
        assert from_dora.remote == ev.Remote("email", "dora@example.net", "Dora", encrypted=True)
        # alice removes carol: the group's next mail says so
        await alice.remove_member(group, carol.addr)
        await alice.send_text(group, "Carol kann nicht")
        snapshot = await next_text(core, dora)
        assert snapshot["text"] == "Carol kann nicht"
        await wait_for(lambda: len(inbox(carol)) == 2)
        assert inbox(carol)[-1]["Chat-Group-Member-Removed"] == carol.addr


async def test_a_delta_chat_group_appears_as_a_conversation(
    mail: MailServer, core: DeltaChatCore, mail_user: MailUser
) -> None:
    dora = await delta_chat_user(core, mail, mail_user)
    contact = await core.call(dora.get_contact_by_addr, mail_user.mailbox.addr)
    assert contact is not None
    dc_group = await core.call(dora.create_group, "Chor")
    await core.call(dc_group.add_contact, contact)
    await core.call(dc_group.send_text, "Probe am Dienstag")
    [message] = await received(mail_user.phone, 1, timeout=60)
    assert message.text == "Probe am Dienstag"
    portal = mail_user.phone.portal(message.conversation)
    assert portal is not None
    assert portal.chat.startswith("group:")
    assert portal.peers == ("dora@example.net",)
    assert mail_user.phone.title(message.conversation) == "Chor"
    # alice answers in the group, from taube
    await mail_user.phone.send_text(message.conversation, "Ich bin dabei")
    snapshot = await next_text(core, dora)
    assert (snapshot["text"], snapshot["chat_id"]) == ("Ich bin dabei", dc_group.id)


async def test_edits_reactions_and_deletes_both_ways_with_delta_chat(
    server: ServerProcess, mail: MailServer, core: DeltaChatCore, mail_user: MailUser
) -> None:
    """Delta Chat's Chat-Edit, Chat-Delete and reaction mails (checked against
    2.65) become taube's edit, delete and reaction annotations, and back."""
    phone = mail_user.phone
    dora = await delta_chat_user(core, mail, mail_user)
    contact = await core.call(dora.get_contact_by_addr, mail_user.mailbox.addr)
    assert contact is not None
    chat = await core.call(contact.create_chat)
    eins = await core.call(chat.send_text, "eins")
    [first] = await received(phone, 1, timeout=60)
    conversation = first.conversation
    zwei_id = await phone.send_text(conversation, "zwei")
    zwei = dora.get_message_by_id(int(str((await next_text(core, dora))["id"])))

    def shown(message_id: str) -> ev.Message:
        return next(m for m in phone.history(conversation) if m.id == message_id)

    # Delta Chat → taube: a reaction, an edit, a delete for everyone
    await core.call(zwei.send_reaction, "👍")
    await wait_for(lambda: shown(zwei_id).reactions == {"👍": ["dora@example.net"]}, 60)
    await core.call(core.rpc.send_edit_request, dora.id, eins.id, "eins, bearbeitet")
    await wait_for(lambda: shown(first.id).text == "eins, bearbeitet", 60)
    assert shown(first.id).edited
    await core.call(core.rpc.delete_messages_for_all, dora.id, [eins.id])
    await wait_for(lambda: shown(first.id).deleted, 60)
    await core.call(zwei.send_reaction)  # taken back
    await wait_for(lambda: shown(zwei_id).reactions == {}, 60)

    # taube → Delta Chat
    drei = await core.call(chat.send_text, "drei")
    [third] = await received(phone, 1, timeout=60)
    await phone.react(conversation, third.id, "❤️")
    async with asyncio.timeout(60):
        while not (reactions := await core.call(drei.get_reactions)):
            await asyncio.sleep(0.2)
    assert "❤️" in str(reactions)
    await phone.edit(conversation, zwei_id, "zwei, bearbeitet")
    async with asyncio.timeout(60):
        while (await core.call(zwei.get_snapshot)).text != "zwei, bearbeitet":
            await asyncio.sleep(0.2)
    await phone.delete(conversation, zwei_id)
    async with asyncio.timeout(60):
        while await core.call(zwei.exists):
            await asyncio.sleep(0.2)

    # nothing twice, nothing in the clear on the taube server
    texts = [m.text for m in phone.history(conversation) if m.type == ev.TEXT and not m.deleted]
    assert texts == ["drei"]
    assert [m.id for m in phone.history(conversation)].count(third.id) == 1
    needles = [b"bearbeitet", b"drei"]
    assert scan([server.data_dir, server.log_path], needles) == []
