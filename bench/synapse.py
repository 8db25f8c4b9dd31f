"""``python -m bench synapse``: taube and Matrix Synapse side by side, in one run.

Both servers run on this machine one after the other, pinned to CPU 0
with this generator on CPU 1, on SQLite, with rate limits lifted (see
``bench.matrix`` for Synapse's settings).

1. **Workload 1** on each: ``--pairs`` sender/receiver pairs, one
   conversation (taube) or room (Synapse) per pair; open-loop sends at the
   rates of ``--rates``, ``--duration`` seconds each, round robin over the
   senders; then a ramp to the highest rate either sustains (the same rule
   for both: at least 95% of the offered rate acknowledged, everything
   answered and delivered within the drain, send-ack p99 within
   ``--p99-bound-ms``). On taube a send is a ``msg.send`` frame and its ack
   ``msg.sent``; delivery is the receiver's ``msg`` frame. On Synapse a send
   is ``PUT /rooms/{room}/send/m.room.message/{txn}`` and its ack the
   response; delivery is the receiver's long-polling ``/sync`` answer that
   carries it. Latencies count from each send's intended time.
2. **Fan-out to ``--fanout-members``** (100): one room of that many
   members, each with one device (taube: WebSocket; Synapse: a ``/sync``
   long poll); a burst for deliveries per second, then single-message
   probes for the time until the last member has it (see ``bench.fanout``).

The table ends with the ratios taube/Synapse.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import math
import os
import secrets
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

from bench import delivery, fanout, harness, loadgen
from bench.delivery import Tracker, random_ids, step_problems
from bench.fanout import Tracked
from bench.matrix import VENV, MatrixClient, SynapseProcess, cancel_all, install, synapse_version


def add_arguments(p: argparse.ArgumentParser) -> None:
    delivery.add_arguments(p)
    p.set_defaults(
        pairs=20,
        rates=[10.0, 25.0, 50.0, 100.0],
        duration=8.0,
        warmup=2.0,
        ramp_start=2000.0,
        ramp_factor=1.25,
        ramp_steps=8,
        ramp_duration=4.0,
        ramp_refine=1,
        max_time=150.0,
        drain_timeout=10.0,
    )
    p.add_argument(
        "--synapse-ramp-factor",
        type=float,
        default=1.5,
        help="Synapse's ramp: rate growth per step above the fixed rates (1.5)",
    )
    p.add_argument(
        "--synapse-ramp-steps", type=int, default=6, help="Synapse's ramp: steps at most (6)"
    )
    p.add_argument(
        "--wait-quiet",
        type=float,
        default=30.0,
        help="before the fan-out, wait up to this long for other processes to go idle (30; 0: no)",
    )
    p.add_argument("--fanout-members", type=int, default=100, help="members of the room (100)")
    p.add_argument("--fanout-probes", type=int, default=20, help="single-message probes (20)")
    p.add_argument(
        "--synapse-burst", type=int, default=50, help="messages in Synapse's fan-out burst (50)"
    )
    p.add_argument("--synapse-venv", type=Path, default=VENV, help="Synapse's virtual environment")
    p.add_argument(
        "--no-install",
        dest="install",
        action="store_false",
        help="fail instead of installing matrix-synapse when it is missing",
    )


# ---------------------------------------------------------------- taube's side


async def _taube(args: argparse.Namespace, server: harness.RunningServer) -> dict[str, Any]:
    run = delivery.DeliveryRun(args, server.server, server.pid)
    try:
        phases = await run.run()
    finally:
        await run.close()
    fan_args = argparse.Namespace(
        sizes=[args.fanout_members],
        probes=args.fanout_probes,
        probe_gap=0.05,
        burst_deliveries=200_000,
        max_burst_messages=10_000,
        body_bytes=args.body_bytes,
        stall=False,
        stall_prefill_mib=0.0,
        timeout=60.0,
        wait_quiet=args.wait_quiet,
    )
    fan = fanout.FanoutRun(fan_args, server)
    try:
        fan_result = await fan.run()
    finally:
        await fan.close()
    (row,) = fan_result["results"]
    return {"steps": run.steps, "ramp": phases["ramp"], "fanout": row}


# ---------------------------------------------------------------- Synapse's side


class Pair:
    def __init__(self, sender: MatrixClient, receiver: MatrixClient, room: str) -> None:
        self.sender = sender
        self.receiver = receiver
        self.room = room


class SynapseRun:
    """Workload 1 and the fan-out against a running Synapse."""

    def __init__(self, args: argparse.Namespace, synapse: SynapseProcess) -> None:
        self.args = args
        self.synapse = synapse
        self.tag = secrets.token_hex(3)
        self.session: aiohttp.ClientSession | None = None
        self.pairs: list[Pair] = []
        self.tracker: Tracker | None = None
        self.syncs: list[asyncio.Task[None]] = []
        self.steps: list[dict[str, Any]] = []
        self.number = 0
        self.status = "starting"
        self.started = time.perf_counter()
        self.progress = loadgen.Progress(self._status)
        self.fan_tracked: dict[str, Tracked] = {}
        self.padding = "x" * args.body_bytes

    def _status(self) -> str:
        line = f"[{time.perf_counter() - self.started:5.0f}s] Synapse: {self.status}"
        t = self.tracker
        if t is not None:
            line += (
                f" sent {t.fired:,}/{t.planned:,} acked {t.n_acked:,}"
                f" delivered {t.n_delivered:,} failed {t.n_failed:,}"
            )
        return line

    async def __aenter__(self) -> SynapseRun:
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        return self

    async def __aexit__(self, *exc: object) -> None:
        await cancel_all(self.syncs)
        self.syncs = []
        if self.session is not None:
            await self.session.close()

    def client(self) -> MatrixClient:
        assert self.session is not None
        return MatrixClient(self.session, self.synapse.url)

    async def _users(self, prefix: str, count: int) -> list[MatrixClient]:
        users = [self.client() for _ in range(count)]
        limit = asyncio.Semaphore(8)

        async def one(i: int) -> None:
            async with limit:
                await users[i].register(f"{prefix}{i}-{self.tag}")

        await asyncio.gather(*(one(i) for i in range(count)))
        return users

    # ----------------------------------------------------------- workload 1

    def _delivered(self, _user: MatrixClient, bench_id: str, now: float) -> None:
        tracker = self.tracker
        if tracker is not None:
            index = tracker.index.get(bench_id)
            if index is not None:
                tracker.deliver(index, now)

    async def setup_pairs(self) -> None:
        self.status = f"registering {self.args.pairs} pairs"
        senders = await self._users("s", self.args.pairs)
        receivers = await self._users("r", self.args.pairs)
        limit = asyncio.Semaphore(4)

        async def pair(sender: MatrixClient, receiver: MatrixClient) -> Pair:
            async with limit:
                room = await sender.create_room(invite=[receiver.user_id])
                await receiver.join(room)
                await receiver.sync(0)
            return Pair(sender, receiver, room)

        self.status = "creating rooms"
        self.pairs = list(
            await asyncio.gather(*(pair(s, r) for s, r in zip(senders, receivers, strict=True)))
        )
        loop = asyncio.get_running_loop()
        self.syncs = [
            loop.create_task(p.receiver.sync_forever(self._delivered)) for p in self.pairs
        ]

    async def _send(self, tracker: Tracker, index: int) -> None:
        pair = self.pairs[index % len(self.pairs)]
        msg_id = tracker.ids[index]
        content = {"msgtype": "m.text", "body": self.padding, "bench_id": msg_id}
        try:
            await pair.sender.send(pair.room, msg_id, content)
        except Exception as exc:
            tracker.fail(type(exc).__name__ + ": " + str(getattr(exc, "status", "")))
            return
        tracker.ack(index, time.perf_counter())

    async def step(self, phase: str, rate: float, duration: float) -> dict[str, Any]:
        args = self.args
        self.number += 1
        planned = max(1, round(rate * duration))
        tracker = Tracker(self.number, phase, rate, planned)
        self.tracker = tracker
        self.status = f"{phase} {rate:,.0f}/s"
        loop = asyncio.get_running_loop()
        tasks: set[asyncio.Task[None]] = set()
        backlog_limit = max(50, int(rate * args.abort_backlog_s))

        def fire(index: int, intended: float) -> None:
            tracker.intended[index] = intended
            tracker.fired = index + 1
            task = loop.create_task(self._send(tracker, index))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

        def check() -> str | None:
            if tracker.acks_behind > backlog_limit:
                return f"acks fell behind by {tracker.acks_behind} messages"
            if tracker.deliveries_behind > backlog_limit:
                return f"deliveries fell behind by {tracker.deliveries_behind} messages"
            return None

        server_cpu, own_cpu = loadgen.CpuMeter(self.synapse.pid), loadgen.CpuMeter()
        server_cpu.start()
        own_cpu.start()
        schedule = await loadgen.open_loop(rate, duration, fire, check=check)
        window_end = time.perf_counter()
        server_pct, own_pct = server_cpu.percent(), own_cpu.percent()
        deadline = window_end + args.drain_timeout
        while time.perf_counter() < deadline:
            if tracker.complete:
                break
            await asyncio.sleep(0.02)
        await cancel_all(list(tasks))
        self.tracker = None
        result = _result(tracker, schedule, window_end, server_pct, own_pct, args)
        self.steps.append(result)
        self.progress.log("Synapse " + delivery._step_line({**result, "notes": []}))
        await self.quiet()
        return result

    async def quiet(self, below_pct: float = 15.0, limit: float = 30.0) -> None:
        """Wait until Synapse has worked off what an overloaded step left it
        (its CPU falls below ``below_pct``), at most ``limit`` seconds."""
        self.status = "waiting for Synapse to go quiet"
        deadline = time.perf_counter() + limit
        while time.perf_counter() < deadline:
            meter = loadgen.CpuMeter(self.synapse.pid)
            meter.start()
            await asyncio.sleep(0.5)
            if meter.percent() < below_pct:
                return

    async def workload1(self) -> dict[str, Any]:
        args = self.args
        await self.setup_pairs()
        if args.warmup > 0:
            await self.step("warmup", min(args.rates), args.warmup)
        fixed = [await self.step("fixed", rate, args.duration) for rate in args.rates]
        held = [s["offered_rate"] for s in fixed if s["sustained"]]
        best = max(
            (s for s in fixed if s["sustained"]), key=lambda s: s["offered_rate"], default=None
        )
        failed: dict[str, Any] | None = next((s for s in fixed if not s["sustained"]), None)
        if failed is None and held:
            rate = max(held) * args.synapse_ramp_factor
            for _ in range(args.synapse_ramp_steps):
                result = await self.step("ramp", round(rate), args.ramp_duration * 2)
                if not result["sustained"]:
                    failed = result
                    break
                best = result
                rate *= args.synapse_ramp_factor
        if best is not None and failed is not None:
            mid = round(math.sqrt(best["offered_rate"] * failed["offered_rate"]))
            if mid / best["offered_rate"] >= 1.05:
                result = await self.step("refine", mid, args.ramp_duration * 2)
                if result["sustained"]:
                    best = result
        await cancel_all(self.syncs)
        self.syncs = []
        return {
            "max_sustained_rate": best["offered_rate"] if best else None,
            "max_sustained_durable_rate": best["durable_rate"] if best else None,
            "lowest_failing_rate": failed["offered_rate"] if failed else None,
            "lowest_failing_problems": failed["problems"] if failed else None,
        }

    # ----------------------------------------------------------- fan-out

    def _fan_delivered(self, _user: MatrixClient, bench_id: str, now: float) -> None:
        record = self.fan_tracked.get(bench_id)
        if record is None:
            return
        record.count += 1
        if not record.first:
            record.first = now
        record.last = now
        if record.arrivals is not None:
            record.arrivals.append(now)
        if record.count >= record.expected:
            record.done.set()

    async def fanout(self) -> dict[str, Any]:
        args = self.args
        others = args.fanout_members - 1
        self.status = f"fan-out: registering {args.fanout_members} users"
        (owner,) = await self._users("owner", 1)
        members = await self._users("m", others)
        room = await owner.create_room(public=True)
        joined = 0
        limit = asyncio.Semaphore(4)

        async def join(member: MatrixClient) -> None:
            nonlocal joined
            async with limit:
                await member.join(room)
                await member.sync(0)
            joined += 1
            self.status = f"fan-out: {joined}/{others} joined"

        await asyncio.gather(*(join(m) for m in members))
        loop = asyncio.get_running_loop()
        self.syncs = [loop.create_task(m.sync_forever(self._fan_delivered)) for m in members]
        await asyncio.sleep(1.0)  # every member is waiting in /sync
        content = {"msgtype": "m.text", "body": self.padding}

        # the burst
        ids = random_ids(args.synapse_burst)
        records = []
        server_cpu, own_cpu = loadgen.CpuMeter(self.synapse.pid), loadgen.CpuMeter()
        server_cpu.start()
        own_cpu.start()
        sent = time.perf_counter()
        for msg_id in ids:
            self.fan_tracked[msg_id] = record = Tracked(sent, others)
            records.append(record)
        sends = [
            loop.create_task(owner.send(room, msg_id, {**content, "bench_id": msg_id}))
            for msg_id in ids
        ]
        deadline = sent + 120
        total = len(ids) * others
        while time.perf_counter() < deadline:
            got = sum(r.count for r in records)
            self.status = f"fan-out burst of {len(ids)}: {got:,}/{total:,} deliveries"
            if got >= total:
                break
            await asyncio.sleep(0.02)
        server_pct, own_pct = server_cpu.percent(), own_cpu.percent()
        await cancel_all(sends)
        delivered = sum(r.count for r in records)
        last = max((r.last for r in records), default=0.0)
        elapsed = last - sent if last else None
        burst = {
            "messages": len(ids),
            "recipients": others,
            "deliveries": delivered,
            "expected": total,
            "complete": delivered >= total,
            "elapsed_s": elapsed,
            "deliveries_per_s": delivered / elapsed if elapsed else None,
            "server_cpu_pct": server_pct,
            "loadgen_cpu_pct": own_pct,
        }
        self.fan_tracked.clear()
        await asyncio.sleep(1.0)

        # the probes
        firsts, medians, lasts = [], [], []
        incomplete = 0
        for i, msg_id in enumerate(random_ids(args.fanout_probes)):
            self.status = f"fan-out probe {i + 1}/{args.fanout_probes}"
            record = Tracked(time.perf_counter(), others, arrivals=[])
            self.fan_tracked[msg_id] = record
            await owner.send(room, msg_id, {**content, "bench_id": msg_id})
            try:
                async with asyncio.timeout(20):
                    await record.done.wait()
            except TimeoutError:
                incomplete += 1
            del self.fan_tracked[msg_id]
            if record.arrivals:
                firsts.append(record.first - record.sent)
                medians.append(statistics.median(record.arrivals) - record.sent)
                if record.count >= others:
                    lasts.append(record.last - record.sent)
            await asyncio.sleep(0.05)
        await cancel_all(self.syncs)
        self.syncs = []
        return {
            "size": args.fanout_members,
            "stalled": False,
            "burst": burst,
            "probes": {
                "probes": args.fanout_probes,
                "incomplete": incomplete,
                "first_ms": loadgen.summarize(firsts),
                "median_member_ms": loadgen.summarize(medians),
                "last_member_ms": loadgen.summarize(lasts, args.fanout_probes),
            },
        }

    async def run(self) -> dict[str, Any]:
        with self.progress:
            ramp = await self.workload1()
            gc.collect()
            fan = await self.fanout()
        return {"steps": self.steps, "ramp": ramp, "fanout": fan}


def _result(
    tracker: Tracker,
    schedule: loadgen.ScheduleResult,
    window_end: float,
    server_pct: float,
    own_pct: float,
    args: argparse.Namespace,
) -> dict[str, Any]:
    """A step in the shape of ``bench.delivery``'s results (the fields the tables read)."""
    fired = schedule.fired
    start = schedule.started
    window = max(window_end - start, fired / tracker.rate, 1e-9)
    sent_at = tracker.intended[:fired]
    acked = tracker.acked[:fired]
    delivered = tracker.delivered[:fired]
    ack_lat = [a - s for a, s in zip(acked, sent_at, strict=True) if a]
    del_lat = [d - s for d, s in zip(delivered, sent_at, strict=True) if d]
    acks_in_window = sum(1 for a in acked if 0 < a <= start + window)
    durable_rate = acks_in_window / window
    ack_summary = loadgen.summarize(ack_lat, fired)
    problems = step_problems(tracker, schedule, durable_rate, ack_summary["p99"], args)
    return {
        "step": tracker.number,
        "phase": tracker.phase,
        "offered_rate": tracker.rate,
        "sent": fired,
        "send_rate": fired / window,
        "durable_rate": durable_rate,
        "acked": tracker.n_acked,
        "delivered": tracker.n_delivered,
        "failed": tracker.n_failed,
        "errors": dict(tracker.errors),
        "ack_latency_ms": ack_summary,
        "delivery_latency_ms": loadgen.summarize(del_lat, fired),
        "send_lag_ms": loadgen.summarize(schedule.lag),
        "server_cpu_pct": server_pct,
        "loadgen_cpu_pct": own_pct,
        "aborted": schedule.aborted,
        "sustained": not problems,
        "problems": problems,
    }


