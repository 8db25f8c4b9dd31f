"""The storage contract, against ``taube.store.Store``.

Every test takes the ``store`` fixture (or ``open_store`` to reopen the same
database), parametrized over the backends in ``BACKENDS``; PostgreSQL joins
the list when the store speaks it. A few tests reach into the SQLite engine
(``sqlite_only``) to hold its writer or read its files directly.
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
from taube.store import Store, delivery
from taube.store.engine import SqliteEngine
from taube.store.migrations import SchemaTooNew, steps

BACKENDS = ["sqlite"]

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
def open_store(backend: str, tmp_path: Path) -> Callable[[], Store]:
    """A new ``Store`` on the test's database; enter it to open it."""
    if backend != "sqlite":  # pragma: no cover - no other backend yet
        raise NotImplementedError(backend)

    def factory() -> Store:
        return Store(tmp_path / "taube.db", tmp_path / "blobs")

    return factory


@pytest.fixture
async def store(open_store: Callable[[], Store]) -> AsyncIterator[Store]:
    async with open_store() as opened:
        yield opened


@pytest.fixture
def sqlite_only(backend: str) -> None:
    if backend != "sqlite":  # pragma: no cover - no other backend yet
        pytest.skip("reaches into the SQLite engine")


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
        conversation=conversation, depth=depth, prev=prev, sender=sender, ts=NOW,
        content=content, signature=SIGNATURE,
    )


