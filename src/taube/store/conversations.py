"""Conversations: the signed state chain and the routing state derived from it."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import msgspec

from taube.proto.errors import ErrorCode, ProtocolError
from taube.proto.ids import ConversationId, DeviceId, UserId, domain_of
from taube.proto.state import (
    ConversationState,
    Kind,
    Role,
    StateEvent,
    apply_event,
    initial_state,
)
from taube.store.sql import Tx

KIND_MESSAGE = 0
KIND_STATE = 1

_event = msgspec.json.Decoder(StateEvent)
_encode = msgspec.json.encode


@dataclasses.dataclass(frozen=True)
class ConversationRow:
    conversation: ConversationId
    kind: Kind
    members: dict[UserId, Role]
    depth: int
    head: str
    timer_seconds: int
    seq: int


@dataclasses.dataclass(frozen=True)
class StateAppended:
    """A state event's log entry and who must get it."""

    seq: int
    event: StateEvent
    recipients: frozenset[UserId]
    members: frozenset[UserId]


async def _load_state(
    tx: Tx, conversation: str, *, lock: bool = False
) -> tuple[ConversationState, int]:
    """The conversation's state; ``lock`` holds its row until commit (PostgreSQL),
    so that two nodes appending state cannot both build on the same head."""
    row = await tx.fetchone(
        "SELECT kind, depth, head, creator, timer_seconds, seq FROM conversations"
        " WHERE conversation = ?" + (" FOR UPDATE" if lock else ""),
        conversation,
    )
    if row is None:
        raise ProtocolError(ErrorCode.NOT_FOUND, "no such conversation")
    members = {
        UserId(r[0]): Role(r[1])
        for r in await tx.fetchall(
            "SELECT user_id, role FROM members WHERE conversation = ?", conversation
        )
    }
    state = ConversationState(
        conversation=conversation,
        kind=Kind(row[0]),
        creator=UserId(row[3]),
        members=members,
        timer_seconds=int(row[4]),
        depth=int(row[1]),
        head=row[2],
    )
    return state, int(row[5])


async def _apply_effects(tx: Tx, old: dict[UserId, Role], new: ConversationState, seq: int) -> None:
    """Bring members and cursors in line with ``new`` after the entry at ``seq``."""
    conversation = new.conversation
    for user, role in new.members.items():
        if user not in old:
            await tx.execute(
                "INSERT INTO members (conversation, user_id, role, joined_seq) VALUES (?, ?, ?, ?)",
                conversation,
                user,
                role.value,
                seq,
            )
            # The new member's devices start just before their own join: no history.
            await tx.execute(
                "INSERT INTO cursors (device, conversation, seq) SELECT device, ?, ? FROM devices"
                " WHERE user_id = ? ON CONFLICT (device, conversation)"
                " DO UPDATE SET seq = excluded.seq, until_seq = NULL",
                conversation,
                seq - 1,
                user,
            )
        elif old[user] is not role:
            await tx.execute(
                "UPDATE members SET role = ? WHERE conversation = ? AND user_id = ?",
                role.value,
                conversation,
                user,
            )
    for user in old.keys() - new.members.keys():
        await tx.execute(
            "DELETE FROM members WHERE conversation = ? AND user_id = ?", conversation, user
        )
        # A leaving member's devices still get the leave event, nothing after it.
        await tx.execute(
            "UPDATE cursors SET until_seq = ? WHERE conversation = ? AND device IN"
            " (SELECT device FROM devices WHERE user_id = ?)",
            seq,
            conversation,
            user,
        )
    await _follow_servers(tx, conversation, old.keys(), new.members.keys(), seq)


def server_cursor(domain: str) -> DeviceId:
    """The cursor of another domain's server in ``cursors`` (device ids never start with @)."""
    return DeviceId("@" + domain)


async def _follow_servers(
    tx: Tx, conversation: str, before_: Iterable[UserId], after_: Iterable[UserId], seq: int
) -> None:
    """Other domains' servers follow the log like devices: a server whose first
    user joins gets a cursor just before that join, and when its last user
    leaves, its cursor ends at the leave (it still gets that event).

    A member without a row in ``users`` is a user of another server (local
    users are checked to exist before they are added)."""
    old, new = set(before_), set(after_)
    changed = old ^ new
    if not changed:
        return
    remote = set()
    for user in changed:
        if await tx.fetchone("SELECT 1 FROM users WHERE user_id = ?", user) is None:
            remote.add(domain_of(user))
    for domain in sorted(remote):
        before = any(domain_of(u) == domain for u in old)
        after = any(domain_of(u) == domain for u in new)
        if after and not before:
            await tx.execute(
                "INSERT INTO cursors (device, conversation, seq) VALUES (?, ?, ?)"
                " ON CONFLICT (device, conversation)"
                " DO UPDATE SET seq = excluded.seq, until_seq = NULL",
                server_cursor(domain),
                conversation,
                seq - 1,
            )
            await tx.execute(
                "INSERT INTO federation_destinations (domain) VALUES (?)"
                " ON CONFLICT (domain) DO NOTHING",
                domain,
            )
        elif before and not after:
            await tx.execute(
                "UPDATE cursors SET until_seq = ? WHERE device = ? AND conversation = ?",
                seq,
                server_cursor(domain),
                conversation,
            )


