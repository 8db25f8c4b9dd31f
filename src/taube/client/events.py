"""What the SDK hands to the app: messages as the user sees them, and events."""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

from taube.proto.ids import ConversationId, DeviceId, MessageId, UserId

#: message types inside the encrypted payload
TEXT = "text"
REACTION = "reaction"
EDIT = "edit"
DELETE = "delete"
RECEIPT = "receipt"
PROFILE = "profile"
STATE_KEY = "statekey"
AVATAR = "avatar"
#: types that change another message (or a contact) instead of showing one
ANNOTATIONS = frozenset({REACTION, EDIT, DELETE, RECEIPT, PROFILE, STATE_KEY, AVATAR})


@dataclasses.dataclass(frozen=True)
class Message:
    """A message as the user sees it (edits, deletes and reactions applied)."""

    conversation: ConversationId
    id: MessageId
    seq: int | None  #: None while it waits in the outbox
    sender: UserId
    sender_device: DeviceId
    ts: int
    type: str
    text: str
    reply_to: MessageId | None = None
    edited: bool = False
    deleted: bool = False
    reactions: dict[str, list[UserId]] = dataclasses.field(default_factory=dict)
    read_by: list[UserId] = dataclasses.field(default_factory=list)
    #: members whose device has it (a ``receipt`` with ``delivered``)
    delivered_to: list[UserId] = dataclasses.field(default_factory=list)
    status: str = "received"  #: pending, sent or received
    expires_ms: int | None = None
    content: dict[str, Any] = dataclasses.field(default_factory=dict, repr=False)


@dataclasses.dataclass(frozen=True)
class Profile:
    """What a contact calls themselves (shared end-to-end encrypted)."""

    user: UserId
    name: str
    avatar: str | None = None  #: path of the decrypted avatar file in the profile


@dataclasses.dataclass(frozen=True)
class Received:
    """A new message or annotation arrived (decrypted, checked, stored)."""

    message: Message


@dataclasses.dataclass(frozen=True)
class MembershipChanged:
    conversation: ConversationId
    members: dict[UserId, str]


@dataclasses.dataclass(frozen=True)
class KeyChanged:
    """Show in the chat: this user's identity key (or a device) changed."""

    user: UserId
    verified: bool
    reason: str


@dataclasses.dataclass(frozen=True)
class Typing:
    """A member started or stopped typing (metadata the server relays, never stores)."""

    conversation: ConversationId
    user: UserId
    active: bool


@dataclasses.dataclass(frozen=True)
class VerificationRequest:
    """Another device asks to verify by emoji: ``verify_accept(transaction)``."""

    transaction: str
    user: UserId
    device: DeviceId


@dataclasses.dataclass(frozen=True)
class VerificationEmoji:
    """Show these; if the other person sees the same, ``verify_confirm(transaction)``."""

    transaction: str
    user: UserId
    emoji: list[tuple[str, str]]
    decimals: tuple[int, int, int]


@dataclasses.dataclass(frozen=True)
class VerificationDone:
    transaction: str
    user: UserId
    verified: bool
    reason: str = ""


@dataclasses.dataclass(frozen=True)
class Undecryptable:
    """A message that could not be decrypted or was refused (shown as a warning)."""

    conversation: ConversationId
    id: MessageId
    sender: UserId
    reason: str


@dataclasses.dataclass(frozen=True)
class MissingMessages:
    """Show in the chat: ``count`` messages of ``sender`` never arrived (the
    server withheld or lost them). Found by the gap in the Megolm indexes that
    ``before``, the message after them, revealed; each gap is told once."""

    conversation: ConversationId
    sender: UserId
    count: int
    before: MessageId


Event = (
    Received
    | MembershipChanged
    | KeyChanged
    | Undecryptable
    | MissingMessages
    | Typing
    | VerificationRequest
    | VerificationEmoji
    | VerificationDone
)

#: any event type, for helpers that wait for one kind
E = TypeVar("E", bound=Event)
