"""The key directory: identity keys, device certificates, one-time keys."""

from __future__ import annotations

import msgspec

from taube.proto.ids import DeviceId, UserId
from taube.proto.keys import DeviceKeys, IdentityKey, OneTimeKey
from taube.store.conversations import contacts_devices
from taube.store.federation import announce_keys_changed
from taube.store.queues import notify_keys_changed
from taube.store.sql import Tx

_identity = msgspec.json.Decoder(IdentityKey)
_device_keys = msgspec.json.Decoder(DeviceKeys)
_otk = msgspec.json.Decoder(OneTimeKey)


def _text(value: msgspec.Struct) -> str:
    """JSON for a TEXT column (PostgreSQL takes no bytes there)."""
    return msgspec.json.encode(value).decode()


async def identity_of(tx: Tx, user: UserId) -> IdentityKey | None:
    row = await tx.fetchone("SELECT identity FROM users WHERE user_id = ?", user)
    return None if row is None or row[0] is None else _identity.decode(row[0])


async def publish_identity(tx: Tx, user: UserId, identity: IdentityKey, now: int) -> list[DeviceId]:
    """Store the identity key; on a change, tell every contact's device."""
    old = await identity_of(tx, user)
    if old is not None and old.identity_key == identity.identity_key:
        return []
    await tx.execute("UPDATE users SET identity = ? WHERE user_id = ?", _text(identity), user)
    await announce_keys_changed(tx, user, now)  # other servers, in the same commit
    return await notify_keys_changed(tx, user, await contacts_devices(tx, user), now)


async def upload_keys(
    tx: Tx,
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
        old = await tx.fetchone("SELECT keys FROM devices WHERE device = ?", device)
        data = _text(device_keys)
        if old is None or old[0] != data:
            await tx.execute("UPDATE devices SET keys = ? WHERE device = ?", data, device)
            await announce_keys_changed(tx, user, now)  # other servers, in the same commit
            notified = await notify_keys_changed(tx, user, await contacts_devices(tx, user), now)
    await tx.executemany(
        "INSERT INTO one_time_keys (device, key_id, data) VALUES (?, ?, ?)"
        " ON CONFLICT (device, key_id) DO NOTHING",
        [(device, key.key_id, _text(key)) for key in one_time_keys],
    )
    if fallback_key is not None:
        await tx.execute(
            "INSERT INTO fallback_keys (device, data) VALUES (?, ?)"
            " ON CONFLICT (device) DO UPDATE SET data = excluded.data",
            device,
            _text(fallback_key),
        )
    count, has_fallback = await count_keys(tx, device)
    return count, has_fallback, notified


async def count_keys(tx: Tx, device: DeviceId) -> tuple[int, bool]:
    row = await tx.fetchone("SELECT COUNT(*) FROM one_time_keys WHERE device = ?", device)
    fallback = await tx.fetchone("SELECT 1 FROM fallback_keys WHERE device = ?", device)
    return int(row[0]) if row else 0, fallback is not None


async def query_keys(
    tx: Tx, users: list[UserId]
) -> list[tuple[UserId, IdentityKey | None, list[DeviceKeys]]]:
    result = []
    for user in dict.fromkeys(users):
        row = await tx.fetchone("SELECT identity FROM users WHERE user_id = ?", user)
        if row is None:
            continue
        identity = None if row[0] is None else _identity.decode(row[0])
        devices = [
            _device_keys.decode(r[0])
            for r in await tx.fetchall(
                "SELECT keys FROM devices WHERE user_id = ? AND keys IS NOT NULL"
                " ORDER BY created_ms",
                user,
            )
        ]
        result.append((user, identity, devices))
    return result


async def claim_keys(tx: Tx, devices: list[tuple[UserId, DeviceId]]) -> list[OneTimeKey]:
    """One key per device, each one-time key handed out once (runs on the writer).

    Several nodes may claim from the same device at once: on PostgreSQL the
    key is chosen ``FOR UPDATE SKIP LOCKED``, so a concurrent claim takes
    another key instead of waiting for this one and then finding it gone.
    """
    claimed = []
    for user, device in dict.fromkeys(devices):
        owner = await tx.fetchone(
            "SELECT 1 FROM devices WHERE device = ? AND user_id = ?", device, user
        )
        if owner is None:
            continue
        row = await tx.fetchone(
            "DELETE FROM one_time_keys WHERE device = ? AND key_id = (SELECT key_id"
            " FROM one_time_keys WHERE device = ? LIMIT 1 FOR UPDATE SKIP LOCKED)"
            " RETURNING data",
            device,
            device,
        )
        if row is None:
            row = await tx.fetchone("SELECT data FROM fallback_keys WHERE device = ?", device)
        if row is not None:
            claimed.append(_otk.decode(row[0]))
    return claimed


async def put_key_backup(tx: Tx, user: UserId, sealed: bytes) -> None:
    await tx.execute("UPDATE users SET key_backup = ? WHERE user_id = ?", sealed, user)


async def get_key_backup(tx: Tx, user: UserId) -> bytes | None:
    row = await tx.fetchone("SELECT key_backup FROM users WHERE user_id = ?", user)
    return None if row is None or row[0] is None else bytes(row[0])
