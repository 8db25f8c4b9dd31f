"""The search index of this device's messages: SQLite FTS5 in the profile.

One index row per message the user sees with words in it (its text and the
names of its attachments), kept as the user sees it: an edit by the author
replaces the words, a delete for everyone and an expired timer remove the
row, so a deleted or expired message is never found. The index follows the
rules of ``Messages.history``: only the author edits or deletes, the last
edit (in the conversation's order) wins, and it does not matter in which
order the message and its edits arrive.

Tables (all in the profile database):

    search_rows   row (the FTS rowid) ↔ (conversation, id)
    search_text   FTS5, unicode61 without diacritics, prefix indexes of 2
                  and 3 characters (so typing "ha" finds "Hallo" quickly)
    search_edits  (conversation, target, id) of every edit and delete, so a
                  message that arrives after its edit is indexed as edited

A query is words, each a quoted term (no FTS operators from user input); the
last word also matches as a prefix. Hits come newest first (the index's
rowid order: when this device got the message), which FTS5 walks without
looking at every match, so a query costs about the same however often its
words occur.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Iterable
from typing import Any, Protocol

import msgspec

from taube.client import events as ev
from taube.proto.ids import ConversationId, MessageId

SCHEMA = """
CREATE TABLE IF NOT EXISTS search_rows (
    row INTEGER PRIMARY KEY,
    conversation TEXT NOT NULL,
    id TEXT NOT NULL,
    UNIQUE (conversation, id)
);
CREATE VIRTUAL TABLE IF NOT EXISTS search_text USING fts5 (
    text, tokenize = 'unicode61 remove_diacritics 2', prefix = '2 3'
);
CREATE TABLE IF NOT EXISTS search_edits (
    conversation TEXT NOT NULL,
    target TEXT NOT NULL,
    id TEXT NOT NULL,
    PRIMARY KEY (conversation, target, id)
);
"""

#: the marks around matched words in ``SearchHit.snippet``
MARK = ("\x02", "\x03")
#: words of context around the match in a snippet
SNIPPET_WORDS = 12
#: longest query (characters) and most words looked at
MAX_QUERY = 500
MAX_WORDS = 16


class Db(Protocol):
    """What the index needs of the profile (``Profile`` is one)."""

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor: ...


@dataclasses.dataclass(frozen=True)
class SearchHit:
    """A message that matched: where it is (to open the chat at it) and a
    snippet of its text with the matched words between ``MARK``\\ s."""

    conversation: ConversationId
    id: MessageId
    snippet: str


def words_of(content: dict[str, Any]) -> str:
    """What of a message is searchable: its text and its files' names."""
    parts = [content.get("body")]
    for entry in content.get("attachments") or []:
        if isinstance(entry, dict):
            parts.append(entry.get("name"))
    return "\n".join(p for p in parts if isinstance(p, str) and p)


def fts_query(text: str) -> str | None:
    """Words as quoted FTS5 terms, the last one also a prefix; ``None`` when
    there is nothing to look for."""
    words = [w.replace('"', '""') for w in text[:MAX_QUERY].split()][:MAX_WORDS]
    if not words:
        return None
    terms = [f'"{w}"' for w in words]
    terms[-1] += "*"
    return " ".join(terms)