async def _append_entry(tx: Tx, event: StateEvent, device: DeviceId, seq: int, now: int) -> None:
    data = _encode(event)
    await tx.execute(
        "INSERT INTO state_events (conversation, depth, data) VALUES (?, ?, ?)",
        event.conversation,
        event.depth,
        data.decode(),
    )
    await tx.execute(
        "INSERT INTO log (conversation, seq, kind, msg_id, sender, sender_device, ts, body)"
        " VALUES (?, ?, ?, '', ?, ?, ?, ?)",
        event.conversation,
        seq,
        KIND_STATE,
        event.sender,
        device,
        now,
        data,
    )


async def create_conversation(
    tx: Tx, events: list[StateEvent], device: DeviceId, now: int
) -> list[StateAppended]:
    """Create a conversation from its first events (signatures checked already)."""
    first = events[0]
    exists = await tx.fetchone(
        "SELECT 1 FROM conversations WHERE conversation = ?", first.conversation
    )
    if exists is not None:
        raise ProtocolError(ErrorCode.CONFLICT, "that conversation id is taken")
    appended = []
    members: dict[UserId, Role] = {}
    state = initial_state(first)  # raises if the rules refuse the chain
    for seq, event in enumerate(events, start=1):
        if seq > 1:
            state = apply_event(state, event)
        await _append_entry(tx, event, device, seq, now)
        await _apply_effects(tx, members, state, seq)
        recipients = frozenset(members) | frozenset(state.members)
        members = dict(state.members)
        appended.append(StateAppended(seq, event, recipients, frozenset(members)))
    await tx.execute(
        "INSERT INTO conversations (conversation, kind, seq, depth, head, creator,"
        " timer_seconds, created_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        first.conversation,
        state.kind.value,
        len(events),
        state.depth,
        state.head,
        first.sender,
        state.timer_seconds,
        now,
    )
    return appended


async def append_state(tx: Tx, event: StateEvent, device: DeviceId, now: int) -> StateAppended:
    """Append one event (signature checked already) if the rules admit it."""
    state, seq = await _load_state(tx, event.conversation, lock=True)
    if UserId(event.sender) not in state.members:
        raise ProtocolError(ErrorCode.NOT_FOUND, "no such conversation")
    new = apply_event(state, event)
    seq += 1
    await tx.execute(
        "UPDATE conversations SET seq = ?, depth = ?, head = ?, timer_seconds = ?"
        " WHERE conversation = ?",
        seq,
        new.depth,
        new.head,
        new.timer_seconds,
        event.conversation,
    )
    await _append_entry(tx, event, device, seq, now)
    await _apply_effects(tx, state.members, new, seq)
    recipients = frozenset(state.members) | frozenset(new.members)
    return StateAppended(seq, event, recipients, frozenset(new.members))


async def get_conversation(
    tx: Tx, conversation: ConversationId, user: UserId
) -> ConversationRow | None:
    """The conversation if ``user`` is a member, else ``None``."""
    try:
        state, seq = await _load_state(tx, conversation)
    except ProtocolError:
        return None
    if user not in state.members:
        return None
    return ConversationRow(
        ConversationId(conversation),
        state.kind,
        state.members,
        state.depth,
        state.head,
        state.timer_seconds,
        seq,
    )


async def list_conversations(tx: Tx, user: UserId) -> list[ConversationRow]:
    ids = [
        r[0]
        for r in await tx.fetchall(
            "SELECT conversation FROM members WHERE user_id = ? ORDER BY joined_seq", user
        )
    ]
    rows = [await get_conversation(tx, ConversationId(c), user) for c in ids]
    return [row for row in rows if row is not None]


async def state_chain(
    tx: Tx, conversation: ConversationId, user: UserId
) -> list[StateEvent] | None:
    member = await tx.fetchone(
        "SELECT 1 FROM members WHERE conversation = ? AND user_id = ?", conversation, user
    )
    if member is None:
        return None
    return [
        _event.decode(r[0])
        for r in await tx.fetchall(
            "SELECT data FROM state_events WHERE conversation = ? ORDER BY depth", conversation
        )
    ]


async def members_of(tx: Tx, conversation: ConversationId) -> frozenset[UserId]:
    rows = await tx.fetchall("SELECT user_id FROM members WHERE conversation = ?", conversation)
    return frozenset(UserId(r[0]) for r in rows)


async def contacts_devices(tx: Tx, user: UserId) -> list[DeviceId]:
    """Every device of ``user`` and of everyone sharing a conversation with them."""
    return [
        DeviceId(r[0])
        for r in await tx.fetchall(
            "SELECT device FROM devices WHERE user_id = ? OR user_id IN"
            " (SELECT m2.user_id FROM members m1 JOIN members m2"
            "  ON m2.conversation = m1.conversation WHERE m1.user_id = ?)",
            user,
            user,
        )
    ]
