"""``python -m bench calls``: 1:1 call set-up time and CPU per participant.

Two Python SDK clients (aiortc, the ``calls`` extra) on one ``taube serve``
with a private coturn, both on loopback. The callee answers as soon as it
rings (no person in the loop), so "dial → media" is the machine's share:
placing the call (TURN credentials, gathering, the Olm-encrypted invite),
the ring, the answer, ICE and DTLS, until the caller has decoded the first
frame from the callee. ``--calls`` calls each, direct (host candidates) and
relayed (relay candidates only, through coturn); then one call of
``--seconds`` with audio and video measures the CPU time this process
spends, per participant (both run in this process). Group calls are not
built yet, so there is no group row.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.harness import environment, header, ms, run_async, table, write_report
from taube.client import Client
from taube.client import events as ev
from taube.client.calls.media import Media
from taube.testing import ServerProcess
from taube.testing.coturn import Coturn

PASSWORD = "correct horse battery staple"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--calls", type=int, default=20, help="calls per mode (20)")
    p.add_argument("--seconds", type=float, default=10.0, help="length of the CPU call (10)")
    p.add_argument("--output", type=Path, default=None, help="results JSON path")


async def _answer_every_call(callee: Client) -> None:
    async for event in callee.events():
        if isinstance(event, ev.IncomingCall):
            await callee.answer_call(event.call, Media.tone(event.video))


async def _one_call(caller: Client, callee: Client, video: bool) -> float:
    started = time.perf_counter()
    call = await caller.call(callee.user, Media.tone(video), video=video)
    await call.wait_media(timeout=30)
    elapsed = time.perf_counter() - started
    await caller.hang_up(call.id)
    await asyncio.sleep(0.2)  # the callee's side ends too
    return elapsed


def _percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


async def _measure(args: argparse.Namespace, base: Path) -> dict[str, Any]:
    with Coturn(base / "coturn") as turn:
        env = {"TAUBE_TURN_URLS": json.dumps(turn.urls), "TAUBE_TURN_SECRET": turn.secret}
        with ServerProcess(base / "server", env=env) as server:
            async with Client(base / "caller") as caller, Client(base / "callee") as callee:
                await caller.register(server.url, f"caller{os.getpid()}@example.org", PASSWORD)
                await callee.register(server.url, f"callee{os.getpid()}@example.org", PASSWORD)
                await caller.sync()
                await callee.sync()
                answering = asyncio.create_task(_answer_every_call(callee))
                try:
                    report: dict[str, Any] = {}
                    for mode, relay in (("direct", False), ("relayed", True)):
                        caller.calls.relay_only = callee.calls.relay_only = relay
                        await _one_call(caller, callee, False)  # warm: Olm sessions, imports
                        times = [await _one_call(caller, callee, False) for _ in range(args.calls)]
                        report[mode] = {
                            "calls": len(times),
                            "p50_ms": 1000 * statistics.median(times),
                            "p99_ms": 1000 * _percentile(times, 99),
                            "max_ms": 1000 * max(times),
                        }
                    caller.calls.relay_only = callee.calls.relay_only = False
                    call = await caller.call(callee.user, Media.tone(True), video=True)
                    await call.wait_media(timeout=30)
                    cpu0, wall0 = time.process_time(), time.perf_counter()
                    await asyncio.sleep(args.seconds)
                    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
                    frames = dict(call.peer_conn.frames) if call.peer_conn else {}
                    await caller.hang_up(call.id)
                    report["cpu"] = {
                        "seconds": wall,
                        "per_participant_pct": 100 * cpu / wall / 2,
                        "frames_received_by_caller": frames,
                    }
                    return report
                finally:
                    answering.cancel()


def run(args: argparse.Namespace) -> int:
    missing = Coturn.missing()
    if missing:
        print(f"bench calls: {missing}")
        return 1
    report = header("calls", args)
    report["environment"] = environment()
    with tempfile.TemporaryDirectory(prefix="taube-bench-calls-") as tmp:
        report.update(run_async(_measure(args, Path(tmp))))
    rows = [
        [mode, str(report[mode]["calls"]), ms(report[mode]["p50_ms"]), ms(report[mode]["p99_ms"])]
        for mode in ("direct", "relayed")
    ]
    print("1:1 voice call, SDK (aiortc) to SDK, dial -> first decoded frame at the caller")
    print(table(["candidates", "calls", "p50 ms", "p99 ms"], rows))
    cpu = report["cpu"]
    print(
        f"CPU in a {cpu['seconds']:.0f} s video call (320x240 at 15 fps and a tone both ways): "
        f"{cpu['per_participant_pct']:.0f}% of a core per participant"
    )
    print(f"report: {write_report('calls', report, args.output)}")
    return 0
