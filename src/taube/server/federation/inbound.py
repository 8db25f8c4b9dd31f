"""What other servers push and ask: transactions, state chains, remote state appends.

Every server that has a member in a conversation keeps a *replica* of it:
the signed chain, the members, and a log of its own (its own ``seq``) that
its own devices read. A replica is made from the chain the origin serves
(``GET /conversations/{id}/state``) when the first entry of an unknown
conversation arrives; the events' signatures are checked against the
senders' identity keys (fetched from their servers) and the rules of
``taube.proto.state`` are applied as for a local conversation.

An entry is refused, and nothing stored for it, when:

- a message's sender is not a user of the origin, or not a member here;
- a state event does not come from the conversation's home (its creator's
  server), does not verify, or breaks the rules;
- the conversation is unknown and the origin cannot show a chain that
  has a user of the origin in it.

A refused entry gets its error in the answer; a store that is unavailable
fails the whole transaction (the origin retries it).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

from aiohttp import web

from taube.proto import frames, http
from taube.proto.codec import encode
from taube.proto.errors import ErrorCode, ProtocolError
from taube.proto.federation import (
    Empty,
    EntryResult,
    FederatedMessage,
    FederatedState,
    FederatedToDevice,
    RemoteStateEvent,
    Transaction,
    TransactionResult,
    TypingNotice,
)
from taube.proto.ids import BLOB_ID_PATTERN, BlobId, ConversationId, DeviceId, UserId, domain_of
from taube.proto.signing import DOMAIN_STATE, verify
from taube.proto.state import Member, StateEvent, apply_event, initial_state
from taube.server.federation.keys import query_keys
from taube.server.http.blobs import blob_response
from taube.store import federation as stored
from taube.store.delivery import Stored

if TYPE_CHECKING:
    from taube.server.context import Server

_BLOB_ID = re.compile(BLOB_ID_PATTERN)

#: the device recorded for state events that came from another server
NO_DEVICE = DeviceId("")


def _refused(code: ErrorCode, message: str) -> ProtocolError:
    return ProtocolError(code, message)


async def check_signatures(srv: Server, events: list[StateEvent]) -> None:
    """Each event signed by its sender's identity key (wherever the sender lives)."""
    senders = list(dict.fromkeys(UserId(e.sender) for e in events))
    found = await query_keys(srv, senders)
    identities = {entry.user: entry.identity for entry in found.users}
    for event in events:
        identity = identities.get(event.sender)
        if identity is None:
            raise _refused(ErrorCode.BAD_SIGNATURE, f"no identity key for {event.sender}")
        verify(DOMAIN_STATE, event, identity.identity_key, event.signature)


async def check_targets(srv: Server, events: list[StateEvent]) -> None:
    """Users a join adds exist: local ones here, remote ones on their server."""
    own = srv.config.server.domain
    remote = []
    for event in events:
        content = event.content
        if isinstance(content, Member) and content.membership == "join":
            target = UserId(content.target)
            if domain_of(target) == own:
                if await srv.store.password_hash(target) is None:
                    raise _refused(ErrorCode.NOT_FOUND, f"no such user: {target}")
            else:
                remote.append(target)
    if remote:
        if srv.federation is None:
            raise _refused(ErrorCode.NOT_FOUND, f"no such user: {remote[0]}")
        found = {u.user for u in (await query_keys(srv, remote)).users if u.identity}
        for target in remote:
            if target not in found:
                raise _refused(ErrorCode.NOT_FOUND, f"no such user: {target}")


async def _chain_from(srv: Server, origin: str, conversation: ConversationId) -> list[StateEvent]:
    federation = srv.federation
    assert federation is not None
    try:
        chain = await federation.request(
            origin, "GET", f"/conversations/{conversation}/state", None, http.StateChain
        )
    except ProtocolError as exc:
        if exc.retryable:
            raise
        raise _refused(ErrorCode.NOT_FOUND, f"{origin} shows no such conversation") from exc
    events = list(chain.events)
    if not events or any(e.conversation != conversation for e in events):
        raise _refused(ErrorCode.BAD_REQUEST, f"{origin} served a chain of another conversation")
    return events


async def _replicate(srv: Server, origin: str, conversation: ConversationId) -> None:
    """Make or bring up to date the replica of ``conversation`` from the origin's chain."""
    events = await _chain_from(srv, origin, conversation)
    depth = await _depth(srv, conversation)
    new = [e for e in events if e.depth > depth]
    if not new:
        return
    if depth < 0:  # the cheap refusals first: no request goes out for them
        _check_new_replica(srv, origin, events)
    await check_signatures(srv, new)
    await check_targets(srv, new)
    now = srv.clock.now_ms()
    if depth < 0:
        try:
            appended = await srv.store.create_conversation(events, NO_DEVICE, now)
        except ProtocolError as exc:
            if exc.code != ErrorCode.CONFLICT:
                raise
            return  # made meanwhile by another transaction
        srv.publish_state(appended, NO_DEVICE)
        return
    for event in new:
        srv.publish_state([await srv.store.append_state(event, NO_DEVICE, now)], NO_DEVICE)


