"""Accounts and devices: jobs that run on a connection (writer or reader)."""

from __future__ import annotations

import dataclasses
import sqlite3

from taube.proto.errors import ErrorCode, ProtocolError
from taube.proto.ids import DeviceId, UserId
from taube.store.conversations import contacts_devices
from taube.store.queues import notify_keys_changed


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


def create_user(conn: sqlite3.Connection, user: UserId, password_hash: str, now: int) -> None:
    try:
        conn.execute(
            "INSERT INTO users (user_id, password_hash, created_ms) VALUES (?, ?, ?)",
            (user, password_hash, now),
        )
    except sqlite3.IntegrityError:
        raise ProtocolError(ErrorCode.ADDRESS_TAKEN, "that address is taken") from None


def password_hash(conn: sqlite3.Connection, user: UserId) -> str | None:
    row = conn.execute("SELECT password_hash FROM users WHERE user_id = ?", (user,)).fetchone()
    return None if row is None else str(row[0])


def set_password_hash(conn: sqlite3.Connection, user: UserId, new_hash: str) -> None:
    conn.execute("UPDATE users SET password_hash = ? WHERE user_id = ?", (new_hash, user))


def create_device(
    conn: sqlite3.Connection,
    user: UserId,
    device: DeviceId,
    name: str,
    token_hash: bytes,
    now: int,
    expires_ms: int,
) -> None:
    """A new device starts at the head of every conversation: no history."""
    conn.execute(
        "INSERT INTO devices (device, user_id, name, token_hash, created_ms, last_seen_ms,"
        " expires_ms) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (device, user, name, token_hash, now, now, expires_ms),
    )
    conn.execute(
        "INSERT INTO cursors (device, conversation, seq)"
        " SELECT ?, c.conversation, c.seq FROM members m"
        " JOIN conversations c ON c.conversation = m.conversation WHERE m.user_id = ?",
        (device, user),
    )


def device_by_token(conn: sqlite3.Connection, token_hash: bytes) -> DeviceAuth | None:
    row = conn.execute(
        "SELECT user_id, device, expires_ms FROM devices WHERE token_hash = ?", (token_hash,)
    ).fetchone()
    return None if row is None else DeviceAuth(UserId(row[0]), DeviceId(row[1]), int(row[2]))


def touch_device(conn: sqlite3.Connection, device: DeviceId, now: int, expires_ms: int) -> None:
    conn.execute(
        "UPDATE devices SET last_seen_ms = ?, expires_ms = MAX(expires_ms, ?) WHERE device = ?",
        (now, expires_ms, device),
    )


def list_devices(conn: sqlite3.Connection, user: UserId) -> list[DeviceRow]:
    rows = conn.execute(
        "SELECT device, name, created_ms, last_seen_ms FROM devices WHERE user_id = ?"
        " ORDER BY created_ms",
        (user,),
    ).fetchall()
    return [DeviceRow(DeviceId(r[0]), r[1], int(r[2]), int(r[3])) for r in rows]


def rename_device(conn: sqlite3.Connection, user: UserId, device: DeviceId, name: str) -> bool:
    cur = conn.execute(
        "UPDATE devices SET name = ? WHERE device = ? AND user_id = ?", (name, device, user)
    )
    return cur.rowcount == 1


def remove_device(
    conn: sqlite3.Connection, user: UserId, device: DeviceId, now: int
) -> tuple[bool, list[DeviceId], list[str]]:
    """Delete a device with its keys, cursors and queue.

    Returns whether it existed, the devices told that ``user``'s device list
    changed, and the conversations whose log may now be pruned.
    """
    row = conn.execute(
        "SELECT keys FROM devices WHERE device = ? AND user_id = ?", (device, user)
    ).fetchone()
    if row is None:
        return False, [], []
    conversations = [
        r[0]
        for r in conn.execute("SELECT conversation FROM cursors WHERE device = ?", (device,))
    ]
    for table in ("one_time_keys", "fallback_keys", "cursors", "device_queue", "sent"):
        conn.execute(f"DELETE FROM {table} WHERE device = ?", (device,))
    conn.execute("DELETE FROM devices WHERE device = ?", (device,))
    notified: list[DeviceId] = []
    if row[0] is not None:
        notified = notify_keys_changed(conn, user, contacts_devices(conn, user), now)
    return True, notified, conversations