# ---------------------------------------------------------------- report


def _ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b == 0:
        return "-"
    r = a / b
    return f"{r:,.0f}x" if r >= 100 else f"{r:,.1f}x" if r >= 1 else f"{r:.3f}x"


def comparison(report: dict[str, Any]) -> str:
    taube, synapse = report["taube"], report["synapse"]
    rows: list[tuple[str, str, str, str]] = []
    t_max = taube["ramp"]["max_sustained_durable_rate"] if taube["ramp"] else None
    s_max = synapse["ramp"]["max_sustained_durable_rate"]
    rows.append(
        (
            "workload 1: max sustained sends/s",
            harness.rate(t_max),
            harness.rate(s_max),
            _ratio(t_max, s_max),
        )
    )
    t_peak = max((s["durable_rate"] for s in taube["steps"]), default=None)
    s_peak = max((s["durable_rate"] for s in synapse["steps"]), default=None)
    rows.append(
        (
            "workload 1: peak sends/s (any latency)",
            harness.rate(t_peak),
            harness.rate(s_peak),
            _ratio(t_peak, s_peak),
        )
    )
    t_fixed = {s["offered_rate"]: s for s in taube["steps"] if s["phase"] == "fixed"}
    for s in synapse["steps"]:
        if s["phase"] != "fixed" or s["offered_rate"] not in t_fixed:
            continue
        t = t_fixed[s["offered_rate"]]
        held = "" if s["sustained"] else " (Synapse overloaded)"
        for key, label in (("delivery_latency_ms", "deliver"), ("ack_latency_ms", "ack")):
            for q in ("p50", "p99"):
                a, b = t[key][q], s[key][q]
                rows.append(
                    (
                        f"  at {s['offered_rate']:,.0f}/s{held}: {label} {q} ms",
                        harness.ms(a),
                        harness.ms(b),
                        _ratio(a, b),
                    )
                )
    tf, sf = taube["fanout"], synapse["fanout"]
    members = tf["size"]
    a, b = tf["burst"]["deliveries_per_s"], sf["burst"]["deliveries_per_s"]
    rows.append(
        (f"fan-out to {members}: deliveries/s", harness.rate(a), harness.rate(b), _ratio(a, b))
    )
    for q in ("p50", "p99"):
        a, b = tf["probes"]["last_member_ms"][q], sf["probes"]["last_member_ms"][q]
        rows.append(
            (
                f"fan-out to {members}: last member {q} ms",
                harness.ms(a),
                harness.ms(b),
                _ratio(a, b),
            )
        )
    return harness.table(("", "taube", "Synapse", "taube/Synapse"), rows)


