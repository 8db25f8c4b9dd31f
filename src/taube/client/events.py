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
#: a conversation's link to a chat on another network (see ``Portal``)
PORTAL = "portal"
#: a connector says how it sent one of the user's messages on (see ``Relayed``)
RELAY = "relay"
#: a call's outcome in the chat ("missed call", "call, 3 min"), sent by the caller
CALL = "call"
#: kept by this device alone, never sent: a gap or a key change in the chat
#: (``taube.client.notices``); only in ``history(..., notices=True)``
NOTICE = "notice"
#: types that change another message (or a contact) instead of showing one
ANNOTATIONS = frozenset(
    {REACTION, EDIT, DELETE, RECEIPT, PROFILE, STATE_KEY, AVATAR, PORTAL, RELAY}
)


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
    #: how a connector sent it on to another network (in a portal)
    relayed: Relayed | None = None

    @property
    def remote(self) -> Remote | None:
        """Who wrote it on another network, if a connector brought it in."""
        return Remote.of(self.content.get("remote"))


@dataclasses.dataclass(frozen=True)
class Remote:
    """The author of a message a connector brought in from another network.

    The message itself is sent by the connector, a device of the user's own,
    so it is as trustworthy as the connector's check of the network's sender
    (``encrypted``: the network's end-to-end encryption vouched for it)."""

    network: str
    sender: str  #: the address on that network
    name: str = ""
    encrypted: bool = False

    @classmethod
    def of(cls, value: object) -> Remote | None:
        if not isinstance(value, dict) or not isinstance(value.get("sender"), str):
            return None
        return cls(
            network=str(value.get("network", "")),
            sender=value["sender"],
            name=str(value.get("name", ""))[:100],
            encrypted=value.get("encrypted") is True,
        )


@dataclasses.dataclass(frozen=True)
class Relayed:
    """A connector sent the user's message on to another network: encrypted
    end to end there, or not (show it), or not at all (``error``)."""

    network: str
    encrypted: bool
    error: str = ""
    #: who got it unencrypted (no key of theirs is known)
    plain_to: tuple[str, ...] = ()

    @classmethod
    def of(cls, value: dict[str, Any]) -> Relayed:
        plain = value.get("plain_to")
        return cls(
            network=str(value.get("network", "")),
            encrypted=value.get("encrypted") is True,
            error=str(value.get("error", ""))[:300],
            plain_to=tuple(str(p) for p in plain[:100]) if isinstance(plain, list) else (),
        )


@dataclasses.dataclass(frozen=True)
class Portal:
    """A conversation that reaches a chat on another network.

    Any device of the user may open one (``Client.start_chat`` with an address
    on no taube server opens an e-mail portal); the connector that serves it
    answers with ``by`` set to its device, and relays both ways from then on."""

    network: str  #: ``email``
    chat: str  #: the network's id of the chat: the peer's address, or a group id
    peers: tuple[str, ...] = ()  #: the other side's addresses
    title: str = ""
    by: DeviceId | None = None  #: the connector device serving it (None: none yet)

    @classmethod
    def of(cls, value: object) -> Portal | None:
        if not isinstance(value, dict):
            return None
        network, chat = value.get("network"), value.get("chat")
        if not isinstance(network, str) or not isinstance(chat, str) or not chat:
            return None
        peers = value.get("peers", [])
        by = value.get("by")
        return cls(
            network=network,
            chat=chat,
            peers=tuple(str(p) for p in peers) if isinstance(peers, list) else (),
            title=str(value.get("title", ""))[:200],
            by=DeviceId(by) if isinstance(by, str) and by else None,
        )

    def content(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "network": self.network,
            "chat": self.chat,
            "peers": list(self.peers),
            "title": self.title,
        }
        if self.by is not None:
            out["by"] = self.by
        return out


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


@dataclasses.dataclass(frozen=True)
class IncomingCall:
    """Ring: ``answer_call(call)`` or ``reject_call(call)``; a ``CallChanged``
    to ``ended`` stops the ringing (answered elsewhere, the caller hung up)."""

    call: str
    conversation: ConversationId
    caller: UserId
    caller_device: DeviceId
    video: bool


@dataclasses.dataclass(frozen=True)
class CallChanged:
    """A call on this device changed state (``taube.client.calls.CallState``);
    ``reason`` says why it ended."""

    call: str
    conversation: ConversationId
    state: str
    reason: str = ""


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
    | IncomingCall
    | CallChanged
)

#: any event type, for helpers that wait for one kind
E = TypeVar("E", bound=Event)
