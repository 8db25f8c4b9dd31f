"""Secure-Join between the e-mail connector and a real Delta Chat 2.65 core,
through a real Postfix + Dovecot: Delta Chat joins taube's invite, taube joins
Delta Chat's, and forged or replayed proofs change nothing."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from deltachat_rpc_client import AttrDict, Chat

from taube.client import events as ev
from taube.connectors.email import chatmail, openpgp, pgpmime
from taube.connectors.email.autocrypt import AutocryptHeader, PreferEncrypt
from taube.connectors.email.openpgp import MailKey, PublicKey
from taube.connectors.email.securejoin import Invite, new_token
from taube.testing import ServerProcess
from taube.testing.canary import scan
from taube.testing.deltachat import DeltaChatCore
from taube.testing.mailserver import MailAccount as Mailbox
from taube.testing.mailserver import MailServer
from tests.connectors.conftest import MailUser
from tests.connectors.email.test_connector_functional import inbox, received, submit, wait_for

pytestmark = pytest.mark.services

ALICE = "alice@example.org"


async def key_of(core: DeltaChatCore, chat: Chat, addr: str) -> str:
    """The fingerprint of the key of ``addr``'s contact in ``chat``.

    Delta Chat 2.65 no longer says whether a contact is verified (the
    contact object lost ``isVerified`` and ``verifierId``): the handshake's
    end shows as a progress event of 1000, and the contact's key is the one
    the handshake carried."""
    for contact in await core.call(chat.get_contacts):
        snapshot = await core.call(contact.get_snapshot)
        if snapshot.address == addr and snapshot.is_key_contact:
            info = await core.call(contact.get_encryption_info)
            # "addr (addr):\nXXXX XXXX ... \nXXXX ...": the first fingerprint is theirs
            block = info.split(f"({addr}):", 1)[1].strip().split("\n\n", 1)[0]
            return "".join(block.split())
    raise LookupError(addr)


async def talk_both_ways(core: DeltaChatCore, chat: Chat, user: MailUser) -> None:
    """Dora writes, alice's phone reads it (encrypted) and answers (encrypted)."""
    await core.call(chat.send_text, "Hallo Alice, verified")
    [message] = await received(user.phone, 1, timeout=60)
    assert message.text == "Hallo Alice, verified"
    assert message.remote == ev.Remote("email", "dora@example.net", "Dora", encrypted=True)
    await user.phone.send_text(message.conversation, "Hallo Dora, verified too")
    await wait_for(lambda: user.phone.history(message.conversation)[-1].relayed is not None, 60)
    assert user.phone.history(message.conversation)[-1].relayed == ev.Relayed("email", True)
    answer = await arrived(core, chat, "Hallo Dora, verified too")
    assert answer.show_padlock is True


async def arrived(core: DeltaChatCore, chat: Chat, text: str, timeout: float = 60) -> AttrDict:
    """The snapshot of the message with ``text`` in ``chat``, once it is there."""
    async with asyncio.timeout(timeout):
        while True:
            for message in await core.call(chat.get_messages):
                snapshot = await core.call(message.get_snapshot)
                if snapshot.text == text:
                    return snapshot
            await asyncio.sleep(0.2)


#: v3 (password mails first, what Delta Chat 2.65 does) and the older way
#: (``vc-request`` in the clear), which it still speaks with invites without ``v=3``
HANDSHAKES = pytest.mark.parametrize("v3", [True, False], ids=["v3", "before-v3"])


@HANDSHAKES
async def test_delta_chat_joins_taube_invite(
    server: ServerProcess, mail: MailServer, core: DeltaChatCore, mail_user: MailUser, v3: bool
) -> None:
    dora = await core.configured_account(mail.add_user("dora@example.net"))
    dora_fingerprint = Invite.parse(await core.call(dora.get_qr_code)).fingerprint
    qr = mail_user.connector.invite()
    assert qr.startswith(f"https://i.delta.chat/#{mail_user.connector.key.fingerprint}&v=3&")
    if not v3:
        qr = qr.replace("&v=3", "")
    checked = await core.call(dora.check_qr, qr)
    assert (checked["kind"], checked["is_v3"]) == ("askVerifyContact", v3)
    chat = await core.call(dora.secure_join, qr)
    await core.wait_for_event(dora, "SecurejoinJoinerProgress", progress=1000)
    assert await key_of(core, chat, ALICE) == mail_user.connector.key.fingerprint
    verified = mail_user.connector.peers.verified("dora@example.net")
    assert verified is not None
    assert verified.fingerprint == dora_fingerprint
    await wait_for(lambda: mail_user.phone.find_portal("email", "dora@example.net") is not None)
    # no handshake mail became a message
    conversation = mail_user.phone.find_portal("email", "dora@example.net")
    assert conversation is not None
    assert [m for m in mail_user.phone.history(conversation) if m.type == ev.TEXT] == []
    await talk_both_ways(core, chat, mail_user)


