"""The storage contract, against ``taube.store.Store``.

Every test takes the ``store`` fixture (or ``open_store`` to open the same
database again, as a restart or as a second node), parametrized over the
backends in ``BACKENDS``: SQLite in a temporary file, and PostgreSQL in a
fresh schema (``postgres_url`` in ``tests/conftest.py``; skipped when no
server is reachable, a failure under ``TAUBE_REQUIRE_SERVICES=1``). Blob
bytes go to a directory beside SQLite and into the database on PostgreSQL,
as several nodes need; the blob tests run both blob stores on each backend.
Two stores opened on one database stand for two server nodes.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import secrets
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from taube.proto.errors import ErrorCode, ProtocolError
from taube.proto.ids import (
    BlobId,
    ConversationId,
    DeviceId,
    MessageId,
    UserId,
    new_blob_id,
    new_conversation_id,
    new_device_id,
    new_message_id,
)
from taube.proto.keys import OneTimeKey
from taube.proto.state import Create, Kind, Member, StateEvent, Timer
from taube.store import Store, StoreUnavailable, delivery, is_postgres_url
from taube.store.blobchunks import ORPHAN_AGE_MS
from taube.store.blobstore import CHUNK_BYTES, BlobStoreKind
from taube.store.engine import JobSuspended, SqliteEngine
from taube.store.migrations import SchemaTooNew, steps
from taube.store.sql import Tx

BACKENDS = ["sqlite", "postgres"]
BLOB_STORES = ["directory", "database"]

NOW = 1_700_000_000_000
DAY_MS = 86_400_000
QUOTA = 1 << 30
SIGNATURE = "A" * 86

_names = itertools.count()


# ---------------------------------------------------------------- fixtures


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def database(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """The test's own database: a SQLite file, or a PostgreSQL URL with a fresh schema."""
    if backend == "sqlite":
        return str(tmp_path / "taube.db")
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def blob_kind(backend: str) -> BlobStoreKind:
    """Files beside SQLite, the database on PostgreSQL (blob tests parametrize it)."""
    return "directory" if backend == "sqlite" else "database"


@pytest.fixture
def open_store(database: str, blob_kind: BlobStoreKind, tmp_path: Path) -> Callable[[], Store]:
    """A new ``Store`` on the test's database; enter it to open it."""

    def factory() -> Store:
        return Store.open(database, tmp_path / "blobs", blobs=blob_kind)

    return factory


@pytest.fixture
async def store(open_store: Callable[[], Store]) -> AsyncIterator[Store]:
    async with open_store() as opened:
        yield opened


async def raw_query(database: str, sql: str) -> list[tuple[Any, ...]]:
    """One statement on the test's database, outside the store (no parameters)."""
    if is_postgres_url(database):
        import asyncpg  # only where PostgreSQL runs: SQLite needs no driver

        conn = await asyncpg.connect(database)
        try:
            return [tuple(row) for row in await conn.fetch(sql)]
        finally:
            await conn.close()
    with contextlib.closing(sqlite3.connect(database)) as conn, conn:
        return conn.execute(sql).fetchall()


# ---------------------------------------------------------------- building blocks


async def new_user(
    store: Store, name: str = "user", devices: int = 1
) -> tuple[UserId, list[DeviceId]]:
    user = UserId(f"{name}{next(_names)}@example.org")
    await store.create_user(user, "argon2-hash", NOW)
    made = []
    for _ in range(devices):
        device = new_device_id()
        await store.create_device(user, device, "phone", secrets.token_bytes(32), NOW, NOW + DAY_MS)
        made.append(device)
    return user, made


def state_event(
    conversation: ConversationId, depth: int, prev: str, sender: UserId, content: Any
) -> StateEvent:
    return StateEvent(
        conversation=conversation,
        depth=depth,
        prev=prev,
        sender=sender,
        ts=NOW,
        content=content,
        signature=SIGNATURE,
    )


