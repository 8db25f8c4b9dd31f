"""Where a message leaves the device: the ``Carrier`` seam.

The outbox (``outbox``) keeps what the user sent until a carrier has
delivered it; a carrier turns one outbox item into what its network carries
and hands it over. Today there is one, ``TaubeCarrier``: Megolm-encrypted
to the conversation's member devices through the taube server. A connector
(e-mail, ...) adds its own for the conversations it serves
(``Outbox.route``).

What a carrier guarantees (the outbox relies on it):

- **Acknowledged means durable.** ``deliver`` returns only once the next hop
  holds the item durably (the taube server: committed and synced); an
  exception means it may or may not have arrived.
- **Idempotent on the message id.** Delivering the same item again (after a
  timeout, a crash, a restart) never makes a second message: the taube
  server answers a repeated ``(device, message id)`` with the first
  sequence number; a mail carrier reuses the same ``Message-ID``.
- **Errors say whether to retry.** ``Unavailable``, ``ConnectionError`` and
  ``TimeoutError``: try again later (the outbox backs off with jitter);
  ``SendingBlocked``: wait for the user to re-verify; any other
  ``ClientError``/``CryptoError``: refused for good, the message is marked
  failed.
- **Order is the outbox's.** The outbox hands a carrier one item at a time,
  in the order the user sent them; a carrier must not reorder within a
  conversation.
- **Per-item state is the carrier's.** What a carrier keeps for an item
  between attempts (the taube carrier: the ciphertext, so a retry sends the
  same bytes) it drops in ``settle``, which the outbox calls inside the
  transaction that removes the item.

Olm-encrypted messages to single devices (key shares, verification,
linking, call signalling) leave through ``TaubeCarrier.send_to_devices``.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any, Protocol

import msgspec

from taube.client import attachments
from taube.client.connection import Connection
from taube.client.conversations import Conversations
from taube.client.errors import ClientError, SendingBlocked
from taube.client.session import Session
from taube.crypto import (
    CryptoError,
    MessagePayload,
    OutboundGroup,
    VerifiedDevice,
    share_room_key,
)
from taube.proto import frames, http
from taube.proto.ids import ConversationId, MessageId, new_message_id

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Outgoing:
    """One outbox item: what the user sent, not yet encrypted."""

    id: MessageId
    conversation: ConversationId
    payload: MessagePayload
    #: disappearing messages: the server drops it this long after it arrives
    expire_ms: int | None = None


class Carrier(Protocol):
    async def deliver(self, item: Outgoing) -> int | None:
        """Hand ``item`` over durably; the conversation's sequence number of it
        if the network has one."""
        ...

    def settle(self, msg_id: MessageId) -> None:
        """Forget what was kept for ``msg_id`` (delivered, or failed for good)."""
        ...


class TaubeCarrier:
    """Through the taube server: Megolm to the conversation, Olm to devices."""

    def __init__(
        self, session: Session, connection: Connection, conversations: Conversations
    ) -> None:
        self._session = session
        self._connection = connection
        self._conversations = conversations

    async def deliver(self, item: Outgoing) -> int | None:
        profile, _, keys = self._session.need()
        body = profile.get_raw(f"outbody:{item.id}")
        if body is None:  # encrypt once: a retry sends the same ciphertext
            group = await self._share_keys(item.conversation)
            body = group.encrypt_payload(item.payload, now_ms=self._session.clock())
            with profile.transaction():
                profile.put_raw(f"outbody:{item.id}", body)
                keys.save()
        blobs = [
            a["blob"] for a in attachments.entries_of(item.payload.content.get("attachments", []))
        ]
        sent = await self._connection.request(
            frames.Send(
                conversation=item.conversation,
                id=item.id,
                body=body,
                expire_ms=item.expire_ms,
                blobs=blobs,
            ),
            item.id,
        )
        assert isinstance(sent, frames.Sent)
        return sent.seq

    def settle(self, msg_id: MessageId) -> None:
        profile, _, _ = self._session.need()
        profile.execute("DELETE FROM kv WHERE key = ?", f"outbody:{msg_id}")

    async def _share_keys(self, conversation: ConversationId) -> OutboundGroup:
        """The outbound session for ``conversation``, its key shared with every
        verified device of every member (rotated when someone left)."""
        session = self._session
        _, _, keys = session.need()
        _, state = await self._conversations.chain(conversation)
        members = sorted(state.members)
        devices = [
            d
            for d in await keys.devices_of(members)
            if (d.user, d.device) != (session.user, session.device)
        ]
        blocked = keys.blocked(members)  # the lookup may just have found a key change
        if blocked:
            raise SendingBlocked(blocked)
        now = session.clock()
        group = keys.outbound.get(conversation)
        # with disappearing messages no session outlives the timer, so its keys
        # can go with its messages (``Messages.expire``)
        timer_ms = state.timer_seconds * 1000
        if (
            group is None
            or group.needs_rotation(now, members_changed=group.has_departed(devices))
            or (timer_ms and now - group.created_ms >= timer_ms)
        ):
            group = OutboundGroup.create(conversation, now)
            keys.outbound[conversation] = group
        messages, without = share_room_key(keys.olm, group, devices)
        if without:
            await self._claim_sessions(without)
            more, _ = share_room_key(keys.olm, group, without)
            messages += more
        if messages:
            shared = {(m.user, m.device) for m in messages}
            await self.send_to_devices(messages)
            group.mark_shared([d for d in devices if (d.user, d.device) in shared])
        keys.save()
        return group

    async def _claim_sessions(self, devices: list[VerifiedDevice]) -> None:
        """Make Olm sessions with ``devices`` from one-time keys claimed for them
        (a device whose key cannot be had is left out)."""
        _, api, keys = self._session.need()
        claimed = await api.post(
            "/keys/claim",
            http.ClaimKeys(devices=[http.DeviceRef(user=d.user, device=d.device) for d in devices]),
            http.ClaimResponse,
        )
        by_device = {(k.user, k.device): k for k in claimed.keys}
        for device in devices:
            key = by_device.get((device.user, device.device))
            if key is None:
                continue
            try:
                keys.olm.create_outbound_session(device, key)
            except CryptoError as exc:
                log.warning("no session with a device: %s", exc)

    async def send_to_devices(self, messages: list[frames.ToDeviceMessage]) -> None:
        """Olm-encrypted messages to single devices, acknowledged by the server."""
        ref = new_message_id()
        await self._connection.request(frames.ToDeviceSend(id=ref, messages=messages), ref)

    async def send_to_device(
        self, device: VerifiedDevice, type_: str, content: dict[str, Any]
    ) -> None:
        """One Olm-encrypted to-device message (making the Olm session if needed)."""
        _, api, keys = self._session.need()
        if not keys.olm.has_session(device):
            claimed = await api.post(
                "/keys/claim",
                http.ClaimKeys(devices=[http.DeviceRef(user=device.user, device=device.device)]),
                http.ClaimResponse,
            )
            if not claimed.keys:
                raise ClientError(f"device {device.device} has no keys left")
            keys.olm.create_outbound_session(device, claimed.keys[0])
        body = keys.olm.encrypt_to_device(device, type_, content)
        await self.send_to_devices(
            [frames.ToDeviceMessage(user=device.user, device=device.device, body=body)]
        )
        keys.save()


def decode_payload(data: bytes) -> MessagePayload:
    return msgspec.json.decode(data, type=MessagePayload)
