"""``Store``: every operation the server needs, as async methods.

This is the storage contract. Each operation is a job (``taube.store.sql``)
run on an engine: ``SqliteEngine`` (writes in group commits on a writer
thread, reads on reader threads) or ``PostgresEngine`` (group commits on an
asyncpg pool, for several nodes). Blob bytes live in a ``BlobStore``: files
in a directory beside the database, or chunks in the database itself.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from taube.proto.ids import BlobId, ConversationId, DeviceId, MessageId, UserId
from taube.proto.keys import DeviceKeys, IdentityKey, OneTimeKey
from taube.proto.state import StateEvent
from taube.store import accounts, blobs, conversations, delivery, keys, queues
from taube.store.blobchunks import BlobChunks
from taube.store.blobfiles import BlobFiles
from taube.store.blobstore import BlobStore, BlobStoreKind
from taube.store.engine import SqliteEngine
from taube.store.errors import StoreError
from taube.store.sql import Engine, is_postgres_url

log = logging.getLogger(__name__)

#: devices per query when asking what they have waiting
HEADS_CHUNK = 500


class Store:
    def __init__(self, engine: Engine, blob_store: BlobStore) -> None:
        self.engine = engine
        self.blobs = blob_store

    @classmethod
    def open(
        cls,
        database: str | Path,
        blob_dir: Path,
        *,
        blobs: BlobStoreKind = "directory",
        synchronous: str = "FULL",
    ) -> Store:
        """The store for ``database``: a ``postgresql://`` URL, else a SQLite file.

        ``blobs`` says where attachment bytes go: files under ``blob_dir``, or
        the database (what several nodes sharing PostgreSQL need). Enter the
        result (``async with``) to open it.
        """
        engine: Engine
        if is_postgres_url(database):
            try:
                from taube.store.postgres import PostgresEngine
            except ImportError as exc:
                raise StoreError(
                    f'PostgreSQL needs the asyncpg driver: pip install "taube[postgres]" ({exc})'
                ) from None
            engine = PostgresEngine(str(database))
        else:
            engine = SqliteEngine(Path(database), synchronous=synchronous)
        blob_store: BlobStore = BlobChunks(engine) if blobs == "database" else BlobFiles(blob_dir)
        return cls(engine, blob_store)

    async def __aenter__(self) -> Store:
        await self.engine.start()
        try:
            await self.blobs.prepare()
            if isinstance(self.blobs, BlobFiles):
                await self.remove_orphan_files(self.blobs)
        except BaseException:
            await self.engine.close()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.engine.close()

    async def remove_orphan_files(self, files: BlobFiles) -> None:
        """Files whose row is gone (a crash between commit and unlink).

        Safe at start only because one node owns a blob directory: no upload
        is between its file and its row.
        """
        known = await self.engine.read(blobs.all_blob_ids)
        on_disk = await asyncio.to_thread(files.all_ids)
        orphans = [BlobId(b) for b in on_disk - known]
        if orphans:
            log.info("removing %d orphaned blob files", len(orphans))
            await files.delete(orphans)

    async def _free(self, freed: list[BlobId]) -> None:
        if freed:
            await self.blobs.delete(freed)

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

    async def put_key_backup(self, user: UserId, sealed: bytes) -> None:
        await self.engine.write(keys.put_key_backup, user, sealed)

    async def get_key_backup(self, user: UserId) -> bytes | None:
        return await self.engine.read(keys.get_key_backup, user)

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
            delivery.send_message,
            user,
            device,
            conversation,
            msg_id,
            body,
            blob_ids,
            expire_ms,
            now,
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
        return await self.engine.read(delivery.fetch_log, conversation, after, until, limit, now)

    async def pending_heads(
        self, devices: list[DeviceId]
    ) -> tuple[list[tuple[DeviceId, ConversationId, int]], list[tuple[DeviceId, int]]]:
        """What ``devices`` have waiting: per conversation past their cursors,
        the last entry's seq; per device queue, the last entry's seq."""
        logs: list[tuple[DeviceId, ConversationId, int]] = []
        queued: list[tuple[DeviceId, int]] = []
        for start in range(0, len(devices), HEADS_CHUNK):
            chunk = devices[start : start + HEADS_CHUNK]
            logs += await self.engine.read(delivery.pending_heads, chunk)
            queued += await self.engine.read(queues.queue_heads, chunk)
        return logs, queued

    async def ack(self, acks: list[tuple[DeviceId, ConversationId, int]]) -> None:
        await self._free(await self.engine.write(delivery.ack, acks))

    async def sweep(self, now: int, max_age_ms: int, unattached_ms: int) -> int:
        removed, freed = await self.engine.write(delivery.sweep, now, max_age_ms, unattached_ms)
        await self._free(freed)
        orphans = await self.blobs.sweep(now)
        if orphans:
            log.info("removed the bytes of %d orphaned blobs", orphans)
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