class SearchIndex:
    def __init__(self, db: Db) -> None:
        self._db = db

    def create(self) -> None:
        for statement in SCHEMA.split(";"):
            if statement.strip():
                self._db.execute(statement)

    # ---------------------------------------------------------------- keeping it

    def stored(
        self, conversation: str, msg_id: str, sender: str, type_: str, content: dict[str, Any]
    ) -> None:
        """A message was stored (inside the caller's transaction)."""
        if type_ == ev.TEXT:
            self._reindex(conversation, msg_id)
        elif type_ in (ev.EDIT, ev.DELETE):
            target = content.get("target")
            if not isinstance(target, str):
                return
            self._db.execute(
                "INSERT OR IGNORE INTO search_edits (conversation, target, id) VALUES (?, ?, ?)",
                conversation,
                target,
                msg_id,
            )
            self._reindex(conversation, target)

    def forget(self, gone: Iterable[tuple[str, str]]) -> None:
        """Messages were deleted from the profile (expired): their rows go,
        and what they changed is looked at again."""
        targets: set[tuple[str, str]] = set()
        for conversation, msg_id in gone:
            self._drop(conversation, msg_id)
            for (target,) in self._db.execute(
                "SELECT target FROM search_edits WHERE conversation = ? AND id = ?",
                conversation,
                msg_id,
            ).fetchall():
                targets.add((conversation, str(target)))
            self._db.execute(
                "DELETE FROM search_edits WHERE conversation = ? AND (id = ? OR target = ?)",
                conversation,
                msg_id,
                msg_id,
            )
        for conversation, target in targets:
            self._reindex(conversation, target)

    def compact(self) -> None:
        """Merge the index so that removed words leave its pages (with the
        profile's ``secure_delete`` the freed pages are zeroed)."""
        self._db.execute("INSERT INTO search_text (search_text) VALUES ('optimize')")

    def rebuild(self) -> int:
        """Index every message again (a profile from before this index)."""
        self._db.execute("DELETE FROM search_text")
        self._db.execute("DELETE FROM search_rows")
        self._db.execute("DELETE FROM search_edits")
        rows = self._db.execute(
            "SELECT conversation, id, sender, type, content FROM messages"
            " WHERE type IN (?, ?, ?) ORDER BY rowid",
            ev.TEXT,
            ev.EDIT,
            ev.DELETE,
        ).fetchall()
        for conversation, msg_id, sender, type_, content in rows:
            value = msgspec.json.decode(bytes(content))
            if isinstance(value, dict):
                self.stored(conversation, msg_id, sender, type_, value)
        return len(rows)

    def _reindex(self, conversation: str, msg_id: str) -> None:
        """Make the row of one message what the user sees of it now."""
        text = self._shown_words(conversation, msg_id)
        if text is None:
            self._drop(conversation, msg_id)
            return
        found = self._db.execute(
            "SELECT row FROM search_rows WHERE conversation = ? AND id = ?", conversation, msg_id
        ).fetchone()
        if found is None:
            row = self._db.execute(
                "INSERT INTO search_rows (conversation, id) VALUES (?, ?)", conversation, msg_id
            ).lastrowid
        else:
            row = found[0]
            self._db.execute("DELETE FROM search_text WHERE rowid = ?", row)
        self._db.execute("INSERT INTO search_text (rowid, text) VALUES (?, ?)", row, text)

    def _drop(self, conversation: str, msg_id: str) -> None:
        found = self._db.execute(
            "SELECT row FROM search_rows WHERE conversation = ? AND id = ?", conversation, msg_id
        ).fetchone()
        if found is not None:
            self._db.execute("DELETE FROM search_text WHERE rowid = ?", found[0])
            self._db.execute("DELETE FROM search_rows WHERE row = ?", found[0])

    def _shown_words(self, conversation: str, msg_id: str) -> str | None:
        """The words of a text message after its author's edits, or ``None``
        (not here, not text, deleted, or nothing to find)."""
        original = self._db.execute(
            "SELECT content FROM messages WHERE conversation = ? AND id = ? AND type = ?",
            conversation,
            msg_id,
            ev.TEXT,
        ).fetchone()
        if original is None:
            return None
        content = msgspec.json.decode(bytes(original[0]))
        if not isinstance(content, dict):
            return None
        change = self.change(conversation, msg_id)
        if change is not None:
            if change[0] == ev.DELETE:
                return None
            content = {**content, "body": change[1]}  # an edit changes the text; files stay
        return words_of(content) or None

    def change(self, conversation: str, msg_id: str) -> tuple[str, str] | None:
        """What the author last did to a message: ``(delete, "")`` once it
        is deleted, else ``(edit, new text)``; ``None`` when unchanged."""
        rows = self._db.execute(
            "SELECT m.type, m.content FROM search_edits e"
            " JOIN messages m ON m.conversation = e.conversation AND m.id = e.id"
            " JOIN messages o ON o.conversation = e.conversation AND o.id = e.target"
            " WHERE e.conversation = ? AND e.target = ? AND m.sender = o.sender"
            " ORDER BY m.seq IS NULL, m.seq, m.ts",
            conversation,
            msg_id,
        ).fetchall()
        last: tuple[str, str] | None = None
        for type_, content in rows:
            if type_ == ev.DELETE:
                return (ev.DELETE, "")
            edited = msgspec.json.decode(bytes(content))
            body = edited.get("body", "") if isinstance(edited, dict) else ""
            last = (ev.EDIT, body if isinstance(body, str) else "")
        return last

    # ---------------------------------------------------------------- asking it

    def search(
        self, text: str, limit: int = 50, conversation: str | None = None
    ) -> list[SearchHit]:
        """Messages with all the words (the last also as a prefix), newest first."""
        query = fts_query(text)
        if query is None or limit <= 0:
            return []
        where = " AND r.conversation = ?" if conversation is not None else ""
        args: list[Any] = [*MARK, SNIPPET_WORDS, query]
        if conversation is not None:
            args.append(conversation)
        rows = self._db.execute(
            "SELECT r.conversation, r.id, snippet(search_text, 0, ?, ?, '…', ?)"
            " FROM search_text JOIN search_rows r ON r.row = search_text.rowid"
            f" WHERE search_text MATCH ?{where} ORDER BY search_text.rowid DESC LIMIT ?",
            *args,
            limit,
        ).fetchall()
        return [SearchHit(ConversationId(c), MessageId(i), str(s)) for c, i, s in rows]
