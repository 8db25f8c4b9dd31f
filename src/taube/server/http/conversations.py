"""Conversations: signed state in, routing state out."""

from __future__ import annotations

from taube.proto import http
from taube.proto.errors import ErrorCode, ProtocolError
from taube.proto.federation import RemoteStateEvent
from taube.proto.ids import ConversationId, domain_of
from taube.proto.signing import DOMAIN_STATE, verify
from taube.proto.state import StateEvent
from taube.server.federation.inbound import check_targets
from taube.server.http.call import Call
from taube.store import federation
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
    await check_targets(call.srv, [event])  # users here, or on their own servers


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
    srv = call.srv
    conversation = ConversationId(event.conversation)
    creator = await srv.store.engine.read(federation.conversation_creator, conversation)
    home = domain_of(creator) if creator is not None else srv.config.server.domain
    if home == srv.config.server.domain or srv.federation is None:
        seq = await srv.do_append_state(event, call.auth.device)
        return http.Appended(seq=seq)
    # The conversation's home server orders its chain: it appends first, then
    # this replica (the home's copy, when it comes, is then already here).
    if not await srv.hub.is_member(conversation, call.auth.user):
        raise ProtocolError(ErrorCode.NOT_FOUND, "no such conversation")
    appended = await srv.federation.request(
        home,
        "POST",
        f"/conversations/{conversation}/state",
        RemoteStateEvent(event=event),
        http.Appended,
    )
    try:
        return http.Appended(seq=await srv.do_append_state(event, call.auth.device))
    except ProtocolError:
        return appended  # this replica is behind: the home's copy brings it
