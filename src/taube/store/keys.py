"""The key directory: identity keys, device certificates, one-time keys."""

from __future__ import annotations

import sqlite3

import msgspec

from taube.proto.ids import DeviceId, UserId
from taube.proto.keys import DeviceKeys, IdentityKey, OneTimeKey
from taube.store.conversations import contacts_devices
from taube.store.queues import notify_keys_changed

_identity = msgspec.json.Decoder(IdentityKey)
_device_keys = msgspec.json.Decoder(DeviceKeys)
_otk = msgspec.json.Decoder(OneTimeKey)
_encode = msgspec.json.encode


def identity_of(conn: sqlite3.Connection, user: UserId) -> IdentityKey | None:
    row = conn.execute("SELECT identity FROM users WHERE user_id = ?", (user,)).fetchone()
    return None if row is None or row[0] is None else _identity.decode(row[0])


def publish_identity(
    conn: sqlite3.Connection, user: UserId, identity: IdentityKey, now: int
) -> list[DeviceId]:
    """Store the identity key; on a change, tell every contact's device."""
    old = identity_of(conn, user)
    if old is not None and old.identity_key == identity.identity_key:
        return []
    conn.execute("UPDATE users SET identity = ? WHERE user_id = ?", (_encode(identity), user))
    return notify_keys_changed(conn, user, contacts_devices(conn, user), now)


def upload_keys(
    conn: sqlite3.Connection,
    user: UserId,
    device: DeviceId,
    device_keys: DeviceKeys | None,
    one_time_keys: list[OneTimeKey],
    fallback_key: OneTimeKey | None,
    now: int,
) -> tuple[int, bool, list[DeviceId]]:
    """Returns the remaining key count, whether a fallback key is there, and
    the devices told of a changed device list."""
    notified: list[DeviceId] = []
    if device_keys is not None:
        old = conn.execute("SELECT keys FROM devices WHERE device = ?", (device,)).fetchone()
        data = _encode(device_keys).decode()
        if old is None or old[0] != data:
            conn.execute("UPDATE devices SET keys = ? WHERE device = ?", (data, device))
            notified = notify_keys_changed(conn, user, contacts_devices(conn, user), now)
    conn.executemany(
        "INSERT INTO one_time_keys (device, key_id, data) VALUES (?, ?, ?)"
        " ON CONFLICT (device, key_id) DO NOTHING",
        [(device, key.key_id, _encode(key).decode()) for key in one_time_keys],
    )
    if fallback_key is not None:
        conn.execute(
            "INSERT INTO fallback_keys (device, data) VALUES (?, ?)"
            " ON CONFLICT (device) DO UPDATE SET data = excluded.data",
            (device, _encode(fallback_key).decode()),
        )
    count, has_fallback = count_keys(conn, device)
    return count, has_fallback, notified


def count_keys(conn: sqlite3.Connection, device: DeviceId) -> tuple[int, bool]:
    count = conn.execute(
        "SELECT COUNT(*) FROM one_time_keys WHERE device = ?", (device,)
    ).fetchone()[0]
    fallback = conn.execute(
        "SELECT 1 FROM fallback_keys WHERE device = ?", (device,)
    ).fetchone()
    return int(count), fallback is not None


def query_keys(
    conn: sqlite3.Connection, users: list[UserId]
) -> list[tuple[UserId, IdentityKey | None, list[DeviceKeys]]]:
    result = []
    for user in dict.fromkeys(users):
        row = conn.execute("SELECT identity FROM users WHERE user_id = ?", (user,)).fetchone()
        if row is None:
            continue
        identity = None if row[0] is None else _identity.decode(row[0])
        devices = [
            _device_keys.decode(r[0])
            for r in conn.execute(
                "SELECT keys FROM devices WHERE user_id = ? AND keys IS NOT NULL"
                " ORDER BY created_ms",
                (user,),
            )
        ]
        result.append((user, identity, devices))
    return result


def claim_keys(
    conn: sqlite3.Connection, devices: list[tuple[UserId, DeviceId]]
) -> list[OneTimeKey]:
    """One key per device, each one-time key handed out once (runs on the writer)."""
    claimed = []
    for user, device in dict.fromkeys(devices):
        owner = conn.execute(
            "SELECT 1 FROM devices WHERE device = ? AND user_id = ?", (device, user)
        ).fetchone()
        if owner is None:
            continue
        row = conn.execute(
            "DELETE FROM one_time_keys WHERE device = ? AND key_id = (SELECT key_id"
            " FROM one_time_keys WHERE device = ? LIMIT 1) RETURNING data",
            (device, device),
        ).fetchone()
        if row is None:
            row = conn.execute(
                "SELECT data FROM fallback_keys WHERE device = ?", (device,)
            ).fetchone()
        if row is not None:
            claimed.append(_otk.decode(row[0]))
    return claimed
