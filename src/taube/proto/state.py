"""Signed conversation state: the event types and the rules that admit them.

A conversation's state is a hash chain of events, each signed by its
sender's identity key. The server applies these rules to route messages (it
never invents membership); clients apply the same rules, plus their own trust
decisions about the signing keys, before sharing keys with anyone.

Rules, one per line (``rank``: owner 3 > admin 2 > member 1):

- the first event (depth 0) is ``create`` and makes its sender the owner;
- every later event's sender is a current member;
- ``prev`` is the hash of the event before, ``depth`` one more than its depth;
- adding a member takes an admin (in a direct chat: the creator, while the
  chat has fewer than two members); the new role ranks no higher than the
  sender's;
- changing a role takes a sender who outranks the target's old role (or is
  an owner), and the new role ranks no higher than the sender's;
- anyone may leave; removing someone else takes a sender who outranks them;
  nobody removes the other side of a direct chat;
- title, avatar and timer take an admin in a group, anyone in a direct chat.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
from typing import Annotated, Literal

from msgspec import Meta

from taube.proto.base import Wire
from taube.proto.errors import ErrorCode, ProtocolError
from taube.proto.ids import ConversationIdField, UserId, UserIdField
from taube.proto.keys import Signature
from taube.proto.signing import DOMAIN_STATE, b64encode, canonical_json, signing_bytes

MAX_GROUP_MEMBERS = 10_000


class Role(enum.StrEnum):
    OWNER = "owner"
    ADMIN = "admin"
    MEMBER = "member"

    @property
    def rank(self) -> int:
        return {"owner": 3, "admin": 2, "member": 1}[self.value]


class Kind(enum.StrEnum):
    DIRECT = "direct"
    GROUP = "group"


class Create(Wire, tag="create", kw_only=True):
    kind: Kind


class Member(Wire, tag="member", kw_only=True):
    target: UserIdField
    membership: Literal["join", "leave"]
    role: Role = Role.MEMBER


class Title(Wire, tag="title", kw_only=True):
    """The title, sealed by the clients (the server never sees it)."""

    sealed: Annotated[bytes, Meta(max_length=4096)]


class Avatar(Wire, tag="avatar", kw_only=True):
    """A reference to the encrypted avatar blob, sealed by the clients."""

    sealed: Annotated[bytes, Meta(max_length=4096)]


class Timer(Wire, tag="timer", kw_only=True):
    """Disappearing messages: seconds after sending; 0 switches them off."""

    seconds: Annotated[int, Meta(ge=0, le=366 * 86400)]


Content = Create | Member | Title | Avatar | Timer


class StateEvent(Wire, kw_only=True):
    conversation: ConversationIdField
    depth: Annotated[int, Meta(ge=0)]
    prev: Annotated[str, Meta(max_length=43)]
    sender: UserIdField
    ts: Annotated[int, Meta(ge=0)]
    content: Content
    signature: Signature

    def signed_bytes(self) -> bytes:
        return signing_bytes(DOMAIN_STATE, self)

    def event_hash(self) -> str:
        """The hash the next event names as ``prev`` (signature included)."""
        return b64encode(hashlib.sha256(canonical_json(self, without="")).digest())


@dataclasses.dataclass
class ConversationState:
    """The state that the events so far add up to."""

    conversation: str
    kind: Kind
    creator: UserId
    members: dict[UserId, Role]
    timer_seconds: int = 0
    depth: int = 0
    head: str = ""

    def role(self, user: UserId) -> Role | None:
        return self.members.get(user)


def _forbid(message: str) -> ProtocolError:
    return ProtocolError(ErrorCode.FORBIDDEN, message)


def initial_state(event: StateEvent) -> ConversationState:
    if event.depth != 0 or event.prev != "" or not isinstance(event.content, Create):
        raise _forbid("a conversation starts with a create event at depth 0")
    return ConversationState(
        conversation=event.conversation,
        kind=event.content.kind,
        creator=UserId(event.sender),
        members={UserId(event.sender): Role.OWNER},
        head=event.event_hash(),
    )


def apply_event(state: ConversationState, event: StateEvent) -> ConversationState:
    """The state after ``event``, or ``ProtocolError`` if the rules refuse it.

    ``state`` is not changed.
    """
    if event.conversation != state.conversation:
        raise _forbid("event for another conversation")
    if event.depth != state.depth + 1 or event.prev != state.head:
        raise ProtocolError(ErrorCode.CONFLICT, "event does not follow the current state")
    sender = UserId(event.sender)
    sender_role = state.role(sender)
    if sender_role is None:
        raise _forbid("only members change a conversation")
    new = dataclasses.replace(state, members=dict(state.members))
    content = event.content
    if isinstance(content, Create):
        raise _forbid("a conversation is created once")
    if isinstance(content, Member):
        _apply_member(new, sender, sender_role, content)
    elif isinstance(content, (Title, Avatar, Timer)):
        if state.kind is Kind.GROUP and sender_role.rank < Role.ADMIN.rank:
            raise _forbid("only admins change a group's settings")
        if isinstance(content, Timer):
            new.timer_seconds = content.seconds
    new.depth = event.depth
    new.head = event.event_hash()
    return new


def _apply_member(
    state: ConversationState, sender: UserId, sender_role: Role, content: Member
) -> None:
    target = UserId(content.target)
    target_role = state.role(target)
    if content.membership == "leave":
        if target_role is None:
            raise _forbid("not a member")
        if target != sender:
            if state.kind is Kind.DIRECT:
                raise _forbid("nobody removes the other side of a direct chat")
            if sender_role.rank <= target_role.rank:
                raise _forbid("only a higher role removes a member")
        del state.members[target]
        return
    if content.role.rank > sender_role.rank:
        raise _forbid("cannot grant a role above one's own")
    if target_role is None:
        if state.kind is Kind.DIRECT:
            if sender != state.creator or len(state.members) >= 2:
                raise _forbid("a direct chat has two members")
        elif sender_role.rank < Role.ADMIN.rank:
            raise _forbid("only admins add members")
        if len(state.members) >= MAX_GROUP_MEMBERS:
            raise _forbid("the group is full")
    else:
        if target == sender:
            raise _forbid("cannot change one's own role")
        if sender_role is not Role.OWNER and sender_role.rank <= target_role.rank:
            raise _forbid("only a higher role changes a role")
    state.members[target] = content.role


def replay(events: list[StateEvent]) -> ConversationState:
    """Apply a whole chain from its create event."""
    if not events:
        raise _forbid("empty state chain")
    state = initial_state(events[0])
    for event in events[1:]:
        state = apply_event(state, event)
    return state