def _check_new_replica(srv: Server, origin: str, events: list[StateEvent]) -> None:
    """A chain worth a replica here: the rules hold, the origin takes part in
    it, and a user of this server is a member at its end (a remote cannot
    make this server keep conversations of others)."""
    involved = {UserId(e.sender) for e in events} | {
        UserId(e.content.target) for e in events if isinstance(e.content, Member)
    }
    if not any(domain_of(user) == origin for user in involved):
        raise _refused(ErrorCode.NOT_FOUND, f"{origin} has no member in that conversation")
    state = initial_state(events[0])
    for event in events[1:]:
        state = apply_event(state, event)
    if not any(domain_of(user) == srv.config.server.domain for user in state.members):
        raise _refused(ErrorCode.NOT_FOUND, "no member of that conversation is here")


async def _depth(srv: Server, conversation: ConversationId) -> int:
    return await srv.store.engine.read(stored.conversation_depth, conversation)


async def _queue_message(
    srv: Server,
    origin: str,
    entry: FederatedMessage,
    known: dict[ConversationId, frozenset[UserId]],
) -> asyncio.Future[Stored]:
    """Check a message and hand it to the store; the future resolves once it
    is durable. Messages of one transaction are queued back to back, so they
    share a group commit (one fsync), in order."""
    if domain_of(UserId(entry.sender)) != origin:
        raise _refused(ErrorCode.FORBIDDEN, f"{entry.sender} is not a user of {origin}")
    conversation = ConversationId(entry.conversation)
    sender = UserId(entry.sender)
    members = known.get(conversation)
    if members is None or sender not in members:
        if await srv.store.engine.read(stored.conversation_creator, conversation) is None:
            await _replicate(srv, origin, conversation)
        members = known[conversation] = await srv.store.members_of(conversation)
    if sender not in members:
        # The sender may have joined by an event this replica has not had yet
        # (the home's push is late or lost, the origin's message came first):
        # catch up from the origin's chain before refusing.
        await _replicate(srv, origin, conversation)
        members = known[conversation] = await srv.store.members_of(conversation)
    for blob in dict.fromkeys(entry.blobs):
        await _fetch_blob(srv, origin, UserId(entry.sender), blob)
    return srv.store.send_message(
        UserId(entry.sender),
        DeviceId(entry.sender_device),
        conversation,
        entry.id,
        entry.body,
        list(entry.blobs),
        entry.expire_ms,
        srv.clock.now_ms(),
    )


async def _publish_message(
    srv: Server, entry: FederatedMessage, future: asyncio.Future[Stored]
) -> None:
    result = await future
    if not result.duplicate:
        send = frames.Send(
            conversation=entry.conversation,
            id=entry.id,
            body=entry.body,
            blobs=list(entry.blobs),
            expire_ms=entry.expire_ms,
        )
        srv.publish_message(UserId(entry.sender), DeviceId(entry.sender_device), send, result)


async def _fetch_blob(srv: Server, origin: str, sender: UserId, blob: BlobId) -> None:
    """Bring an attachment of a message here before the message is stored, so
    that this server's devices download it from their own server (and the
    origin may delete it once this server has the message)."""
    owner = await srv.store.engine.read(stored.blob_owner, blob)
    if owner is not None:
        if owner != sender:  # an id of someone else's blob here: not the sender's to name
            raise _refused(ErrorCode.NOT_FOUND, "no such blob")
        return  # fetched before (a retried transaction)
    federation = srv.federation
    assert federation is not None
    now = srv.clock.now_ms()
    size = await federation.fetch_blob(
        origin, blob, srv.store.blobs, srv.config.limits.max_blob_bytes, now
    )
    try:
        await srv.store.engine.write(stored.create_remote_blob, blob, sender, size, now)
    except BaseException:
        await srv.store.blobs.delete([blob])
        raise


async def _receive_state(srv: Server, origin: str, entry: FederatedState) -> None:
    conversation = ConversationId(entry.conversation)
    event = entry.event
    if event.conversation != conversation:
        raise _refused(ErrorCode.BAD_REQUEST, "the event is for another conversation")
    creator = await srv.store.engine.read(stored.conversation_creator, conversation)
    if creator is None:
        await _replicate(srv, origin, conversation)
        return
    if domain_of(creator) != origin:
        raise _refused(ErrorCode.FORBIDDEN, f"{origin} is not the home of that conversation")
    depth = await _depth(srv, conversation)
    if event.depth <= depth:
        return  # had it already
    if event.depth > depth + 1:
        await _replicate(srv, origin, conversation)  # missed some: catch up from the chain
        return
    await check_signatures(srv, [event])
    await check_targets(srv, [event])
    appended = await srv.store.append_state(event, NO_DEVICE, srv.clock.now_ms())
    srv.publish_state([appended], NO_DEVICE)


