"""Conversations: signed state in, routing state out."""

from __future__ import annotations

from taube.proto import http
from taube.proto.errors import ErrorCode, ProtocolError
from taube.proto.ids import ConversationId, UserId
from taube.proto.signing import DOMAIN_STATE, verify
from taube.proto.state import Member, StateEvent
from taube.server.http.call import Call
from taube.store.conversations import ConversationRow


async def _check_event(call: Call, event: StateEvent) -> None:
    """Events are submitted by their signer, signed by the signer's identity key,
    and add only users that exist."""
    if event.sender != call.auth.user:
        raise ProtocolError(ErrorCode.FORBIDDEN, "events are submitted by their sender")
    identity = await call.srv.store.identity_of(call.auth.user)
    if identity is None:
        raise ProtocolError(ErrorCode.BAD_KEY, "publish the identity key first")
    verify(DOMAIN_STATE, event, identity.identity_key, event.signature)
    content = event.content
    if (
        isinstance(content, Member)
        and content.membership == "join"
        and await call.srv.store.password_hash(UserId(content.target)) is None
    ):
        raise ProtocolError(ErrorCode.NOT_FOUND, f"no such user: {content.target}")


def _info(row: ConversationRow) -> http.ConversationInfo:
    return http.ConversationInfo(
        conversation=row.conversation,
        kind=row.kind,
        members=dict(row.members),
        depth=row.depth,
        head=row.head,
        timer_seconds=row.timer_seconds,
        seq=row.seq,
    )


async def create_conversation(call: Call) -> http.ConversationInfo:
    srv = call.srv
    events: list[StateEvent] = list(call.body.events)
    for event in events:
        await _check_event(call, event)
    appended = await srv.store.create_conversation(events, call.auth.device, srv.clock.now_ms())
    srv.publish_state(appended, call.auth.device)
    row = await srv.store.get_conversation(events[0].conversation, call.auth.user)
    if row is None:  # pragma: no cover - the creator is the owner
        raise ProtocolError(ErrorCode.INTERNAL, "conversation vanished")
    return _info(row)


async def list_conversations(call: Call) -> http.ConversationList:
    rows = await call.srv.store.list_conversations(call.auth.user)
    return http.ConversationList(conversations=[_info(row) for row in rows])


async def get_conversation(call: Call) -> http.ConversationInfo:
    row = await call.srv.store.get_conversation(
        ConversationId(call.param("conversation")), call.auth.user
    )
    if row is None:
        raise ProtocolError(ErrorCode.NOT_FOUND, "no such conversation")
    return _info(row)


async def get_state(call: Call) -> http.StateChain:
    events = await call.srv.store.state_chain(
        ConversationId(call.param("conversation")), call.auth.user
    )
    if events is None:
        raise ProtocolError(ErrorCode.NOT_FOUND, "no such conversation")
    return http.StateChain(events=events)


async def append_state(call: Call) -> http.Appended:
    event: StateEvent = call.body
    if event.conversation != call.param("conversation"):
        raise ProtocolError(ErrorCode.BAD_REQUEST, "event is for another conversation")
    await _check_event(call, event)
    seq = await call.srv.do_append_state(event, call.auth.device)
    return http.Appended(seq=seq)
