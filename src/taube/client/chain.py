"""A conversation's state as the client trusts it: a verified chain of signed events.

The server routes by the chain but the client trusts only what it checks
itself: every event's signature against its sender's identity key (pinned
per user, see ``keys``), and the rules of ``taube.proto.state`` from the
create event on. Keys are shared only with the members this admits.
"""

from __future__ import annotations

import msgspec

from taube.client.keys import Keys
from taube.crypto import CryptoError
from taube.proto.errors import ProtocolError
from taube.proto.ids import ConversationId, UserId
from taube.proto.signing import DOMAIN_STATE, verify
from taube.proto.state import (
    Content,
    ConversationState,
    Create,
    Kind,
    Member,
    Role,
    StateEvent,
    apply_event,
    initial_state,
)

_events = msgspec.json.Decoder(list[StateEvent])


class ChainError(CryptoError):
    """The state chain does not verify: the conversation is not trusted."""


async def check_signature(keys: Keys, event: StateEvent) -> None:
    sender = UserId(event.sender)
    pinned = keys.pinned(sender)
    if pinned is None:
        await keys.refresh([sender])
        pinned = keys.pinned(sender)
    if pinned is None:
        raise ChainError(f"no identity key for {sender}")
    try:
        verify(DOMAIN_STATE, event, pinned[0], event.signature)
    except ProtocolError as exc:
        raise ChainError(f"state event by {sender} does not verify: {exc.message}") from exc


async def verify_chain(keys: Keys, events: list[StateEvent]) -> ConversationState:
    """Check every signature and rule from the create event on."""
    if not events:
        raise ChainError("empty state chain")
    state: ConversationState | None = None
    for event in events:
        await check_signature(keys, event)
        try:
            state = initial_state(event) if state is None else apply_event(state, event)
        except ProtocolError as exc:
            raise ChainError(f"state event breaks the rules: {exc.message}") from exc
    assert state is not None
    return state


def sign(
    keys: Keys, conversation: ConversationId, depth: int, prev: str, content: Content, ts: int
) -> StateEvent:
    event = StateEvent(
        conversation=conversation,
        depth=depth,
        prev=prev,
        sender=keys.user,
        ts=ts,
        content=content,
        signature="A" * 86,
    )
    return msgspec.structs.replace(event, signature=keys.identity.sign(DOMAIN_STATE, event))


def new_chain(
    keys: Keys,
    conversation: ConversationId,
    kind: Kind,
    members: list[UserId],
    ts: int,
    admins: frozenset[UserId] = frozenset(),
) -> list[StateEvent]:
    events = [sign(keys, conversation, 0, "", Create(kind=kind), ts)]
    for member in members:
        role = Role.ADMIN if member in admins else Role.MEMBER
        last = events[-1]
        events.append(
            sign(
                keys,
                conversation,
                last.depth + 1,
                last.event_hash(),
                Member(target=member, membership="join", role=role),
                ts,
            )
        )
    return events


def encode_events(events: list[StateEvent]) -> bytes:
    return msgspec.json.encode(events)


def decode_events(data: bytes) -> list[StateEvent]:
    return _events.decode(data)