def run(args: argparse.Namespace) -> int:
    report = harness.header("synapse", args)
    try:
        python = install(args.synapse_venv) if args.install else args.synapse_venv / "bin/python"
    except Exception as exc:
        print(f"synapse: cannot install matrix-synapse: {exc}", file=sys.stderr)
        return 2
    if not python.exists():
        print(
            f"synapse: no Synapse in {args.synapse_venv} (leave out --no-install)", file=sys.stderr
        )
        return 2
    report["synapse_version"] = synapse_version(python)
    harness.raise_fd_limit()
    try:
        with harness.pinned_server(
            pin=args.pin, tmp_dir=args.tmp_dir, keep_data=args.keep_data
        ) as server:
            report["taube"] = harness.run_async(_taube(args, server))
            report["environment"] = harness.environment(server.pinned)
        pin = args.pin and harness.can_pin()
        with SynapseProcess(
            python,
            cpus=harness.SERVER_CPUS if pin else None,
            tmp_dir=args.tmp_dir,
            keep_data=args.keep_data,
        ) as synapse:
            print(
                f"Synapse {report['synapse_version']} pid {synapse.pid} at {synapse.url}",
                file=sys.stderr,
            )
            before = None
            with contextlib.ExitStack() as stack:
                if pin:
                    before = os.sched_getaffinity(0)
                    os.sched_setaffinity(0, harness.LOADGEN_CPUS)
                    stack.callback(os.sched_setaffinity, 0, before)

                async def synapse_side() -> dict[str, Any]:
                    async with SynapseRun(args, synapse) as bench:
                        return await bench.run()

                report["synapse"] = harness.run_async(synapse_side())
    except KeyboardInterrupt:
        print("\nsynapse: interrupted; the servers were stopped", file=sys.stderr)
        return 130
    path = harness.write_report("synapse", report, args.output)
    print(comparison(report))
    print(f"results: {path}", file=sys.stderr)
    return 0
