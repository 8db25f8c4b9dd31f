"""``python -m bench federation``: 1:1 delivery across two servers beside one server.

Two setups in one run, the same workload on each:

- **one server**: alice and bob on ``a.test``;
- **two servers**: alice on ``a.test``, bob on ``b.test``; every message goes
  alice → a.test (durable) → signed transaction → b.test (durable) → bob.

Each ``taube serve`` is a process of ours on loopback (SQLite, fsync on
commit), the domains mapped to their ports by ``federation.hosts``; the
clients are raw WebSocket clients in this process that acknowledge what
they get. For each setup:

1. **latency**: ``--messages`` sends, open loop at ``--rate`` per second;
   from the send to bob's ``msg`` frame, p50/p90/p99;
2. **maximum sustained rate**: open-loop steps of ``--step-s`` seconds at
   rising rates (``--ramp``); a step holds when bob has every message within
   ``--drain-s`` seconds after its end and the p99 stays under
   ``--p99-bound-ms``; the highest step that held is the result.

On a two-core machine all three processes (two servers and this generator)
share the cores, so the two-server numbers include the second server's CPU
use: read them as relative to the one-server row of the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from bench.harness import header, ms, rate, run_async, table, write_report
from taube.proto import frames
from taube.proto.ids import ConversationId, new_message_id
from taube.testing import RawClient, ServerProcess, seal
from taube.testing.services import free_port

ENV = {
    "TAUBE_AUTH_ARGON2_TIME_COST": "1",
    "TAUBE_AUTH_ARGON2_MEMORY_KIB": "64",
    "TAUBE_LIMITS_AUTH_PER_IP_PER_MINUTE": "100000",
    "TAUBE_LOG_LEVEL": "warning",
    "TAUBE_FEDERATION_ENABLED": "true",
    "TAUBE_FEDERATION_ALLOW_HTTP": "true",
    "TAUBE_FEDERATION_REQUESTS_PER_MINUTE": "10000000",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--messages", type=int, default=1000, help="messages for the latency run")
    parser.add_argument("--rate", type=float, default=100.0, help="sends per second (latency)")
    parser.add_argument(
        "--ramp",
        type=lambda text: [float(x) for x in text.split(",")],
        default=[250.0, 500.0, 1000.0, 2000.0, 4000.0],
        help="rates of the sustained-rate steps, comma-separated",
    )
    parser.add_argument("--step-s", type=float, default=4.0, help="seconds per ramp step")
    parser.add_argument("--drain-s", type=float, default=3.0, help="catch-up allowed after a step")
    parser.add_argument("--p99-bound-ms", type=float, default=1000.0)
    parser.add_argument("--output", type=Path, default=None, help="JSON report path")


class TimedClient(RawClient):
    """A raw client that notes when each message arrived."""

    def __init__(self, base_url: str, address: str) -> None:
        super().__init__(base_url, address)
        self.arrived: dict[str, float] = {}

    async def _on_frame(self, frame: frames.ServerFrame) -> None:
        if isinstance(frame, frames.Message) and frame.body is not None:
            self.arrived.setdefault(frame.id, time.perf_counter())
        await super()._on_frame(frame)


def _hosts(ports: dict[str, int]) -> str:
    return "{" + ", ".join(f'"{d}" = "http://127.0.0.1:{p}"' for d, p in ports.items()) + "}"


@contextlib.asynccontextmanager
async def _setup(
    base: Path, federated: bool
) -> AsyncIterator[tuple[TimedClient, TimedClient, str]]:
    domains = ["a.test", "b.test"] if federated else ["a.test"]
    ports = {d: free_port() for d in domains}
    procs = [
        ServerProcess(
            base / d,
            env={**ENV, "TAUBE_SERVER_DOMAIN": d, "TAUBE_FEDERATION_HOSTS": _hosts(ports)},
            port=ports[d],
        )
        for d in domains
    ]
    async with contextlib.AsyncExitStack() as stack:
        for proc in procs:
            await stack.enter_async_context(proc)
        alice = TimedClient(procs[0].url, "alice@a.test")
        bob = TimedClient(procs[-1].url, f"bob@{domains[-1]}")
        for client in (alice, bob):
            await stack.enter_async_context(client)
            await client.new_account()
            await client.connect()
        chat = await alice.direct(bob.address)
        await bob.wait_for(lambda: bool(bob.entries[chat]), 30)
        yield alice, bob, chat


async def _open_loop(
    alice: TimedClient, bob: TimedClient, chat: str, count: int, per_second: float, drain_s: float
) -> tuple[list[float], int]:
    """Send ``count`` messages at ``per_second``; the delivery latencies (ms)
    and how many arrived within ``drain_s`` after the last send."""
    sent: dict[str, float] = {}
    start = time.perf_counter()
    body = seal(b"x" * 200)
    for n in range(count):
        due = start + n / per_second
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        msg_id = new_message_id()
        sent[msg_id] = due  # from the intended time: the generator's lag counts
        await alice.send_frame(frames.Send(conversation=ConversationId(chat), id=msg_id, body=body))
    with contextlib.suppress(TimeoutError):
        await bob.wait_for(lambda: all(m in bob.arrived for m in sent), drain_s)
    latencies = [(bob.arrived[m] - t) * 1000 for m, t in sent.items() if m in bob.arrived]
    return latencies, len(latencies)


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _measure(args: argparse.Namespace, base: Path, federated: bool) -> dict[str, Any]:
    async with _setup(base, federated) as (alice, bob, chat):
        latencies, got = await _open_loop(alice, bob, chat, args.messages, args.rate, 30.0)
        result: dict[str, Any] = {
            "delivered": got,
            "p50_ms": _percentile(latencies, 0.5),
            "p90_ms": _percentile(latencies, 0.9),
            "p99_ms": _percentile(latencies, 0.99),
            "mean_ms": statistics.fmean(latencies) if latencies else None,
            "steps": [],
        }
        best = None
        for step_rate in args.ramp:
            count = int(step_rate * args.step_s)
            lat, got = await _open_loop(alice, bob, chat, count, step_rate, args.drain_s)
            p99 = _percentile(lat, 0.99)
            held = got == count and p99 is not None and p99 <= args.p99_bound_ms
            result["steps"].append(
                {"rate": step_rate, "delivered": got, "of": count, "p99_ms": p99}
            )
            if not held:
                break
            best = step_rate
        result["max_sustained"] = best
        return result


async def _run(args: argparse.Namespace) -> dict[str, Any]:
    report = header("federation", args)
    with tempfile.TemporaryDirectory(prefix="taube-bench-fed-") as tmp:
        report["one_server"] = await _measure(args, Path(tmp) / "one", federated=False)
        report["two_servers"] = await _measure(args, Path(tmp) / "two", federated=True)
    return report


def run(args: argparse.Namespace) -> int:
    report = run_async(_run(args))
    rows = []
    for name in ("one_server", "two_servers"):
        r = report[name]
        rows.append(
            [
                name.replace("_", " "),
                f"{r['delivered']}/{args.messages}",
                ms(r["p50_ms"]),
                ms(r["p90_ms"]),
                ms(r["p99_ms"]),
                rate(r["max_sustained"])
                + (" (ramp top)" if r["max_sustained"] == args.ramp[-1] else ""),
            ]
        )
    print(f"1:1 send -> delivered, {args.messages} messages at {args.rate:g}/s; then rising rates")
    print(table(["setup", "delivered", "p50 ms", "p90 ms", "p99 ms", "max sustained msg/s"], rows))
    for name in ("one_server", "two_servers"):
        steps = ", ".join(
            f"{s['rate']:g}/s: {s['delivered']}/{s['of']} p99 {ms(s['p99_ms'])} ms"
            for s in report[name]["steps"]
        )
        print(f"{name.replace('_', ' ')} steps: {steps}")
    print(f"report: {write_report('federation', report, args.output)}")
    return 0
