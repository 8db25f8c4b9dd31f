"""Invites, privacy settings, presence and the directory: jobs on a ``Tx``.

Invites are kept by the SHA-256 of their id only. A user's *contacts*, for
presence, are the people they share a direct (1:1) conversation with.
"""

from __future__ import annotations

import dataclasses
import enum

from taube.proto.errors import ErrorCode, ProtocolError
from taube.proto.ids import DeviceId, UserId
from taube.store.sql import Tx

#: open (unused, unexpired, unrevoked) invites a user may have at once
MAX_OPEN_INVITES = 100


class InviteState(enum.Enum):
    OPEN = "open"
    USED = "used"
    EXPIRED = "expired"
    REVOKED = "revoked"


@dataclasses.dataclass(frozen=True)
class InviteRow:
    inviter: UserId
    expires_ms: int
    state: InviteState
    used_by: UserId | None


async def create_invite(tx: Tx, id_hash: bytes, user: UserId, now: int, expires_ms: int) -> None:
    row = await tx.fetchone(
        "SELECT COUNT(*) FROM invites WHERE user_id = ? AND used_by IS NULL"
        " AND revoked_ms IS NULL AND expires_ms > ?",
        user,
        now,
    )
    if row is not None and int(row[0]) >= MAX_OPEN_INVITES:
        raise ProtocolError(
            ErrorCode.RATE_LIMITED, f"at most {MAX_OPEN_INVITES} open invites: revoke some first"
        )
    # expired and used invites of this user go once they are a month old
    await tx.execute(
        "DELETE FROM invites WHERE user_id = ? AND expires_ms < ?", user, now - 30 * 86_400_000
    )
    added = await tx.execute(
        "INSERT INTO invites (id_hash, user_id, created_ms, expires_ms) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (id_hash) DO NOTHING",
        id_hash,
        user,
        now,
        expires_ms,
    )
    if added == 0:
        raise ProtocolError(ErrorCode.CONFLICT, "that invite exists")


async def invite(tx: Tx, id_hash: bytes, now: int) -> InviteRow | None:
    row = await tx.fetchone(
        "SELECT user_id, expires_ms, revoked_ms, used_by FROM invites WHERE id_hash = ?",
        id_hash,
    )
    if row is None:
        return None
    if row[3] is not None:
        state = InviteState.USED
    elif row[2] is not None:
        state = InviteState.REVOKED
    elif int(row[1]) <= now:
        state = InviteState.EXPIRED
    else:
        state = InviteState.OPEN
    return InviteRow(UserId(row[0]), int(row[1]), state, None if row[3] is None else UserId(row[3]))


async def redeem_invite(tx: Tx, id_hash: bytes, user: UserId, now: int) -> InviteRow | None:
    """Use the invite up for ``user``; returns it as it was before."""
    found = await invite(tx, id_hash, now)
    if found is not None and found.state is InviteState.OPEN and found.inviter != user:
        await tx.execute(
            "UPDATE invites SET used_by = ?, used_ms = ? WHERE id_hash = ? AND used_by IS NULL",
            user,
            now,
            id_hash,
        )
    return found


async def revoke_invite(tx: Tx, id_hash: bytes, user: UserId, now: int) -> bool:
    changed = await tx.execute(
        "UPDATE invites SET revoked_ms = ? WHERE id_hash = ? AND user_id = ?"
        " AND revoked_ms IS NULL",
        now,
        id_hash,
        user,
    )
    return changed == 1


async def privacy(tx: Tx, user: UserId) -> tuple[str, str | None]:
    """``(presence visibility, directory name or None)``."""
    row = await tx.fetchone("SELECT presence, directory_name FROM users WHERE user_id = ?", user)
    if row is None:
        return "nobody", None
    return str(row[0]), None if row[1] is None else str(row[1])


async def set_privacy(tx: Tx, user: UserId, presence: str, directory_name: str | None) -> None:
    await tx.execute(
        "UPDATE users SET presence = ?, directory_name = ? WHERE user_id = ?",
        presence,
        directory_name,
        user,
    )


async def are_contacts(tx: Tx, user: UserId, other: UserId) -> bool:
    """Whether the two share a direct conversation."""
    row = await tx.fetchone(
        "SELECT 1 FROM members m1 JOIN members m2 ON m2.conversation = m1.conversation"
        " JOIN conversations c ON c.conversation = m1.conversation"
        " WHERE m1.user_id = ? AND m2.user_id = ? AND c.kind = 'direct'",
        user,
        other,
    )
    return row is not None


async def last_seen(tx: Tx, user: UserId) -> int | None:
    row = await tx.fetchone("SELECT MAX(last_seen_ms) FROM devices WHERE user_id = ?", user)
    return None if row is None or row[0] is None else int(row[0])


async def search_directory(tx: Tx, query: str, limit: int) -> list[tuple[UserId, str]]:
    """Findable users whose name contains ``query`` (case-insensitive), by name."""
    pattern = "%" + query.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    rows = await tx.fetchall(
        "SELECT user_id, directory_name FROM users WHERE directory_name IS NOT NULL"
        " AND LOWER(directory_name) LIKE ? ESCAPE '\\' ORDER BY directory_name, user_id LIMIT ?",
        pattern + "%",
        limit,
    )
    return [(UserId(r[0]), str(r[1])) for r in rows]


# ------------------------------------------------------------------ online

#: devices per statement when a node renews the ones connected to it
ONLINE_CHUNK = 500


async def set_online(tx: Tx, devices: list[DeviceId], until_ms: int, now: int) -> None:
    """``devices`` are connected (to this node) until at least ``until_ms``."""
    for start in range(0, len(devices), ONLINE_CHUNK):
        chunk = devices[start : start + ONLINE_CHUNK]
        marks = ", ".join("?" * len(chunk))
        await tx.execute(
            f"UPDATE devices SET online_until_ms = ?, last_seen_ms = ? WHERE device IN ({marks})",
            until_ms,
            now,
            *chunk,
        )


async def set_offline(tx: Tx, device: DeviceId, written_ms: int) -> None:
    """The device left this node; unless another node has marked it online
    since (a later mark), it is offline."""
    await tx.execute(
        "UPDATE devices SET online_until_ms = 0 WHERE device = ? AND online_until_ms <= ?",
        device,
        written_ms,
    )


async def online(tx: Tx, user: UserId, now: int) -> bool:
    """Whether a device of ``user`` is connected to some node."""
    row = await tx.fetchone(
        "SELECT 1 FROM devices WHERE user_id = ? AND online_until_ms > ? LIMIT 1", user, now
    )
    return row is not None
