"""Receiving: what the server pushes, decrypted, checked and stored.

``Receiver`` is the connection's ``FrameHandler``. A message is decrypted
with the sender device's Megolm session, checked against its envelope (a
replay is dropped, a gap becomes a ``MissingMessages`` event), its
attachments are downloaded, and it is stored before the connection
acknowledges it. A message whose room key has not arrived waits in the
profile's ``undecrypted`` table (``waiting.py``) and is tried again when its
key comes. To-device messages carry room keys, link requests and verification.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from taube.client import attachments, sas, statekey
from taube.client import events as ev
from taube.client.background import Background
from taube.client.chain import ChainError
from taube.client.contacts import Contacts
from taube.client.conversations import Conversations, Sender
from taube.client.errors import ClientError, NotAMember, ServerError
from taube.client.linking import Linking
from taube.client.messages import Messages
from taube.client.portals import Portals
from taube.client.session import Emit, Session
from taube.client.verification import Verification
from taube.client.waiting import Waiting
from taube.crypto import (
    TYPE_ROOM_KEY,
    BadPayload,
    CryptoError,
    DecryptedMessage,
    DecryptionFailed,
    MegolmCiphertext,
    ReplayedMessage,
    UnknownSession,
    VerifiedDevice,
    accept_room_key,
    room_key_of,
)
from taube.proto import frames
from taube.proto.ids import ConversationId, DeviceId, MessageId, UserId

log = logging.getLogger(__name__)

#: delivery receipts go out in conversations up to this size (beyond, each
#: message would cost a receipt from every member)
DELIVERY_RECEIPTS_UP_TO = 20
#: arrivals within this many seconds share one receipt
DELIVERY_RECEIPT_DELAY = 0.1

#: ``handler(sender, type, content)``: a to-device payload for a part outside
#: the SDK (a connector's settings); the sender's certificate is checked
ToDeviceHandler = Callable[[VerifiedDevice, str, dict[str, Any]], Awaitable[None]]


class Receiver:
    def __init__(
        self,
        session: Session,
        conversations: Conversations,
        messages: Messages,
        contacts: Contacts,
        linking: Linking,
        verification: Verification,
        portals: Portals,
        sender: Sender,
        background: Background,
        emit: Emit,
        *,
        delivery_receipts: bool,
    ) -> None:
        self._session = session
        self._conversations = conversations
        self._messages = messages
        self._contacts = contacts
        self._linking = linking
        self._verification = verification
        self._portals = portals
        self._sender = sender
        self._background = background
        self._emit = emit
        self._waiting = Waiting(session, emit)
        self.delivery_receipts = delivery_receipts
        #: conversation → ids of arrived messages not yet confirmed to their senders
        self._delivered: dict[ConversationId, list[MessageId]] = {}
        self._delivered_task: asyncio.Task[None] | None = None
        #: type prefix → handler of to-device payloads the SDK does not know
        self.to_device_handlers: dict[str, ToDeviceHandler] = {}

    async def on_message(self, frame: frames.Message) -> None:
        session = self._session
        profile, api, keys = session.need()
        if frame.body is None:  # our own send, echoed without body
            self._messages.mark_sent(frame.conversation, frame.id, frame.seq)
            return
        if self._messages.known(frame.conversation, frame.id):
            return  # delivered again (after a crash): shown once
        sender = await keys.find_device(UserId(frame.sender), DeviceId(frame.sender_device))
        session.emit_key_changes()
        if sender is None:
            self._warn(frame, "from a device without a valid certificate")
            return
        try:
            decrypted = keys.inbound.decrypt_message(
                sender, frame.conversation, frame.id, frame.body
            )
        except UnknownSession:
            try:
                megolm_session = MegolmCiphertext.from_body(frame.body).session_id
            except CryptoError:
                self._warn(frame, "not a Megolm message")
                return
            self._waiting.keep(frame, megolm_session)
            return
        except ReplayedMessage:
            return
        except (DecryptionFailed, BadPayload, CryptoError) as exc:
            self._warn(frame, str(exc))
            return
        payload = decrypted.payload
        content = payload.content
        if "remote" in content and not self._speaks_for_remote(frame):
            # only the user's own devices, or the connector serving the
            # portal, bring in messages of people on another network
            content = {k: v for k, v in content.items() if k != "remote"}
        missing = self._newly_missing(sender, frame.conversation, decrypted)
        expires = await self._expiry(frame)
        for entry in attachments.entries_of(content.get("attachments", [])):
            try:  # before the ack: the blob goes once every device has acknowledged
                await attachments.download(api, entry, session.profile_dir / "attachments")
            except (ServerError, CryptoError, KeyError, TypeError, msgspec.MsgspecError) as exc:
                self._warn(frame, f"attachment not available: {exc}")
        with profile.transaction():
            self._messages.store(
                frame.conversation,
                frame.id,
                frame.seq,
                UserId(frame.sender),
                DeviceId(frame.sender_device),
                frame.ts,
                payload.type,
                content,
                "received",
                expires,
                decrypted.session_id,
            )
            if payload.type == ev.PROFILE:
                self._contacts.remember(UserId(frame.sender), frame.ts, content)
            elif payload.type == statekey.TYPE:
                self._conversations.remember_state_key(frame.conversation, content)
            keys.save()
        if missing:
            self._emit(
                ev.MissingMessages(frame.conversation, UserId(frame.sender), missing, frame.id)
            )
        if payload.type not in ev.ANNOTATIONS and frame.sender != session.user:
            self._note_delivered(ConversationId(frame.conversation), MessageId(frame.id))
        self._emit(ev.Received(self._messages.message(frame.conversation, frame.id)))

    def _speaks_for_remote(self, frame: frames.Message) -> bool:
        if UserId(frame.sender) == self._session.user:
            return True
        portal = self._portals.get(ConversationId(frame.conversation))
        return portal is not None and portal.by == frame.sender_device

    def _note_delivered(self, conversation: ConversationId, msg_id: MessageId) -> None:
        """Confirm delivery to the sender, a moment later and many ids at once."""
        if not self.delivery_receipts:
            return
        state = self._conversations.cached(conversation)
        if state is None or len(state.members) > DELIVERY_RECEIPTS_UP_TO:
            return
        self._delivered.setdefault(conversation, []).append(msg_id)
        if self._delivered_task is None or self._delivered_task.done():
            self._delivered_task = self._background.spawn(self._send_delivered())

    async def _send_delivered(self) -> None:
        await asyncio.sleep(DELIVERY_RECEIPT_DELAY)
        pending, self._delivered = self._delivered, {}
        for conversation, ids in pending.items():
            with contextlib.suppress(ClientError):  # left the chat meanwhile
                await self._sender.send(conversation, ev.RECEIPT, {"delivered": ids})

    def _newly_missing(
        self, sender: VerifiedDevice, conversation: ConversationId, decrypted: DecryptedMessage
    ) -> int:
        """How many indexes of this Megolm session the message just decrypted
        skips past: messages the server withheld. Only indexes above the
        highest one seen before count, so a gap is told once (and not again
        if a late message fills it). Messages waiting for their room key are
        not decrypted from any session yet, so they are no gap."""
        keys = self._session.keys
        info = keys.inbound.get((conversation, sender.curve25519, decrypted.session_id))
        first = info.first_known_index if info is not None else decrypted.message_index
        before = keys.inbound.seen.indexes(decrypted.session_id) - {decrypted.message_index}
        return max(0, decrypted.message_index - max([first - 1, *before]) - 1)

    async def _expiry(self, frame: frames.Message) -> int | None:
        """When a received message disappears: as the server says, but never
        later than the conversation's signed timer allows from now (a server
        that drops ``expires_ms`` must not make a disappearing message stay)."""
        try:
            _, state = await self._conversations.chain(ConversationId(frame.conversation))
        except (ClientError, CryptoError):
            return frame.expires_ms
        if not state.timer_seconds:
            return frame.expires_ms
        latest = self._session.clock() + state.timer_seconds * 1000
        return latest if frame.expires_ms is None else min(frame.expires_ms, latest)

    def _warn(self, frame: frames.Message, reason: str) -> None:
        self._emit(ev.Undecryptable(frame.conversation, frame.id, UserId(frame.sender), reason))

    async def on_state(self, frame: frames.State) -> None:
        try:
            state = await self._conversations.on_state(frame)
        except NotAMember:
            return  # removed: the server no longer shows us the chain
        except (ChainError, CryptoError) as exc:
            log.warning("state refused: %s", exc)
            return
        if state is not None:
            self._emit(
                ev.MembershipChanged(
                    ConversationId(frame.conversation),
                    {u: r.value for u, r in state.members.items()},
                )
            )

    async def on_to_device(self, frame: frames.ToDevice) -> None:
        _, _, keys = self._session.need()
        if self._linking.on_to_device(frame):
            return
        sender = await keys.find_device(UserId(frame.sender), DeviceId(frame.sender_device))
        if sender is None:
            return
        try:
            payload = keys.olm.decrypt_to_device(sender, frame.body)
        except CryptoError as exc:
            log.info("to-device message refused: %s", exc)
            return
        if payload.type in sas.TYPES:
            await self._verification.on_message(sender, payload.type, dict(payload.content))
            keys.save()
            return
        for prefix, handler in self.to_device_handlers.items():
            if payload.type.startswith(prefix):
                keys.save()
                await handler(sender, payload.type, dict(payload.content))
                return
        if payload.type != TYPE_ROOM_KEY:
            keys.save()
            return
        try:
            accept_room_key(keys.inbound, sender, payload)
        except CryptoError as exc:
            log.info("room key refused: %s", exc)
            return
        keys.save()
        # what waited for this session's key (a message that still cannot be
        # decrypted, say of a later ratchet state, waits again)
        for waited in self._waiting.take(room_key_of(payload).session_id):
            await self.on_message(waited)

    async def on_keys_changed(self, user: UserId) -> None:
        keys = self._session.keys
        keys.forget(user)
        await keys.refresh([user])
        self._session.emit_key_changes()

    def on_typing(self, frame: frames.TypingEvent) -> None:
        self._emit(ev.Typing(frame.conversation, UserId(frame.user), frame.active))
