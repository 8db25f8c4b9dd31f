"""Call signalling: what travels, Olm-encrypted, between the devices of a call.

Every message is a to-device message (``TaubeCarrier.send_to_device``): the
server queues and forwards ciphertext and never sees an SDP or an ICE
candidate. The types and their ``content``:

    caller                                              each callee device
    invite {call, conversation, ts, lifetime_ms,
            sdp, video}                   ──────────▶   rings (IncomingCall)
                                          ◀──────────   answer {call, sdp}       (first one wins)
                                          ◀──────────   reject {call, reason}    (declined | busy)
    select {call, device}                 ──────────▶   every invited device: the
                                                        one named talks, the rest stop
                                                        ringing ("answered elsewhere")
    candidates {call, candidates}         ◀──────────▶  trickled ICE (browsers)
    hangup {call, reason}                 ◀──────────▶  ends it (also: stop ringing)

An invite is refused when it is stale or from the future (``ts`` beyond
``lifetime_ms`` ago, or more than ``MAX_SKEW_MS`` ahead), when its call id
was seen before (a replay), or when its sender or this user is not a member
of the conversation it names. Only devices with a valid certificate get as
far as here (the receiver drops the rest), and every later message counts
only from the device(s) the call is with.
"""

from __future__ import annotations

import enum
import secrets
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

#: every call message's type starts so (the receiver hands them to ``Calls``)
PREFIX = "taube.call."
INVITE = "taube.call.invite"
ANSWER = "taube.call.answer"
REJECT = "taube.call.reject"
SELECT = "taube.call.select"
CANDIDATES = "taube.call.candidates"
HANGUP = "taube.call.hangup"
TYPES = frozenset({INVITE, ANSWER, REJECT, SELECT, CANDIDATES, HANGUP})

#: how long a call rings before it counts as missed
RING_MS = 60_000
#: an invite from further in the future than this is refused
MAX_SKEW_MS = 30_000
MAX_SDP = 64 * 1024

CallIdStr = Annotated[str, Meta(pattern=r"^[A-Za-z0-9_-]{16,64}$")]
#: an SDP offer or answer (it starts with its version line)
Sdp = Annotated[str, Meta(min_length=4, max_length=MAX_SDP, pattern=r"^v=0\r?\n")]


def new_call_id() -> str:
    """A random 128-bit call id."""
    return secrets.token_urlsafe(16)


class CallState(enum.StrEnum):
    """A call on one device. ``RINGING``: an outgoing call waits for an answer,
    or an incoming one for the user; ``CONNECTING``: answered, ICE under way."""

    RINGING = "ringing"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    ENDED = "ended"


NEXT: dict[CallState, frozenset[CallState]] = {
    CallState.RINGING: frozenset({CallState.CONNECTING, CallState.ENDED}),
    CallState.CONNECTING: frozenset({CallState.CONNECTED, CallState.ENDED}),
    CallState.CONNECTED: frozenset({CallState.ENDED}),
    CallState.ENDED: frozenset(),
}


class EndReason(enum.StrEnum):
    HANGUP = "hangup"  #: one side hung up
    DECLINED = "declined"  #: the callee said no
    BUSY = "busy"  #: every callee device is in another call
    MISSED = "missed"  #: nobody answered in time
    ANSWERED_ELSEWHERE = "answered_elsewhere"  #: another device of the callee took it
    UNREACHABLE = "unreachable"  #: the callee has no device to ring
    ICE_FAILED = "ice_failed"  #: the devices could not reach each other
    GONE = "gone"  #: the other side vanished mid-call
    ERROR = "error"  #: refused or broken signalling


class SignallingError(ValueError):
    """A call message that is malformed, stale, replayed or not allowed."""


class _Content(msgspec.Struct, kw_only=True):
    """Unknown fields are ignored (newer clients may add some)."""

    call: CallIdStr


class Invite(_Content, kw_only=True):
    conversation: Annotated[str, Meta(max_length=100)]
    ts: int
    lifetime_ms: Annotated[int, Meta(ge=1000, le=5 * 60_000)] = RING_MS
    sdp: Sdp
    video: bool = False


class Answer(_Content, kw_only=True):
    sdp: Sdp


class Reject(_Content, kw_only=True):
    reason: Literal["declined", "busy"] = "declined"


class Select(_Content, kw_only=True):
    device: Annotated[str, Meta(max_length=100)]


class Candidate(msgspec.Struct, kw_only=True):
    candidate: Annotated[str, Meta(max_length=1024)]
    sdpMid: Annotated[str, Meta(max_length=64)] | None = None  # noqa: N815 - WebRTC's name
    sdpMLineIndex: Annotated[int, Meta(ge=0, le=64)] | None = None  # noqa: N815


class Candidates(_Content, kw_only=True):
    candidates: Annotated[list[Candidate], Meta(max_length=64)]


class Hangup(_Content, kw_only=True):
    reason: Annotated[str, Meta(max_length=40)] = EndReason.HANGUP


SignalContent = Invite | Answer | Reject | Select | Candidates | Hangup
CONTENT_TYPES: dict[str, type[SignalContent]] = {
    INVITE: Invite,
    ANSWER: Answer,
    REJECT: Reject,
    SELECT: Select,
    CANDIDATES: Candidates,
    HANGUP: Hangup,
}


def parse(type_: str, content: dict[str, Any]) -> SignalContent:
    """The checked content of a call message (``SignallingError`` if malformed)."""
    try:
        return msgspec.convert(content, CONTENT_TYPES[type_])
    except (KeyError, msgspec.ValidationError) as exc:
        raise SignallingError(f"malformed {type_}: {exc}") from None


def check_fresh(invite: Invite, now_ms: int) -> None:
    """Refuse an invite that is too old to ring or comes from the future."""
    if invite.ts > now_ms + MAX_SKEW_MS:
        raise SignallingError("invite from the future")
    if now_ms - invite.ts > invite.lifetime_ms:
        raise SignallingError("stale invite")


def content_of(message: SignalContent) -> dict[str, Any]:
    out: dict[str, Any] = msgspec.to_builtins(message)
    return out
