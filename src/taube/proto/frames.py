"""WebSocket frames: JSON text frames tagged by a stable dotted ``type``.

A tag is never reused. The first frame a client sends is ``hello`` (the token
goes there, never into a URL); the server answers ``welcome`` and then
streams the device's backlog, ending it with ``queue.empty``.
"""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta

from taube.proto.base import Wire
from taube.proto.errors import ErrorCode
from taube.proto.ids import (
    BlobIdField,
    ConversationIdField,
    DeviceIdField,
    MessageIdField,
    UserIdField,
)
from taube.proto.state import StateEvent

Seq = Annotated[int, Meta(ge=0)]
Ref = Annotated[str, Meta(max_length=64)]
Body = Annotated[bytes, Meta(max_length=4 * 1024 * 1024)]

# ---------------------------------------------------------------- client to server


class Hello(Wire, tag="hello", kw_only=True):
    """The first frame: protocol version and the device's bearer token."""

    protocol: int
    token: Annotated[str, Meta(max_length=128)]
    client: Annotated[str, Meta(max_length=100)] = ""


class Send(Wire, tag="msg.send", kw_only=True):
    """An encrypted message. ``id`` is chosen by the client; a retry with the
    same id returns the first send's ``seq`` and stores nothing."""

    conversation: ConversationIdField
    id: MessageIdField
    body: Body
    blobs: Annotated[list[BlobIdField], Meta(max_length=32)] = []
    expire_ms: Annotated[int, Meta(ge=0)] | None = None


class Ack(Wire, tag="msg.ack", kw_only=True):
    """The device has every log entry of ``conversation`` up to ``seq``."""

    conversation: ConversationIdField
    seq: Seq


class ToDeviceMessage(Wire, kw_only=True):
    user: UserIdField
    device: DeviceIdField
    body: Body


class ToDeviceSend(Wire, tag="todevice.send", kw_only=True):
    """Olm-encrypted messages for single devices (key shares, call signalling).

    Idempotent on ``id``, like ``msg.send``."""

    id: MessageIdField
    messages: Annotated[list[ToDeviceMessage], Meta(min_length=1, max_length=5000)]


class ToDeviceAck(Wire, tag="todevice.ack", kw_only=True):
    """The device has every queue entry up to ``seq``; they are deleted."""

    seq: Seq


class Typing(Wire, tag="typing", kw_only=True):
    """The user started or stopped typing (not stored, sent to online members)."""

    conversation: ConversationIdField
    active: bool


class Ping(Wire, tag="ping", kw_only=True):
    """Application-level ping; answered with ``pong`` carrying the server time."""

    ref: Ref = ""


ClientFrame = Hello | Send | Ack | ToDeviceSend | ToDeviceAck | Typing | Ping

# ---------------------------------------------------------------- server to client


class Welcome(Wire, tag="welcome", kw_only=True):
    """Authenticated: the backlog follows, then ``queue.empty``."""

    protocol: int
    user: UserIdField
    device: DeviceIdField
    server_time_ms: int


class Sent(Wire, tag="msg.sent", kw_only=True):
    """A send is durable: committed and synced."""

    conversation: ConversationIdField
    id: MessageIdField
    seq: Seq
    ts: int


class Message(Wire, tag="msg", kw_only=True):
    """A log entry carrying a message. ``body`` is left out in the echo to
    the sending device, which has the plaintext already."""

    conversation: ConversationIdField
    seq: Seq
    id: MessageIdField
    sender: UserIdField
    sender_device: DeviceIdField
    ts: int
    body: Body | None = None
    blobs: list[BlobIdField] = []
    expires_ms: int | None = None


class State(Wire, tag="state", kw_only=True):
    """A log entry carrying a state event (membership, settings)."""

    conversation: ConversationIdField
    seq: Seq
    event: StateEvent


class ToDevice(Wire, tag="todevice", kw_only=True):
    seq: Seq
    sender: UserIdField
    sender_device: DeviceIdField
    ts: int
    body: Body


class KeysChanged(Wire, tag="keys.changed", kw_only=True):
    """A user's identity key or device list changed (in the device queue)."""

    seq: Seq
    user: UserIdField


class ToDeviceSent(Wire, tag="todevice.sent", kw_only=True):
    """The to-device messages of ``id`` are durable."""

    id: MessageIdField


class QueueEmpty(Wire, tag="queue.empty", kw_only=True):
    """Every backlog entry up to now has been sent to this device."""


class TypingEvent(Wire, tag="typing.event", kw_only=True):
    """A member started or stopped typing."""

    conversation: ConversationIdField
    user: UserIdField
    active: bool


class Pong(Wire, tag="pong", kw_only=True):
    """The answer to ``ping``."""

    ref: Ref = ""
    server_time_ms: int = 0


class Error(Wire, tag="error", kw_only=True):
    """A frame was refused; ``ref`` names it (the message id) where it had one."""

    code: ErrorCode
    message: str
    ref: str | None = None
    retry_after: float | None = None


ServerFrame = (
    Welcome
    | Sent
    | Message
    | State
    | ToDevice
    | KeysChanged
    | ToDeviceSent
    | QueueEmpty
    | TypingEvent
    | Pong
    | Error
)
