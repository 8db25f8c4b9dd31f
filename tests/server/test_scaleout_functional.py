"""Several nodes on PostgreSQL and Redis behind nginx, losing nothing.

Real services on loopback: the machine's PostgreSQL (a fresh schema per
test) and Redis (a random channel prefix per test), nginx started by the
test in front of the nodes (``taube.testing.services.Nginx``). The tests that
restart Redis or PostgreSQL start private ones of their own instead, and
restart those; the machine's are never touched.

Some clients connect through nginx like any client would; some are pinned to
one node (its own URL) so that a test knows a message crosses nodes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from taube.proto import frames, http
from taube.proto.ids import DeviceId, new_message_id
from taube.store.blobstore import CHUNK_BYTES
from taube.testing import RawClient, ServerProcess, seal
from taube.testing.outbox import Outbox
from taube.testing.rawclient import HttpError
from taube.testing.services import Nginx, PostgresCluster, RedisServer
from tests.conftest import Clients, fresh_address, missing_service, second_device
from tests.server.streams import (
    Plan,
    RecordingClient,
    check_delivery,
    check_outboxes,
    group_and_ring,
    wait_delivered,
)
from tests.server.test_postgres_functional import count, on_postgres, polled

#: nginx reaches the nodes from here, so they believe its X-Forwarded-For
TRUSTED_PROXIES = '["127.0.0.1"]'


class Cluster:
    """``n`` nodes sharing one database and one bus, nginx in front."""

    def __init__(self, root: Path, n: int, env: dict[str, str], *, nginx: bool = True) -> None:
        self.root = root
        env = {"TAUBE_SERVER_TRUSTED_PROXIES": TRUSTED_PROXIES, **env}
        # the test stands for many clients: a node must not throttle its frames
        env.setdefault("TAUBE_LIMITS_WS_RATE", "100000")
        env.setdefault("TAUBE_LIMITS_WS_BURST", "100000")
        self.nodes = [
            ServerProcess(root / f"node{i}", env={**env, "TAUBE_SERVER_NODE_ID": f"node{i}"})
            for i in range(n)
        ]
        self.nginx: Nginx | None = None
        self._with_nginx = nginx

    @property
    def lb(self) -> Nginx:
        assert self.nginx is not None
        return self.nginx

    def start(self) -> None:
        for node in self.nodes:
            node.start()
        if self._with_nginx:
            self.nginx = Nginx(self.root / "nginx", [node.port for node in self.nodes])
            self.nginx.start()

    def stop(self) -> None:
        if self.nginx is not None:
            self.nginx.stop()
        for node in self.nodes:
            with contextlib.suppress(Exception):
                node.stop()

    def logs(self) -> str:
        return "\n".join(node.logs() for node in self.nodes)


@pytest.fixture
def need_nginx() -> None:
    reason = Nginx.missing()
    if reason:
        missing_service(reason)


@pytest.fixture
def cluster_env(postgres_url: str, bus_env: dict[str, str]) -> dict[str, str]:
    return {**on_postgres(postgres_url), **bus_env}


@contextlib.contextmanager
def running(cluster: Cluster) -> Iterator[Cluster]:
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def three_nodes(tmp_path: Path, cluster_env: dict[str, str], need_nginx: None) -> Iterator[Cluster]:
    with running(Cluster(tmp_path, 3, cluster_env)) as cluster:
        yield cluster


@pytest.fixture
def lazy_three_nodes(
    tmp_path: Path, cluster_env: dict[str, str], need_nginx: None
) -> Iterator[Cluster]:
    """Three nodes whose re-check comes only every minute: a delivery within
    seconds must have come through the bus."""
    env = {**cluster_env, "TAUBE_BUS_RECHECK_S": "60"}
    with running(Cluster(tmp_path, 3, env)) as cluster:
        yield cluster


async def test_one_to_one_and_group_through_nginx(three_nodes: Cluster, clients: Clients) -> None:
    make = clients(three_nodes.lb)
    alice, bob, carol, dave = [await make(name) for name in ("alice", "bob", "carol", "dave")]
    direct = await alice.direct(bob.address)
    group = await carol.group([alice.address, bob.address, dave.address])
    await alice.send(direct, b"hi bob")
    await bob.send(direct, b"hi alice")
    for round_ in range(3):
        for person in (alice, bob, carol, dave):
            await person.send(group, f"{person.address} {round_}".encode())
    await bob.wait_for(lambda: len(bob.texts(direct)) == 1)
    await alice.wait_for(lambda: len(alice.texts(direct)) == 1)
    assert bob.texts(direct) == [b"hi bob"]
    assert alice.texts(direct) == [b"hi alice"]
    for person in (alice, bob, carol, dave):
        await person.wait_for(lambda p=person: len(p.messages(group)) == 12)  # type: ignore[misc]
        assert len(person.texts(group)) == 9  # the others' messages (its own come body-less)
        seqs = [m.seq for m in person.messages(group)]
        assert seqs == sorted(seqs)
        assert person.duplicates == 0
    assert "Traceback" not in three_nodes.logs()


async def test_a_device_on_one_node_gets_what_another_node_stored_at_once(
    lazy_three_nodes: Cluster, clients: Clients
) -> None:
    a, _, c = lazy_three_nodes.nodes
    bob = await clients(a)("bob")  # pinned to node A
    alice = await clients(c)("alice")  # pinned to node C
    conversation = await alice.direct(bob.address)
    await bob.wait_for(lambda: len(bob.entries[conversation]) >= 1)  # the state entries
    for n in range(5):
        await alice.send(conversation, f"across nodes {n}".encode())
        # well before the minute-long re-check: the bus woke node A
        await bob.wait_for(lambda n=n: len(bob.texts(conversation)) == n + 1, timeout=10)  # type: ignore[misc]
    await alice.wait_for(lambda: len(alice.messages(conversation)) == 5)

    # typing is not stored: it crosses only through the bus
    await bob.send_frame(frames.Typing(conversation=conversation, active=True))
    await alice.wait_for(
        lambda: any(isinstance(f, frames.TypingEvent) for f in alice.others), timeout=10
    )
    typing = next(f for f in alice.others if isinstance(f, frames.TypingEvent))
    assert typing.user == bob.user
    assert typing.active

    # to-device messages wake the receiving node too
    await alice.send_frame(
        frames.ToDeviceSend(
            id=new_message_id(),
            messages=[
                frames.ToDeviceMessage(user=bob.user, device=DeviceId(bob.device), body=b"k")
            ],
        )
    )
    await bob.wait_for(lambda: any(isinstance(f, frames.ToDevice) for f in bob.queue), timeout=10)


async def test_membership_changes_reach_every_node(
    lazy_three_nodes: Cluster, clients: Clients
) -> None:
    a, b, _ = lazy_three_nodes.nodes
    alice = await clients(b)("alice")  # changes membership through node B
    dave = await clients(a)("dave")  # sends through node A
    carol = await clients(a)("carol")  # is added and removed, connected to node A
    group = await alice.group([dave.address])
    await dave.send(group, b"before carol")  # node A caches the members now
    await alice.add(group, carol.address)
    await carol.wait_for(lambda: len(carol.entries[group]) >= 1, timeout=10)
    await carol.send(group, b"carol is in")  # node A must know she is a member
    await dave.wait_for(lambda: b"carol is in" in dave.texts(group), timeout=10)
    await dave.send(group, b"welcome carol")
    await carol.wait_for(lambda: b"welcome carol" in carol.texts(group), timeout=10)

    leave_seq = await alice.remove(group, carol.address)
    await carol.wait_for(lambda: leave_seq in carol.seen[group], timeout=10)
    await dave.send(group, b"after carol left")
    await alice.wait_for(lambda: b"after carol left" in alice.texts(group), timeout=10)
    await asyncio.sleep(0.3)
    assert b"after carol left" not in carol.texts(group)
    assert max(carol.seen[group]) == leave_seq
    await carol.send(group, b"still here?", wait=False)
    await carol.wait_for(lambda: any(e.code == "not_found" for e in carol.errors()))


async def test_removing_a_device_closes_its_socket_on_another_node(
    lazy_three_nodes: Cluster, clients: Clients
) -> None:
    a, b, _ = lazy_three_nodes.nodes
    bob = await clients(a)("bob")
    other = await second_device(b, bob, connect=False)
    try:
        assert bob.closed is not None
        started = time.monotonic()
        await other.request(
            "DELETE", f"/api/v1/devices/{bob.device}", http.RemoveDevice(password=bob.password)
        )
        code, _ = await asyncio.wait_for(asyncio.shield(bob.closed), timeout=5)
        elapsed = time.monotonic() - started
        assert code == 4401
        print(f"closed on the other node {elapsed * 1000:.0f} ms after the removal")
    finally:
        await other.__aexit__(None, None, None)


async def test_a_blob_uploaded_through_one_node_downloads_through_another(
    three_nodes: Cluster, clients: Clients, postgres_url: str
) -> None:
    a, b, c = three_nodes.nodes
    alice = await clients(a)("alice")
    bob = await clients(b)("bob")
    eve = await clients(c)("eve")
    conversation = await alice.direct(bob.address)
    sealed = seal(os.urandom(2 * CHUNK_BYTES + 7))
    blob = await alice.upload(sealed)  # through node A
    await alice.send(conversation, b"attached", blobs=[blob])
    await bob.wait_for(lambda: len(bob.messages(conversation)) == 1, timeout=10)
    assert await bob.download(blob) == sealed  # through node B
    with pytest.raises(HttpError) as refused:  # not a member, through node C
        await eve.download(blob)
    assert refused.value.status == 404

    # everyone has it: entry, reference and chunks go
    async def gone() -> bool:
        chunks = await count(postgres_url, "SELECT count(*) FROM blob_chunks WHERE blob = $1", blob)
        rows = await count(postgres_url, "SELECT count(*) FROM blobs WHERE blob = $1", blob)
        return chunks == 0 and rows == 0

    await polled(gone, "the blob deleted once every device acknowledged its message")
    with pytest.raises(HttpError) as deleted:
        await bob.download(blob)
    assert deleted.value.status == 404


async def _register(url: str, forwarded_for: str) -> int:
    """Register through ``url`` claiming to come from ``forwarded_for``; the status."""
    async with RawClient(url, fresh_address("xff")) as client:
        credentials = http.Credentials(
            address=client.address, password=client.password, device_name="xff"
        )
        try:
            await client.request(
                "POST", "/api/v1/accounts", credentials, headers={"X-Forwarded-For": forwarded_for}
            )
        except HttpError as exc:
            return exc.status
        return 200


async def test_x_forwarded_for_counts_only_from_a_trusted_proxy(
    tmp_path: Path, cluster_env: dict[str, str], need_nginx: None
) -> None:
    env = {**cluster_env, "TAUBE_LIMITS_AUTH_PER_IP_PER_MINUTE": "2"}
    with running(Cluster(tmp_path / "trusted", 1, env)) as trusted:
        url = trusted.lb.url
        # nginx appends the address it saw (127.0.0.1, this test) to what the
        # client wrote; the node trusts nginx, so that client address counts
        assert [await _register(url, "203.0.113.5") for _ in range(3)] == [200, 200, 429]
        assert await _register(url, "203.0.113.6") == 200

    untrusted_env = {**env, "TAUBE_SERVER_TRUSTED_PROXIES": '["10.9.8.7"]'}
    with running(Cluster(tmp_path / "untrusted", 1, untrusted_env)) as untrusted:
        url = untrusted.lb.url
        # the header is ignored: every request comes from nginx's address
        statuses = [await _register(url, f"203.0.113.{i}") for i in (5, 6, 7)]
        assert statuses == [200, 200, 429]


async def test_sigterm_drains_a_node_and_its_clients_move_on(
    three_nodes: Cluster, clients: Clients
) -> None:
    make = clients(three_nodes.lb)
    people = [await make(f"drain{i}") for i in range(3)]  # one per node (least_conn)
    group = await people[0].group([p.address for p in people[1:]])
    # quiet first: a client still writing acks when nginx closes its side
    # would get a reset that can discard the close frame before it is read
    for person in people:
        await person.wait_for(lambda p=person: 3 in p.seen[group])  # type: ignore[misc]
    await asyncio.sleep(0.3)
    victim = three_nodes.nodes[0]
    code = await asyncio.to_thread(victim.stop)
    assert code == 0
    assert "draining" in victim.logs()
    closed = [p for p in people if p.closed is not None and p.closed.done()]
    assert closed, "node 0 had no client"
    for person in closed:
        assert person.closed is not None
        assert person.closed.result()[0] == 1001, person.closed.result()
        outbox = Outbox(person)
        await outbox.reconnect()  # through nginx, to another node
    for person in people:
        await person.send(group, f"after the drain from {person.address}".encode())
    for person in people:
        await person.wait_for(
            lambda p=person: len(p.texts(group)) == 2,  # type: ignore[misc]
            timeout=10,
        )


# ---------------------------------------------------------------- long runs


PEOPLE = 5
WINDOW = 16


async def _people(urls: list[str], stack: contextlib.AsyncExitStack) -> list[RecordingClient]:
    people = []
    for i, url in enumerate(urls):
        person = RecordingClient(url, fresh_address(f"run{i}"))
        await stack.enter_async_context(person)
        await person.new_account()
        await person.connect()
        people.append(person)
    return people


async def _stream(outbox: Outbox, timeout: float) -> int:
    """Send everything, reconnecting whenever the connection drops; returns
    the number of reconnections."""
    reconnects = 0
    async with asyncio.timeout(timeout):
        while not await outbox.flush(timeout=timeout):
            reconnects += 1
            await outbox.reconnect(timeout=timeout)
    return reconnects


async def _until_acked(plan: Plan, count_: int, streams: list[asyncio.Task[int]]) -> None:
    async with asyncio.timeout(60):
        while sum(len(o.acked) for o in plan.outboxes) < count_:
            assert not all(s.done() for s in streams), "the streams ended too early"
            await asyncio.sleep(0.005)
            for outbox in plan.outboxes:
                outbox.collect()


async def _settle(plan: Plan, streams: list[asyncio.Task[int]], timeout: float) -> list[int]:
    reconnects = list(await asyncio.gather(*streams))
    for outbox in plan.outboxes:  # one that finished before its node went away
        if not outbox.connected:
            await outbox.reconnect()
    await wait_delivered(plan, timeout=timeout)
    return reconnects


@pytest.mark.slow
async def test_kill_9_one_node_of_three_mid_stream(three_nodes: Cluster) -> None:
    per_person = 400  #: 2000 messages in all
    async with contextlib.AsyncExitStack() as stack:
        people = await _people([three_nodes.lb.url] * PEOPLE, stack)
        plan = await group_and_ring(people, per_person, WINDOW, seed=424242)
        assert plan.total == 2000
        streams = [asyncio.create_task(_stream(o, timeout=120)) for o in plan.outboxes]
        await _until_acked(plan, 600, streams)
        three_nodes.nodes[0].kill()
        before_kill = dict(plan.acked())
        reconnects = await _settle(plan, streams, timeout=60)
        acked = check_outboxes(plan)
        assert sum(reconnects) >= 1, "node 0 had no client"
        for msg_id, sent in before_kill.items():
            assert acked[msg_id].seq == sent.seq
        duplicates = check_delivery(plan, acked)
        print(
            f"reconnected clients: {sum(1 for r in reconnects if r)}, acknowledged before the"
            f" kill: {len(before_kill)}, retried: {sum(len(o.retried) for o in plan.outboxes)},"
            f" redelivered frames: {duplicates}"
        )


@pytest.fixture
async def private_redis(tmp_path: Path) -> AsyncIterator[RedisServer]:
    reason = RedisServer.missing()
    if reason:
        missing_service(reason)
    server = RedisServer(tmp_path / "redis")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.slow
async def test_restarting_redis_mid_stream_delays_and_loses_nothing(
    tmp_path: Path, postgres_url: str, private_redis: RedisServer
) -> None:
    env = {
        **on_postgres(postgres_url),
        "TAUBE_BUS_URL": private_redis.url,
        "TAUBE_BUS_RECHECK_S": "60",  # the bus's own recovery must do it
    }
    per_person = 200
    with running(Cluster(tmp_path, 2, env, nginx=False)) as cluster:
        a, b = cluster.nodes
        async with contextlib.AsyncExitStack() as stack:
            people = await _people([a.url, b.url, a.url, b.url, a.url], stack)
            plan = await group_and_ring(people, per_person, WINDOW, seed=7)
            streams = [asyncio.create_task(_stream(o, timeout=120)) for o in plan.outboxes]
            await _until_acked(plan, 300, streams)
            private_redis.stop()
            await asyncio.sleep(2.0)
            private_redis.start()
            back = asyncio.get_running_loop().time()
            reconnects = await _settle(plan, streams, timeout=20)
            late = max(t for p in people for t in p.arrived.values()) - back
            acked = check_outboxes(plan)
            assert reconnects == [0] * PEOPLE  # Redis going away closes no WebSocket
            check_delivery(plan, acked)
            print(f"everything delivered {late:.1f} s after Redis came back")
            assert late < 10, "a few seconds at most"
        logs = cluster.logs()
        assert "lost the bus subscription" in logs
        assert "subscribed to the bus again" in logs


@pytest.fixture
def private_postgres() -> Iterator[PostgresCluster]:
    reason = PostgresCluster.missing()
    if reason:
        missing_service(reason)
    cluster = PostgresCluster.in_temp_dir()
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.remove()


@pytest.mark.slow
async def test_restarting_postgresql_mid_stream_loses_nothing_acknowledged(
    tmp_path: Path, private_postgres: PostgresCluster, bus_env: dict[str, str]
) -> None:
    env = {**on_postgres(private_postgres.url), **bus_env}
    per_person = 200
    with running(Cluster(tmp_path, 2, env, nginx=False)) as cluster:
        a, b = cluster.nodes
        async with contextlib.AsyncExitStack() as stack:
            people = await _people([a.url, b.url, a.url, b.url, a.url], stack)
            plan = await group_and_ring(people, per_person, WINDOW, seed=11)
            streams = [asyncio.create_task(_stream(o, timeout=120)) for o in plan.outboxes]
            await _until_acked(plan, 300, streams)
            await asyncio.to_thread(private_postgres.stop)
            await asyncio.sleep(2.0)
            await asyncio.to_thread(private_postgres.start)
            await _settle(plan, streams, timeout=30)
            acked = check_outboxes(plan)
            errors = [e for p in people for e in p.errors()]
            assert errors, "no send failed while PostgreSQL was down"
            assert {e.code for e in errors} == {"unavailable"}
            duplicates = check_delivery(plan, acked)
            print(
                f"sends refused while down: {len(errors)},"
                f" retried: {sum(len(o.retried) for o in plan.outboxes)},"
                f" redelivered frames: {duplicates}"
            )