async def new_conversation(
    store: Store, owner: UserId, device: DeviceId, others: list[UserId], kind: Kind = Kind.GROUP
) -> ConversationId:
    conversation = new_conversation_id()
    events = [state_event(conversation, 0, "", owner, Create(kind=kind))]
    for user in others:
        last = events[-1]
        events.append(
            state_event(
                conversation,
                last.depth + 1,
                last.event_hash(),
                owner,
                Member(target=user, membership="join"),
            )
        )
    appended = await store.create_conversation(events, device, NOW)
    assert [a.seq for a in appended] == list(range(1, len(events) + 1))
    return conversation


async def pair(store: Store) -> tuple[UserId, DeviceId, UserId, DeviceId, ConversationId]:
    """Alice and Bob, one device each, in a group of two (log seq 2 after the joins)."""
    alice, (a1,) = await new_user(store, "alice")
    bob, (b1,) = await new_user(store, "bob")
    conversation = await new_conversation(store, alice, a1, [bob])
    return alice, a1, bob, b1, conversation


def send(
    store: Store,
    user: UserId,
    device: DeviceId,
    conversation: ConversationId,
    body: bytes = b"ciphertext",
    *,
    msg_id: MessageId | None = None,
    blobs: list[BlobId] | None = None,
    expire_ms: int | None = None,
    now: int = NOW,
) -> asyncio.Future[delivery.Stored]:
    return store.send_message(
        user, device, conversation, msg_id or new_message_id(), body, blobs or [], expire_ms, now
    )


async def log_of(store: Store, conversation: ConversationId) -> list[delivery.LogEntry]:
    return await store.fetch_log(conversation, 0, None, 10_000)


async def pieces(data: bytes, size: int = 1 << 16) -> AsyncIterator[bytes]:
    """``data`` as an upload arrives: in pieces."""
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def upload_blob(store: Store, owner: UserId, data: bytes, now: int = NOW) -> BlobId:
    """As the server does it: the bytes, then the row."""
    blob = new_blob_id()
    assert await store.blobs.receive(blob, pieces(data), QUOTA, now) == len(data)
    await store.create_blob(blob, owner, len(data), now, QUOTA)
    return blob


async def read_blob(store: Store, blob: BlobId) -> bytes:
    return b"".join([chunk async for chunk in store.blobs.chunks(blob)])


@contextlib.asynccontextmanager
async def writer_held(store: Store) -> AsyncIterator[None]:
    """Hold the writer inside a job; writes queued meanwhile form the next batch."""
    engine = store.engine
    started, release = threading.Event(), threading.Event()
    on_thread = isinstance(engine, SqliteEngine)

    async def hold(tx: Tx) -> None:
        started.set()
        if on_thread:  # SQLite's writer is a thread: block it
            release.wait(30)
        else:  # PostgreSQL's writer is a task on this loop: suspend it
            await asyncio.to_thread(release.wait, 30)

    held = engine.write(hold)
    await asyncio.to_thread(started.wait, 30)
    try:
        yield
    finally:
        release.set()
        await held


# ---------------------------------------------------------------- group commit