@HANDSHAKES
async def test_taube_joins_delta_chat_invite(
    server: ServerProcess, mail: MailServer, core: DeltaChatCore, mail_user: MailUser, v3: bool
) -> None:
    dora = await core.configured_account(mail.add_user("dora@example.net"))
    qr = await core.call(dora.get_qr_code)
    if not v3:
        qr = qr.replace("&v=3", "")
    invite = Invite.parse(qr)
    assert invite.v3 is v3
    conversation = await mail_user.connector.join(qr)
    done = await core.wait_for_event(dora, "SecurejoinInviterProgress", progress=1000)
    chat = await core.call(dora.get_chat_by_id, done.chat_id)
    assert await key_of(core, chat, ALICE) == mail_user.connector.key.fingerprint
    verified = mail_user.connector.peers.verified("dora@example.net")
    assert verified is not None
    assert verified.fingerprint == invite.fingerprint
    connector_state = mail_user.connector.state
    await wait_for(lambda: connector_state.get("securejoin:confirmed:dora@example.net") is not None)
    await wait_for(lambda: mail_user.phone.find_portal("email", "dora@example.net") is not None)
    assert mail_user.phone.find_portal("email", "dora@example.net") == conversation
    await talk_both_ways(core, chat, mail_user)


async def forged_request_with_auth(
    eve: Mailbox, eve_key: MailKey, alice_key: PublicKey, auth: str
) -> None:
    """A well-formed ``vc-request-with-auth`` from eve: signed by her key,
    encrypted to alice's, alice's key gossiped, with the auth token given."""
    mail = chatmail.OutgoingMail(
        message_id=f"{new_token()}@example.net",
        from_addr=eve.addr,
        from_name="Eve",
        recipients=[ALICE],
        date=datetime.now(UTC),
        text="Secure-Join: vc-request-with-auth",
        autocrypt=AutocryptHeader(eve.addr, eve_key.public_key, PreferEncrypt.MUTUAL).to_value(),
        gossip=[AutocryptHeader(ALICE, alice_key).to_value()],
        extra=[
            ("Secure-Join", "vc-request-with-auth"),
            ("Secure-Join-Auth", auth),
            ("Secure-Join-Fingerprint", str(eve_key.fingerprint)),
        ],
    )
    protected = pgpmime.protect_headers(chatmail.build(mail), outer_date=datetime.now(UTC))
    armored = openpgp.encrypt_and_sign(protected.payload, [alice_key], eve_key, compress=False)
    forged = pgpmime.wrap_encrypted(armored, protected.outer_headers)
    await submit(eve, forged.as_bytes(), ALICE)


async def handled(user: MailUser, count: int) -> None:
    """Wait until the connector has moved ``count`` mails in all to the
    DeltaChat folder and none is left in alice's INBOX (a mail accepted by
    SMTP may reach the INBOX a moment later: an empty INBOX alone says little)."""

    def done() -> bool:
        folder = inbox(user.mailbox, "DeltaChat")
        return len(folder) >= count and not inbox(user.mailbox)

    async with asyncio.timeout(30):
        while not await asyncio.to_thread(done):
            await asyncio.sleep(0.2)


def moved(user: MailUser) -> int:
    return len(inbox(user.mailbox, "DeltaChat"))


async def test_a_wrong_or_used_auth_token_changes_nothing(
    server: ServerProcess, mail: MailServer, core: DeltaChatCore, mail_user: MailUser
) -> None:
    connector = mail_user.connector
    alice_key = connector.key.public_key
    eve = mail.add_user("eve@example.net")
    eve_key = MailKey.generate(eve.addr)
    qr = connector.invite()
    auth = Invite.parse(qr).auth

    def untouched() -> None:
        assert connector.peers.get(eve.addr) is None  # not even her Autocrypt key
        assert mail_user.phone.find_portal("email", eve.addr) is None
        assert mail_user.device.find_portal("email", eve.addr) is None

    # a made-up auth token
    await forged_request_with_auth(eve, eve_key, alice_key, new_token())
    await handled(mail_user, 1)
    untouched()
    # dora joins with the invite...
    dora = await core.configured_account(mail.add_user("dora@example.net"))
    await core.call(dora.secure_join, qr)
    await core.wait_for_event(dora, "SecurejoinJoinerProgress", progress=1000)
    await wait_for(lambda: connector.peers.verified("dora@example.net") is not None)
    await handled(mail_user, 2)
    dora_before = connector.state.peer("email", "dora@example.net")
    # ...and eve, who saw the QR code over dora's shoulder, uses its token too late
    count = await asyncio.to_thread(moved, mail_user)
    await forged_request_with_auth(eve, eve_key, alice_key, auth)
    await handled(mail_user, count + 1)
    untouched()
    # dora's own vc-request-with-auth (her larger handshake mail), delivered once more
    from_dora = [
        m
        for m in await asyncio.to_thread(inbox, mail_user.mailbox, "DeltaChat")
        if "dora@" in str(m["From"])
    ]
    proof = max(from_dora, key=lambda m: len(m.as_bytes()))
    await submit(mail_user.mailbox, proof.as_bytes(), ALICE)
    await handled(mail_user, count + 2)
    assert connector.state.peer("email", "dora@example.net") == dora_before
    phone = mail_user.phone
    await wait_for(lambda: phone.find_portal("email", "dora@example.net") is not None)
    conversation = phone.find_portal("email", "dora@example.net")
    assert conversation is not None
    assert [m for m in phone.history(conversation) if m.type == ev.TEXT] == []
    assert connector.state.aside("email") == []
    # the control: the same forgery with a fresh invite's token is a join
    await forged_request_with_auth(eve, eve_key, alice_key, Invite.parse(connector.invite()).auth)
    await handled(mail_user, count + 3)
    verified = connector.peers.verified(eve.addr)
    assert verified is not None
    assert verified.fingerprint == eve_key.fingerprint


