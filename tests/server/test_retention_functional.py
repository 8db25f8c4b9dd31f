"""Delivered means deleted, and retention deletes what was not delivered.

Checked on the real files: rows in the server's SQLite database (opened
read-only from the test) and the blob files in its data directory.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from taube.proto import frames
from taube.proto.ids import new_message_id
from taube.testing import ServerProcess, seal
from taube.testing.datadir import DataDir, eventually
from taube.testing.rawclient import HttpError
from tests.conftest import ClientFactory, second_device

Clients = Callable[[ServerProcess], ClientFactory]

#: sweeps often, forgets unattached blobs after a second, keeps the rest 30 days
SWEEPING = {
    "TAUBE_RETENTION_SWEEP_INTERVAL_S": "0.2",
    "TAUBE_RETENTION_UNATTACHED_BLOB_S": "1",
}
#: everything undelivered goes after a second
SHORT_RETENTION = {
    "TAUBE_RETENTION_MAX_AGE_S": "1",
    "TAUBE_RETENTION_SWEEP_INTERVAL_S": "0.2",
}


@pytest.fixture(scope="module")
def sweeping(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with ServerProcess(tmp_path_factory.mktemp("sweeping") / "server", SWEEPING) as proc:
        yield proc


@pytest.fixture
def short_retention(tmp_path: Path) -> Iterator[ServerProcess]:
    with ServerProcess(tmp_path / "server", SHORT_RETENTION) as proc:
        yield proc


async def _not_found(download: Awaitable[bytes]) -> None:
    with pytest.raises(HttpError) as caught:
        await download
    assert caught.value.status == 404
    assert caught.value.code == "not_found"


async def test_acknowledged_by_every_device_is_deleted(
    shared_server: ServerProcess, clients: Clients
) -> None:
    """Rows and blob files stay while one member device lacks them, and go
    once it has acknowledged them (no sweep involved: the default retention
    is 30 days and the sweep runs once a minute)."""
    data = DataDir(shared_server.data_dir)
    make = clients(shared_server)
    alice, bob = await make("alice"), await make("bob")
    bob2 = await second_device(shared_server, bob, connect=False)
    try:
        conversation = await alice.direct(bob.address)
        blob = await alice.upload(seal(os.urandom(4096)))
        sent = [
            await alice.send(conversation, b"with a file", blobs=[blob]),
            await alice.send(conversation, b"second"),
            await alice.send(conversation, b"third"),
        ]
        head = alice.sent()[sent[-1]].seq
        await bob.wait_for(lambda: len(bob.messages(conversation)) == 3)

        def acked(device: str) -> bool:
            return (
                data.count(
                    "SELECT count(*) FROM cursors"
                    " WHERE device = ? AND conversation = ? AND seq = ?",
                    device,
                    conversation,
                    head,
                )
                == 1
            )

        # alice (her echoes) and bob's first device have acknowledged everything ...
        await eventually(lambda: acked(alice.device) and acked(bob.device), what="cursors")
        # ... bob's second device nothing: it all stays
        messages = "SELECT count(*) FROM log WHERE conversation = ? AND kind = 0"
        assert data.count(messages, conversation) == 3
        assert data.blob_row(blob)
        assert data.blob_file(blob)

        await bob2.connect()
        await bob2.wait_for(lambda: len(bob2.messages(conversation)) == 3)
        assert bob2.texts(conversation) == [b"with a file", b"second", b"third"]
        await eventually(lambda: data.log_rows(conversation) == 0, what="log rows deleted")
        await eventually(lambda: data.blob_gone(blob), what="blob deleted")
        assert data.count("SELECT count(*) FROM blob_refs WHERE blob = ?", blob) == 0
        await _not_found(alice.download(blob))
        # the cursors stay (at the head), and delivery goes on from there
        await alice.send(conversation, b"after the prune")
        await bob2.wait_for(lambda: len(bob2.messages(conversation)) == 4)
        assert bob2.duplicates == 0
    finally:
        await bob2.__aexit__(None, None, None)


async def test_undelivered_entries_expire_with_retention(
    short_retention: ServerProcess, clients: Clients
) -> None:
    data = DataDir(short_retention.data_dir)
    make = clients(short_retention)
    alice, bob = await make("alice"), await make("bob", connect=False)
    conversation = await alice.direct(bob.address)
    blob = await alice.upload(seal(os.urandom(4096)))
    await alice.send(conversation, b"never read", blobs=[blob])
    await alice.send(conversation, b"never read either")

    await eventually(lambda: data.log_rows(conversation) == 0, what="log rows swept")
    await eventually(lambda: data.blob_gone(blob), what="blob swept")
    await _not_found(alice.download(blob))

    # bob comes online: nothing is left for him
    await bob.connect()
    await bob.wait_for(lambda: bob.queue_empty >= 1)
    assert bob.entries[conversation] == []
    await _not_found(bob.download(blob))
    # and delivery goes on after the gap
    await alice.send(conversation, b"fresh")
    await bob.wait_for(lambda: len(bob.messages(conversation)) == 1)
    assert bob.texts(conversation) == [b"fresh"]


async def test_disappearing_message_is_deleted_at_expiry_undelivered(
    sweeping: ServerProcess, clients: Clients
) -> None:
    data = DataDir(sweeping.data_dir)
    make = clients(sweeping)
    alice, bob = await make("alice"), await make("bob", connect=False)
    conversation = await alice.direct(bob.address)
    blob = await alice.upload(seal(os.urandom(4096)))
    short = await alice.send(conversation, b"gone in a second", blobs=[blob], expire_ms=1000)
    stays = await alice.send(conversation, b"stays")
    await alice.wait_for(lambda: len(alice.messages(conversation)) == 2)
    [echo] = [m for m in alice.messages(conversation) if m.id == short]
    assert echo.expires_ms == echo.ts + 1000  # the deadline travels with the entry

    def row(msg_id: str) -> int:
        return data.count("SELECT count(*) FROM log WHERE msg_id = ?", msg_id)

    await eventually(lambda: row(short) == 0, what="expired message deleted")
    await eventually(lambda: data.blob_gone(blob), what="its blob deleted")
    assert row(stays) == 1  # the one without a timer is kept for bob

    await bob.connect()
    await bob.wait_for(lambda: bob.queue_empty >= 1)
    assert [m.id for m in bob.messages(conversation)] == [stays]
    assert bob.texts(conversation) == [b"stays"]


async def test_unattached_blob_is_deleted(sweeping: ServerProcess, clients: Clients) -> None:
    data = DataDir(sweeping.data_dir)
    make = clients(sweeping)
    alice, bob = await make("alice"), await make("bob", connect=False)
    conversation = await alice.direct(bob.address)
    loose = await alice.upload(seal(b"never attached"))
    sealed = seal(b"attached, waiting for bob")
    attached = await alice.upload(sealed)
    await alice.send(conversation, b"here", blobs=[attached])

    await eventually(lambda: data.blob_gone(loose), what="unattached blob deleted")
    await _not_found(alice.download(loose))
    # an attached blob waits for its message (retention is 30 days here)
    await asyncio.sleep(0.5)  # a few more sweeps
    assert data.blob_row(attached)
    assert data.blob_file(attached)
    assert await alice.download(attached) == sealed


async def test_to_device_entries_are_deleted_on_ack(
    shared_server: ServerProcess, clients: Clients
) -> None:
    data = DataDir(shared_server.data_dir)
    make = clients(shared_server)
    alice, bob = await make("alice"), await make("bob", connect=False)

    def queued() -> int:
        return data.count(
            "SELECT count(*) FROM device_queue WHERE device = ? AND kind = 0", bob.device
        )

    await alice.send_frame(
        frames.ToDeviceSend(
            id=new_message_id(),
            messages=[
                frames.ToDeviceMessage(user=bob.user, device=bob.device, body=b"olm-ciphertext")
            ],
        )
    )
    await alice.wait_for(lambda: any(isinstance(f, frames.ToDeviceSent) for f in alice.others))
    assert queued() == 1

    bob.auto_ack = False
    await bob.connect()
    await bob.wait_for(lambda: bob.queue_empty >= 1)
    [entry] = [f for f in bob.queue if isinstance(f, frames.ToDevice)]
    assert entry.body == b"olm-ciphertext"
    await asyncio.sleep(0.2)
    assert queued() == 1  # delivered, but not acknowledged: kept

    await bob.send_frame(frames.ToDeviceAck(seq=max(f.seq for f in bob.queue)))
    await eventually(lambda: queued() == 0, what="to-device entry deleted")
    assert data.count("SELECT count(*) FROM device_queue WHERE device = ?", bob.device) == 0


async def test_deleted_ciphertext_leaves_no_bytes_behind(
    sweeping: ServerProcess, clients: Clients
) -> None:
    """Delivered means deleted down to the bytes: after the sweep's checkpoint
    the ciphertext is neither in the database file nor in its WAL."""
    make = clients(sweeping)
    alice, bob = await make("alice"), await make("bob")
    conversation = await alice.direct(bob.address)
    marker = os.urandom(24).hex().encode()
    body = seal(b"secret " + marker)
    msg_id = new_message_id()
    await alice.send_frame(frames.Send(conversation=conversation, id=msg_id, body=body))
    await alice.wait_sent(msg_id)
    await bob.wait_for(lambda: len(bob.messages(conversation)) == 1)
    data = DataDir(sweeping.data_dir)
    await eventually(lambda: data.log_rows(conversation) == 0, what="log rows deleted")
    files = [data.database, data.database.with_name("taube.db-wal")]

    def ciphertext_gone() -> bool:
        return not any(p.exists() and body in p.read_bytes() for p in files)

    await eventually(ciphertext_gone, timeout=10, what="ciphertext bytes gone from disk")
