"""Messages waiting for their room key, and the bounds on them.

A message can arrive before the Megolm key it needs (the key travels in a
to-device message on another queue). It waits in the profile's
``undecrypted`` table (owned here) and is tried again when a key for its
session arrives. What waits is bounded, because only the server decides what
arrives and a hostile one could send endless bodies naming sessions that
never come:

- at most ``PER_DEVICE`` messages wait per sending device, ``IN_ALL`` in all:
  beyond that a new message is refused at once (shown as undecryptable);
- a message waits at most ``KEEP_MS`` (the server's default retention: a key
  that has not come by then will not); then it is dropped and shown as
  undecryptable, so nothing disappears without a word.
"""

from __future__ import annotations

from taube.client import events as ev
from taube.client.session import Emit, Session
from taube.proto import frames
from taube.proto.codec import decode_server_frame, encode
from taube.proto.ids import UserId

#: messages waiting for keys from one sending device
PER_DEVICE = 10_000
#: messages waiting for keys in all
IN_ALL = 50_000
#: how long a message waits for its key
KEEP_MS = 30 * 24 * 3600 * 1000

TOO_MANY = "too many messages from this device are waiting for their keys"
NEVER_CAME = "its key never came"


class Waiting:
    def __init__(self, session: Session, emit: Emit) -> None:
        self._session = session
        self._emit = emit

    def keep(self, frame: frames.Message, session_id: str) -> None:
        """Keep ``frame`` until a key for ``session_id`` comes, if the bounds allow."""
        profile, _, _ = self._session.need()
        self.sweep()
        from_device = profile.execute(
            "SELECT count(*) FROM undecrypted WHERE sender_device = ?", frame.sender_device
        ).fetchone()[0]
        in_all = profile.execute("SELECT count(*) FROM undecrypted").fetchone()[0]
        if from_device >= PER_DEVICE or in_all >= IN_ALL:
            self._refuse(frame, TOO_MANY)
            return
        profile.execute(
            "INSERT OR IGNORE INTO undecrypted"
            " (conversation, seq, session_id, frame, sender_device, stored_ms)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            frame.conversation,
            frame.seq,
            session_id,
            encode(frame),
            frame.sender_device,
            self._session.clock(),
        )

    def take(self, session_id: str | None = None) -> list[frames.Message]:
        """The messages waiting for ``session_id`` (for any session if
        ``None``), in conversation order, no longer waiting."""
        profile, _, _ = self._session.need()
        self.sweep()
        where, args = ("WHERE session_id = ?", [session_id]) if session_id else ("", [])
        rows = profile.execute(
            f"SELECT conversation, seq, frame FROM undecrypted {where} ORDER BY conversation, seq",
            *args,
        ).fetchall()
        taken = []
        with profile.transaction():
            for conversation, seq, data in rows:
                profile.execute(
                    "DELETE FROM undecrypted WHERE conversation = ? AND seq = ?", conversation, seq
                )
                frame = decode_server_frame(bytes(data))
                if isinstance(frame, frames.Message):
                    taken.append(frame)
        return taken

    def sweep(self) -> int:
        """Drop what waited longer than ``KEEP_MS``, each shown as undecryptable."""
        profile, _, _ = self._session.need()
        limit = self._session.clock() - KEEP_MS
        rows = profile.execute(
            "SELECT conversation, seq, frame FROM undecrypted WHERE stored_ms < ?", limit
        ).fetchall()
        if not rows:
            return 0
        with profile.transaction():
            for conversation, seq, _ in rows:
                profile.execute(
                    "DELETE FROM undecrypted WHERE conversation = ? AND seq = ?", conversation, seq
                )
        for _, _, data in rows:
            frame = decode_server_frame(bytes(data))
            if isinstance(frame, frames.Message):
                self._refuse(frame, NEVER_CAME)
        return len(rows)

    def count(self) -> int:
        profile, _, _ = self._session.need()
        return int(profile.execute("SELECT count(*) FROM undecrypted").fetchone()[0])

    def _refuse(self, frame: frames.Message, reason: str) -> None:
        self._emit(ev.Undecryptable(frame.conversation, frame.id, UserId(frame.sender), reason))
