"""Federation: what the server must remember about other servers.

- Transaction ids of signed requests, kept for the freshness window so
  that a replayed request is refused even after a restart (the window is
  what lets them be forgotten: an older request is refused for its time).
- Which servers take part in which conversations: each has a cursor
  ``@<domain>`` in ``cursors`` (see ``conversations.server_cursor``), so the
  conversation log is its outbound queue and an entry is deleted only once
  every server and every local device has it.
- To-device messages for devices on other servers, until those servers
  took them.
"""

from __future__ import annotations

import dataclasses

import msgspec

from taube.proto.ids import ConversationId, DeviceId, MessageId, UserId, domain_of
from taube.proto.state import StateEvent
from taube.store.conversations import contacts_devices
from taube.store.queues import QueueEntry, notify_keys_changed, send_to_devices
from taube.store.sql import Row, Tx

_event = msgspec.json.Decoder(StateEvent)


async def remember_txn(tx: Tx, origin: str, txn: str, now: int) -> bool:
    """Record ``(origin, txn)``; ``False`` if it was seen before (a replay)."""
    added = await tx.execute(
        "INSERT INTO federation_txns (origin, txn, ts) VALUES (?, ?, ?)"
        " ON CONFLICT (origin, txn) DO NOTHING",
        origin,
        txn,
        now,
    )
    return added == 1


async def forget_txns(tx: Tx, before: int) -> int:
    """Forget transaction ids recorded before ``before`` (outside the window)."""
    return await tx.execute("DELETE FROM federation_txns WHERE ts < ?", before)


async def destinations(tx: Tx) -> list[str]:
    """Every server that has (or had) users in this server's conversations."""
    return [str(r[0]) for r in await tx.fetchall("SELECT domain FROM federation_destinations")]


async def conversation_creator(tx: Tx, conversation: ConversationId) -> UserId | None:
    row = await tx.fetchone(
        "SELECT creator FROM conversations WHERE conversation = ?", conversation
    )
    return None if row is None else UserId(row[0])


async def conversation_depth(tx: Tx, conversation: ConversationId) -> int:
    """The depth of the conversation's head (-1: unknown here)."""
    row = await tx.fetchone("SELECT depth FROM conversations WHERE conversation = ?", conversation)
    return -1 if row is None else int(row[0])


async def whole_chain(tx: Tx, conversation: ConversationId) -> list[StateEvent]:
    return [
        _event.decode(r[0])
        for r in await tx.fetchall(
            "SELECT data FROM state_events WHERE conversation = ? ORDER BY depth", conversation
        )
    ]


async def has_member_of(tx: Tx, conversation: ConversationId, domain: str) -> bool:
    """Whether a user of ``domain`` is a member of ``conversation``."""
    row = await tx.fetchone(
        "SELECT 1 FROM members WHERE conversation = ? AND user_id LIKE ? LIMIT 1",
        conversation,
        "%@" + domain,
    )
    return row is not None


async def blob_visible_to(tx: Tx, blob: str, domain: str) -> int | None:
    """The blob's size if a user of ``domain`` is a member of a conversation
    whose log names it at or after their join (that server may fetch it),
    else ``None``."""
    row = await tx.fetchone(
        "SELECT b.size FROM blobs b WHERE b.blob = ? AND EXISTS (SELECT 1 FROM blob_refs r"
        " JOIN members m ON m.conversation = r.conversation"
        " WHERE r.blob = b.blob AND m.user_id LIKE ? AND r.seq >= m.joined_seq)",
        blob,
        "%@" + domain,
    )
    return None if row is None else int(row[0])


async def blob_owner(tx: Tx, blob: str) -> UserId | None:
    row = await tx.fetchone("SELECT owner FROM blobs WHERE blob = ?", blob)
    return None if row is None else UserId(row[0])


async def create_remote_blob(tx: Tx, blob: str, owner: UserId, size: int, now: int) -> None:
    """The row of a blob fetched from another server (its owner is a user
    there: no quota here; it goes with the last entry that names it)."""
    await tx.execute(
        "INSERT INTO blobs (blob, owner, size, created_ms) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (blob) DO NOTHING",
        blob,
        owner,
        size,
        now,
    )


@dataclasses.dataclass(frozen=True)
class RemoteToDevice:
    seq: int
    ref: MessageId
    user: UserId
    device: DeviceId
    sender: UserId
    sender_device: DeviceId
    ts: int
    body: bytes


