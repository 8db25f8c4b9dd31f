"""Conversations: the signed state chain and the routing state derived from it."""

from __future__ import annotations

import dataclasses
import sqlite3

import msgspec

from taube.proto.errors import ErrorCode, ProtocolError
from taube.proto.ids import ConversationId, DeviceId, UserId
from taube.proto.state import (
    ConversationState,
    Kind,
    Role,
    StateEvent,
    apply_event,
    initial_state,
)

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


def _load_state(conn: sqlite3.Connection, conversation: str) -> tuple[ConversationState, int]:
    row = conn.execute(
        "SELECT kind, depth, head, creator, timer_seconds, seq FROM conversations"
        " WHERE conversation = ?",
        (conversation,),
    ).fetchone()
    if row is None:
        raise ProtocolError(ErrorCode.NOT_FOUND, "no such conversation")
    members = {
        UserId(r[0]): Role(r[1])
        for r in conn.execute(
            "SELECT user_id, role FROM members WHERE conversation = ?", (conversation,)
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


def _apply_effects(
    conn: sqlite3.Connection, old: dict[UserId, Role], new: ConversationState, seq: int
) -> None:
    """Bring members and cursors in line with ``new`` after the entry at ``seq``."""
    conversation = new.conversation
    for user, role in new.members.items():
        if user not in old:
            conn.execute(
                "INSERT INTO members (conversation, user_id, role, joined_seq) VALUES (?, ?, ?, ?)",
                (conversation, user, role.value, seq),
            )
            # The new member's devices start just before their own join: no history.
            conn.execute(
                "INSERT INTO cursors (device, conversation, seq) SELECT device, ?, ? FROM devices"
                " WHERE user_id = ? ON CONFLICT (device, conversation)"
                " DO UPDATE SET seq = excluded.seq, until_seq = NULL",
                (conversation, seq - 1, user),
            )
        elif old[user] is not role:
            conn.execute(
                "UPDATE members SET role = ? WHERE conversation = ? AND user_id = ?",
                (role.value, conversation, user),
            )
    for user in old.keys() - new.members.keys():
        conn.execute(
            "DELETE FROM members WHERE conversation = ? AND user_id = ?", (conversation, user)
        )
        # A leaving member's devices still get the leave event, nothing after it.
        conn.execute(
            "UPDATE cursors SET until_seq = ? WHERE conversation = ? AND device IN"
            " (SELECT device FROM devices WHERE user_id = ?)",
            (seq, conversation, user),
        )


def _append_entry(
    conn: sqlite3.Connection, event: StateEvent, device: DeviceId, seq: int, now: int
) -> None:
    data = _encode(event)
    conn.execute(
        "INSERT INTO state_events (conversation, depth, data) VALUES (?, ?, ?)",
        (event.conversation, event.depth, data.decode()),
    )
    conn.execute(
        "INSERT INTO log (conversation, seq, kind, msg_id, sender, sender_device, ts, body)"
        " VALUES (?, ?, ?, '', ?, ?, ?, ?)",
        (event.conversation, seq, KIND_STATE, event.sender, device, now, data),
    )


def create_conversation(
    conn: sqlite3.Connection, events: list[StateEvent], device: DeviceId, now: int
) -> list[StateAppended]:
    """Create a conversation from its first events (signatures checked already)."""
    first = events[0]
    exists = conn.execute(
        "SELECT 1 FROM conversations WHERE conversation = ?", (first.conversation,)
    ).fetchone()
    if exists is not None:
        raise ProtocolError(ErrorCode.CONFLICT, "that conversation id is taken")
    appended = []
    members: dict[UserId, Role] = {}
    state = initial_state(first)  # raises if the rules refuse the chain
    for seq, event in enumerate(events, start=1):
        if seq > 1:
            state = apply_event(state, event)
        _append_entry(conn, event, device, seq, now)
        _apply_effects(conn, members, state, seq)
        recipients = frozenset(members) | frozenset(state.members)
        members = dict(state.members)
        appended.append(StateAppended(seq, event, recipients, frozenset(members)))
    conn.execute(
        "INSERT INTO conversations (conversation, kind, seq, depth, head, creator,"
        " timer_seconds, created_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (first.conversation, state.kind.value, len(events), state.depth, state.head,
         first.sender, state.timer_seconds, now),
    )
    return appended


def append_state(
    conn: sqlite3.Connection, event: StateEvent, device: DeviceId, now: int
) -> StateAppended:
    """Append one event (signature checked already) if the rules admit it."""
    state, seq = _load_state(conn, event.conversation)
    if UserId(event.sender) not in state.members:
        raise ProtocolError(ErrorCode.NOT_FOUND, "no such conversation")
    new = apply_event(state, event)
    seq += 1
    conn.execute(
        "UPDATE conversations SET seq = ?, depth = ?, head = ?, timer_seconds = ?"
        " WHERE conversation = ?",
        (seq, new.depth, new.head, new.timer_seconds, event.conversation),
    )
    _append_entry(conn, event, device, seq, now)
    _apply_effects(conn, state.members, new, seq)
    recipients = frozenset(state.members) | frozenset(new.members)
    return StateAppended(seq, event, recipients, frozenset(new.members))


def get_conversation(
    conn: sqlite3.Connection, conversation: ConversationId, user: UserId
) -> ConversationRow | None:
    """The conversation if ``user`` is a member, else ``None``."""
    try:
        state, seq = _load_state(conn, conversation)
    except ProtocolError:
        return None
    if user not in state.members:
        return None
    return ConversationRow(
        ConversationId(conversation), state.kind, state.members, state.depth, state.head,
        state.timer_seconds, seq,
    )


def list_conversations(conn: sqlite3.Connection, user: UserId) -> list[ConversationRow]:
    ids = [
        r[0]
        for r in conn.execute(
            "SELECT conversation FROM members WHERE user_id = ? ORDER BY joined_seq", (user,)
        )
    ]
    rows = [get_conversation(conn, ConversationId(c), user) for c in ids]
    return [row for row in rows if row is not None]


def state_chain(
    conn: sqlite3.Connection, conversation: ConversationId, user: UserId
) -> list[StateEvent] | None:
    member = conn.execute(
        "SELECT 1 FROM members WHERE conversation = ? AND user_id = ?", (conversation, user)
    ).fetchone()
    if member is None:
        return None
    return [
        _event.decode(r[0])
        for r in conn.execute(
            "SELECT data FROM state_events WHERE conversation = ? ORDER BY depth",
            (conversation,),
        )
    ]


def members_of(conn: sqlite3.Connection, conversation: ConversationId) -> frozenset[UserId]:
    return frozenset(
        UserId(r[0])
        for r in conn.execute(
            "SELECT user_id FROM members WHERE conversation = ?", (conversation,)
        )
    )


def contacts_devices(conn: sqlite3.Connection, user: UserId) -> list[DeviceId]:
    """Every device of ``user`` and of everyone sharing a conversation with them."""
    return [
        DeviceId(r[0])
        for r in conn.execute(
            "SELECT device FROM devices WHERE user_id = ? OR user_id IN"
            " (SELECT m2.user_id FROM members m1 JOIN members m2"
            "  ON m2.conversation = m1.conversation WHERE m1.user_id = ?)",
            (user, user),
        )
    ]
