"""Notices: what this device saw happen in a chat, kept and shown in its place.

Two events are more than a passing warning and stay in the chat history,
across restarts: ``MissingMessages`` ("3 messages from bob could not be
received", placed right before the message that revealed the gap) and
``KeyChanged`` ("bob's safety number changed", placed at the time this
device noticed it, in every chat with that user). Each device derives its
own notices from what it sees; they are never sent anywhere (not to the
server, not to the user's other devices, not in a history transfer).

Table (in the profile database):

    notices   one row per notice: the conversation (a missing-messages
              notice) or none (a key change: every chat with ``user``),
              when it was noticed, its kind and what it says

``Client.history(..., notices=True)`` returns them as ``Message`` items of
type ``notice`` (``content["kind"]`` is ``missing`` or ``key_changed``),
sender the user they are about, and ``text`` the line to show.
"""

from __future__ import annotations

from taube.client import events as ev
from taube.client.chain import decode_events
from taube.client.conversations import Conversations
from taube.client.profile import Profile
from taube.client.session import Session
from taube.proto.ids import ConversationId, DeviceId, MessageId, UserId
from taube.proto.state import replay

SCHEMA = """
CREATE TABLE IF NOT EXISTS notices (
    row INTEGER PRIMARY KEY,
    conversation TEXT,
    user TEXT NOT NULL,
    ts INTEGER NOT NULL,
    kind TEXT NOT NULL,
    count INTEGER NOT NULL DEFAULT 0,
    before TEXT,
    verified INTEGER NOT NULL DEFAULT 0,
    reason TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS notices_conversation ON notices (conversation);
CREATE INDEX IF NOT EXISTS notices_user ON notices (user);
"""

MISSING = "missing"
KEY_CHANGED = "key_changed"


def text_of(kind: str, user: str, count: int, verified: bool, reason: str) -> str:
    """The line a notice shows."""
    if kind == MISSING:
        many = "message" if count == 1 else "messages"
        return f"{count} {many} from {user} could not be received"
    if reason == "identity key changed":
        said = f"{user}'s safety number changed"
        return said + (": verify again before sending" if verified else "")
    return f"{user}: {reason}"


class Notices:
    def __init__(self, session: Session, conversations: Conversations) -> None:
        self._session = session
        self._conversations = conversations
        self._ready = False

    def _profile(self) -> Profile | None:
        profile = self._session.profile
        if profile is not None and not self._ready:
            profile.db.executescript(SCHEMA)
            self._ready = True
        return profile

    def record(self, event: ev.Event) -> None:
        """Keep the notice an event makes (others are not notices)."""
        profile = self._profile()
        if profile is None:
            return
        now = self._session.clock()
        if isinstance(event, ev.MissingMessages):
            profile.execute(
                "INSERT INTO notices (conversation, user, ts, kind, count, before)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                event.conversation,
                event.sender,
                now,
                MISSING,
                event.count,
                event.before,
            )
        elif isinstance(event, ev.KeyChanged):
            profile.execute(
                "INSERT INTO notices (user, ts, kind, verified, reason) VALUES (?, ?, ?, ?, ?)",
                event.user,
                now,
                KEY_CHANGED,
                int(event.verified),
                event.reason,
            )

    def _in(self, conversation: ConversationId) -> list[ev.Message]:
        """The notices of one conversation, as messages of type ``notice``."""
        profile = self._profile()
        if profile is None:
            return []
        members = self._members(profile, conversation) | {
            r[0]
            for r in profile.execute(
                "SELECT DISTINCT sender FROM messages WHERE conversation = ?", conversation
            )
        }
        rows = profile.execute(
            "SELECT row, conversation, user, ts, kind, count, before, verified, reason"
            " FROM notices WHERE conversation = ? OR conversation IS NULL ORDER BY row",
            conversation,
        ).fetchall()
        return [
            ev.Message(
                conversation=conversation,
                id=MessageId(f"notice-{row}"),
                seq=None,
                sender=UserId(user),
                sender_device=DeviceId(""),
                ts=int(ts),
                type=ev.NOTICE,
                text=text_of(kind, user, count, bool(verified), reason),
                status="local",
                content={
                    "kind": kind,
                    "count": count,
                    "before": before,
                    "verified": bool(verified),
                    "reason": reason,
                },
            )
            for row, conv, user, ts, kind, count, before, verified, reason in rows
            if conv is not None or user in members
        ]

    def _members(self, profile: Profile, conversation: ConversationId) -> set[str]:
        """Who is in the conversation (as its chain, verified when it was
        stored, says; an app just started has not loaded every chain yet)."""
        state = self._conversations.cached(conversation)
        if state is None:
            row = profile.execute(
                "SELECT events FROM conversations WHERE conversation = ?", conversation
            ).fetchone()
            if row is None:
                return set()
            state = replay(decode_events(bytes(row[0])))
        return set(state.members)

    def place(self, conversation: ConversationId, shown: list[ev.Message]) -> list[ev.Message]:
        """``shown`` (the history, oldest first) with the conversation's
        notices in their places: a gap right before the message that revealed
        it, a key change before the first message that came after it."""
        notices = self._in(conversation)
        if not notices:
            return shown
        before: dict[str, list[ev.Message]] = {}
        for notice in notices:
            target = notice.content.get("before")
            if notice.content["kind"] != MISSING or not any(m.id == target for m in shown):
                later = (m.id for m in shown if m.ts > notice.ts)
                target = next(later, None)
            before.setdefault(str(target), []).append(notice)
        placed: list[ev.Message] = []
        for message in shown:
            placed.extend(before.pop(message.id, []))
            placed.append(message)
        for rest in before.values():
            placed.extend(rest)
        return placed
