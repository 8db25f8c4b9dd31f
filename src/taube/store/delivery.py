"""The conversation log: durable sends, cursors, pruning and retention."""

from __future__ import annotations

import dataclasses

import msgspec

from taube.proto.errors import ErrorCode, ProtocolError
from taube.proto.ids import BlobId, ConversationId, DeviceId, MessageId, UserId
from taube.store.conversations import KIND_MESSAGE
from taube.store.errors import StoreUnavailable
from taube.store.sql import Tx

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


async def send_message(
    tx: Tx,
    user: UserId,
    device: DeviceId,
    conversation: ConversationId,
    msg_id: MessageId,
    body: bytes,
    blobs: list[BlobId],
    expire_ms: int | None,
    now: int,
) -> Stored:
    """Append a message; a retry (same device and id) returns the first outcome.

    The ``UPDATE`` of the conversation's row is what orders concurrent sends:
    on PostgreSQL it locks the row until the batch commits, so another node's
    send to the same conversation waits and then takes the next ``seq``.
    """
    seen = await tx.fetchone(
        "SELECT conversation, seq, ts FROM sent WHERE device = ? AND msg_id = ?", device, msg_id
    )
    if seen is not None:
        if seen[0] != conversation:
            raise ProtocolError(ErrorCode.CONFLICT, "that message id was used for another send")
        return Stored(int(seen[1]), int(seen[2]), duplicate=True)
    member = await tx.fetchone(
        "SELECT 1 FROM members WHERE conversation = ? AND user_id = ?", conversation, user
    )
    if member is None:
        raise ProtocolError(ErrorCode.NOT_FOUND, "no such conversation")
    for blob in blobs:
        if not await _may_reference(tx, blob, user):
            raise ProtocolError(ErrorCode.NOT_FOUND, "no such blob")
    row = await tx.fetchone(
        "UPDATE conversations SET seq = seq + 1 WHERE conversation = ?"
        " RETURNING seq, timer_seconds",
        conversation,
    )
    if row is None:  # the membership row outlived its conversation: cannot happen
        raise ProtocolError(ErrorCode.NOT_FOUND, "no such conversation")
    seq, timer = int(row[0]), int(row[1])
    deadlines = [now + expire_ms] if expire_ms else []
    if timer:
        deadlines.append(now + timer * 1000)
    expires = min(deadlines) if deadlines else None
    await tx.execute(
        "INSERT INTO log (conversation, seq, kind, msg_id, sender, sender_device, ts, body,"
        " blobs, expires_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        conversation,
        seq,
        KIND_MESSAGE,
        msg_id,
        user,
        device,
        now,
        body,
        msgspec.json.encode(blobs).decode() if blobs else None,
        expires,
    )
    added = await tx.execute(
        "INSERT INTO sent (device, msg_id, conversation, seq, ts) VALUES (?, ?, ?, ?, ?)"
        " ON CONFLICT (device, msg_id) DO NOTHING",
        device,
        msg_id,
        conversation,
        seq,
        now,
    )
    if added == 0:
        # The same retry went through another node a moment ago (it committed
        # after our check above). Roll this one back; the client's next retry
        # is answered with that node's seq.
        raise StoreUnavailable("a retry of this message is being stored, retry")
    for blob in dict.fromkeys(blobs):
        await tx.execute(
            "INSERT INTO blob_refs (conversation, seq, blob) VALUES (?, ?, ?)",
            conversation,
            seq,
            blob,
        )
        counted = await tx.execute(
            "UPDATE blobs SET refs = refs + 1, attached = 1 WHERE blob = ?", blob
        )
        if counted == 0:  # another node freed it since the check above
            raise ProtocolError(ErrorCode.NOT_FOUND, "no such blob")
    return Stored(seq, now, duplicate=False, expires_ms=expires)


async def _may_reference(tx: Tx, blob: BlobId, user: UserId) -> bool:
    """The uploader may attach a blob, and so may anyone who can download it."""
    row = await tx.fetchone("SELECT owner FROM blobs WHERE blob = ?", blob)
    if row is None:
        return False
    return row[0] == user or await blob_visible(tx, blob, user)


