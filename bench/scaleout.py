"""``python -m bench scaleout``: one node against two on PostgreSQL, and the Redis hop.

The ``delivery`` workload's open-loop machinery (``bench.delivery``), run
against nodes on PostgreSQL with the Redis bus, in three phases:

1. **one node**: every sender/receiver pair on node A; fixed rates, then a
   short ramp to the maximum sustained durable send rate;
2. **two nodes**: half the pairs on node A, half on node B (each pair on one
   node, so this measures what a second node adds, not the hop); the same
   steps;
3. **the Redis hop**: on those two nodes, at one moderate rate, half the
   pairs with sender and receiver on the same node and half with the sender
   on A and the receiver on B. The difference in delivery latency is what
   the bus costs: publish, Redis, the other node's read from PostgreSQL.

Each phase gets a database of its own on the PostgreSQL server (created and
dropped by the run) and a Redis channel prefix of its own. Nothing is
pinned: PostgreSQL, Redis, the nodes and this generator share the machine's
cores, as they would on one host; the table's "other CPU" is mostly
PostgreSQL. The run stops starting steps after ``--max-time`` seconds.
Results go to stdout and ``bench/results/scaleout-<time>.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import Any

from bench import delivery, loadgen
from taube.testing import RawClient, ServerProcess

POSTGRES_URL = os.environ.get(
    "TAUBE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("TAUBE_TEST_REDIS", "redis://127.0.0.1:6379/0")


def add_arguments(p: argparse.ArgumentParser) -> None:
    delivery.add_arguments(p)
    p.set_defaults(
        pairs=40,
        rates=[500.0, 1000.0, 1500.0],
        duration=5.0,
        warmup=2.0,
        ramp_duration=3.0,
        ramp_steps=4,
        ramp_refine=1,
        drain_timeout=5.0,
        max_time=150.0,
        pin=False,
    )
    p.add_argument(
        "--postgres",
        default=POSTGRES_URL,
        help="a PostgreSQL server the run may create databases on (TAUBE_TEST_POSTGRES)",
    )
    p.add_argument("--redis", default=REDIS_URL, help="Redis for the bus (TAUBE_TEST_REDIS)")
    p.add_argument(
        "--hop-rate", type=float, default=300.0, help="messages/s in the hop phase (300)"
    )
    p.add_argument("--hop-duration", type=float, default=8.0, help="seconds of the hop phase (8)")


# ---------------------------------------------------------------- nodes and placement


class ClusterRun(delivery.DeliveryRun):
    """A delivery run whose devices live on several nodes.

    ``placement(i)`` says on which node (index) pair ``i``'s sender and
    receiver connect.
    """

    def __init__(
        self,
        args: argparse.Namespace,
        nodes: list[ServerProcess],
        placement: list[tuple[int, int]],
        deadline: float,
    ) -> None:
        pids = [node.proc.pid for node in nodes if node.proc is not None]
        super().__init__(args, nodes[0], pids[0])
        self.server_pids = pids
        self.nodes = nodes
        self.placement = placement
        self.deadline = deadline
        self.last: delivery.Tracker | None = None

    def _time_left(self) -> bool:
        return time.perf_counter() < self.deadline

    def _result(self, tracker: delivery.Tracker, *args: Any) -> dict[str, Any]:
        self.last = tracker
        return super()._result(tracker, *args)

    def _address(self, node: int) -> tuple[str, int]:
        url = urllib.parse.urlsplit(self.nodes[node].url)
        assert url.hostname is not None
        assert url.port is not None
        return url.hostname, url.port

    async def setup(self) -> None:
        args = self.args
        limit = asyncio.Semaphore(8)
        body = os.urandom(args.body_bytes)
        tag = self.bench.tag

        async def pair(i: int) -> delivery.Pair:
            url = self.nodes[self.placement[i][0]].url
            async with (
                limit,
                RawClient(url, f"s{i}-{tag}@{self.domain}") as s,
                RawClient(url, f"r{i}-{tag}@{self.domain}") as r,
            ):
                await s.new_account(one_time_keys=1)
                await r.new_account(one_time_keys=1)
                conversation = await s.direct(r.address)
                tokens = s.token, r.token
            sender = delivery.Device(self.bench, "sender", tokens[0])
            receiver = delivery.Device(self.bench, "receiver", tokens[1])
            return delivery.Pair(
                sender, receiver, conversation, *delivery.send_template(conversation, body)
            )

        self.status_line = f"setting up {args.pairs} pairs"
        self.pairs = list(await asyncio.gather(*(pair(i) for i in range(args.pairs))))
        opens = []
        for i, p in enumerate(self.pairs):
            sender_node, receiver_node = self.placement[i]
            opens.append(p.sender.open(*self._address(sender_node)))
            opens.append(p.receiver.open(*self._address(receiver_node)))
        await asyncio.gather(*opens)


def _latencies(tracker: delivery.Tracker, pairs: int, which: set[int]) -> dict[str, Any]:
    """Ack and delivery latency (from the due time) of the arrivals of ``which`` pairs."""
    acks, deliveries = [], []
    expected = 0
    for i in range(tracker.fired):
        if i % pairs not in which:
            continue
        expected += 1
        due = tracker.intended[i]
        if tracker.acked[i]:
            acks.append(tracker.acked[i] - due)
        if tracker.delivered[i]:
            deliveries.append(tracker.delivered[i] - due)
    return {
        "messages": expected,
        "ack_latency_ms": loadgen.summarize(acks, expected),
        "delivery_latency_ms": loadgen.summarize(deliveries, expected),
    }


# ---------------------------------------------------------------- services


async def _postgres(url: str, statement: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url, timeout=5)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


def _database_url(url: str, name: str) -> str:
    return urllib.parse.urlsplit(url)._replace(path=f"/{name}").geturl()


class Phase:
    """Nodes on a fresh database and channel; stopped and dropped on exit."""

    def __init__(self, args: argparse.Namespace, root: Path, name: str, count: int) -> None:
        self.args = args
        self.database = f"taube_bench_{secrets.token_hex(4)}"
        url = _database_url(args.postgres, self.database)
        env = {
            **delivery.SERVER_ENV,
            "TAUBE_STORAGE_DATABASE": url,
            "TAUBE_STORAGE_BLOBS": "database",
            "TAUBE_BUS_URL": args.redis,
            "TAUBE_BUS_CHANNEL": f"taube-bench-{secrets.token_hex(4)}",
            **dict(args.server_env),
        }
        self.nodes = [
            ServerProcess(root / f"{name}-node{i}", env={**env, "TAUBE_SERVER_NODE_ID": f"n{i}"})
            for i in range(count)
        ]

    async def __aenter__(self) -> Phase:
        await _postgres(self.args.postgres, f"CREATE DATABASE {self.database}")
        for node in self.nodes:
            await asyncio.to_thread(node.start)
        return self

    async def __aexit__(self, *exc: object) -> None:
        for node in self.nodes:
            await asyncio.to_thread(node.stop)
        await _postgres(self.args.postgres, f"DROP DATABASE IF EXISTS {self.database} WITH (FORCE)")


# ---------------------------------------------------------------- the run


async def _main(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    started = time.perf_counter()
    report: dict[str, Any] = {}
    n = args.pairs

    async def throughput(name: str, nodes: int, share: float) -> dict[str, Any]:
        deadline = started + args.max_time * share  # no new step after this
        async with Phase(args, root, name, nodes) as phase:
            placement = [(i % nodes, i % nodes) for i in range(n)]
            run = ClusterRun(args, phase.nodes, placement, deadline)
            try:
                phases = await run.run()
            finally:
                await run.close()
            print(f"\n{name}:", file=sys.stderr)
            print(delivery.table([s for s in run.steps if s["phase"] != "warmup"]))
            return {"steps": run.steps, "ramp": phases["ramp"]}

    report["one_node"] = await throughput("one node", 1, 0.45)
    report["two_nodes"] = await throughput("two nodes", 2, 0.9)

    async with Phase(args, root, "hop", 2) as phase:
        # even pairs on node A alone, odd pairs from A to B
        placement = [(0, 0) if i % 2 == 0 else (0, 1) for i in range(n)]
        run = ClusterRun(args, phase.nodes, placement, time.perf_counter() + 60)
        try:
            with run.progress:
                await run.setup()
                await run.step("warmup", min(200.0, args.hop_rate), 2.0)
                step = await run.step("hop", args.hop_rate, args.hop_duration)
        finally:
            await run.close()
        assert run.last is not None
        report["hop"] = {
            "step": step,
            "same_node": _latencies(run.last, n, set(range(0, n, 2))),
            "across_nodes": _latencies(run.last, n, set(range(1, n, 2))),
        }
    report["duration_s"] = time.perf_counter() - started
    return report


def _best(result: dict[str, Any]) -> str:
    ramp = result["ramp"] or {}
    held = ramp.get("max_sustained_durable_rate")
    return f"{held:,.0f}/s" if held else "none held"


def summary(report: dict[str, Any]) -> str:
    lines = ["", "durable sends/s (ack p99 ms) per fixed rate:"]
    for key, label in (("one_node", "1 node "), ("two_nodes", "2 nodes")):
        steps = [s for s in report[key]["steps"] if s["phase"] == "fixed"]
        cells = ", ".join(
            f"{s['offered_rate']:,.0f}: {s['durable_rate']:,.0f}"
            f" ({delivery._ms(s['ack_latency_ms']['p99'])})"
            for s in steps
        )
        lines.append(f"  {label} {cells}; max sustained {_best(report[key])}")
    hop = report["hop"]
    same = hop["same_node"]["delivery_latency_ms"]
    across = hop["across_nodes"]["delivery_latency_ms"]
    lines.append(
        f"delivery latency at {hop['step']['offered_rate']:,.0f}/s, p50 / p99 ms:"
        f" same node {delivery._ms(same['p50'])} / {delivery._ms(same['p99'])},"
        f" across nodes {delivery._ms(across['p50'])} / {delivery._ms(across['p99'])}"
    )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    root = Path(tempfile.mkdtemp(prefix="taube-bench-scaleout-", dir=args.tmp_dir))
    started_at = time.time()
    try:
        report = delivery._event_loop_runner()(_main(args, root))
    except KeyboardInterrupt:
        print("\nscaleout: interrupted; the nodes were stopped", file=sys.stderr)
        return 130
    finally:
        if args.keep_data:
            print(f"node data kept in {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)
    report = {
        "workload": "scaleout",
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started_at)),
        "argv": sys.argv[1:],
        "environment": {
            "git_commit": delivery._git_commit(),
            "versions": delivery._versions(),
            "cpu": delivery._cpu_model(),
            "cpus": os.cpu_count(),
        },
        **report,
    }
    output: Path = args.output or delivery.RESULTS_DIR / time.strftime(
        "scaleout-%Y%m%d-%H%M%S.json", time.gmtime(started_at)
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2) + "\n")
    print(summary(report))
    print(f"results: {output}", file=sys.stderr)
    return 0
