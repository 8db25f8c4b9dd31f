"""``Store``: every operation the server needs, as async methods.

This is the storage contract: the SQLite implementation runs each operation
as a job on ``SqliteEngine`` (writes in group commits, reads on reader
threads). Blob bytes live in a ``BlobFiles`` directory beside the database.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from taube.proto.ids import BlobId, ConversationId, DeviceId, MessageId, UserId
from taube.proto.keys import DeviceKeys, IdentityKey, OneTimeKey
from taube.proto.state import StateEvent
from taube.store import accounts, blobs, conversations, delivery, keys, queues
from taube.store.blobfiles import BlobFiles
from taube.store.engine import SqliteEngine

log = logging.getLogger(__name__)


class Store:
    def __init__(self, database: Path, blob_dir: Path, *, synchronous: str = "FULL") -> None:
        self.engine = SqliteEngine(database, synchronous=synchronous)
        self.files = BlobFiles(blob_dir)

    async def __aenter__(self) -> Store:
        await self.engine.start()
        await asyncio.to_thread(self.files.prepare)
        await self.remove_orphan_files()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.engine.close()

    async def remove_orphan_files(self) -> None:
        """Files whose row is gone (a crash between commit and unlink)."""
        known = await self.engine.read(blobs.all_blob_ids)
        on_disk = await asyncio.to_thread(self.files.all_ids)
        orphans = [BlobId(b) for b in on_disk - known]
        if orphans:
            log.info("removing %d orphaned blob files", len(orphans))
            await asyncio.to_thread(self.files.delete, orphans)

    async def _free(self, freed: list[BlobId]) -> None:
        if freed:
            await asyncio.to_thread(self.files.delete, freed)

    # ----------------------------------------------------------- accounts

    async def create_user(self, user: UserId, password_hash: str, now: int) -> None:
        await self.engine.write(accounts.create_user, user, password_hash, now)

    async def password_hash(self, user: UserId) -> str | None:
        return await self.engine.read(accounts.password_hash, user)

    async def set_password_hash(self, user: UserId, new_hash: str) -> None:
        await self.engine.write(accounts.set_password_hash, user, new_hash)

    async def create_device(
        self, user: UserId, device: DeviceId, name: str, token_hash: bytes, now: int, expires: int
    ) -> None:
        await self.engine.write(
            accounts.create_device, user, device, name, token_hash, now, expires
        )

    async def device_by_token(self, token_hash: bytes) -> accounts.DeviceAuth | None:
        return await self.engine.read(accounts.device_by_token, token_hash)

    async def touch_device(self, device: DeviceId, now: int, expires: int) -> None:
        await self.engine.write(accounts.touch_device, device, now, expires)

    async def list_devices(self, user: UserId) -> list[accounts.DeviceRow]:
        return await self.engine.read(accounts.list_devices, user)

    async def rename_device(self, user: UserId, device: DeviceId, name: str) -> bool:
        return await self.engine.write(accounts.rename_device, user, device, name)

    async def remove_device(
        self, user: UserId, device: DeviceId, now: int
    ) -> tuple[bool, list[DeviceId]]:
        found, notified, touched = await self.engine.write(
            accounts.remove_device, user, device, now
        )
        for conversation in touched:
            await self._free(await self.engine.write(delivery.prune, conversation))
        return found, notified

    # ----------------------------------------------------------- keys

    async def identity_of(self, user: UserId) -> IdentityKey | None:
        return await self.engine.read(keys.identity_of, user)

    async def publish_identity(
        self, user: UserId, identity: IdentityKey, now: int
    ) -> list[DeviceId]:
        return await self.engine.write(keys.publish_identity, user, identity, now)

    async def upload_keys(
        self,
        user: UserId,
        device: DeviceId,
        device_keys: DeviceKeys | None,
        one_time_keys: list[OneTimeKey],
        fallback_key: OneTimeKey | None,
        now: int,
    ) -> tuple[int, bool, list[DeviceId]]:
        return await self.engine.write(
            keys.upload_keys, user, device, device_keys, one_time_keys, fallback_key, now
        )

    async def count_keys(self, device: DeviceId) -> tuple[int, bool]:
        return await self.engine.read(keys.count_keys, device)

    async def query_keys(
        self, users: list[UserId]
    ) -> list[tuple[UserId, IdentityKey | None, list[DeviceKeys]]]:
        return await self.engine.read(keys.query_keys, users)

    async def claim_keys(self, devices: list[tuple[UserId, DeviceId]]) -> list[OneTimeKey]:
        return await self.engine.write(keys.claim_keys, devices)

    async def device_ed25519(self, user: UserId, device: DeviceId) -> str | None:
        found = await self.query_keys([user])
        for _, _, devices in found:
            for entry in devices:
                if entry.device == device:
                    return entry.ed25519
        return None

    # ----------------------------------------------------------- conversations

    async def create_conversation(
        self, events: list[StateEvent], device: DeviceId, now: int
    ) -> list[conversations.StateAppended]:
        return await self.engine.write(conversations.create_conversation, events, device, now)

    async def append_state(
        self, event: StateEvent, device: DeviceId, now: int
    ) -> conversations.StateAppended:
        return await self.engine.write(conversations.append_state, event, device, now)

    async def get_conversation(
        self, conversation: ConversationId, user: UserId
    ) -> conversations.ConversationRow | None:
        return await self.engine.read(conversations.get_conversation, conversation, user)

    async def list_conversations(self, user: UserId) -> list[conversations.ConversationRow]:
        return await self.engine.read(conversations.list_conversations, user)

    async def state_chain(
        self, conversation: ConversationId, user: UserId
    ) -> list[StateEvent] | None:
        return await self.engine.read(conversations.state_chain, conversation, user)

    async def members_of(self, conversation: ConversationId) -> frozenset[UserId]:
        return await self.engine.read(conversations.members_of, conversation)

    # ----------------------------------------------------------- delivery

    def send_message(
        self,
        user: UserId,
        device: DeviceId,
        conversation: ConversationId,
        msg_id: MessageId,
        body: bytes,
        blob_ids: list[BlobId],
        expire_ms: int | None,
        now: int,
    ) -> asyncio.Future[delivery.Stored]:
        return self.engine.write(
            delivery.send_message, user, device, conversation, msg_id, body, blob_ids,
            expire_ms, now,
        )

    async def device_cursors(self, device: DeviceId) -> list[delivery.Cursor]:
        return await self.engine.read(delivery.device_cursors, device)

    async def device_cursor(
        self, device: DeviceId, conversation: ConversationId
    ) -> delivery.Cursor | None:
        return await self.engine.read(delivery.device_cursor, device, conversation)

    async def fetch_log(
        self,
        conversation: ConversationId,
        after: int,
        until: int | None,
        limit: int,
        now: int | None = None,
    ) -> list[delivery.LogEntry]:
        """Entries after ``after`` (up to ``until``), without expired ones if ``now`` is given."""
        return await self.engine.read(
            delivery.fetch_log, conversation, after, until, limit, now
        )

    async def ack(self, acks: list[tuple[DeviceId, ConversationId, int]]) -> None:
        await self._free(await self.engine.write(delivery.ack, acks))

    async def sweep(self, now: int, max_age_ms: int, unattached_ms: int) -> int:
        removed, freed = await self.engine.write(delivery.sweep, now, max_age_ms, unattached_ms)
        await self._free(freed)
        await self.engine.checkpoint()
        return removed

    # ----------------------------------------------------------- device queues

    async def send_to_devices(
        self,
        sender: UserId,
        sender_device: DeviceId,
        ref: MessageId,
        messages: list[tuple[UserId, DeviceId, bytes]],
        now: int,
    ) -> tuple[bool, list[queues.QueueEntry]]:
        return await self.engine.write(
            queues.send_to_devices, sender, sender_device, ref, messages, now
        )

    async def fetch_queue(
        self, device: DeviceId, after: int, limit: int
    ) -> list[queues.QueueEntry]:
        return await self.engine.read(queues.fetch_queue, device, after, limit)

    async def ack_queue(self, device: DeviceId, seq: int) -> None:
        await self.engine.write(queues.ack_queue, device, seq)

    # ----------------------------------------------------------- blobs

    async def create_blob(
        self, blob: BlobId, owner: UserId, size: int, now: int, quota: int
    ) -> None:
        await self.engine.write(blobs.create_blob, blob, owner, size, now, quota)

    async def blob_for(self, blob: BlobId, user: UserId) -> int | None:
        return await self.engine.read(blobs.blob_for, blob, user)