async def blob_visible(tx: Tx, blob: BlobId, user: UserId) -> bool:
    """A member of a conversation whose log names the blob may download it,
    if the entry naming it came at or after their join: a member added later
    gets no attachment from before (the log is pruned lazily, so the entry may
    still be there)."""
    row = await tx.fetchone(
        "SELECT 1 FROM blob_refs r JOIN members m ON m.conversation = r.conversation"
        " WHERE r.blob = ? AND m.user_id = ? AND r.seq >= m.joined_seq LIMIT 1",
        blob,
        user,
    )
    return row is not None


async def device_cursors(tx: Tx, device: DeviceId) -> list[Cursor]:
    return [
        Cursor(ConversationId(r[0]), int(r[1]), None if r[2] is None else int(r[2]))
        for r in await tx.fetchall(
            "SELECT conversation, seq, until_seq FROM cursors WHERE device = ?", device
        )
    ]


#: an upper bound for ``seq`` where a cursor has no ``until_seq``
_NO_LIMIT = (1 << 63) - 1


async def pending_heads(
    tx: Tx, devices: list[DeviceId]
) -> list[tuple[DeviceId, ConversationId, int]]:
    """For each of ``devices`` and each conversation where entries past its
    cursor exist (up to its ``until_seq``): the last such entry's seq.

    The re-check behind the bus asks this every few seconds for every device
    connected to a node; each cursor costs one descent of the log's index.
    """
    if not devices:
        return []
    marks = ", ".join("?" * len(devices))
    rows = await tx.fetchall(
        "SELECT device, conversation, head FROM ("
        " SELECT c.device AS device, c.conversation AS conversation, c.seq AS seq,"
        "  (SELECT MAX(l.seq) FROM log l WHERE l.conversation = c.conversation"
        "   AND l.seq <= COALESCE(c.until_seq, ?)) AS head"
        f" FROM cursors c WHERE c.device IN ({marks})"
        ") AS pending WHERE head > seq",
        _NO_LIMIT,
        *devices,
    )
    return [(DeviceId(r[0]), ConversationId(r[1]), int(r[2])) for r in rows]


async def device_cursor(tx: Tx, device: DeviceId, conversation: ConversationId) -> Cursor | None:
    row = await tx.fetchone(
        "SELECT seq, until_seq FROM cursors WHERE device = ? AND conversation = ?",
        device,
        conversation,
    )
    if row is None:
        return None
    return Cursor(conversation, int(row[0]), None if row[1] is None else int(row[1]))


async def fetch_log(
    tx: Tx,
    conversation: ConversationId,
    after: int,
    until: int | None,
    limit: int,
    now: int | None = None,
) -> list[LogEntry]:
    rows = await tx.fetchall(
        "SELECT seq, kind, msg_id, sender, sender_device, ts, body, blobs, expires_ms FROM log"
        " WHERE conversation = ? AND seq > ? AND seq <= ?"
        " AND (expires_ms IS NULL OR expires_ms > ?) ORDER BY seq LIMIT ?",
        conversation,
        after,
        until if until is not None else 2**62,
        now if now is not None else -1,
        limit,
    )
    return [
        LogEntry(
            conversation,
            int(r[0]),
            int(r[1]),
            MessageId(r[2]),
            UserId(r[3]),
            DeviceId(r[4]),
            int(r[5]),
            r[6],
            tuple(BlobId(b) for b in _blob_list.decode(r[7])) if r[7] else (),
            None if r[8] is None else int(r[8]),
        )
        for r in rows
    ]


async def ack(tx: Tx, acks: list[tuple[DeviceId, ConversationId, int]]) -> list[BlobId]:
    """Advance cursors (never backwards, never past the head), then prune.

    Returns the blobs whose last reference went away (their files go next).

    Each conversation's row is locked first (in a fixed order): two nodes
    writing the acks of different devices at the same time would otherwise
    each miss the other's cursor and neither would prune.
    """
    for conversation in sorted({c for _, c, _ in acks}):
        await tx.fetchone(
            "SELECT seq FROM conversations WHERE conversation = ? FOR UPDATE", conversation
        )
    # One statement each for the whole batch (a message to a big group brings
    # an ack from every member device): the loop runs inside the driver, not
    # as a Python call per row (SQLite) or a round trip per row (PostgreSQL).
    await tx.executemany(
        "UPDATE cursors SET seq = LEAST(GREATEST(seq, ?), (SELECT seq FROM conversations"
        " WHERE conversation = ?)) WHERE device = ? AND conversation = ?",
        [(seq, conversation, device, conversation) for device, conversation, seq in acks],
    )
    await tx.executemany(
        "DELETE FROM cursors WHERE device = ? AND conversation = ?"
        " AND until_seq IS NOT NULL AND seq >= until_seq",
        [(device, conversation) for device, conversation, _ in acks],
    )
    touched = {conversation for _, conversation, _ in acks}
    freed: list[BlobId] = []
    for conversation in sorted(touched):
        freed.extend(await prune(tx, conversation))
    return freed