async def test_concurrent_sends_commit_in_groups(store: Store) -> None:
    alice, (a1, a2) = await new_user(store, "alice", devices=2)
    bob, (b1,) = await new_user(store, "bob")
    conversations = [await new_conversation(store, alice, a1, [bob]) for _ in range(3)]
    batches, jobs = store.engine.batches, store.engine.jobs

    futures: list[tuple[ConversationId, bytes, asyncio.Future[delivery.Stored]]] = []
    senders = [(alice, a1), (alice, a2), (bob, b1)]
    for i in range(600):
        conversation = conversations[i % 3]
        user, device = senders[i // 3 % 3]
        body = f"message {i}".encode()
        futures.append((conversation, body, send(store, user, device, conversation, body)))
    results = await asyncio.gather(*(future for _, _, future in futures))
    outcomes = [(c, body, r) for (c, body, _), r in zip(futures, results, strict=True)]

    assert all(not r.duplicate for r in results)
    for conversation in conversations:
        by_seq = {r.seq: body for c, body, r in outcomes if c == conversation}
        seqs = sorted(by_seq)
        assert seqs == list(range(3, 3 + 200))  # after the create and the join: contiguous
        entries = [e for e in await log_of(store, conversation) if e.kind == 0]
        assert [e.seq for e in entries] == seqs
        assert [e.body for e in entries] == [by_seq[s] for s in seqs]
    assert store.engine.jobs - jobs == 600
    assert store.engine.batches - batches < 600  # many sends shared a commit


async def test_a_send_is_readable_once_it_resolves(store: Store) -> None:
    alice, a1, _, _, conversation = await pair(store)
    stored = await send(store, alice, a1, conversation, b"now you see it")
    entries = await store.fetch_log(conversation, stored.seq - 1, None, 10)
    assert [(e.seq, e.body, e.sender, e.sender_device) for e in entries] == [
        (stored.seq, b"now you see it", alice, a1)
    ]


# ---------------------------------------------------------------- idempotent sends


async def test_a_retried_send_returns_the_first_seq(store: Store) -> None:
    alice, a1, _, _, conversation = await pair(store)
    msg_id = new_message_id()
    first = await send(store, alice, a1, conversation, b"once", msg_id=msg_id, now=NOW)
    again = await send(store, alice, a1, conversation, b"once", msg_id=msg_id, now=NOW + 5)
    assert not first.duplicate
    assert again.duplicate
    assert (again.seq, again.ts) == (first.seq, first.ts)
    entries = [e for e in await log_of(store, conversation) if e.msg_id == msg_id]
    assert len(entries) == 1
    after = await send(store, alice, a1, conversation)
    assert after.seq == first.seq + 1  # the retry used no seq


async def test_concurrent_retries_store_one_entry(store: Store) -> None:
    alice, a1, _, _, conversation = await pair(store)
    msg_id = new_message_id()
    results = await asyncio.gather(
        *(send(store, alice, a1, conversation, b"x", msg_id=msg_id) for _ in range(20))
    )
    assert len({r.seq for r in results}) == 1
    assert sum(not r.duplicate for r in results) == 1
    assert len([e for e in await log_of(store, conversation) if e.msg_id == msg_id]) == 1


async def test_the_same_id_from_another_device_is_another_message(store: Store) -> None:
    alice, a1, bob, b1, conversation = await pair(store)
    msg_id = new_message_id()
    one = await send(store, alice, a1, conversation, msg_id=msg_id)
    two = await send(store, bob, b1, conversation, msg_id=msg_id)
    assert one.seq != two.seq
    assert not two.duplicate


async def test_a_message_id_reused_for_another_conversation_is_a_conflict(store: Store) -> None:
    alice, a1, bob, _, conversation = await pair(store)
    other = await new_conversation(store, alice, a1, [bob])
    msg_id = new_message_id()
    await send(store, alice, a1, conversation, msg_id=msg_id)
    with pytest.raises(ProtocolError) as info:
        await send(store, alice, a1, other, msg_id=msg_id)
    assert info.value.code is ErrorCode.CONFLICT


async def test_the_retry_is_remembered_after_the_entry_is_delivered(store: Store) -> None:
    alice, a1, _, b1, conversation = await pair(store)
    msg_id = new_message_id()
    first = await send(store, alice, a1, conversation, msg_id=msg_id)
    await store.ack([(a1, conversation, first.seq), (b1, conversation, first.seq)])
    assert await log_of(store, conversation) == []
    again = await send(store, alice, a1, conversation, msg_id=msg_id)
    assert again.duplicate
    assert again.seq == first.seq
    assert await log_of(store, conversation) == []


# ---------------------------------------------------------------- failures inside a batch


async def test_a_failing_job_leaves_the_rest_of_its_batch_alone(store: Store) -> None:
    alice, a1, bob, b1, conversation = await pair(store)
    stranger, (s1,) = await new_user(store, "stranger")
    reused = new_message_id()

    async def write_then_fail(tx: Tx) -> None:
        await delivery.send_message(
            tx, alice, a1, conversation, new_message_id(), b"rolled back", [], None, NOW
        )
        raise RuntimeError("a bug in a job")

    async with writer_held(store):
        batches = store.engine.batches
        good = [send(store, alice, a1, conversation, b"good 0", msg_id=reused)]
        bad: list[tuple[asyncio.Future[Any], type[Exception], ErrorCode | None]] = [
            (send(store, stranger, s1, conversation), ProtocolError, ErrorCode.NOT_FOUND),
            (send(store, alice, a1, new_conversation_id()), ProtocolError, ErrorCode.NOT_FOUND),
            (
                send(store, alice, a1, conversation, blobs=[new_blob_id()]),
                ProtocolError,
                ErrorCode.NOT_FOUND,
            ),
        ]
        good.append(send(store, bob, b1, conversation, b"good 1"))
        # the id that ``good 0`` took earlier in this very batch
        bad.append(
            (
                send(store, alice, a1, new_conversation_id(), msg_id=reused),
                ProtocolError,
                ErrorCode.CONFLICT,
            )
        )
        bad.append((store.engine.write(write_then_fail), RuntimeError, None))
        good.append(send(store, alice, a1, conversation, b"good 2"))
    outcomes = await asyncio.gather(*good, *(f for f, _, _ in bad), return_exceptions=True)
    # the held job's batch, then one batch for everything queued behind it
    assert store.engine.batches - batches == 2

    stored = outcomes[: len(good)]
    assert all(isinstance(s, delivery.Stored) for s in stored)
    for outcome, (_, kind, code) in zip(outcomes[len(good) :], bad, strict=True):
        assert isinstance(outcome, kind)
        if code is not None:
            assert isinstance(outcome, ProtocolError)
            assert outcome.code is code
    seqs = [s.seq for s in stored if isinstance(s, delivery.Stored)]
    assert seqs == [3, 4, 5]  # the failed jobs used no seq, even the one that wrote first
    bodies = [e.body for e in await log_of(store, conversation) if e.kind == 0]
    assert bodies == [b"good 0", b"good 1", b"good 2"]


async def test_errors_come_back_to_the_caller(store: Store) -> None:
    alice, a1, _, _, _ = await pair(store)
    with pytest.raises(ProtocolError) as info:
        await store.create_user(alice, "hash", NOW)
    assert info.value.code is ErrorCode.ADDRESS_TAKEN
    stored = await send(store, alice, a1, (await new_conversation(store, alice, a1, [])))
    assert stored.seq == 2


# ---------------------------------------------------------------- one-time keys


def one_time_key(
    user: UserId, device: DeviceId, key_id: str, *, fallback: bool = False
) -> OneTimeKey:
    return OneTimeKey(
        user=user,
        device=device,
        key_id=key_id,
        key=secrets.token_hex(22)[:43],
        fallback=fallback,
        signature=SIGNATURE,
    )


async def test_each_one_time_key_is_claimed_once_then_the_fallback(store: Store) -> None:
    bob, (b1,) = await new_user(store, "bob")
    keys = [one_time_key(bob, b1, f"otk{i}") for i in range(20)]
    fallback = one_time_key(bob, b1, "fb", fallback=True)
    count, has_fallback, _ = await store.upload_keys(bob, b1, None, keys, fallback, NOW)
    assert (count, has_fallback) == (20, True)

    claims = await asyncio.gather(*(store.claim_keys([(bob, b1)]) for _ in range(50)))
    assert all(len(claim) == 1 for claim in claims)
    handed = [claim[0] for claim in claims]
    one_time = [k.key_id for k in handed if not k.fallback]
    assert sorted(one_time) == sorted(k.key_id for k in keys)  # each exactly once
    assert [k for k in handed if k.fallback] == [fallback] * 30
    assert await store.count_keys(b1) == (0, True)


async def test_claims_name_the_owner(store: Store) -> None:
    bob, (b1,) = await new_user(store, "bob")
    mallory, _ = await new_user(store, "mallory")
    await store.upload_keys(bob, b1, None, [one_time_key(bob, b1, "k")], None, NOW)
    assert await store.claim_keys([(mallory, b1)]) == []
    assert await store.claim_keys([(bob, new_device_id())]) == []
    assert [k.key_id for k in await store.claim_keys([(bob, b1), (bob, b1)])] == ["k"]
    assert await store.claim_keys([(bob, b1)]) == []  # none left, and no fallback


async def test_uploading_a_key_twice_keeps_one(store: Store) -> None:
    bob, (b1,) = await new_user(store, "bob")
    key = one_time_key(bob, b1, "same")
    await store.upload_keys(bob, b1, None, [key], None, NOW)
    count, _, _ = await store.upload_keys(bob, b1, None, [key], None, NOW)
    assert count == 1


# ---------------------------------------------------------------- acks and pruning


async def test_entries_go_once_every_device_acknowledged(store: Store) -> None:
    alice, a1, _, b1, conversation = await pair(store)
    seqs = [(await send(store, alice, a1, conversation, f"m{i}".encode())).seq for i in range(3)]
    assert seqs == [3, 4, 5]
    await store.ack([(a1, conversation, 5)])
    assert [e.seq for e in await log_of(store, conversation)] == [2, 3, 4, 5]  # bob owes 2..5
    await store.ack([(b1, conversation, 3)])
    assert [e.seq for e in await log_of(store, conversation)] == [4, 5]
    await store.ack([(b1, conversation, 5)])
    assert await log_of(store, conversation) == []


async def test_cursors_never_go_back_nor_past_the_head(store: Store) -> None:
    alice, a1, _, b1, conversation = await pair(store)
    await send(store, alice, a1, conversation)
    await store.ack([(b1, conversation, 3)])
    await store.ack([(b1, conversation, 1)])
    cursor = await store.device_cursor(b1, conversation)
    assert cursor is not None
    assert cursor.seq == 3
    await store.ack([(b1, conversation, 10**9)])
    cursor = await store.device_cursor(b1, conversation)
    assert cursor is not None
    assert cursor.seq == 3
    # a later send is still owed to bob
    later = await send(store, alice, a1, conversation)
    assert [e.seq for e in await store.fetch_log(conversation, cursor.seq, None, 10)] == [later.seq]


@pytest.mark.parametrize("blob_kind", BLOB_STORES)
async def test_pruning_releases_blobs(store: Store) -> None:
    alice, a1, bob, b1, conversation = await pair(store)
    blob = await upload_blob(store, alice, b"encrypted attachment")
    shared = await send(store, alice, a1, conversation, blobs=[blob])
    again = await send(store, bob, b1, conversation, blobs=[blob])  # bob forwards it
    assert await store.blob_for(blob, bob) == len(b"encrypted attachment")
    assert [e.blobs for e in await log_of(store, conversation) if e.kind == 0] == [(blob,), (blob,)]

    await store.ack([(a1, conversation, again.seq), (b1, conversation, shared.seq)])
    assert await store.blob_for(blob, alice) is not None  # one entry still names it
    assert await store.blobs.exists(blob)
    await store.ack([(b1, conversation, again.seq)])
    assert await store.blob_for(blob, alice) is None
    assert not await store.blobs.exists(blob)
    # the owner's quota is given back: the same size fits again at quota == size
    await store.create_blob(
        new_blob_id(), alice, len(b"encrypted attachment"), NOW, len(b"encrypted attachment")
    )


async def test_only_members_may_reach_a_blob(store: Store) -> None:
    alice, a1, bob, b1, conversation = await pair(store)
    carol, (c1,) = await new_user(store, "carol")
    blob = await upload_blob(store, alice, b"x")
    assert await store.blob_for(blob, bob) is None  # not attached yet
    with pytest.raises(ProtocolError) as info:
        await send(store, bob, b1, conversation, blobs=[blob])
    assert info.value.code is ErrorCode.NOT_FOUND
    await send(store, alice, a1, conversation, blobs=[blob])
    assert await store.blob_for(blob, bob) == 1
    assert await store.blob_for(blob, carol) is None
    own = await new_conversation(store, carol, c1, [])
    with pytest.raises(ProtocolError):
        await send(store, carol, c1, own, blobs=[blob])


async def test_a_device_removed_no_longer_holds_back_pruning(store: Store) -> None:
    alice, a1, bob, b1, conversation = await pair(store)
    sent = await send(store, alice, a1, conversation)
    await store.ack([(a1, conversation, sent.seq)])
    found, _ = await store.remove_device(bob, b1, NOW)
    assert found
    assert await log_of(store, conversation) == []


# ---------------------------------------------------------------- retention


async def test_sweep_by_age(store: Store) -> None:
    alice, a1, _, _, conversation = await pair(store)
    old = await send(store, alice, a1, conversation, b"old", now=NOW)
    new = await send(store, alice, a1, conversation, b"new", now=NOW + 10 * DAY_MS)
    max_age = 5 * DAY_MS
    removed = await store.sweep(NOW + 10 * DAY_MS, max_age, DAY_MS)
    remaining = [e.seq for e in await log_of(store, conversation)]
    assert old.seq not in remaining
    assert new.seq in remaining
    assert removed == 3  # the old message and the two state entries of the same day
    assert await store.sweep(NOW + 10 * DAY_MS, max_age, DAY_MS) == 0


async def test_sweep_by_expiry(store: Store) -> None:
    alice, a1, _, _, conversation = await pair(store)
    short = await send(store, alice, a1, conversation, b"short", expire_ms=1000)
    forever = await send(store, alice, a1, conversation, b"forever")
    assert short.expires_ms == NOW + 1000
    assert forever.expires_ms is None
    assert await store.sweep(NOW + 1000, 30 * DAY_MS, DAY_MS) == 0  # not yet
    assert await store.sweep(NOW + 1001, 30 * DAY_MS, DAY_MS) == 1
    assert short.seq not in [e.seq for e in await log_of(store, conversation)]
    assert forever.seq in [e.seq for e in await log_of(store, conversation)]


async def test_the_conversation_timer_sets_expiry(store: Store) -> None:
    alice, (a1,) = await new_user(store, "alice")
    conversation = await new_conversation(store, alice, a1, [], Kind.DIRECT)
    chain = await store.state_chain(conversation, alice)
    assert chain is not None
    head = chain[-1]
    timer = state_event(conversation, head.depth + 1, head.event_hash(), alice, Timer(seconds=60))
    await store.append_state(timer, a1, NOW)
    assert (await send(store, alice, a1, conversation)).expires_ms == NOW + 60_000
    # the earlier deadline wins
    assert (await send(store, alice, a1, conversation, expire_ms=5)).expires_ms == NOW + 5


@pytest.mark.parametrize("blob_kind", BLOB_STORES)
async def test_sweep_frees_attached_and_unattached_blobs(store: Store) -> None:
    alice, a1, _, _, conversation = await pair(store)
    attached = await upload_blob(store, alice, b"attached")
    await send(store, alice, a1, conversation, blobs=[attached], expire_ms=10)
    never = await upload_blob(store, alice, b"never attached")
    fresh = await upload_blob(store, alice, b"uploaded later", now=NOW + DAY_MS)
    assert await store.sweep(NOW + DAY_MS + 1, 30 * DAY_MS, DAY_MS) == 1
    for gone in (attached, never):
        assert await store.blob_for(gone, alice) is None
        assert not await store.blobs.exists(gone)
    assert await store.blob_for(fresh, alice) is not None
    assert await store.blobs.exists(fresh)


async def test_sweep_empties_old_device_queues(store: Store) -> None:
    alice, a1, bob, b1, _ = await pair(store)
    retry, stored = await store.send_to_devices(alice, a1, new_message_id(), [(bob, b1, b"k")], NOW)
    assert not retry
    assert len(stored) == 1
    assert len(await store.fetch_queue(b1, 0, 10)) == 1
    await store.sweep(NOW + 31 * DAY_MS, 30 * DAY_MS, DAY_MS)
    assert await store.fetch_queue(b1, 0, 10) == []


# ---------------------------------------------------------------- blob stores


@pytest.mark.parametrize("blob_kind", BLOB_STORES)
async def test_blob_bytes_round_trip_in_chunks(store: Store, blob_kind: str) -> None:
    alice, _ = await new_user(store, "alice")
    data = os.urandom(2 * CHUNK_BYTES + 12_345)  # three chunks, the last one short
    blob = await upload_blob(store, alice, data)
    assert await read_blob(store, blob) == data
    assert await store.blob_for(blob, alice) == len(data)
    # a directory gives the server a file to send as is; the database does not
    assert (store.blobs.file(blob) is not None) == (blob_kind == "directory")
    empty = await upload_blob(store, alice, b"")
    assert await store.blobs.exists(empty)
    assert await read_blob(store, empty) == b""


@pytest.mark.parametrize("blob_kind", BLOB_STORES)
async def test_an_upload_over_the_limit_leaves_nothing(store: Store) -> None:
    blob = new_blob_id()
    limit = CHUNK_BYTES + 10  # refused after one chunk went in already
    with pytest.raises(ProtocolError) as info:
        await store.blobs.receive(blob, pieces(os.urandom(limit + 1)), limit, NOW)
    assert info.value.code is ErrorCode.PAYLOAD_TOO_LARGE
    assert not await store.blobs.exists(blob)
    assert await read_blob(store, blob) == b""


@pytest.mark.parametrize("blob_kind", BLOB_STORES)
async def test_bytes_without_a_row_are_removed(
    open_store: Callable[[], Store], blob_kind: str
) -> None:
    """A crash between the bytes and the row leaves orphans; they go, in time."""
    async with open_store() as store:
        orphan = new_blob_id()
        await store.blobs.receive(orphan, pieces(b"cut off"), QUOTA, NOW)
        alice, _ = await new_user(store, "alice")
        kept = await upload_blob(store, alice, b"has a row")
        if blob_kind == "database":
            # any node may sweep while others receive uploads: only old orphans go
            await store.sweep(NOW + ORPHAN_AGE_MS - 1, 30 * DAY_MS, 30 * DAY_MS)
            assert await store.blobs.exists(orphan)
            await store.sweep(NOW + ORPHAN_AGE_MS + 1, 30 * DAY_MS, 30 * DAY_MS)
            assert not await store.blobs.exists(orphan)
    async with open_store() as store:  # a directory is cleaned at start
        assert not await store.blobs.exists(orphan)
        assert await read_blob(store, kept) == b"has a row"


@pytest.mark.parametrize("blob_kind", BLOB_STORES)
async def test_blobs_over_quota_are_refused(store: Store) -> None:
    alice, _ = await new_user(store, "alice")
    await store.create_blob(new_blob_id(), alice, 600, NOW, 1000)
    with pytest.raises(ProtocolError) as info:
        await store.create_blob(new_blob_id(), alice, 401, NOW, 1000)
    assert info.value.code is ErrorCode.QUOTA_EXCEEDED
    await store.create_blob(new_blob_id(), alice, 400, NOW, 1000)


# ---------------------------------------------------------------- several nodes


async def test_two_nodes_send_to_one_conversation(open_store: Callable[[], Store]) -> None:
    """Each node commits its own groups; the conversation row orders them."""
    async with open_store() as one, open_store() as two:
        alice, a1, bob, b1, conversation = await pair(one)
        futures = []
        for i in range(150):
            futures.append(send(one, alice, a1, conversation, f"one {i}".encode()))
            futures.append(send(two, bob, b1, conversation, f"two {i}".encode()))
        results = await asyncio.gather(*futures)
        assert sorted(r.seq for r in results) == list(range(3, 3 + 300))
        entries = [e for e in await log_of(two, conversation) if e.kind == 0]
        assert [e.seq for e in entries] == list(range(3, 3 + 300))
        # each node's sends keep their order
        for prefix in (b"one", b"two"):
            mine = [int(e.body.split()[1]) for e in entries if e.body.startswith(prefix)]
            assert mine == list(range(150))


async def test_two_nodes_crossing_two_conversations_do_not_deadlock(
    open_store: Callable[[], Store],
) -> None:
    """Each node's group commit takes the two conversations' rows in the
    opposite order. Waiting for a row while holding another would deadlock
    (and cost PostgreSQL's ``deadlock_timeout``, a second, each time)."""
    async with open_store() as one, open_store() as two:
        alice, a1, bob, b1, x = await pair(one)
        y = await new_conversation(one, alice, a1, [bob])
        futures = []
        for i in range(150):
            futures.append(send(one, alice, a1, x if i % 2 else y))
            futures.append(send(two, bob, b1, y if i % 2 else x))
        async with asyncio.timeout(30):  # deadlocks would take minutes
            results = await asyncio.gather(*futures)
        assert len(results) == 300
        for conversation in (x, y):
            seqs = [e.seq for e in await log_of(two, conversation) if e.kind == 0]
            assert seqs == list(range(3, 3 + 150))


async def test_two_nodes_claim_each_key_once(open_store: Callable[[], Store]) -> None:
    async with open_store() as one, open_store() as two:
        bob, (b1,) = await new_user(one, "bob")
        keys = [one_time_key(bob, b1, f"otk{i}") for i in range(40)]
        fallback = one_time_key(bob, b1, "fb", fallback=True)
        await one.upload_keys(bob, b1, None, keys, fallback, NOW)
        claims = await asyncio.gather(
            *(node.claim_keys([(bob, b1)]) for _ in range(30) for node in (one, two))
        )
        assert all(len(claim) == 1 for claim in claims)
        one_time = [claim[0].key_id for claim in claims if not claim[0].fallback]
        assert len(one_time) == len(set(one_time))  # none twice
        remaining, _ = await two.count_keys(b1)
        assert len(one_time) + remaining == 40  # and none lost


async def test_a_retry_through_two_nodes_stores_one_entry(
    open_store: Callable[[], Store],
) -> None:
    async with open_store() as one, open_store() as two:
        alice, a1, _, _, conversation = await pair(one)
        msg_id = new_message_id()
        outcomes = await asyncio.gather(
            *(
                send(node, alice, a1, conversation, b"x", msg_id=msg_id)
                for _ in range(10)
                for node in (one, two)
            ),
            return_exceptions=True,
        )
        stored = [o for o in outcomes if isinstance(o, delivery.Stored)]
        refused = [o for o in outcomes if not isinstance(o, delivery.Stored)]
        # a retry racing the first store on another node is told to retry
        assert all(isinstance(o, StoreUnavailable) for o in refused)
        assert sum(not s.duplicate for s in stored) == 1
        assert len({s.seq for s in stored}) == 1
        again = await send(two, alice, a1, conversation, b"x", msg_id=msg_id)
        assert again.duplicate
        assert [e.seq for e in await log_of(one, conversation) if e.msg_id == msg_id] == [again.seq]


# ---------------------------------------------------------------- engines


@pytest.mark.parametrize("backend", ["sqlite"])  # PostgreSQL runs jobs on the loop
async def test_a_job_that_suspends_is_refused_on_sqlite(store: Store, backend: str) -> None:

    async def suspends(tx: Tx) -> None:
        await asyncio.sleep(0)

    with pytest.raises(JobSuspended):
        await store.engine.write(suspends)
    with pytest.raises(JobSuspended):
        await store.engine.read(suspends)
    alice, a1, _, _, conversation = await pair(store)  # the writer carries on
    assert (await send(store, alice, a1, conversation)).seq == 3


# ---------------------------------------------------------------- migrations


async def test_reopening_migrates_nothing(open_store: Callable[[], Store], database: str) -> None:
    async with open_store() as store:
        alice, a1, _, _, conversation = await pair(store)
        sent = await send(store, alice, a1, conversation, b"kept")
    async with open_store() as store:
        entries = await store.fetch_log(conversation, sent.seq - 1, None, 10)
        assert [e.body for e in entries] == [b"kept"]
    rows = await raw_query(database, "SELECT version, name FROM schema_migrations ORDER BY version")
    assert rows == [(number, name) for number, name, _ in steps()]


async def test_nodes_starting_at_once_migrate_once(
    open_store: Callable[[], Store], database: str
) -> None:
    nodes = [open_store() for _ in range(3)]
    await asyncio.gather(*(node.__aenter__() for node in nodes))
    try:
        rows = await raw_query(database, "SELECT version FROM schema_migrations ORDER BY version")
        assert rows == [(number,) for number, _, _ in steps()]
    finally:
        for node in nodes:
            await node.__aexit__(None, None, None)


async def test_a_newer_schema_is_refused(
    open_store: Callable[[], Store], database: str, backend: str
) -> None:
    async with open_store():
        pass
    await raw_query(
        database, f"INSERT INTO schema_migrations VALUES ({len(steps()) + 1}, 'future')"
    )
    with pytest.raises(SchemaTooNew, match="schema version"):
        async with open_store():
            pass
    if backend == "sqlite":
        assert open_files(Path(database)) == []  # the refused start closed the file


def open_files(path: Path) -> list[str]:
    """This process's descriptors on ``path`` (and its -wal, -shm), where /proc tells."""
    fds = Path("/proc/self/fd")
    if not fds.is_dir():  # pragma: no cover - not Linux
        return []
    found = []
    for fd in fds.iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith(str(path)):
                found.append(target)
    return found
