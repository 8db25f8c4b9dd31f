"""Accounts and devices: jobs that run on a ``Tx`` (writer or reader)."""

from __future__ import annotations

import dataclasses

from taube.proto.errors import ErrorCode, ProtocolError
from taube.proto.ids import ConversationId, DeviceId, UserId
from taube.store.conversations import contacts_devices
from taube.store.queues import notify_keys_changed
from taube.store.sql import Tx


@dataclasses.dataclass(frozen=True)
class DeviceAuth:
    user: UserId
    device: DeviceId
    expires_ms: int


@dataclasses.dataclass(frozen=True)
class DeviceRow:
    device: DeviceId
    name: str
    created_ms: int
    last_seen_ms: int


async def create_user(tx: Tx, user: UserId, password_hash: str, now: int) -> None:
    # ON CONFLICT rather than catching the violation: on PostgreSQL a failed
    # statement spoils the rest of the (sub)transaction.
    added = await tx.execute(
        "INSERT INTO users (user_id, password_hash, created_ms) VALUES (?, ?, ?)"
        " ON CONFLICT (user_id) DO NOTHING",
        user,
        password_hash,
        now,
    )
    if added == 0:
        raise ProtocolError(ErrorCode.ADDRESS_TAKEN, "that address is taken")


async def password_hash(tx: Tx, user: UserId) -> str | None:
    row = await tx.fetchone("SELECT password_hash FROM users WHERE user_id = ?", user)
    return None if row is None else str(row[0])


async def set_password_hash(tx: Tx, user: UserId, new_hash: str) -> None:
    await tx.execute("UPDATE users SET password_hash = ? WHERE user_id = ?", new_hash, user)


async def create_device(
    tx: Tx,
    user: UserId,
    device: DeviceId,
    name: str,
    token_hash: bytes,
    now: int,
    expires_ms: int,
) -> None:
    """A new device starts at the head of every conversation: no history."""
    await tx.execute(
        "INSERT INTO devices (device, user_id, name, token_hash, created_ms, last_seen_ms,"
        " expires_ms) VALUES (?, ?, ?, ?, ?, ?, ?)",
        device,
        user,
        name,
        token_hash,
        now,
        now,
        expires_ms,
    )
    await tx.execute(
        "INSERT INTO cursors (device, conversation, seq)"
        " SELECT ?, c.conversation, c.seq FROM members m"
        " JOIN conversations c ON c.conversation = m.conversation WHERE m.user_id = ?",
        device,
        user,
    )


async def device_by_token(tx: Tx, token_hash: bytes) -> DeviceAuth | None:
    row = await tx.fetchone(
        "SELECT user_id, device, expires_ms FROM devices WHERE token_hash = ?", token_hash
    )
    return None if row is None else DeviceAuth(UserId(row[0]), DeviceId(row[1]), int(row[2]))


async def touch_device(tx: Tx, device: DeviceId, now: int, expires_ms: int) -> None:
    await tx.execute(
        "UPDATE devices SET last_seen_ms = ?, expires_ms = GREATEST(expires_ms, ?)"
        " WHERE device = ?",
        now,
        expires_ms,
        device,
    )


async def list_devices(tx: Tx, user: UserId) -> list[DeviceRow]:
    rows = await tx.fetchall(
        "SELECT device, name, created_ms, last_seen_ms FROM devices WHERE user_id = ?"
        " ORDER BY created_ms",
        user,
    )
    return [DeviceRow(DeviceId(r[0]), r[1], int(r[2]), int(r[3])) for r in rows]


async def rename_device(tx: Tx, user: UserId, device: DeviceId, name: str) -> bool:
    changed = await tx.execute(
        "UPDATE devices SET name = ? WHERE device = ? AND user_id = ?", name, device, user
    )
    return changed == 1


async def remove_device(
    tx: Tx, user: UserId, device: DeviceId, now: int
) -> tuple[bool, list[DeviceId], list[ConversationId]]:
    """Delete a device with its keys, cursors and queue.

    Returns whether it existed, the devices told that ``user``'s device list
    changed, and the conversations whose log may now be pruned.
    """
    row = await tx.fetchone(
        "SELECT keys FROM devices WHERE device = ? AND user_id = ?", device, user
    )
    if row is None:
        return False, [], []
    conversations = [
        ConversationId(r[0])
        for r in await tx.fetchall("SELECT conversation FROM cursors WHERE device = ?", device)
    ]
    for table in ("one_time_keys", "fallback_keys", "cursors", "device_queue", "sent"):
        await tx.execute(f"DELETE FROM {table} WHERE device = ?", device)
    await tx.execute("DELETE FROM devices WHERE device = ?", device)
    notified: list[DeviceId] = []
    if row[0] is not None:
        notified = await notify_keys_changed(tx, user, await contacts_devices(tx, user), now)
    return True, notified, conversations
