"""``taube serve --database postgresql://...`` with attachments in the database.

A real server process on PostgreSQL (a fresh schema per test, see
``postgres_url`` in ``tests/conftest.py``): 1:1 delivery, a blob of several
chunks up and down, and delivered means deleted, rows and chunks alike. Two
nodes on one database show that any node serves what another stored; live
pushes between nodes wait for the bus (without one, a device gets what
another node stored when it connects).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

from taube.proto import frames
from taube.store.blobstore import CHUNK_BYTES
from taube.testing import ServerProcess, seal
from tests.conftest import ClientFactory, exchange_both_ways

Clients = Callable[[ServerProcess], ClientFactory]


def on_postgres(url: str) -> dict[str, str]:
    return {"TAUBE_STORAGE_DATABASE": url, "TAUBE_STORAGE_BLOBS": "database"}


async def count(url: str, sql: str, *args: object) -> int:
    import asyncpg  # the fixtures have checked that it is there

    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval(sql, *args))
    finally:
        await conn.close()


async def polled(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 10.0) -> None:
    """``eventually`` for a check that queries the database."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"still not true after {timeout} s: {what}")
        await asyncio.sleep(0.05)


async def test_direct_chat_and_a_blob_on_postgres(
    tmp_path: Path, postgres_url: str, clients: Clients
) -> None:
    with ServerProcess(tmp_path / "server", env=on_postgres(postgres_url)) as server:
        make = clients(server)
        alice, bob = await make("alice"), await make("bob")
        conversation = await alice.direct(bob.address)
        await exchange_both_ways(alice, bob, conversation)

        sealed = seal(os.urandom(2 * CHUNK_BYTES + 1000))  # three chunks
        blob = await alice.upload(sealed)
        assert (
            await count(postgres_url, "SELECT count(*) FROM blob_chunks WHERE blob = $1", blob) == 3
        )
        # bob keeps the entry until he has the file: an acknowledged entry
        # may take its blob with it before the download
        bob.auto_ack = False
        await alice.send(conversation, b"see attachment", blobs=[blob])
        await bob.wait_for(lambda: len(bob.messages(conversation)) == 3)
        assert bob.messages(conversation)[-1].blobs == [blob]
        assert bob.http_session is not None
        async with bob.http_session.get(
            f"{server.url}/api/v1/blobs/{blob}",
            headers={"Authorization": f"Bearer {bob.token}"},
        ) as response:
            assert response.status == 200
            assert response.headers["Content-Length"] == str(len(sealed))
            assert response.headers["Content-Type"] == "application/octet-stream"
            assert response.headers["X-Content-Type-Options"] == "nosniff"
            assert await response.read() == sealed
        # nothing of it in the data directory: no SQLite file, no blob files
        assert not (server.data_dir / "taube.db").exists()
        assert not [p for p in (server.data_dir / "blobs").rglob("*") if p.is_file()]

        # both acknowledged everything: the log and the blob's chunks go
        await bob.send_frame(
            frames.Ack(conversation=conversation, seq=bob.messages(conversation)[-1].seq)
        )

        async def all_gone() -> bool:
            rows = await count(
                postgres_url, "SELECT count(*) FROM log WHERE conversation = $1", conversation
            )
            chunks = await count(
                postgres_url, "SELECT count(*) FROM blob_chunks WHERE blob = $1", blob
            )
            return rows == 0 and chunks == 0

        await polled(all_gone, "log and blob chunks deleted once delivered")


async def test_a_second_node_serves_what_the_first_stored(
    tmp_path: Path, postgres_url: str, clients: Clients
) -> None:
    env = on_postgres(postgres_url)
    with (
        ServerProcess(tmp_path / "one", env=env) as one,
        ServerProcess(tmp_path / "two", env=env) as two,
    ):
        alice = await clients(one)("alice")
        bob = await clients(two)("bob", connect=False)  # registered through the other node
        conversation = await alice.direct(bob.address)
        sealed = seal(os.urandom(CHUNK_BYTES + 1))
        blob = await alice.upload(sealed)
        await alice.send(conversation, b"from node one", blobs=[blob])
        await bob.connect()
        await bob.wait_for(lambda: len(bob.messages(conversation)) == 1)
        assert bob.texts(conversation) == [b"from node one"]
        assert await bob.download(blob) == sealed