async def new_conversation(
    store: Store, owner: UserId, device: DeviceId, others: list[UserId], kind: Kind = Kind.GROUP
) -> ConversationId:
    conversation = new_conversation_id()
    events = [state_event(conversation, 0, "", owner, Create(kind=kind))]
    for user in others:
        last = events[-1]
        events.append(
            state_event(conversation, last.depth + 1, last.event_hash(), owner,
                        Member(target=user, membership="join"))
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


async def upload_blob(store: Store, owner: UserId, data: bytes, now: int = NOW) -> BlobId:
    blob = new_blob_id()
    await store.create_blob(blob, owner, len(data), now, QUOTA)
    path = store.files.path(blob)
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(data)
    return blob


@contextlib.asynccontextmanager
async def writer_held(store: Store) -> AsyncIterator[None]:
    """Hold the SQLite writer inside a job; writes queued meanwhile form the next batch."""
    engine = store.engine
    assert isinstance(engine, SqliteEngine)
    started, release = threading.Event(), threading.Event()

    def hold(conn: sqlite3.Connection) -> None:
        started.set()
        release.wait(30)

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


async def test_a_failing_job_leaves_the_rest_of_its_batch_alone(
    store: Store, sqlite_only: None
) -> None:
    alice, a1, bob, b1, conversation = await pair(store)
    stranger, (s1,) = await new_user(store, "stranger")
    reused = new_message_id()

    def write_then_fail(conn: sqlite3.Connection) -> None:
        delivery.send_message(
            conn, alice, a1, conversation, new_message_id(), b"rolled back", [], None, NOW
        )
        raise RuntimeError("a bug in a job")

    async with writer_held(store):
        batches = store.engine.batches
        good = [send(store, alice, a1, conversation, b"good 0", msg_id=reused)]
        bad: list[tuple[asyncio.Future[Any], type[Exception], ErrorCode | None]] = [
            (send(store, stranger, s1, conversation), ProtocolError, ErrorCode.NOT_FOUND),
            (send(store, alice, a1, new_conversation_id()), ProtocolError, ErrorCode.NOT_FOUND),
            (send(store, alice, a1, conversation, blobs=[new_blob_id()]),
             ProtocolError, ErrorCode.NOT_FOUND),
        ]
        good.append(send(store, bob, b1, conversation, b"good 1"))
        # the id that ``good 0`` took earlier in this very batch
        bad.append((send(store, alice, a1, new_conversation_id(), msg_id=reused),
                    ProtocolError, ErrorCode.CONFLICT))
        bad.append((store.engine.write(write_then_fail), RuntimeError, None))
        good.append(send(store, alice, a1, conversation, b"good 2"))
    outcomes = await asyncio.gather(*good, *(f for f, _, _ in bad), return_exceptions=True)
    # the held job's batch, then one batch for everything queued behind it
    assert store.engine.batches - batches == 2

    stored = outcomes[: len(good)]
    assert all(isinstance(s, delivery.Stored) for s in stored)
    for outcome, (_, kind, code) in zip(outcomes[len(good):], bad, strict=True):
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
        user=user, device=device, key_id=key_id, key=secrets.token_hex(22)[:43],
        fallback=fallback, signature=SIGNATURE,
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


async def test_pruning_releases_blobs(store: Store) -> None:
    alice, a1, bob, b1, conversation = await pair(store)
    blob = await upload_blob(store, alice, b"encrypted attachment")
    shared = await send(store, alice, a1, conversation, blobs=[blob])
    again = await send(store, bob, b1, conversation, blobs=[blob])  # bob forwards it
    assert await store.blob_for(blob, bob) == len(b"encrypted attachment")
    assert [e.blobs for e in await log_of(store, conversation) if e.kind == 0] == [(blob,), (blob,)]

    await store.ack([(a1, conversation, again.seq), (b1, conversation, shared.seq)])
    assert await store.blob_for(blob, alice) is not None  # one entry still names it
    assert store.files.path(blob).exists()
    await store.ack([(b1, conversation, again.seq)])
    assert await store.blob_for(blob, alice) is None
    assert not store.files.path(blob).exists()
    # the owner's quota is given back: the same size fits again at quota == size
    await store.create_blob(new_blob_id(), alice, len(b"encrypted attachment"), NOW,
                            len(b"encrypted attachment"))


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


async def test_sweep_frees_attached_and_unattached_blobs(store: Store) -> None:
    alice, a1, _, _, conversation = await pair(store)
    attached = await upload_blob(store, alice, b"attached")
    await send(store, alice, a1, conversation, blobs=[attached], expire_ms=10)
    never = await upload_blob(store, alice, b"never attached")
    fresh = await upload_blob(store, alice, b"uploaded later", now=NOW + DAY_MS)
    assert await store.sweep(NOW + DAY_MS + 1, 30 * DAY_MS, DAY_MS) == 1
    for gone in (attached, never):
        assert await store.blob_for(gone, alice) is None
        assert not store.files.path(gone).exists()
    assert await store.blob_for(fresh, alice) is not None
    assert store.files.path(fresh).exists()


async def test_sweep_empties_old_device_queues(store: Store) -> None:
    alice, a1, bob, b1, _ = await pair(store)
    retry, stored = await store.send_to_devices(alice, a1, new_message_id(), [(bob, b1, b"k")], NOW)
    assert not retry
    assert len(stored) == 1
    assert len(await store.fetch_queue(b1, 0, 10)) == 1
    await store.sweep(NOW + 31 * DAY_MS, 30 * DAY_MS, DAY_MS)
    assert await store.fetch_queue(b1, 0, 10) == []


# ---------------------------------------------------------------- migrations


async def test_reopening_migrates_nothing(
    open_store: Callable[[], Store], tmp_path: Path, sqlite_only: None
) -> None:
    async with open_store() as store:
        alice, a1, _, _, conversation = await pair(store)
        sent = await send(store, alice, a1, conversation, b"kept")
    async with open_store() as store:
        entries = await store.fetch_log(conversation, sent.seq - 1, None, 10)
        assert [e.body for e in entries] == [b"kept"]
    with contextlib.closing(sqlite3.connect(tmp_path / "taube.db")) as conn:
        rows = conn.execute("SELECT version, name FROM schema_migrations ORDER BY version")
        assert rows.fetchall() == [(number, name) for number, name, _ in steps()]


async def test_a_newer_schema_is_refused(
    open_store: Callable[[], Store], tmp_path: Path, sqlite_only: None
) -> None:
    async with open_store():
        pass
    with contextlib.closing(sqlite3.connect(tmp_path / "taube.db")) as conn, conn:
        conn.execute("INSERT INTO schema_migrations VALUES (?, ?)", (len(steps()) + 1, "future"))
    with pytest.raises(SchemaTooNew, match="schema version"):
        async with open_store():
            pass
    assert open_files(tmp_path / "taube.db") == []  # the refused start closed the file


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
