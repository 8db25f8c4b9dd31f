"""``python -m bench idle``: server memory per idle authenticated connection.

Setup: one account per connection (registered over HTTP, no keys and no
conversations). The server's resident memory (``VmRSS`` in
``/proc/PID/status``) is read once every account exists, then the devices
connect (hello, welcome, ``queue.empty``) up to each count of ``--counts``
in turn; after ``--settle`` seconds of quiet the memory is read again.
Memory per connection at a count is the growth since the baseline divided
by the connections open.

What it leaves out: kernel socket buffers (not in a process's RSS), TLS
(none on loopback), and the conversations a real device has (each adds a
cursor to its connection's dictionary). The server's ping every
``limits.heartbeat_s`` (30 s) and its pong are the only traffic while idle.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import secrets
import sys
import time
from pathlib import Path
from typing import Any

from bench import harness, loadgen, population
from bench.population import BenchDevice


def _counts(text: str) -> list[int]:
    try:
        counts = sorted(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of numbers: {text!r}") from None
    if not counts or counts[0] < 1:
        raise argparse.ArgumentTypeError("counts must be positive")
    return counts


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--counts",
        type=_counts,
        default=_counts("5000,15000"),
        help="idle connections to measure at, comma-separated (5000,15000)",
    )
    p.add_argument(
        "--settle", type=float, default=3.0, help="seconds of quiet before each reading (3)"
    )
    p.add_argument("--no-pin", dest="pin", action="store_false", help="do not pin CPUs")
    p.add_argument("--tmp-dir", type=Path, default=None, help="server data parent dir")
    p.add_argument("--keep-data", action="store_true", help="keep the server's data")
    p.add_argument("--output", type=Path, default=None, help="results JSON path")


async def _measure(args: argparse.Namespace, server: harness.RunningServer) -> dict[str, Any]:
    total = args.counts[-1]
    host, port = server.address
    tag = secrets.token_hex(3)
    status = "starting"
    started = time.perf_counter()
    progress = loadgen.Progress(lambda: f"[{time.perf_counter() - started:5.0f}s] {status}")
    steps: list[dict[str, Any]] = []
    devices: list[BenchDevice] = []
    with progress:

        def registered(n: int) -> None:
            nonlocal status
            status = f"registering {n:,}/{total:,} accounts"

        addresses = [f"idle{i}-{tag}@{server.domain}" for i in range(total)]
        accounts = await population.register_many(server.url, addresses, progress=registered)
        progress.log(f"registered {total:,} accounts in {time.perf_counter() - started:.0f}s")
        gc.collect()
        status = "waiting for the server to settle"
        await asyncio.sleep(args.settle)
        baseline = harness.rss_kib(server.pid)
        own_baseline = harness.rss_kib_self()
        progress.log(f"server RSS with no connections: {baseline / 1024:,.1f} MiB")
        devices = [BenchDevice(a.token) for a in accounts]
        try:
            opened = 0
            for count in args.counts:

                def connected(n: int, base: int = opened, count: int = count) -> None:
                    nonlocal status
                    status = f"connecting: {base + n:,}/{count:,} open"

                mark = time.perf_counter()
                await population.connect_all(devices[opened:count], host, port, progress=connected)
                connect_s = time.perf_counter() - mark
                opened = count
                status = f"{count:,} open, settling"
                await asyncio.sleep(args.settle)
                rss = harness.rss_kib(server.pid)
                own = harness.rss_kib_self()
                closed = sum(1 for d in devices[:count] if not d.is_open)
                step = {
                    "connections": count,
                    "closed_meanwhile": closed,
                    "connect_s": connect_s,
                    "server_rss_kib": rss,
                    "server_growth_kib": rss - baseline,
                    "kib_per_connection": (rss - baseline) / count,
                    "generator_kib_per_connection": (own - own_baseline) / count,
                }
                steps.append(step)
                progress.log(
                    f"{count:,} idle connections: server RSS {rss / 1024:,.1f} MiB,"
                    f" {step['kib_per_connection']:.1f} KiB each"
                    f" (connected in {connect_s:.1f}s; {closed} closed)"
                )
        finally:
            for device in devices:
                device.close()
            await asyncio.sleep(0.5)
    return {"baseline_rss_kib": baseline, "steps": steps}


def table(report: dict[str, Any]) -> str:
    rows = [
        (
            f"{s['connections']:,}",
            f"{s['server_rss_kib'] / 1024:,.1f}",
            f"{s['server_growth_kib'] / 1024:,.1f}",
            f"{s['kib_per_connection']:.1f}",
            f"{s['kib_per_connection'] * 1.024:.1f}",
            f"{s['connect_s']:.1f}",
        )
        for s in report["steps"]
    ]
    head = ("connections", "server RSS MiB", "growth MiB", "KiB/conn", "KB/conn", "connect s")
    return (
        harness.table(head, rows) + f"\n(baseline RSS with every account and no connection:"
        f" {report['baseline_rss_kib'] / 1024:,.1f} MiB)"
    )


def run(args: argparse.Namespace) -> int:
    done = harness.measure_on_server("idle", args, _measure)
    if done is None:
        return 130
    report, path = done
    print(table(report))
    print(f"results: {path}", file=sys.stderr)
    return 0
