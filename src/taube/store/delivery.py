"""The conversation log: durable sends, cursors, pruning and retention."""

from __future__ import annotations

import dataclasses
import sqlite3

import msgspec

from taube.proto.errors import ErrorCode, ProtocolError
from taube.proto.ids import BlobId, ConversationId, DeviceId, MessageId, UserId
from taube.store.conversations import KIND_MESSAGE

_blob_list = msgspec.json.Decoder(list[str])


@dataclasses.dataclass(frozen=True)
class LogEntry:
    conversation: ConversationId
    seq: int
    kind: int
    msg_id: MessageId
    sender: UserId
    sender_device: DeviceId
    ts: int
    body: bytes
    blobs: tuple[BlobId, ...]
    expires_ms: int | None


@dataclasses.dataclass(frozen=True)
class Stored:
    """The outcome of a send: its place, and whether it was a retry."""

    seq: int
    ts: int
    duplicate: bool
    expires_ms: int | None = None


@dataclasses.dataclass(frozen=True)
class Cursor:
    conversation: ConversationId
    seq: int
    until_seq: int | None


def send_message(
    conn: sqlite3.Connection,
    user: UserId,
    device: DeviceId,
    conversation: ConversationId,
    msg_id: MessageId,
    body: bytes,
    blobs: list[BlobId],
    expire_ms: int | None,
    now: int,
) -> Stored:
    """Append a message; a retry (same device and id) returns the first outcome."""
    seen = conn.execute(
        "SELECT conversation, seq, ts FROM sent WHERE device = ? AND msg_id = ?",
        (device, msg_id),
    ).fetchone()
    if seen is not None:
        if seen[0] != conversation:
            raise ProtocolError(ErrorCode.CONFLICT, "that message id was used for another send")
        return Stored(int(seen[1]), int(seen[2]), duplicate=True)
    member = conn.execute(
        "SELECT 1 FROM members WHERE conversation = ? AND user_id = ?", (conversation, user)
    ).fetchone()
    if member is None:
        raise ProtocolError(ErrorCode.NOT_FOUND, "no such conversation")
    for blob in blobs:
        if not _may_reference(conn, blob, user):
            raise ProtocolError(ErrorCode.NOT_FOUND, "no such blob")
    row = conn.execute(
        "UPDATE conversations SET seq = seq + 1 WHERE conversation = ?"
        " RETURNING seq, timer_seconds",
        (conversation,),
    ).fetchone()
    seq, timer = int(row[0]), int(row[1])
    deadlines = [now + expire_ms] if expire_ms else []
    if timer:
        deadlines.append(now + timer * 1000)
    expires = min(deadlines) if deadlines else None
    conn.execute(
        "INSERT INTO log (conversation, seq, kind, msg_id, sender, sender_device, ts, body,"
        " blobs, expires_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (conversation, seq, KIND_MESSAGE, msg_id, user, device, now, body,
         msgspec.json.encode(blobs).decode() if blobs else None, expires),
    )
    conn.execute(
        "INSERT INTO sent (device, msg_id, conversation, seq, ts) VALUES (?, ?, ?, ?, ?)",
        (device, msg_id, conversation, seq, now),
    )
    for blob in dict.fromkeys(blobs):
        conn.execute(
            "INSERT INTO blob_refs (conversation, seq, blob) VALUES (?, ?, ?)",
            (conversation, seq, blob),
        )
        conn.execute("UPDATE blobs SET refs = refs + 1, attached = 1 WHERE blob = ?", (blob,))
    return Stored(seq, now, duplicate=False, expires_ms=expires)


def _may_reference(conn: sqlite3.Connection, blob: BlobId, user: UserId) -> bool:
    """The uploader may attach a blob, and so may anyone who can download it."""
    row = conn.execute("SELECT owner FROM blobs WHERE blob = ?", (blob,)).fetchone()
    if row is None:
        return False
    return row[0] == user or blob_visible(conn, blob, user)


def blob_visible(conn: sqlite3.Connection, blob: BlobId, user: UserId) -> bool:
    """A member of a conversation whose log names the blob may download it."""
    row = conn.execute(
        "SELECT 1 FROM blob_refs r JOIN members m ON m.conversation = r.conversation"
        " WHERE r.blob = ? AND m.user_id = ? LIMIT 1",
        (blob, user),
    ).fetchone()
    return row is not None


def device_cursors(conn: sqlite3.Connection, device: DeviceId) -> list[Cursor]:
    return [
        Cursor(ConversationId(r[0]), int(r[1]), None if r[2] is None else int(r[2]))
        for r in conn.execute(
            "SELECT conversation, seq, until_seq FROM cursors WHERE device = ?", (device,)
        )
    ]


def device_cursor(
    conn: sqlite3.Connection, device: DeviceId, conversation: ConversationId
) -> Cursor | None:
    row = conn.execute(
        "SELECT seq, until_seq FROM cursors WHERE device = ? AND conversation = ?",
        (device, conversation),
    ).fetchone()
    if row is None:
        return None
    return Cursor(conversation, int(row[0]), None if row[1] is None else int(row[1]))