async def test_taube_joins_a_delta_chat_group_by_its_invite(
    server: ServerProcess, mail: MailServer, core: DeltaChatCore, mail_user: MailUser
) -> None:
    """A group invite (``vg-``): Delta Chat 2.65 runs the same password mails
    as for a contact (``vc-request-pubkey``, ``vc-pubkey``), then takes
    ``vg-request-with-auth`` and adds the joiner (``vg-member-added``)."""
    dora = await core.configured_account(mail.add_user("dora@example.net"))
    group = await core.call(dora.create_group, "Wanderfreunde")
    qr = await core.call(group.get_qr_code)
    invite = Invite.parse(qr)
    assert invite.group_id is not None
    assert invite.group_name == "Wanderfreunde"
    conversation = await mail_user.connector.join(qr)
    done = await core.wait_for_event(dora, "SecurejoinInviterProgress", progress=1000)
    assert done.chat_id == group.id
    assert [
        s.address
        for s in [await core.call(c.get_snapshot) for c in await core.call(group.get_contacts)]
    ].count(ALICE) == 1
    verified = mail_user.connector.peers.verified("dora@example.net")
    assert verified is not None
    assert verified.fingerprint == invite.fingerprint
    portal = mail_user.phone.portal(conversation)
    assert portal is not None
    assert (portal.chat, portal.title) == (f"group:{invite.group_id}", "Wanderfreunde")
    # the group talks both ways, encrypted, in the same conversation
    await core.call(group.send_text, "Hallo Gruppe, schön dass du da bist")
    found = await received(mail_user.phone, 2, timeout=60)
    message = next(m for m in found if "schön" in m.text)
    assert message.conversation == conversation
    assert message.remote == ev.Remote("email", "dora@example.net", "Dora", encrypted=True)
    await mail_user.phone.send_text(conversation, "Danke, bis Sonntag!")
    answer = await arrived(core, group, "Danke, bis Sonntag!")
    assert answer.show_padlock is True
    assert answer.chat_id == group.id
    assert scan([server.data_dir, server.log_path], [b"bis Sonntag", b"Gruppe, sch"]) == []


async def test_delta_chat_joins_a_taube_group_by_its_invite(
    server: ServerProcess, mail: MailServer, core: DeltaChatCore, mail_user: MailUser
) -> None:
    """taube as the inviter of a group: the joiner is added to the group's
    portal and every member hears of it (``vg-member-added``)."""
    bob = mail.add_user("bob@plain.example")
    phone = mail_user.phone
    conversation = await phone.create_group([bob.addr])
    await phone.rename(conversation, "Lesekreis")
    await phone.flush()
    connector = mail_user.connector
    await wait_for(lambda: mail_user.device.title(conversation) == "Lesekreis", 30)
    qr = connector.invite(conversation)
    invite = Invite.parse(qr)
    assert (invite.group_name, invite.fingerprint) == ("Lesekreis", connector.key.fingerprint)
    dora = await core.configured_account(mail.add_user("dora@example.net"))
    checked = await core.call(dora.check_qr, qr)
    assert checked["kind"] == "askVerifyGroup"
    chat = await core.call(dora.secure_join, qr)
    await core.wait_for_event(dora, "SecurejoinJoinerProgress", progress=1000)
    await wait_for(
        lambda: (
            "dora@example.net" in (phone.portal(conversation) or ev.Portal("", "", (), "")).peers
        ),
        60,
    )
    assert (await core.call(chat.get_basic_snapshot)).name == "Lesekreis"
    verified = connector.peers.verified("dora@example.net")
    assert verified is not None
    # the group talks both ways, encrypted where keys are known
    await core.call(chat.send_text, "Hallo Lesekreis")
    found = await received(phone, 1, timeout=60)
    assert [(m.conversation, m.text) for m in found] == [(conversation, "Hallo Lesekreis")]
    assert found[0].remote is not None
    assert found[0].remote.encrypted
    await phone.send_text(conversation, "Willkommen, Dora")
    answer = await arrived(core, chat, "Willkommen, Dora")
    assert answer.show_padlock is True
    await wait_for(lambda: any("Willkommen" in m.get_content() for m in inbox(bob)), 60)
    assert scan([server.data_dir, server.log_path], [b"Hallo Lesekreis", b"Willkommen"]) == []
