"""Per-device queues: to-device messages and key-change notices.

Entries are deleted when the device acknowledges them (or at retention).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from taube.proto.ids import DeviceId, MessageId, UserId
from taube.store.sql import Tx

KIND_TO_DEVICE = 0
KIND_KEYS_CHANGED = 1


@dataclasses.dataclass(frozen=True)
class QueueEntry:
    seq: int
    device: DeviceId
    kind: int
    sender: UserId
    sender_device: DeviceId
    ts: int
    body: bytes


async def notify_keys_changed(
    tx: Tx, user: UserId, devices: Iterable[DeviceId], now: int
) -> list[DeviceId]:
    """Queue a ``keys.changed`` notice about ``user`` for each device."""
    targets = list(dict.fromkeys(devices))
    await tx.executemany(
        "INSERT INTO device_queue (device, kind, sender, sender_device, ts, body)"
        " VALUES (?, ?, ?, '', ?, ?)",
        [(device, KIND_KEYS_CHANGED, user, now, b"") for device in targets],
    )
    return targets


async def send_to_devices(
    tx: Tx,
    sender: UserId,
    sender_device: DeviceId,
    ref: MessageId,
    messages: list[tuple[UserId, DeviceId, bytes]],
    now: int,
) -> tuple[bool, list[QueueEntry]]:
    """Queue each message for its device; idempotent on ``(sender_device, ref)``.

    Messages for devices that do not exist (or not of that user) are dropped
    silently, so that a sender learns nothing it could not learn from the key
    directory. Returns whether this was a retry and the stored entries.
    """
    added = await tx.execute(
        "INSERT INTO sent (device, msg_id, conversation, seq, ts) VALUES (?, ?, '', 0, ?)"
        " ON CONFLICT (device, msg_id) DO NOTHING",
        sender_device,
        ref,
        now,
    )
    if added == 0:
        return True, []
    entries = []
    for user, device, body in messages:
        owner = await tx.fetchone(
            "SELECT 1 FROM devices WHERE device = ? AND user_id = ?", device, user
        )
        if owner is None:
            continue
        row = await tx.fetchone(
            "INSERT INTO device_queue (device, kind, sender, sender_device, ts, body)"
            " VALUES (?, ?, ?, ?, ?, ?) RETURNING seq",
            device,
            KIND_TO_DEVICE,
            sender,
            sender_device,
            now,
            body,
        )
        assert row is not None  # RETURNING of an INSERT
        entries.append(
            QueueEntry(int(row[0]), device, KIND_TO_DEVICE, sender, sender_device, now, body)
        )
    return False, entries


async def fetch_queue(tx: Tx, device: DeviceId, after: int, limit: int) -> list[QueueEntry]:
    rows = await tx.fetchall(
        "SELECT seq, kind, sender, sender_device, ts, body FROM device_queue"
        " WHERE device = ? AND seq > ? ORDER BY seq LIMIT ?",
        device,
        after,
        limit,
    )
    return [
        QueueEntry(int(r[0]), device, int(r[1]), UserId(r[2]), DeviceId(r[3]), int(r[4]), r[5])
        for r in rows
    ]


async def ack_queue(tx: Tx, device: DeviceId, seq: int) -> int:
    return await tx.execute("DELETE FROM device_queue WHERE device = ? AND seq <= ?", device, seq)


async def queue_heads(tx: Tx, devices: list[DeviceId]) -> list[tuple[DeviceId, int]]:
    """The last queued entry of each of ``devices`` that has any (acknowledged
    entries are deleted, so these are all waiting)."""
    if not devices:
        return []
    marks = ", ".join("?" * len(devices))
    rows = await tx.fetchall(
        f"SELECT device, MAX(seq) FROM device_queue WHERE device IN ({marks}) GROUP BY device",
        *devices,
    )
    return [(DeviceId(r[0]), int(r[1])) for r in rows]