def fetch_log(
    conn: sqlite3.Connection,
    conversation: ConversationId,
    after: int,
    until: int | None,
    limit: int,
    now: int | None = None,
) -> list[LogEntry]:
    rows = conn.execute(
        "SELECT seq, kind, msg_id, sender, sender_device, ts, body, blobs, expires_ms FROM log"
        " WHERE conversation = ? AND seq > ? AND seq <= ?"
        " AND (expires_ms IS NULL OR expires_ms > ?) ORDER BY seq LIMIT ?",
        (conversation, after, until if until is not None else 2**62,
         now if now is not None else -1, limit),
    ).fetchall()
    return [
        LogEntry(
            conversation, int(r[0]), int(r[1]), MessageId(r[2]), UserId(r[3]), DeviceId(r[4]),
            int(r[5]), r[6],
            tuple(BlobId(b) for b in _blob_list.decode(r[7])) if r[7] else (),
            None if r[8] is None else int(r[8]),
        )
        for r in rows
    ]


def ack(
    conn: sqlite3.Connection, acks: list[tuple[DeviceId, ConversationId, int]]
) -> list[BlobId]:
    """Advance cursors (never backwards, never past the head), then prune.

    Returns the blobs whose last reference went away (their files go next).
    """
    touched: set[ConversationId] = set()
    for device, conversation, seq in acks:
        conn.execute(
            "UPDATE cursors SET seq = MIN(MAX(seq, ?), (SELECT seq FROM conversations"
            " WHERE conversation = ?)) WHERE device = ? AND conversation = ?",
            (seq, conversation, device, conversation),
        )
        conn.execute(
            "DELETE FROM cursors WHERE device = ? AND conversation = ?"
            " AND until_seq IS NOT NULL AND seq >= until_seq",
            (device, conversation),
        )
        touched.add(conversation)
    freed: list[BlobId] = []
    for conversation in sorted(touched):
        freed.extend(prune(conn, conversation))
    return freed


def prune(conn: sqlite3.Connection, conversation: ConversationId) -> list[BlobId]:
    """Delete every log entry that every device still owed it has acknowledged."""
    row = conn.execute(
        "SELECT COALESCE((SELECT MIN(seq) FROM cursors WHERE conversation = ?),"
        " (SELECT seq FROM conversations WHERE conversation = ?))",
        (conversation, conversation),
    ).fetchone()
    if row is None or row[0] is None:
        return []
    upto = int(row[0])
    refs = conn.execute(
        "DELETE FROM blob_refs WHERE conversation = ? AND seq <= ? RETURNING blob",
        (conversation, upto),
    ).fetchall()
    conn.execute("DELETE FROM log WHERE conversation = ? AND seq <= ?", (conversation, upto))
    return release_blobs(conn, [BlobId(r[0]) for r in refs])


def release_blobs(conn: sqlite3.Connection, blobs: list[BlobId]) -> list[BlobId]:
    """Drop one reference per entry; delete blobs left with none."""
    freed = []
    for blob in blobs:
        row = conn.execute(
            "UPDATE blobs SET refs = refs - 1 WHERE blob = ? RETURNING refs, owner, size",
            (blob,),
        ).fetchone()
        if row is not None and int(row[0]) <= 0:
            delete_blob_row(conn, blob, UserId(row[1]), int(row[2]))
            freed.append(blob)
    return freed


def delete_blob_row(conn: sqlite3.Connection, blob: BlobId, owner: UserId, size: int) -> None:
    conn.execute("DELETE FROM blobs WHERE blob = ?", (blob,))
    conn.execute(
        "UPDATE users SET blob_bytes = MAX(blob_bytes - ?, 0) WHERE user_id = ?", (size, owner)
    )


def sweep(
    conn: sqlite3.Connection, now: int, max_age_ms: int, unattached_ms: int
) -> tuple[int, list[BlobId]]:
    """Retention: delete what was never delivered in time. Returns the number
    of log entries removed and the blobs whose files go next."""
    cutoff = now - max_age_ms
    gone = conn.execute(
        "DELETE FROM log WHERE ts < ? OR expires_ms < ? RETURNING conversation, seq",
        (cutoff, now),
    ).fetchall()
    released: list[BlobId] = []
    for conversation, seq in gone:
        released.extend(
            BlobId(r[0])
            for r in conn.execute(
                "DELETE FROM blob_refs WHERE conversation = ? AND seq = ? RETURNING blob",
                (conversation, seq),
            )
        )
    freed = release_blobs(conn, released)
    conn.execute("DELETE FROM device_queue WHERE ts < ?", (cutoff,))
    conn.execute("DELETE FROM sent WHERE ts < ?", (cutoff,))
    stale = conn.execute(
        "SELECT blob, owner, size FROM blobs WHERE refs <= 0 AND created_ms < ?",
        (now - unattached_ms,),
    ).fetchall()
    for blob, owner, size in stale:
        delete_blob_row(conn, BlobId(blob), UserId(owner), int(size))
        freed.append(BlobId(blob))
    return len(gone), freed
