"""The messages on this device: stored, shown, searched and expired.

``Messages`` owns the profile's ``messages`` table and its full-text index
(``taube.client.search``).
Everything the user sent or received is a row (annotations too: reactions,
edits, deletions and receipts); ``history`` applies the annotations to show
a conversation as the user sees it. Disappearing messages are deleted here
when their time runs out, with the keys of Megolm sessions none of whose
messages remain.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from pathlib import Path
from typing import Any

import msgspec

from taube.client import events as ev
from taube.client.profile import Profile
from taube.client.search import SearchHit, SearchIndex
from taube.client.session import Session
from taube.proto.ids import ConversationId, DeviceId, MessageId, UserId

log = logging.getLogger(__name__)

#: how often disappearing messages are looked for while connected
EXPIRY_INTERVAL = 0.5


class Messages:
    def __init__(self, session: Session) -> None:
        self._session = session
        #: a message was wiped: compact the index and empty the log
        self._wiped = False

    def attachment_path(self, entry: dict[str, Any]) -> Path:
        """Where a received attachment is saved (decrypted) in the profile."""
        return (
            self._session.profile_dir
            / "attachments"
            / (f"{entry['blob']}-{Path(str(entry.get('name', 'file'))).name}")
        )

    def store(
        self,
        conversation: str,
        msg_id: str,
        seq: int | None,
        sender: UserId,
        device: DeviceId,
        ts: int,
        type_: str,
        content: dict[str, Any],
        status: str,
        expires_ms: int | None,
        session: str | None = None,
    ) -> None:
        """Keep a message (once: a second copy of the same id is ignored)."""
        profile = self._session.profile
        assert profile is not None
        inserted = profile.execute(
            "INSERT OR IGNORE INTO messages (conversation, id, seq, sender, sender_device, ts,"
            " type, content, status, expires_ms, session)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            conversation,
            msg_id,
            seq,
            sender,
            device,
            ts,
            type_,
            msgspec.json.encode(content),
            status,
            expires_ms,
            session,
        )
        if inserted.rowcount:
            SearchIndex(profile).stored(conversation, msg_id, sender, type_, content)
            if type_ == ev.DELETE and isinstance(content.get("target"), str):
                self._wipe(profile, conversation, content["target"], sender)
            elif type_ not in ev.ANNOTATIONS and self._deleted(
                profile, conversation, msg_id, sender
            ):
                self._wipe(profile, conversation, msg_id, sender)  # its deletion came first

    @staticmethod
    def _deleted(profile: Profile, conversation: str, msg_id: str, sender: UserId) -> bool:
        rows = profile.execute(
            "SELECT content FROM messages WHERE conversation = ? AND type = ? AND sender = ?",
            conversation,
            ev.DELETE,
            sender,
        ).fetchall()
        return any(msgspec.json.decode(bytes(r[0])).get("target") == msg_id for r in rows)

    def _wipe(self, profile: Profile, conversation: str, target: str, sender: UserId) -> None:
        """Deleted for everyone by its author: nothing of the message is kept,
        neither its text, its earlier versions, nor its files (its row stays,
        empty, so that it shows as deleted in its place)."""
        rows = profile.execute(
            "SELECT id, type, content FROM messages WHERE conversation = ? AND sender = ?"
            " AND (id = ? OR type = ?)",
            conversation,
            sender,
            target,
            ev.EDIT,
        ).fetchall()
        wiped = []
        for msg_id, type_, data in rows:
            content = msgspec.json.decode(bytes(data))
            if msg_id != target and content.get("target") != target:
                continue  # an edit of another message
            wiped.append(msg_id)
            for entry in content.get("attachments", []) if type_ != ev.EDIT else []:
                if isinstance(entry, dict) and "blob" in entry:
                    self.attachment_path(entry).unlink(missing_ok=True)
        if not wiped:
            return
        with profile.transaction():
            for msg_id in wiped:
                profile.execute(
                    "UPDATE messages SET content = ? WHERE conversation = ? AND id = ?",
                    msgspec.json.encode({"target": target} if msg_id != target else {}),
                    conversation,
                    msg_id,
                )
        # the old pages leave the index and the log at the next expiry run
        # (outside the transaction this may be part of)
        self._wiped = True

    def known(self, conversation: str, msg_id: str) -> bool:
        profile, _, _ = self._session.need()
        return (
            profile.execute(
                "SELECT 1 FROM messages WHERE conversation = ? AND id = ?", conversation, msg_id
            ).fetchone()
            is not None
        )

    def mark_sent(self, conversation: str, msg_id: str, seq: int | None) -> None:
        """Delivered (the server's ``seq``-th of the conversation, if numbered)."""
        profile, _, _ = self._session.need()
        profile.execute(
            "UPDATE messages SET seq = ?, status = 'sent' WHERE conversation = ?"
            " AND id = ? AND seq IS NULL",
            seq,
            conversation,
            msg_id,
        )

    def mark_failed(self, msg_id: str) -> None:
        profile, _, _ = self._session.need()
        profile.execute("UPDATE messages SET status = 'failed' WHERE id = ?", msg_id)

    def latest(self, type_: str, conversation: str | None = None) -> dict[str, dict[str, Any]]:
        """The newest message of ``type_`` per conversation (or in one), its
        content with the sending device as ``_device``."""
        profile, _, _ = self._session.need()
        where = "type = ?" + (" AND conversation = ?" if conversation is not None else "")
        args = [type_] if conversation is None else [type_, conversation]
        found: dict[str, dict[str, Any]] = {}
        for conv, device, content in profile.execute(
            f"SELECT conversation, sender_device, content FROM messages WHERE {where}"
            " ORDER BY seq IS NULL, seq, ts",
            *args,
        ):
            value = msgspec.json.decode(bytes(content))
            if isinstance(value, dict):
                found[conv] = {**value, "_device": device}
        return found

    def message(self, conversation: str, msg_id: str) -> ev.Message:
        found = list(self._rows("conversation = ? AND id = ?", conversation, msg_id))
        return found[0]

    def _rows(self, where: str, *args: Any) -> list[ev.Message]:
        profile = self._session.profile
        assert profile is not None
        rows = profile.execute(
            "SELECT conversation, id, seq, sender, sender_device, ts, type, content, status,"
            f" expires_ms FROM messages WHERE {where}",
            *args,
        ).fetchall()
        return [
            ev.Message(
                conversation=ConversationId(r[0]),
                id=MessageId(r[1]),
                seq=r[2],
                sender=UserId(r[3]),
                sender_device=DeviceId(r[4]),
                ts=int(r[5]),
                type=str(r[6]),
                text=str(content.get("body", "")),
                reply_to=content.get("reply_to"),
                status=str(r[8]),
                expires_ms=r[9],
                content=content,
            )
            for r in rows
            for content in [msgspec.json.decode(bytes(r[7]))]
        ]

    def expire(self) -> int:
        """Delete disappearing messages whose time ran out: the plaintext, its
        search index entry, every copy in the database's free pages and log,
        and the keys of Megolm sessions none of whose messages remain."""
        profile, _, keys = self._session.need()
        now = self._session.clock()
        gone = profile.execute(
            "SELECT conversation, id, session FROM messages WHERE expires_ms <= ?", now
        ).fetchall()
        if not gone:
            if self._wiped and not profile.db.in_transaction:
                self._wiped = False
                self._scrub(profile)
            return 0
        index = SearchIndex(profile)
        with profile.transaction():
            for conversation, msg_id, _session in gone:
                profile.execute(
                    "DELETE FROM messages WHERE conversation = ? AND id = ?", conversation, msg_id
                )
            index.forget((c, i) for c, i, _ in gone)
            sessions = {(c, s) for c, _, s in gone if s is not None}
            forgot = 0
            for conversation, session in sessions:
                left = profile.execute(
                    "SELECT 1 FROM messages WHERE conversation = ? AND session = ? LIMIT 1",
                    conversation,
                    session,
                ).fetchone()
                if left is None:
                    forgot += keys.inbound.forget(ConversationId(conversation), session)
            if forgot:
                keys.save()
        self._wiped = False
        self._scrub(profile)
        return len(gone)

    @staticmethod
    def _scrub(profile: Profile) -> None:
        """Removed words leave the index's pages, and old pages the log."""
        SearchIndex(profile).compact()
        profile.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()

    async def run_expiry(self) -> None:
        """Expire messages every ``EXPIRY_INTERVAL`` seconds (until cancelled)."""
        while True:
            try:
                self.expire()
            except Exception:
                log.exception("expiring messages failed")
            await asyncio.sleep(EXPIRY_INTERVAL)

    def history(self, conversation: ConversationId, limit: int = 100) -> list[ev.Message]:
        """The conversation as the user sees it: oldest first, annotations applied."""
        self.expire()
        rows = self._rows("conversation = ? ORDER BY seq IS NULL, seq, ts", conversation)
        shown: dict[str, ev.Message] = {}
        order: list[str] = []
        for row in rows:
            if row.type not in ev.ANNOTATIONS:
                shown[row.id] = row
                order.append(row.id)
        for row in rows:
            target = row.content.get("target")
            if row.type == ev.RECEIPT:
                # a receipt a connector brought in is the remote reader's
                remote = row.remote
                reader = UserId(remote.sender) if remote is not None else row.sender
                for read in row.content.get("read", []):
                    if read in shown and reader not in shown[read].read_by:
                        shown[read].read_by.append(reader)
                for delivered in row.content.get("delivered", []):
                    if delivered in shown and reader not in shown[delivered].delivered_to:
                        shown[delivered].delivered_to.append(reader)
                continue
            message = shown.get(target) if isinstance(target, str) else None
            if message is None or (
                row.type in (ev.EDIT, ev.DELETE, ev.RELAY) and row.sender != message.sender
            ):
                continue  # only the author edits or deletes (or relays: their connector)
            if row.type == ev.RELAY:
                shown[message.id] = dataclasses.replace(message, relayed=ev.Relayed.of(row.content))
                continue
            if row.type == ev.EDIT:
                shown[message.id] = dataclasses.replace(
                    message, text=str(row.content.get("body", "")), edited=True
                )
            elif row.type == ev.DELETE:
                shown[message.id] = dataclasses.replace(message, text="", deleted=True, content={})
            elif row.type == ev.REACTION:
                # the same reaction again from the same user takes it back;
                # one a connector brought in is the remote person's
                who = UserId(row.remote.sender) if row.remote is not None else row.sender
                users = message.reactions.setdefault(str(row.content.get("key")), [])
                if who in users:
                    users.remove(who)
                    if not users:
                        del message.reactions[str(row.content.get("key"))]
                else:
                    users.append(who)
        return [shown[i] for i in order][-limit:]

    def search_hits(
        self, text: str, limit: int = 50, conversation: str | None = None
    ) -> list[SearchHit]:
        """Where the messages with these words are, newest first (see
        ``taube.client.search``)."""
        profile = self._session.profile
        if profile is None:
            return []
        if self._session.logged_in:
            self.expire()
        return SearchIndex(profile).search(text, limit, conversation)

    def search(
        self, text: str, limit: int = 50, conversation: str | None = None
    ) -> list[ev.Message]:
        """The messages with these words, newest first, as the user sees them
        (edited text; deleted and expired messages are never found)."""
        hits = self.search_hits(text, limit, conversation)
        profile = self._session.profile
        if profile is None:
            return []
        index = SearchIndex(profile)
        found = []
        for hit in hits:
            message = self.message(hit.conversation, hit.id)
            change = index.change(hit.conversation, hit.id)
            if change is not None:
                message = dataclasses.replace(message, text=change[1], edited=True)
            found.append(message)
        return found