async def send_to_devices_anywhere(
    tx: Tx,
    own_domain: str,
    sender: UserId,
    sender_device: DeviceId,
    ref: MessageId,
    messages: list[tuple[UserId, DeviceId, bytes]],
    now: int,
) -> tuple[bool, list[QueueEntry], list[str]]:
    """Queue each message for its device, here or on its user's server, in one
    transaction, idempotent on ``(sender_device, ref)`` like ``send_to_devices``.

    Returns whether this was a retry, the local entries, and the domains
    that got messages to forward."""
    local = [m for m in messages if domain_of(m[0]) == own_domain]
    duplicate, entries = await send_to_devices(tx, sender, sender_device, ref, local, now)
    if duplicate:
        return True, [], []
    remote = [m for m in messages if domain_of(m[0]) != own_domain]
    await tx.executemany(
        "INSERT INTO federation_todevice (destination, ref, target_user, target_device,"
        " sender, sender_device, ts, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (domain_of(user), ref, user, device, sender, sender_device, now, body)
            for user, device, body in remote
        ],
    )
    domains = sorted({domain_of(user) for user, _, _ in remote})
    await tx.executemany(
        "INSERT INTO federation_destinations (domain) VALUES (?) ON CONFLICT (domain) DO NOTHING",
        [(domain,) for domain in domains],
    )
    return False, entries, domains


_TO_DEVICE = (
    "SELECT seq, ref, target_user, target_device, sender, sender_device, ts, body"
    " FROM federation_todevice WHERE destination = ?"
)


def _to_device(r: Row) -> RemoteToDevice:
    return RemoteToDevice(
        int(r[0]),
        MessageId(r[1]),
        UserId(r[2]),
        DeviceId(r[3]),
        UserId(r[4]),
        DeviceId(r[5]),
        int(r[6]),
        bytes(r[7]),
    )


async def announce_keys_changed(tx: Tx, user: UserId, now: int) -> list[str]:
    """Queue a ``keys.changed`` about ``user`` for every server sharing a
    conversation with them (a row without a target device); returns those domains."""
    rows = await tx.fetchall(
        "SELECT DISTINCT m2.user_id FROM members m1 JOIN members m2"
        " ON m2.conversation = m1.conversation WHERE m1.user_id = ?",
        user,
    )
    own = domain_of(user)
    domains = sorted({domain_of(UserId(r[0])) for r in rows} - {own})
    await tx.executemany(
        "INSERT INTO federation_todevice (destination, ref, target_user, target_device,"
        " sender, sender_device, ts, body) VALUES (?, '', '', '', ?, '', ?, ?)",
        [(domain, user, now, b"") for domain in domains],
    )
    return domains


async def keys_changed_here(tx: Tx, user: UserId, now: int) -> list[DeviceId]:
    """Another server says ``user``'s keys changed: tell the devices here that
    share a conversation with them."""
    return await notify_keys_changed(tx, user, await contacts_devices(tx, user), now)


async def fetch_to_devices(tx: Tx, domain: str, limit: int) -> list[RemoteToDevice]:
    """The oldest to-device messages waiting for ``domain``; whole sends only
    (all rows of a ``ref`` travel together: the receiver is idempotent per ``ref``)."""
    rows = await tx.fetchall(_TO_DEVICE + " ORDER BY seq LIMIT ?", domain, limit)
    found = [_to_device(r) for r in rows]
    if len(found) == limit:
        last = found[-1]
        rest = await tx.fetchall(
            _TO_DEVICE + " AND seq > ? AND ref = ? AND sender_device = ? ORDER BY seq",
            domain,
            last.seq,
            last.ref,
            last.sender_device,
        )
        found += [_to_device(r) for r in rest]
    return found


async def drop_to_devices(tx: Tx, domain: str, seqs: list[int]) -> None:
    """``domain``'s server took these to-device messages."""
    await tx.executemany(
        "DELETE FROM federation_todevice WHERE destination = ? AND seq = ?",
        [(domain, seq) for seq in seqs],
    )


async def forget_to_devices(tx: Tx, before: int) -> int:
    """Retention: to-device messages no server took in time."""
    return await tx.execute("DELETE FROM federation_todevice WHERE ts < ?", before)
