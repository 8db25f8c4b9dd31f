"""The plaintexts inside encrypted messages, and the checks that bind them.

Every plaintext is UTF-8 JSON (binary goes inside as unpadded base64): the
browser's libolm takes and returns strings and garbles anything else.

Encryption alone does not say *who* a message is for or from, or *where* it
belongs: a member of two conversations could re-post a Megolm message from
one into the other, and a server could hand an Olm message to the wrong
device or splice another entry's envelope onto a ciphertext. So each payload
repeats what its envelope claims, and the receiver compares the two
(DESIGN §5):

- ``MessagePayload`` (Megolm, conversation messages): sender user, sender
  device, conversation and message id, checked by ``check_binding``.
- ``ToDevicePayload`` (Olm, one device to one device): sender user, device
  and Ed25519 key, recipient user, device and Curve25519 key, checked by
  ``check_to_device_binding``; a forwarded or misrouted Olm payload fails.

Room keys (``RoomKey``) travel inside a ``ToDevicePayload`` of type
``TYPE_ROOM_KEY``. **A room key is accepted only from the device that
created the session**: the receiving store records the Olm sender of the key
as the session's creator, and a Megolm message decrypts only when its
envelope names that same device (checked by the creator's Curve25519 key).
There is no "forwarded key" payload: a key relayed by any other device can
only ever decrypt messages that claim to come from the relaying device,
which ``check_binding`` then refuses (the payload names the real sender).
Copies of one's own keys between one's own devices go through the explicit
``InboundGroupStore.import_session`` path, never through this one.

Payload structs accept unknown fields (unlike wire frames), so that a newer
client can add fields that an older one ignores.
"""

from __future__ import annotations

from typing import Annotated, Any, Final, TypeVar

import msgspec
from msgspec import Meta

from taube.crypto.errors import BadPayload
from taube.crypto.identity import VerifiedDevice
from taube.proto.ids import (
    ConversationId,
    ConversationIdField,
    DeviceId,
    DeviceIdField,
    MessageId,
    MessageIdField,
    UserId,
    UserIdField,
)
from taube.proto.keys import Key

#: the Megolm algorithm: vodozemac/libolm Megolm v1 (AES-256-CBC + HMAC-SHA-256,
#: Ed25519-signed), named for taube so that a second one can follow
MEGOLM_ALGORITHM: Final = "taube.megolm.v1"
#: ``ToDevicePayload.type`` of a room key share
TYPE_ROOM_KEY: Final = "taube.room_key"

PayloadType = Annotated[str, Meta(min_length=1, max_length=100)]
SessionIdStr = Annotated[str, Meta(min_length=43, max_length=44)]
SessionKeyStr = Annotated[str, Meta(min_length=1, max_length=1000)]


class Payload(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Base of the plaintext payloads (unknown fields are ignored).

    ``repr`` shows the routing fields only: contents and keys print as
    ``****``, so a payload that ends up in a log or a traceback leaks nothing.
    """

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{name}={'****' if name in _SECRET_FIELDS else repr(getattr(self, name))}"
            for name in self.__struct_fields__
        )
        return f"{type(self).__name__}({shown})"


_SECRET_FIELDS = frozenset({"content", "session_key"})


class MessagePayload(Payload, kw_only=True):
    """What a Megolm message decrypts to."""

    sender: UserIdField
    sender_device: DeviceIdField
    conversation: ConversationIdField
    message_id: MessageIdField
    #: what ``content`` is (text, reaction, edit, ...), defined by the client
    type: PayloadType
    content: dict[str, Any] = {}


class ToDevicePayload(Payload, kw_only=True):
    """What an Olm to-device message decrypts to."""

    sender: UserIdField
    sender_device: DeviceIdField
    #: the sender device's Ed25519 key (from its certificate)
    sender_key: Key
    recipient: UserIdField
    recipient_device: DeviceIdField
    #: the recipient device's Curve25519 key: the Olm session's other end
    recipient_key: Key
    type: PayloadType
    content: dict[str, Any] = {}


class RoomKey(Payload, kw_only=True):
    """A Megolm session key, shared by the session's creator with one device.

    The key is the session's ratchet at its current index: a device added
    later cannot read what was sent before it got the key.
    """

    algorithm: str = MEGOLM_ALGORITHM
    conversation: ConversationIdField
    session_id: SessionIdStr
    session_key: SessionKeyStr


P = TypeVar("P", bound=Payload)


def encode_payload(payload: Payload) -> bytes:
    """UTF-8 JSON; control characters come out escaped, so no NUL reaches libolm."""
    return msgspec.json.encode(payload)


def decode_payload(data: bytes, kind: type[P]) -> P:
    """Decode and validate a plaintext; ``BadPayload`` for anything else."""
    try:
        return msgspec.json.decode(data, type=kind)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
        # RecursionError: JSON nested deeper than the decoder follows
        raise BadPayload(f"not a valid {kind.__name__}") from exc


def check_binding(
    payload: MessagePayload,
    envelope_sender: UserId,
    envelope_device: DeviceId,
    conversation: ConversationId,
    message_id: MessageId,
) -> None:
    """Refuse a Megolm payload that names another sender, place or id than
    its envelope (a replayed or spliced message)."""
    if payload.sender != envelope_sender:
        raise BadPayload("the payload names another sender than the envelope")
    if payload.sender_device != envelope_device:
        raise BadPayload("the payload names another sender device than the envelope")
    if payload.conversation != conversation:
        raise BadPayload("the payload belongs to another conversation")
    if payload.message_id != message_id:
        raise BadPayload("the payload carries another message id than the envelope")


def check_to_device_binding(
    payload: ToDevicePayload,
    sender: VerifiedDevice,
    recipient: UserId,
    recipient_device: DeviceId,
    recipient_key: str,
) -> None:
    """Refuse an Olm payload not from ``sender`` to this very device."""
    if payload.sender != sender.user:
        raise BadPayload("the payload names another sender than the envelope")
    if payload.sender_device != sender.device:
        raise BadPayload("the payload names another sender device than the envelope")
    if payload.sender_key != sender.ed25519:
        raise BadPayload("the payload names another sender key than the certificate")
    if payload.recipient != recipient:
        raise BadPayload("the payload is for another user")
    if payload.recipient_device != recipient_device:
        raise BadPayload("the payload is for another device")
    if payload.recipient_key != recipient_key:
        raise BadPayload("the payload is for another device key")


def room_key_of(payload: ToDevicePayload) -> RoomKey:
    """The ``RoomKey`` in a (binding-checked) to-device payload."""
    if payload.type != TYPE_ROOM_KEY:
        raise BadPayload(f"not a room key: {payload.type!r}")
    try:
        key = msgspec.convert(payload.content, RoomKey)
    except msgspec.ValidationError as exc:
        raise BadPayload("not a valid RoomKey") from exc
    if key.algorithm != MEGOLM_ALGORITHM:
        raise BadPayload(f"unknown room key algorithm {key.algorithm!r}")
    return key