async def prune(tx: Tx, conversation: ConversationId) -> list[BlobId]:
    """Delete every log entry that every device still owed it has acknowledged."""
    row = await tx.fetchone(
        "SELECT COALESCE((SELECT MIN(seq) FROM cursors WHERE conversation = ?),"
        " (SELECT seq FROM conversations WHERE conversation = ?))",
        conversation,
        conversation,
    )
    if row is None or row[0] is None:
        return []
    upto = int(row[0])
    refs = await tx.fetchall(
        "DELETE FROM blob_refs WHERE conversation = ? AND seq <= ? RETURNING blob",
        conversation,
        upto,
    )
    await tx.execute("DELETE FROM log WHERE conversation = ? AND seq <= ?", conversation, upto)
    return await release_blobs(tx, [BlobId(r[0]) for r in refs])


async def release_blobs(tx: Tx, blobs: list[BlobId]) -> list[BlobId]:
    """Drop one reference per entry; delete blobs left with none.

    The decrement and its ``RETURNING`` are one statement, so two nodes
    releasing the last two references cannot both see one left.
    """
    freed = []
    for blob in blobs:
        row = await tx.fetchone(
            "UPDATE blobs SET refs = refs - 1 WHERE blob = ? RETURNING refs, owner, size", blob
        )
        if row is None or int(row[0]) > 0:
            continue
        if await delete_blob_row(tx, blob, UserId(row[1]), int(row[2])):
            freed.append(blob)
    return freed


async def delete_blob_row(tx: Tx, blob: BlobId, owner: UserId, size: int) -> bool:
    """Delete the row of a blob nothing references; give its bytes back to the quota.

    Returns whether this job deleted it: when two nodes sweep at once, or one
    attaches the blob meanwhile, the row is re-checked and only one of them
    (or none) frees it.
    """
    deleted = await tx.execute("DELETE FROM blobs WHERE blob = ? AND refs <= 0", blob)
    if deleted == 0:
        return False
    await tx.execute(
        "UPDATE users SET blob_bytes = GREATEST(blob_bytes - ?, 0) WHERE user_id = ?", size, owner
    )
    return True


async def sweep(tx: Tx, now: int, max_age_ms: int, unattached_ms: int) -> tuple[int, list[BlobId]]:
    """Retention: delete what was never delivered in time. Returns the number
    of log entries removed and the blobs whose files go next."""
    cutoff = now - max_age_ms
    gone = await tx.fetchall(
        "DELETE FROM log WHERE ts < ? OR expires_ms < ? RETURNING conversation, seq",
        cutoff,
        now,
    )
    released: list[BlobId] = []
    for conversation, seq in gone:
        released.extend(
            BlobId(r[0])
            for r in await tx.fetchall(
                "DELETE FROM blob_refs WHERE conversation = ? AND seq = ? RETURNING blob",
                conversation,
                seq,
            )
        )
    freed = await release_blobs(tx, released)
    await tx.execute("DELETE FROM device_queue WHERE ts < ?", cutoff)
    await tx.execute("DELETE FROM sent WHERE ts < ?", cutoff)
    stale = await tx.fetchall(
        "SELECT blob, owner, size FROM blobs WHERE refs <= 0 AND created_ms < ?",
        now - unattached_ms,
    )
    for blob, owner, size in stale:
        if await delete_blob_row(tx, BlobId(blob), UserId(owner), int(size)):
            freed.append(BlobId(blob))
    return len(gone), freed