async def _receive_to_device(srv: Server, origin: str, batch: FederatedToDevice) -> None:
    own = srv.config.server.domain
    if domain_of(UserId(batch.sender)) != origin:
        raise _refused(ErrorCode.FORBIDDEN, f"{batch.sender} is not a user of {origin}")
    if any(domain_of(UserId(m.user)) != own for m in batch.messages):
        raise _refused(ErrorCode.BAD_REQUEST, f"{own} takes messages for {own} devices only")
    duplicate, entries = await srv.store.send_to_devices(
        UserId(batch.sender),
        DeviceId(batch.sender_device),
        batch.id,
        [(UserId(m.user), DeviceId(m.device), m.body) for m in batch.messages],
        srv.clock.now_ms(),
    )
    if not duplicate:
        srv.publish_queue(entries)


async def _outcome(step: object) -> EntryResult:
    try:
        await step  # type: ignore[misc]
    except ProtocolError as exc:
        if exc.retryable:
            raise  # the whole transaction is tried again
        return EntryResult(error=exc.code.value, message=exc.message)
    return EntryResult()


async def federation_send(
    srv: Server, origin: str, body: Transaction, params: Mapping[str, str]
) -> TransactionResult:
    results: list[EntryResult] = [EntryResult() for _ in body.entries]
    waiting: list[tuple[int, FederatedMessage, asyncio.Future[Stored]]] = []
    known: dict[ConversationId, frozenset[UserId]] = {}

    async def settle() -> None:
        try:
            for index, message, future in waiting:
                results[index] = await _outcome(_publish_message(srv, message, future))
        finally:  # a retryable failure: let the rest finish before the whole is retried
            await asyncio.gather(*(f for _, _, f in waiting), return_exceptions=True)
            waiting.clear()

    try:
        for index, entry in enumerate(body.entries):
            if isinstance(entry, FederatedMessage):
                try:
                    waiting.append((index, entry, await _queue_message(srv, origin, entry, known)))
                except ProtocolError as exc:
                    if exc.retryable:
                        raise
                    results[index] = EntryResult(error=exc.code.value, message=exc.message)
            else:
                await settle()
                results[index] = await _outcome(_receive_state(srv, origin, entry))
    finally:
        await settle()
    batches = [await _outcome(_receive_to_device(srv, origin, b)) for b in body.to_device]
    for user in dict.fromkeys(body.keys_changed):
        if domain_of(UserId(user)) == origin:  # a server speaks for its own users only
            devices = await srv.store.engine.write(
                stored.keys_changed_here, UserId(user), srv.clock.now_ms()
            )
            srv.notify_keys_changed(devices)
    return TransactionResult(entries=results, to_device=batches)


async def federation_typing(
    srv: Server, origin: str, body: TypingNotice, params: Mapping[str, str]
) -> Empty:
    if domain_of(UserId(body.user)) != origin:
        raise ProtocolError(ErrorCode.FORBIDDEN, f"{body.user} is not a user of {origin}")
    conversation = ConversationId(body.conversation)
    if not await srv.hub.is_member(conversation, UserId(body.user)):
        raise ProtocolError(ErrorCode.NOT_FOUND, "no such conversation")
    event = frames.TypingEvent(conversation=conversation, user=body.user, active=body.active)
    srv.publish_ephemeral(await srv.hub.members(conversation), encode(event), None)
    return Empty()


async def federation_get_blob(
    srv: Server, origin: str, body: None, params: Mapping[str, str]
) -> web.StreamResponse:
    blob = params["blob"]
    if not _BLOB_ID.match(blob):
        raise ProtocolError(ErrorCode.NOT_FOUND, "no such blob")
    size = await srv.store.engine.read(stored.blob_visible_to, blob, origin)
    if size is None:
        raise ProtocolError(ErrorCode.NOT_FOUND, "no such blob")
    return await blob_response(srv.store, BlobId(blob), size)


async def federation_get_state(
    srv: Server, origin: str, body: None, params: Mapping[str, str]
) -> http.StateChain:
    conversation = ConversationId(params["conversation"])
    if not await srv.store.engine.read(stored.has_member_of, conversation, origin):
        raise ProtocolError(ErrorCode.NOT_FOUND, "no such conversation")
    events = await srv.store.engine.read(stored.whole_chain, conversation)
    return http.StateChain(events=events)


async def federation_append_state(
    srv: Server, origin: str, body: RemoteStateEvent, params: Mapping[str, str]
) -> http.Appended:
    conversation = ConversationId(params["conversation"])
    event = body.event
    own = srv.config.server.domain
    if event.conversation != conversation:
        raise ProtocolError(ErrorCode.BAD_REQUEST, "the event is for another conversation")
    if domain_of(UserId(event.sender)) != origin:
        raise ProtocolError(ErrorCode.FORBIDDEN, f"{event.sender} is not a user of {origin}")
    creator = await srv.store.engine.read(stored.conversation_creator, conversation)
    if creator is None or domain_of(creator) != own:
        raise ProtocolError(ErrorCode.NOT_FOUND, "no such conversation")
    await check_signatures(srv, [event])
    await check_targets(srv, [event])
    seq = await srv.do_append_state(event, NO_DEVICE)
    return http.Appended(seq=seq)
