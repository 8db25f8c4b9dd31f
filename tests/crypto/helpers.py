"""Test devices: a user's identity key, a device account, its certificate."""

from __future__ import annotations

import dataclasses
import itertools

from taube.crypto import (
    DeviceAccount,
    IdentityKeyPair,
    InboundGroupStore,
    MessagePayload,
    OlmMachine,
    ToDevicePayload,
    VerifiedDevice,
    verify_device,
)
from taube.proto.ids import ConversationId, DeviceId, MessageId, UserId
from taube.proto.keys import DeviceKeys

PICKLE_KEY = bytes(range(32))
CONVERSATION = ConversationId("C" * 22)
OTHER_CONVERSATION = ConversationId("D" * 22)
#: an injected "now" (ms); the crypto layer never reads the clock
NOW = 1_700_000_000_000

_counter = itertools.count()


def device_id() -> DeviceId:
    return DeviceId(f"{next(_counter):0>22}")


def message_id(n: int) -> MessageId:
    return MessageId(f"m{n:0>21}")


@dataclasses.dataclass
class Device:
    user: UserId
    device: DeviceId
    identity: IdentityKeyPair
    olm: OlmMachine
    certificate: DeviceKeys
    inbound: InboundGroupStore

    @property
    def account(self) -> DeviceAccount:
        return self.olm.account

    @property
    def verified(self) -> VerifiedDevice:
        return verify_device(self.identity.public_key, self.certificate)


def make_device(user: str = "alice@example.org", identity: IdentityKeyPair | None = None) -> Device:
    identity = identity or IdentityKeyPair.generate()
    account = DeviceAccount.create()
    uid, did = UserId(user), device_id()
    certificate = identity.certify(account.device_keys(uid, did))
    return Device(
        uid, did, identity, OlmMachine(account, uid, did), certificate, InboundGroupStore()
    )


def connect(sender: Device, recipient: Device) -> None:
    """``sender`` claims one of ``recipient``'s one-time keys and opens a session."""
    (key,) = recipient.account.one_time_keys(recipient.user, recipient.device, 1)
    recipient.account.mark_keys_as_published()
    sender.olm.create_outbound_session(recipient.verified, key)


def message(sender: Device, n: int, text: str = "hi") -> MessagePayload:
    """A text message payload from ``sender`` in ``CONVERSATION``."""
    return MessagePayload(
        sender=sender.user,
        sender_device=sender.device,
        conversation=CONVERSATION,
        message_id=message_id(n),
        type="text",
        content={"body": text},
    )


def to_device_payload(sender: Device, recipient: Device, type_: str = "x") -> ToDevicePayload:
    """The payload ``sender`` addresses to ``recipient`` (not yet encrypted)."""
    return ToDevicePayload(
        sender=sender.user,
        sender_device=sender.device,
        sender_key=sender.account.ed25519,
        recipient=recipient.user,
        recipient_device=recipient.device,
        recipient_key=recipient.account.curve25519,
        type=type_,
    )
