"""``python -m bench reconnect``: a reconnect storm.

Setup: ``--devices`` accounts in groups of ``--group-size`` members (one
owner signs every group's state; each member has one fresh device, see
``bench.population``), every device connected once and then disconnected.
While they are away the owner sends ``--backlog`` messages to every group,
so each device has that many entries to catch up on.

Then every device reconnects at once (TCP connect, upgrade, ``hello``,
``welcome``, the backlog, ``queue.empty``), each acknowledging what it gets.
Reported: the time from the start until 50/90/99/100% of the devices have
had ``queue.empty`` with their whole backlog, and where the time went for
the slowest (connect, or the server's answer). Repeated ``--runs`` times.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import math
import os
import secrets
import sys
import time
from pathlib import Path
from typing import Any

from bench import harness, loadgen, population
from bench.delivery import random_ids, send_template
from bench.population import BenchDevice
from taube.proto.ids import ConversationId


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--devices", type=int, default=5000, help="devices that reconnect (5000)")
    p.add_argument("--group-size", type=int, default=100, help="members per group (100)")
    p.add_argument(
        "--backlog", type=int, default=2, help="messages each device missed while away (2)"
    )
    p.add_argument("--runs", type=int, default=2, help="storms, one after the other (2)")
    p.add_argument("--body-bytes", type=int, default=256, help="ciphertext bytes per message")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds a storm may take (60)")
    p.add_argument(
        "--wait-quiet",
        type=float,
        default=30.0,
        help="before each storm, wait up to this long for other processes to go idle (30; 0: no)",
    )
    p.add_argument("--no-pin", dest="pin", action="store_false", help="do not pin CPUs")
    p.add_argument("--tmp-dir", type=Path, default=None, help="server data parent dir")
    p.add_argument("--keep-data", action="store_true", help="keep the server's data")
    p.add_argument("--output", type=Path, default=None, help="results JSON path")


class ReconnectRun:
    def __init__(self, args: argparse.Namespace, server: harness.RunningServer) -> None:
        self.args = args
        self.server = server
        self.status = "starting"
        self.started = time.perf_counter()
        self.progress = loadgen.Progress(
            lambda: f"[{time.perf_counter() - self.started:5.0f}s] {self.status}"
        )
        self.sender: BenchDevice | None = None
        self.devices: list[BenchDevice] = []
        self.groups: list[ConversationId] = []
        self.echoes = 0

    def _echo(self, _device: BenchDevice, _msg_id: str, _now: float) -> None:
        self.echoes += 1

    async def setup(self) -> None:
        args = self.args
        url, domain = self.server.url, self.server.domain
        host, port = self.server.address
        tag = secrets.token_hex(3)
        owner = await population.owner(url, f"owner-{tag}@{domain}")
        try:

            def registered(n: int) -> None:
                self.status = f"setup: registered {n:,}/{args.devices:,}"

            addresses = [f"r{i}-{tag}@{domain}" for i in range(args.devices)]
            accounts = await population.register_many(url, addresses, progress=registered)
            per_group = args.group_size - 1
            for start in range(0, len(accounts), per_group):
                self.status = f"setup: group {len(self.groups) + 1}"
                chunk = [a.user for a in accounts[start : start + per_group]]
                self.groups.append(await population.build_group(owner, chunk))

            def swapped(n: int) -> None:
                self.status = f"setup: fresh devices {n:,}/{args.devices:,}"

            await population.fresh_devices(url, accounts, progress=swapped)
            token = owner.token
        finally:
            await owner.__aexit__(None, None, None)
        self.sender = BenchDevice(token, on_message=self._echo, name="owner")
        await self.sender.open(host, port, timeout=120)
        self.devices = [BenchDevice(a.token, name=a.address) for a in accounts]

        def connected(n: int) -> None:
            self.status = f"setup: first connection {n:,}/{args.devices:,}"

        await population.connect_all(self.devices, host, port, progress=connected)
        self.progress.log(
            f"set up {args.devices:,} devices in {len(self.groups)} groups"
            f" in {time.perf_counter() - self.started:.0f}s"
        )

    async def away(self) -> None:
        """Everyone disconnects; the owner sends the backlog and waits until it is durable."""
        args = self.args
        for device in self.devices:
            device.close()
        await asyncio.sleep(1.0)  # the server notices the closes
        assert self.sender is not None
        assert self.sender.conn is not None
        want = self.echoes + args.backlog * len(self.groups)
        frames: list[bytes] = []
        for group in self.groups:
            head, tail = send_template(group, os.urandom(args.body_bytes))
            frames.extend(head + m.encode() + tail for m in random_ids(args.backlog))
        self.sender.conn.send_many(frames)
        async with asyncio.timeout(60):
            while self.echoes < want:
                done = len(frames) - (want - self.echoes)
                self.status = f"queueing the backlog: {done:,}/{len(frames):,} durable"
                await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)

    async def storm(self, number: int) -> dict[str, Any]:
        args = self.args
        host, port = self.server.address
        before = [d.messages for d in self.devices]
        self.status = f"storm {number}: reconnecting {len(self.devices):,} at once"
        server_cpu, own_cpu = loadgen.CpuMeter(self.server.pid), loadgen.CpuMeter()
        server_cpu.start()
        own_cpu.start()
        start = time.perf_counter()
        results = await asyncio.gather(
            *(d.open(host, port, timeout=args.timeout) for d in self.devices),
            return_exceptions=True,
        )
        server_pct, own_pct = server_cpu.percent(), own_cpu.percent()
        failed = [repr(r) for r in results if isinstance(r, BaseException)]
        back, connect, answer = [], [], []
        incomplete = 0
        for device, had in zip(self.devices, before, strict=True):
            if not device.ready.done() or device.ready.exception() is not None:
                continue
            if device.messages - had < args.backlog:
                incomplete += 1
                continue
            back.append(device.ready_at - start)
            connect.append(device.hello_at - start)
            answer.append(device.ready_at - device.hello_at)
        n = len(self.devices)
        fractions = {}
        ordered = sorted(back)
        for q in (50, 90, 99, 100):
            need = math.ceil(n * q / 100)
            fractions[f"p{q}_back_s"] = ordered[need - 1] if need <= len(ordered) else None
        return {
            "run": number,
            "devices": n,
            "back": len(back),
            "failed": len(failed),
            "failures": failed[:5],
            "incomplete_backlog": incomplete,
            **fractions,
            "connect_ms": loadgen.summarize(connect),
            "hello_to_queue_empty_ms": loadgen.summarize(answer),
            "server_cpu_pct": server_pct,
            "loadgen_cpu_pct": own_pct,
        }

    async def run(self) -> dict[str, Any]:
        storms = []
        with self.progress:
            await self.setup()
            gc.collect()
            gc.freeze()
            for number in range(1, self.args.runs + 1):
                await self.away()
                if self.args.wait_quiet:
                    self.status = "waiting for the machine to go quiet"
                    await harness.wait_quiet([self.server.pid], limit=self.args.wait_quiet)
                result = await self.storm(number)
                storms.append(result)
                self.progress.log(
                    f"storm {number}: 99% back after {harness.ms(result['p99_back_s'], 2)}s,"
                    f" all after {harness.ms(result['p100_back_s'], 2)}s"
                    f" ({result['failed']} failed, server CPU {result['server_cpu_pct']:.0f}%)"
                )
        return {"groups": len(self.groups), "storms": storms}

    async def close(self) -> None:
        for device in [self.sender, *self.devices]:
            if device is not None:
                device.close()
        await asyncio.sleep(0.2)


def table(report: dict[str, Any]) -> str:
    rows = []
    for s in report["storms"]:
        connect = s["connect_ms"]
        rows.append(
            (
                str(s["run"]),
                f"{s['devices']:,}",
                f"{s['back']:,}",
                harness.ms(s["p50_back_s"], 2),
                harness.ms(s["p90_back_s"], 2),
                harness.ms(s["p99_back_s"], 2),
                harness.ms(s["p100_back_s"], 2),
                harness.ms(connect["p99"], 0),
                harness.ms(s["hello_to_queue_empty_ms"]["p99"], 0),
                f"{s['server_cpu_pct']:.0f}%",
                f"{s['loadgen_cpu_pct']:.0f}%",
            )
        )
    head = (
        "storm",
        "devices",
        "back",
        "50% s",
        "90% s",
        "99% s",
        "all s",
        "connect p99 ms",
        "hello->empty p99 ms",
        "srv CPU",
        "gen CPU",
    )
    return harness.table(head, rows) + "\n(seconds from the start of the storm)"


def run(args: argparse.Namespace) -> int:
    harness.raise_fd_limit(args.devices * 2 + 1000)
    report = harness.header("reconnect", args)
    with harness.pinned_server(
        pin=args.pin, tmp_dir=args.tmp_dir, keep_data=args.keep_data
    ) as server:
        bench = ReconnectRun(args, server)
        try:
            report |= harness.run_then_close(bench)
        except KeyboardInterrupt:
            print("\nreconnect: interrupted; the server was stopped", file=sys.stderr)
            return 130
        report["environment"] = harness.environment(server.pinned)
    path = harness.write_report("reconnect", report, args.output)
    print(table(report))
    print(f"results: {path}", file=sys.stderr)
    return 0
