"""The e-mail connector: chat over IMAP and SMTP, as a device of the user.

``EmailConnector`` runs beside an SDK ``Client`` (one of the user's own
devices) and does two things:

- **in**: it watches the mailbox (IMAP IDLE), reads each new mail (decrypting
  it if it is encrypted), and brings every chat mail, and every mail from a
  known contact, into the matching portal conversation as an end-to-end
  encrypted taube message; only once the taube server holds those messages
  durably are the mails moved to the ``DeltaChat`` folder and marked
  handled. Mails that are not chats stay where they are, untouched. The
  taube message id is derived from the ``Message-ID``, so a mail brought in
  twice (after a crash) is still one message.
- **out**: it sends the user's messages in the portals it serves as chat
  mails (Autocrypt-encrypted whenever every recipient's key is known), and
  says how in a ``relay`` annotation, so every device shows "encrypted" or
  "not encrypted" under the message.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import mimetypes
import secrets
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from taube.client import Client, Received
from taube.client import events as ev
from taube.client.portals import EMAIL
from taube.connectors.control import State
from taube.connectors.email import chatmail, mdn, smtp
from taube.connectors.email.account import SECRET_NAME, MailAccount
from taube.connectors.email.autocrypt import (
    AutocryptHeader,
    PreferEncrypt,
    effective_date,
    parse_gossip,
    recommend,
    update_peer,
    update_peer_gossip,
)
from taube.connectors.email.imap import ImapError, LoginRefused, Mailbox
from taube.connectors.email.openpgp import MailKey, PublicKey
from taube.connectors.email.peers import Peers
from taube.connectors.email.securejoin import Handshake, SecureJoin
from taube.connectors.retry import Backoff
from taube.connectors.state import ConnectorState
from taube.proto.ids import ConversationId, MessageId

log = logging.getLogger(__name__)

NETWORK = EMAIL
#: where handled mails go (Delta Chat's convention), so other mail clients stay tidy
HANDLED_FOLDER = "DeltaChat"
#: mails brought in before the taube server is asked to hold them durably
BATCH = 50
#: the profile secret holding the connector's OpenPGP key
KEY_SECRET = "connector:email:key"  # noqa: S105 - the name, not a secret
#: messages older than this before the connector first ran are not sent out
RELAY_GRACE_MS = 24 * 3600 * 1000
#: how often the portals are looked through even when nothing woke the relay
RELAY_INTERVAL = 5.0


def new_message_local() -> str:
    return secrets.token_urlsafe(18)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclasses.dataclass(frozen=True)
class BroughtIn:
    """A mail that is (or is on its way to be) a taube message."""

    remote_id: str
    conversation: ConversationId
    message_id: MessageId


@dataclasses.dataclass(frozen=True)
class Progress:
    fetched: int = 0
    brought_in: int = 0
    skipped: int = 0
    aside: int = 0
    relayed: int = 0


class EmailConnector:
    def __init__(
        self,
        client: Client,
        account: MailAccount,
        state: ConnectorState,
        *,
        clock: Callable[[], int] = now_ms,
        on_progress: Callable[[Progress], None] | None = None,
        on_status: Callable[[State, str], None] | None = None,
    ) -> None:
        self.client = client
        self.account = account
        self.state = state
        self.peers = Peers(state)
        self.clock = clock
        self._on_progress = on_progress
        self.progress = Progress()
        self._on_status = on_status
        #: how the mailbox is doing, and the last error
        self.status: tuple[State, str] = (State.CHECKING, "")
        self.key = load_key(client, account.address)
        self.secure_join = SecureJoin(client, account, self.key, state, self.peers, clock)
        self.secure_join.on_member_added = self._member_joined
        self._relay_wake = asyncio.Event()
        #: the SMTP session mail leaves by
        self.outgoing = smtp.Submission(account)
        #: conversations to look through for messages to send (None: all)
        self._dirty: set[ConversationId] | None = None
        if state.get("email:since") is None:
            state.put("email:since", str(clock()))

    @classmethod
    def open(cls, client: Client, **kwargs: Any) -> EmailConnector:
        """The connector of ``client``'s device, with the account ``taube
        mail connect`` keeps in its profile."""
        profile = client.profile
        assert profile is not None
        raw = profile.get_secret(SECRET_NAME)
        if raw is None:
            raise LookupError("no mail account: run `taube mail connect` first")
        state = ConnectorState(client.profile_dir / "connectors" / "email.db")
        return cls(client, MailAccount.from_bytes(raw), state, **kwargs)

    def _count(self, **more: int) -> None:
        self.progress = dataclasses.replace(
            self.progress,
            **{k: getattr(self.progress, k) + v for k, v in more.items()},
        )
        if self._on_progress is not None:
            self._on_progress(self.progress)

    def _set_status(self, state: State, error: str = "") -> None:
        if (state, error) == self.status:
            return
        self.status = (state, error)
        if self._on_status is not None:
            self._on_status(state, error)

    @property
    def autocrypt_header(self) -> str:
        return AutocryptHeader(
            self.account.address, self.key.public_key, PreferEncrypt.MUTUAL
        ).to_value()

    def invite(self, conversation: ConversationId | None = None) -> str:
        """A Secure-Join invite link (Delta Chat scans it as a QR code or opens
        it): whoever joins with it gets a verified, encrypted 1:1 chat, a portal
        conversation here; with ``conversation`` (a group with e-mail
        members), they join that group. Each invite works for one person,
        for 7 days."""
        name = self.account.display_name or (self._own_name() or "")
        if conversation is None:
            return self.secure_join.invite(name)
        portal = self.client.portal(conversation)
        if portal is None or portal.network != NETWORK or not portal.chat.startswith("group:"):
            raise ValueError("not a group with e-mail members")
        title = self.client.title(conversation) or portal.title
        group = (portal.chat.removeprefix("group:"), title, conversation)
        return self.secure_join.invite(name, group)

    async def _member_joined(self, conversation: ConversationId, address: str) -> None:
        """Someone joined a group by our invite: a member of the portal now,
        and told to every member (``vg-member-added``, with everyone's key)."""
        portal = self.client.portal(conversation)
        if portal is None:
            return
        own = self.account.address.lower()
        peers = tuple(sorted({*portal.peers, address}))
        portal = dataclasses.replace(portal, peers=peers, by=self.client.device)
        await self.client.update_portal(conversation, portal)
        await self._send_change(
            conversation,
            portal,
            f"Member {address} added.",
            [("Secure-Join", "vg-member-added")],
            member_added=address,
        )
        self.state.put(f"announced:{conversation}", json.dumps([p for p in peers if p != own]))

    async def join(self, qr: str) -> ConversationId:
        """Join a Delta Chat user's Secure-Join invite (``get_qr_code()``'s text).

        Opens the portal conversation for the inviter and sends the first
        handshake mail; returns at once. The rest comes with the inviter's
        answers while ``run`` is running: their key, checked against the
        invite's fingerprint, becomes the verified key of the chat
        (``peers.verified``). Raises ``securejoin.InviteError`` for text that
        is not a setup-contact invite."""
        return await self.secure_join.join(qr)

    async def run(self) -> None:
        """Relay both ways until cancelled (the client must be connected)."""
        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(self._receive_loop())
                tasks.create_task(self._relay_loop())
                tasks.create_task(self._watch())
        finally:
            await asyncio.shield(self.outgoing.close())

    # ================================================================ in

    async def _receive_loop(self) -> None:
        backoff = Backoff()
        while True:
            try:
                async with Mailbox(self.account) as box:
                    await box.ensure_folder(HANDLED_FOLDER)
                    backoff.reset()
                    self._set_status(State.CONNECTED)
                    while True:
                        await self.fetch_new(box)
                        await box.idle()
            except (OSError, TimeoutError, ImapError) as exc:
                refused = isinstance(exc, LoginRefused)
                self._set_status(
                    State.AUTH_FAILED if refused else State.RECONNECTING, str(exc) or repr(exc)
                )
                delay = backoff.next()
                log.warning("mailbox: %s; again in %.1f s", exc, delay)
                await asyncio.sleep(delay)

    async def fetch_new(self, box: Mailbox) -> None:
        """Bring in every mail that arrived since the last look, until none
        is left: a mail announced while a command ran (aioimaplib drops such
        announcements) would otherwise wait for the next one."""
        while await self._fetch_once(box):
            pass

    async def _fetch_once(self, box: Mailbox) -> bool:
        folder = box.folder
        if self.state.get(f"imap:{folder}:uidvalidity") != str(box.uidvalidity):
            # the folder was rebuilt: look at everything again (``handled`` dedupes)
            self.state.put(f"imap:{folder}:uidvalidity", str(box.uidvalidity))
            self.state.put(f"imap:{folder}:last", "0")
        last = int(self.state.get(f"imap:{folder}:last") or 0)
        sizes = await box.sizes_after(last)
        uids = list(sizes)
        for start in range(0, len(uids), BATCH):
            chunk = uids[start : start + BATCH]
            done: list[tuple[int, BroughtIn]] = []
            for uid in chunk:
                brought = await self._bring_in_uid(box, uid, sizes[uid])
                if brought is not None:
                    done.append((uid, brought))
            if done:
                # marked handled only once the taube server holds the messages
                await self.client.flush(timeout=120)
                self.state.mark_handled(
                    NETWORK,
                    [(b.remote_id, b.conversation, b.message_id) for _, b in done],
                    self.clock(),
                )
                await box.move([uid for uid, _ in done], HANDLED_FOLDER)
            self.state.put(f"imap:{folder}:last", str(chunk[-1]))
        return bool(uids)

    async def _bring_in_uid(self, box: Mailbox, uid: int, size: int) -> BroughtIn | None:
        remote = f"uid:{box.uidvalidity}:{uid}"
        if size > chatmail.MAX_MAIL_BYTES:
            self._aside(
                remote, f"{size // (1024 * 1024)} MB is more than 25 MB: left in the mailbox"
            )
            return None
        raw = await box.fetch(uid)
        self._count(fetched=1)
        if raw is None:
            return None
        try:
            brought = await self.bring_in(raw)
        except chatmail.MailError as exc:
            self._aside(remote, str(exc))
            return None
        if brought is None:
            self._count(skipped=1)
        return brought

    def _aside(self, remote_id: str, reason: str) -> None:
        log.warning("mail %s kept aside: %s", remote_id, reason)
        self.state.put_aside(NETWORK, remote_id, reason, self.clock())
        self._count(aside=1)

    async def bring_in(self, raw: bytes) -> BroughtIn | None:
        """Make ``raw`` a taube message (``None``: not for a chat, left alone).
        Raises ``MailError`` for a mail to keep aside. Secure-Join handshake
        mails are dealt with (or refused) and handled, never shown."""
        try:
            mail = chatmail.parse(raw, self.key, self.peers.keys_of)
        except chatmail.MailError:
            handshake = await self.secure_join.bring_in_password_mail(raw)
            if handshake is None:
                raise
            return self._handshake_done(handshake)
        own = self.account.address.lower()
        known = self.state.message_id_of(NETWORK, mail.message_id)
        if known is not None:  # brought in before (or our own, sent from here)
            found = self._conversation_of(mail)
            return BroughtIn(mail.message_id, found or ConversationId(""), known)
        if mail.from_addr == own:
            return None  # sent by another client of this account
        handshake = await self.secure_join.bring_in(mail)
        if handshake is not None:
            return self._handshake_done(handshake)
        self._learn_keys(mail)
        change = chatmail.change_of(mail)
        if change is not None:
            return await self._bring_in_change(mail, change)
        conversation = await self._portal_for(mail)
        if conversation is None:
            return None
        msg_id = self.state.message_id_for(NETWORK, mail.message_id)
        remote = self._remote(mail)
        if mail.read_receipt_for:
            read = [
                m
                for m in (self.state.message_id_of(NETWORK, r) for r in mail.read_receipt_for)
                if m is not None
            ]
            if not read:
                return None
            content: dict[str, Any] = {"read": read, "remote": remote}
            await self.client.send(conversation, ev.RECEIPT, content, msg_id=msg_id)
        else:
            content = {"body": mail.text, "remote": remote}
            if mail.in_reply_to:
                target = self.state.message_id_of(NETWORK, mail.in_reply_to)
                if target is not None:
                    content["reply_to"] = target
            if mail.attachments:
                content["attachments"] = await self._upload(mail.attachments)
            await self.client.send(conversation, ev.TEXT, content, msg_id=msg_id)
            if mail.disposition_to and mail.encrypted:  # a read receipt is wanted
                self.state.put(f"mdn:{msg_id}", mail.message_id)
        self._count(brought_in=1)
        return BroughtIn(mail.message_id, conversation, msg_id)

    def _remote(self, mail: chatmail.ChatMail) -> dict[str, Any]:
        return {
            "network": NETWORK,
            "sender": mail.from_addr,
            "name": mail.from_name,
            "encrypted": mail.encrypted and mail.signer is not None,
        }

    async def _bring_in_change(
        self, mail: chatmail.ChatMail, change: chatmail.Change
    ) -> BroughtIn | None:
        """An edit, a delete or reactions from the other side, as taube's
        annotations of the messages they name. Only their author edits or
        deletes a message; a reaction mail carries the sender's whole set, so
        what changed since their last one is sent (taube's reactions toggle)."""
        conversation = self._conversation_of(mail)
        if conversation is None:
            return None  # no chat of ours: left alone
        msg_id = self.state.message_id_for(NETWORK, mail.message_id)
        done = BroughtIn(mail.message_id, conversation, msg_id)
        remote = self._remote(mail)
        targets = [t for t in (self.state.message_id_of(NETWORK, m) for m in change.targets) if t]
        if change.kind == "reaction":
            for target in targets[:1]:
                slot = f"reactions:{target}:{mail.from_addr}"
                before = set(json.loads(self.state.get(slot) or "[]"))
                now = set(change.text.split())
                for key in sorted(before ^ now):
                    content = {"target": target, "key": key, "remote": remote}
                    toggle = self.state.message_id_for(NETWORK, f"{mail.message_id}#{key}")
                    await self.client.send(conversation, ev.REACTION, content, msg_id=toggle)
                self.state.put(slot, json.dumps(sorted(now)))
            return done
        authored = {
            m.id
            for m in self.client.history(conversation, limit=1000)
            if m.remote is not None and m.remote.sender == mail.from_addr
        }
        mine = [t for t in targets if t in authored]
        for index, target in enumerate(mine):
            one = (
                msg_id
                if index == 0
                else self.state.message_id_for(NETWORK, f"{mail.message_id}#{target}")
            )
            if change.kind == "edit":
                content = {"target": target, "body": change.text, "remote": remote}
                await self.client.send(conversation, ev.EDIT, content, msg_id=one)
            else:
                await self.client.send(
                    conversation, ev.DELETE, {"target": target, "remote": remote}, msg_id=one
                )
        if len(mine) < len(targets):
            log.warning("mail %s changes messages its sender did not write", mail.message_id)
        return done

    def _handshake_done(self, handshake: Handshake) -> BroughtIn:
        """A handshake mail is handled (moved away) like a chat mail, but no
        message is made of it."""
        msg_id = self.state.message_id_for(NETWORK, handshake.remote_id)
        return BroughtIn(handshake.remote_id, handshake.conversation or ConversationId(""), msg_id)

    def _learn_keys(self, mail: chatmail.ChatMail) -> None:
        """Autocrypt: the sender's key from its header, members' from gossip."""
        if mail.auto_submitted:
            return
        date = effective_date(mail.date_ms, self.clock())
        peer = update_peer(self.peers.get(mail.from_addr), mail.from_addr, date, mail.autocrypt)
        self.peers.put(peer)
        if mail.encrypted and mail.signer is not None and mail.gossip:
            for addr, key in parse_gossip(mail.gossip, mail.recipients).items():
                if addr != self.account.address.lower():
                    self.peers.put(update_peer_gossip(self.peers.get(addr), addr, date, key))

    def _chat_of(self, mail: chatmail.ChatMail) -> str:
        return f"group:{mail.group_id}" if mail.group_id else mail.from_addr

    def _conversation_of(self, mail: chatmail.ChatMail) -> ConversationId | None:
        return self.client._portals.find(NETWORK, self._chat_of(mail))

    async def _portal_for(self, mail: chatmail.ChatMail) -> ConversationId | None:
        """The portal conversation for ``mail``'s chat: found, or opened for a
        chat mail or a mail from a known contact (``None``: neither)."""
        chat = self._chat_of(mail)
        portals = self.client.portals()
        own = self.account.address.lower()
        for conversation, portal in portals.items():
            if portal.network == NETWORK and portal.chat.lower() == chat.lower():
                peers = set(portal.peers)
                if mail.member_added and mail.member_added != own:
                    peers.add(mail.member_added)
                if mail.member_removed:
                    peers.discard(mail.member_removed)
                peers.add(mail.from_addr)
                if peers != set(portal.peers) or portal.by != self.client.device:
                    await self.client.update_portal(
                        conversation,
                        dataclasses.replace(
                            portal, peers=tuple(sorted(peers)), by=self.client.device
                        ),
                    )
                return conversation
        known = any(mail.from_addr in p.peers for p in portals.values() if p.network == NETWORK)
        if not mail.is_chat and not known:
            return None
        if mail.group_id:
            members = tuple(sorted({mail.from_addr, *mail.recipients} - {own}))
            title = mail.group_name or mail.subject or mail.group_id
        else:
            members, title = (mail.from_addr,), mail.from_name or mail.from_addr
        return await self.client.open_portal(
            ev.Portal(NETWORK, chat, members, title, self.client.device)
        )

    async def _upload(self, attachments: list[chatmail.MailAttachment]) -> list[dict[str, Any]]:
        entries = []
        with tempfile.TemporaryDirectory() as directory:
            for attachment in attachments:
                path = Path(directory) / attachment.filename
                await asyncio.to_thread(path.write_bytes, attachment.data)
                entries.append(await self.client.upload(path))
        return entries

    # ================================================================ out

    async def _watch(self) -> None:
        """Wake the relay for the conversation something arrived in."""
        async for event in self.client.events():
            if isinstance(event, Received):
                if self._dirty is not None:  # (None: all of them anyway)
                    self._dirty.add(event.message.conversation)
                self._relay_wake.set()

    def wake(self) -> None:
        """Look through every portal now (messages this device sent itself
        arrive as no event)."""
        self._dirty = None
        self._relay_wake.set()

    async def _relay_loop(self) -> None:
        backoff = Backoff()
        while True:
            try:
                async with asyncio.timeout(RELAY_INTERVAL):
                    await self._relay_wake.wait()
            except TimeoutError:
                self._dirty = None  # now and then, every portal
            self._relay_wake.clear()
            only, self._dirty = self._dirty, set()
            try:
                await self.relay_pending(only)
                backoff.reset()
            except (OSError, TimeoutError, smtp.SmtpError) as exc:
                if isinstance(exc, smtp.SmtpError) and exc.login:
                    self._set_status(State.AUTH_FAILED, str(exc))
                delay = backoff.next()
                log.warning("sending mail: %s; again in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                self.wake()

    async def relay_pending(self, only: set[ConversationId] | None = None) -> int:
        """Send out the user's messages in the portals this connector serves
        (``only``: in these conversations; ``None``: in all)."""
        client = self.client
        since = int(self.state.get("email:since") or 0) - RELAY_GRACE_MS
        sent = 0
        for conversation, portal in client.portals().items():
            if portal.network != NETWORK or (only is not None and conversation not in only):
                continue
            if portal.by is None:  # opened by one of the user's devices: serve it
                await client.update_portal(
                    conversation, dataclasses.replace(portal, by=client.device)
                )
            elif portal.by != client.device:
                continue  # another connector device serves it
            for message in client.history(conversation, limit=1000):
                if message.remote is not None and client.user in message.read_by:
                    await self._send_receipt(message)
                await self._send_changes(conversation, portal, message)
                if (
                    message.remote is not None
                    or message.type != ev.TEXT
                    or message.deleted
                    or message.status not in ("sent", "received")
                    or message.ts < since
                    or (message.seq is not None and message.seq < 0)  # imported: sent before
                    or self.state.relayed(message.id)
                ):
                    continue
                await self._send_out(conversation, portal, message)
                sent += 1
        return sent

    async def _send_out(
        self, conversation: ConversationId, portal: ev.Portal, message: ev.Message
    ) -> None:
        """One message of the conversation as chat mail: encrypted to every
        peer whose key is known, in plain to the others (told in the relay
        annotation, so every device of the user shows it)."""
        own = self.account.address
        peers = [p for p in portal.peers if p.lower() != own.lower()]
        group = portal.chat.removeprefix("group:") if portal.chat.startswith("group:") else None
        added, removed = self._membership_news(conversation, peers) if group else (None, None)
        recipients = [*peers, removed] if removed else peers
        keys = {p: k for p in recipients if (k := self._key_for(p)) is not None}
        plain = [p for p in recipients if p not in keys]
        reply = None
        if message.reply_to:
            reply = self.state.remote_id_of(NETWORK, message.reply_to)
        mail = chatmail.OutgoingMail(
            message_id=f"{message.id}@{own.partition('@')[2]}",
            from_addr=own,
            from_name=self._name_of(message),
            recipients=recipients,
            date=datetime.fromtimestamp(message.ts / 1000, UTC),
            text=message.text,
            attachments=await self._attachments_of(message),
            group_id=group,
            group_name=(self.client.title(conversation) or portal.title) if group else None,
            member_added=added,
            member_removed=removed,
            in_reply_to=reply,
            disposition_to=own,
            autocrypt=self.autocrypt_header,
        )
        relay: dict[str, Any] = {"target": message.id, "network": NETWORK, "encrypted": not plain}
        if plain:
            relay["plain_to"] = plain
        try:
            if keys:
                if group:  # so every member can encrypt to every other
                    mail.gossip = [AutocryptHeader(a, k).to_value() for a, k in keys.items()]
                encrypted = chatmail.encrypt(
                    chatmail.build(mail), keys.values(), self.key, datetime.now(UTC)
                )
                await self.outgoing.send(encrypted, list(keys))
            if plain:
                mail.gossip = []
                await self.outgoing.send(chatmail.build(mail), plain)
        except smtp.SmtpError as exc:
            if not exc.permanent:
                raise
            relay["error"] = str(exc)
        self.state.mark_relayed(
            NETWORK, message.id, mail.message_id, encrypted=not plain, at_ms=self.clock()
        )
        if group:
            self.state.put(f"announced:{conversation}", json.dumps(sorted(peers)))
        await self.client.send(conversation, ev.RELAY, relay)
        self._count(relayed=1)

    async def _send_changes(
        self, conversation: ConversationId, portal: ev.Portal, message: ev.Message
    ) -> None:
        """The user's edits, deletes and reactions of a message that went by
        mail, as Delta Chat sends them (encrypted only: to the peers whose key
        is known; a plain-mail contact's client would show them as mails)."""
        remote_id = self.state.remote_id_of(NETWORK, message.id)
        if remote_id is None:
            return
        own = self.state.relayed(message.id) and message.sender == self.client.user
        if own and message.deleted and not self.state.get(f"deleted-sent:{message.id}"):
            await self._send_change(
                conversation, portal, chatmail.DELETED_TEXT, [("Chat-Delete", f"<{remote_id}>")]
            )
            self.state.put(f"deleted-sent:{message.id}", "1")
            return
        if own and message.edited and not message.deleted:
            sent = self.state.get(f"edit-sent:{message.id}")
            if sent != message.text:
                text = f"{chatmail.EDITED_PREFIX}{message.text}"
                await self._send_change(
                    conversation, portal, text, [("Chat-Edit", f"<{remote_id}>")], reply=remote_id
                )
                self.state.put(f"edit-sent:{message.id}", message.text)
        mine = sorted(k for k, users in message.reactions.items() if self.client.user in users)
        if json.dumps(mine) != (self.state.get(f"reacted:{message.id}") or "[]"):
            await self._send_change(
                conversation, portal, " ".join(mine), [], reply=remote_id, disposition="reaction"
            )
            self.state.put(f"reacted:{message.id}", json.dumps(mine))

    async def _send_change(
        self,
        conversation: ConversationId,
        portal: ev.Portal,
        text: str,
        extra: list[tuple[str, str]],
        *,
        reply: str | None = None,
        disposition: str | None = None,
        member_added: str | None = None,
    ) -> None:
        own = self.account.address
        peers = [p for p in portal.peers if p.lower() != own.lower()]
        keys = {p: k for p in peers if (k := self._key_for(p)) is not None}
        if not keys:
            return
        group = portal.chat.removeprefix("group:") if portal.chat.startswith("group:") else None
        gossip = [AutocryptHeader(a, k).to_value() for a, k in keys.items()] if group else []
        mail = chatmail.OutgoingMail(
            message_id=f"{new_message_local()}@{own.partition('@')[2]}",
            from_addr=own,
            from_name=self.account.display_name or (self._own_name() or ""),
            recipients=list(keys),
            date=datetime.now(UTC),
            text=text,
            group_id=group,
            group_name=(self.client.title(conversation) or portal.title) if group else None,
            in_reply_to=reply,
            autocrypt=self.autocrypt_header,
            gossip=gossip,
            extra=extra,
            disposition=disposition,
            member_added=member_added,
        )
        encrypted = chatmail.encrypt(chatmail.build(mail), keys.values(), self.key, mail.date)
        await self.outgoing.send(encrypted, list(keys))

    async def _send_receipt(self, message: ev.Message) -> None:
        """The user read a mail that asked for a receipt: send it (once, and
        only encrypted: Delta Chat drops plain ones)."""
        remote = message.remote
        original = self.state.get(f"mdn:{message.id}")
        if remote is None or original is None or self.state.get(f"mdn-sent:{message.id}"):
            return
        key = self._key_for(remote.sender)
        if key is not None:
            own = self.account.address
            receipt = mdn.build(
                from_addr=own,
                to=remote.sender,
                message_id=f"mdn.{message.id}@{own.partition('@')[2]}",
                original=original,
                date=datetime.now(UTC),
                autocrypt=self.autocrypt_header,
            )
            sealed = chatmail.encrypt(receipt, [key], self.key, datetime.now(UTC))
            await self.outgoing.send(sealed, [remote.sender])
        self.state.put(f"mdn-sent:{message.id}", "1")

    def _key_for(self, address: str) -> PublicKey | None:
        advice = recommend({address: self.peers.get(address)})
        return advice.target_keys.get(address) if advice.can_encrypt else None

    def _membership_news(
        self, conversation: ConversationId, peers: list[str]
    ) -> tuple[str | None, str | None]:
        """A member added and one removed since the last mail of the group
        (one of each per mail, as Delta Chat reads them)."""
        known = self.state.get(f"announced:{conversation}")
        if known is None:
            return None, None  # the group's first mail names every member
        before = set(json.loads(known))
        added = sorted(set(peers) - before)
        removed = sorted(before - set(peers))
        return (added[0] if added else None), (removed[0] if removed else None)

    def _name_of(self, message: ev.Message) -> str:
        """The From name: the user's own, or the taube member who wrote it."""
        if message.sender == self.client.user:
            return self.account.display_name or (self._own_name() or "")
        contact = self.client.contact(message.sender)
        return contact.name if contact is not None and contact.name else message.sender

    def _own_name(self) -> str | None:
        own = self.client.contact(self.client.user)
        return None if own is None else own.name

    async def _attachments_of(self, message: ev.Message) -> list[chatmail.MailAttachment]:
        found = []
        for index, entry in enumerate(message.content.get("attachments", [])):
            path = self.client.attachment_path(message, index)
            if not path.exists():
                continue
            name = str(entry.get("name", path.name))
            mime = str(entry.get("mime") or mimetypes.guess_type(name)[0] or "")
            data = await asyncio.to_thread(path.read_bytes)
            found.append(chatmail.MailAttachment(name, mime or "application/octet-stream", data))
        return found


async def verify_account(account: MailAccount) -> None:
    """Log in to IMAP and SMTP once (raises what they raise)."""
    async with Mailbox(account):
        pass
    await smtp.check(account)


def load_key(client: Client, address: str) -> MailKey:
    """The connector's OpenPGP key (made once, kept sealed in the profile)."""
    profile = client.profile
    assert profile is not None
    raw = profile.get_secret(KEY_SECRET)
    if raw is not None:
        return MailKey.from_bytes(raw)
    key = MailKey.generate(address)
    profile.put_secret(KEY_SECRET, key.to_bytes())
    return key
