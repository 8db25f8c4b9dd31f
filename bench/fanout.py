"""``python -m bench fanout``: group fan-out to 10, 100, 1,000 and 5,000 members.

Setup, all through the API: accounts for the largest group, one owner with
an identity key who creates a group per size with signed state events
(a group of N members is the owner, who sends, and N - 1 others; the
smaller groups are prefixes of the larger), then every member signs in a
fresh device at the head of its conversations (see ``bench.population``).
Every member device holds one WebSocket, acknowledges what it gets, and
all of them stay connected for the whole run.

For each size, in two phases:

1. **all reading**;
2. **one stalled**: one member (in every group) stops reading its socket
   and shrinks its receive buffer; the owner first sends it
   ``--stall-prefill-mib`` of large messages in a direct conversation, so
   that every buffer between the server and it is full (the kernel's queues
   on both ends are read from ``/proc/net/tcp`` and reported) and the
   server's pushes for it pile up.

and in each phase:

- a **burst**: the owner writes M messages at once (M so that the burst
  makes about ``--burst-deliveries`` deliveries); deliveries per second is
  the number of messages that reached a reading member, over the time from
  the burst's start to the last of them;
- **probes**: one message at a time, each sent once the server is idle
  again (``--probe-gap``, then its CPU below 25% for 100 ms); for each, the
  time from the send until the first, the median and the *last* reading
  member has it.

The stalled member is not counted as a recipient in phase 2; what it got
is reported. The generator runs on one core, and reading thousands of
sockets costs it too: its CPU is in the table (near 100% it is the limit).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import os
import secrets
import socket
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from bench import harness, loadgen, population
from bench.delivery import _env_pair, random_ids, send_template
from bench.population import BenchDevice
from taube.proto.ids import ConversationId

#: the stalled member's receive buffer once it stalls (the kernel doubles it)
STALLED_RCVBUF = 4096
#: the size of each message that fills the stalled member's buffers
PREFILL_BODY = 128 * 1024
#: lets the stalled member stay connected through the run (it answers no ping)
FANOUT_ENV = {"TAUBE_LIMITS_HEARTBEAT_S": "600"}


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of numbers: {text!r}") from None
    if not sizes or any(s < 3 for s in sizes):
        raise argparse.ArgumentTypeError("group sizes must be at least 3")
    return sizes


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--sizes",
        type=_sizes,
        default=_sizes("10,100,1000,5000"),
        help="group sizes, members including the sender (10,100,1000,5000)",
    )
    p.add_argument("--probes", type=int, default=20, help="single-message probes per size (20)")
    p.add_argument("--probe-gap", type=float, default=0.05, help="seconds between probes (0.05)")
    p.add_argument(
        "--burst-deliveries",
        type=int,
        default=200_000,
        help="deliveries one burst aims at (messages = this / recipients) (200000)",
    )
    p.add_argument(
        "--max-burst-messages", type=int, default=10_000, help="messages per burst at most (10000)"
    )
    p.add_argument("--body-bytes", type=int, default=256, help="ciphertext bytes per message")
    p.add_argument("--no-stall", dest="stall", action="store_false", help="skip phase 2")
    p.add_argument(
        "--stall-prefill-mib",
        type=float,
        default=8.0,
        help="MiB sent to the stalled member before phase 2, to fill its buffers (8)",
    )
    p.add_argument("--timeout", type=float, default=60.0, help="seconds a burst may take (60)")
    p.add_argument(
        "--wait-quiet",
        type=float,
        default=30.0,
        help="before each size, wait up to this long for other processes to go idle (30; 0: no)",
    )
    p.add_argument(
        "--server-env",
        type=_env_pair,
        action="append",
        default=[],
        metavar="TAUBE_X_Y=VALUE",
        help="extra server setting (repeatable), e.g. TAUBE_STORAGE_SYNCHRONOUS=NORMAL",
    )
    p.add_argument("--no-pin", dest="pin", action="store_false", help="do not pin CPUs")
    p.add_argument("--tmp-dir", type=Path, default=None, help="server data parent dir")
    p.add_argument("--keep-data", action="store_true", help="keep the server's data")
    p.add_argument("--output", type=Path, default=None, help="results JSON path")


@dataclasses.dataclass
class Tracked:
    """One message on its way to the members."""

    sent: float
    expected: int
    count: int = 0
    first: float = 0.0
    last: float = 0.0
    arrivals: list[float] | None = None  #: every arrival (probes only)
    durable: float = 0.0  #: when the sender had ``msg.sent``
    done: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)


class FanoutRun:
    def __init__(self, args: argparse.Namespace, server: harness.RunningServer) -> None:
        self.args = args
        self.server = server
        self.tag = secrets.token_hex(3)
        self.tracked: dict[str, Tracked] = {}
        self.counting = True
        self.sender: BenchDevice | None = None
        self.members: list[BenchDevice] = []
        self.stalled: BenchDevice | None = None
        self.groups: dict[int, ConversationId] = {}
        self.direct: ConversationId | None = None
        self.status = "starting"
        self.started = time.perf_counter()
        self.progress = loadgen.Progress(self._status)
        self.results: list[dict[str, Any]] = []
        self.stall_report: dict[str, Any] = {}
        self.setup_s: dict[str, float] = {}

    def _status(self) -> str:
        return f"[{time.perf_counter() - self.started:5.0f}s] {self.status}"

    def _on_message(self, device: BenchDevice, msg_id: str, now: float) -> None:
        record = self.tracked.get(msg_id)
        if record is None or (device is self.stalled and not self.counting):
            return
        record.count += 1
        if not record.first:
            record.first = now
        record.last = now
        if record.arrivals is not None:
            record.arrivals.append(now)
        if record.count >= record.expected:
            record.done.set()

    def _on_sent(self, _device: BenchDevice, msg_id: str, now: float) -> None:
        record = self.tracked.get(msg_id)
        if record is not None and not record.durable:
            record.durable = now

    # ----------------------------------------------------------- setup

    async def setup(self) -> None:
        args = self.args
        host, port = self.server.address
        url, domain = self.server.url, self.server.domain
        others = max(args.sizes) - 1
        mark = time.perf_counter()
        owner = await population.owner(url, f"owner-{self.tag}@{domain}")
        try:
            addresses = [f"m{i}-{self.tag}@{domain}" for i in range(others)]

            def registered(n: int) -> None:
                self.status = f"setup: registered {n:,}/{others:,} members"

            accounts = await population.register_many(url, addresses, progress=registered)
            self.setup_s["register"] = time.perf_counter() - mark
            mark = time.perf_counter()
            for size in sorted(args.sizes):

                def added(n: int, size: int = size) -> None:
                    self.status = f"setup: group of {size:,}: {n:,} joins signed and sent"

                self.groups[size] = await population.build_group(
                    owner, [a.user for a in accounts[: size - 1]], progress=added
                )
            if args.stall:
                self.direct = await owner.direct(accounts[0].user)
            self.setup_s["groups"] = time.perf_counter() - mark
            mark = time.perf_counter()

            def swapped(n: int) -> None:
                self.status = f"setup: fresh devices {n:,}/{others:,}"

            await population.fresh_devices(url, accounts, progress=swapped)
            self.setup_s["fresh_devices"] = time.perf_counter() - mark
            owner_token = owner.token
        finally:
            await owner.__aexit__(None, None, None)
        mark = time.perf_counter()
        self.sender = BenchDevice(owner_token, on_sent=self._on_sent, name="owner")
        self.status = "setup: the owner reads its backlog (every join)"
        await self.sender.open(host, port, timeout=300)
        self.members = [
            BenchDevice(a.token, on_message=self._on_message, name=a.address) for a in accounts
        ]
        if args.stall:
            self.stalled = self.members[0]

        def connected(n: int) -> None:
            self.status = f"setup: connected {n:,}/{others:,} members"

        await population.connect_all(self.members, host, port, progress=connected)
        self.setup_s["connect"] = time.perf_counter() - mark
        self.progress.log(
            f"set up {len(self.groups)} groups, {others:,} member sockets in"
            f" {time.perf_counter() - self.started:.0f}s"
            f" ({', '.join(f'{k} {v:.0f}s' for k, v in self.setup_s.items())})"
        )

    async def close(self) -> None:
        for device in [self.sender, *self.members]:
            if device is not None:
                device.close()
        await asyncio.sleep(0.2)

    # ----------------------------------------------------------- measurements

    def _recipients(self, size: int, stalled: bool) -> int:
        return size - 1 - (1 if stalled else 0)

    async def burst(self, size: int, stalled: bool) -> dict[str, Any]:
        args = self.args
        assert self.sender is not None
        assert self.sender.conn is not None
        recipients = self._recipients(size, stalled)
        count = max(10, min(args.max_burst_messages, args.burst_deliveries // recipients))
        head, tail = send_template(self.groups[size], os.urandom(args.body_bytes))
        ids = random_ids(count)
        records = []
        server_cpu, own_cpu = loadgen.CpuMeter(self.server.pid), loadgen.CpuMeter()
        machine_cpu = loadgen.MachineCpuMeter()
        server_cpu.start()
        own_cpu.start()
        machine_cpu.start()
        sent = time.perf_counter()
        for msg_id in ids:
            record = Tracked(sent, recipients)
            self.tracked[msg_id] = record
            records.append(record)
        self.sender.conn.send_many([head + m.encode() + tail for m in ids])
        deadline = sent + args.timeout
        total = count * recipients
        while time.perf_counter() < deadline:
            got = sum(r.count for r in records)
            self.status = (
                f"{size:,} members{' (one stalled)' if stalled else ''}: burst of {count:,},"
                f" {got:,}/{total:,} deliveries"
            )
            if got >= total:
                break
            await asyncio.sleep(0.01)
        server_pct, own_pct = server_cpu.percent(), own_cpu.percent()
        busy_pct, _irq, steal_pct = machine_cpu.percent()
        delivered = sum(r.count for r in records)
        last = max((r.last for r in records), default=0.0)
        elapsed = (last - sent) if last else None
        for msg_id in ids:
            del self.tracked[msg_id]
        return {
            "messages": count,
            "recipients": recipients,
            "deliveries": delivered,
            "expected": total,
            "complete": delivered >= total,
            "elapsed_s": elapsed,
            "deliveries_per_s": delivered / elapsed if elapsed else None,
            "messages_per_s": count / elapsed if elapsed and delivered >= total else None,
            "server_cpu_pct": server_pct,
            "loadgen_cpu_pct": own_pct,
            "other_cpu_pct": max(0.0, busy_pct - server_pct - own_pct) + steal_pct,
        }

    async def probes(self, size: int, stalled: bool) -> dict[str, Any]:
        args = self.args
        assert self.sender is not None
        assert self.sender.conn is not None
        recipients = self._recipients(size, stalled)
        head, tail = send_template(self.groups[size], os.urandom(args.body_bytes))
        firsts, medians, lasts, durables = [], [], [], []
        incomplete = 0
        server_cpu, own_cpu = loadgen.CpuMeter(self.server.pid), loadgen.CpuMeter()
        machine_cpu = loadgen.MachineCpuMeter()
        server_cpu.start()
        own_cpu.start()
        machine_cpu.start()
        await self._server_idle()  # the burst's acknowledgements are written
        for i, msg_id in enumerate(random_ids(args.probes)):
            which = f"{size:,} members{' (one stalled)' if stalled else ''}"
            self.status = f"{which}: probe {i + 1}/{args.probes}"
            record = Tracked(time.perf_counter(), recipients, arrivals=[])
            self.tracked[msg_id] = record
            self.sender.conn.send(head + msg_id.encode() + tail)
            try:
                async with asyncio.timeout(10):
                    await record.done.wait()
            except TimeoutError:
                incomplete += 1
            del self.tracked[msg_id]
            if record.durable:
                durables.append(record.durable - record.sent)
            if record.arrivals:
                firsts.append(record.first - record.sent)
                medians.append(statistics.median(record.arrivals) - record.sent)
                if record.count >= recipients:
                    lasts.append(record.last - record.sent)
            await asyncio.sleep(args.probe_gap)
            await self._server_idle()
        server_pct, own_pct = server_cpu.percent(), own_cpu.percent()
        busy_pct, _irq, steal_pct = machine_cpu.percent()
        return {
            "probes": args.probes,
            "incomplete": incomplete,
            "server_cpu_pct": server_pct,
            "loadgen_cpu_pct": own_pct,
            "other_cpu_pct": max(0.0, busy_pct - server_pct - own_pct) + steal_pct,
            "durable_ms": loadgen.summarize(durables),
            "first_ms": loadgen.summarize(firsts),
            "median_member_ms": loadgen.summarize(medians),
            "last_member_ms": loadgen.summarize(lasts, args.probes),
            "last_member_each_ms": [round(v * 1000, 2) for v in lasts],
        }

    async def _server_idle(self, below_pct: float = 25.0, limit: float = 5.0) -> None:
        """Wait until the server has worked off the last message (its
        members' acknowledgements, their write), at most ``limit`` seconds:
        each probe starts from a quiet server."""
        deadline = time.perf_counter() + limit
        while time.perf_counter() < deadline:
            meter = loadgen.CpuMeter(self.server.pid)
            meter.start()
            await asyncio.sleep(0.1)  # CPU time comes in 10 ms ticks
            if meter.percent() < below_pct:
                return

    async def stall(self) -> dict[str, Any]:
        """Stop the stalled member reading, and fill every buffer on its way."""
        args = self.args
        stalled, sender = self.stalled, self.sender
        assert stalled is not None
        assert stalled.conn is not None
        assert stalled.conn.transport is not None
        assert sender is not None
        assert sender.conn is not None
        assert self.direct is not None
        self.counting = False
        stalled.pause()
        sock = stalled.conn.transport.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, STALLED_RCVBUF)
        count = max(1, round(args.stall_prefill_mib * (1 << 20) / PREFILL_BODY))
        ids = random_ids(count)
        pending = set(ids)
        done = asyncio.Event()

        def echoed(_device: BenchDevice, msg_id: str, _now: float) -> None:
            pending.discard(msg_id)
            if not pending:
                done.set()

        sender.on_message = echoed
        head, tail = send_template(self.direct, os.urandom(PREFILL_BODY))
        self.status = f"stalling one member: sending it {count} messages of {PREFILL_BODY:,} bytes"
        sender.conn.send_many([head + m.encode() + tail for m in ids])
        try:
            async with asyncio.timeout(60):
                await done.wait()
        finally:
            sender.on_message = None
        await asyncio.sleep(1.0)  # what the server can still write goes out
        local_port = sock.getsockname()[1]
        return {
            "prefill_messages": count,
            "prefill_bytes": count * PREFILL_BODY,
            "messages_before": stalled.messages,
            "queues_after_prefill": tcp_queues(local_port, self.server.address[1]),
        }

    async def run(self) -> dict[str, Any]:
        with self.progress:
            await self.setup()
            gc.collect()
            gc.freeze()
            phases = [False, True] if self.args.stall else [False]
            for stalled in phases:
                if stalled:
                    self.stall_report = await self.stall()
                    queues = self.stall_report["queues_after_prefill"]
                    self.progress.log(
                        f"stalled one member: {self.stall_report['prefill_bytes'] / 2**20:.0f} MiB"
                        f" sent to it; unread in its socket {queues['member_unread']:,} bytes,"
                        f" unsent in the server's {queues['server_unsent']:,} bytes"
                    )
                for size in self.args.sizes:
                    if self.args.wait_quiet:
                        self.status = "waiting for the machine to go quiet"
                        await harness.wait_quiet([self.server.pid], limit=self.args.wait_quiet)
                    burst = await self.burst(size, stalled)
                    probes = await self.probes(size, stalled)
                    row = {"size": size, "stalled": stalled, "burst": burst, "probes": probes}
                    self.results.append(row)
                    self.progress.log(_line(row))
                if stalled and self.stalled is not None:
                    assert self.stalled.conn is not None
                    sock = self.stalled.conn.transport.get_extra_info("socket")  # type: ignore[union-attr]
                    self.stall_report["queues_at_end"] = tcp_queues(
                        sock.getsockname()[1], self.server.address[1]
                    )
                    self.stall_report["closed"] = self.stalled.closed_reason
                    self.progress.log(
                        "the stalled member's socket is"
                        f" {'closed' if self.stalled.conn.closed else 'still open'} at the end"
                    )
        return {
            "setup_s": self.setup_s,
            "results": self.results,
            "stalled_member": self.stall_report,
            "member_sockets": len(self.members),
        }


def tcp_queues(member_port: int, server_port: int) -> dict[str, int]:
    """Bytes queued in the kernel on both ends of one loopback connection
    (``/proc/net/tcp``): unsent by the server, unread by the member."""
    out = {"server_unsent": -1, "member_unread": -1}
    try:
        lines = Path("/proc/net/tcp").read_text().splitlines()[1:]
    except OSError:
        return out
    for line in lines:
        fields = line.split()
        local, remote, queues = fields[1], fields[2], fields[4]
        lport, rport = int(local.rsplit(":", 1)[1], 16), int(remote.rsplit(":", 1)[1], 16)
        tx, rx = (int(q, 16) for q in queues.split(":"))
        if lport == member_port and rport == server_port:
            out["member_unread"] = rx
        elif lport == server_port and rport == member_port:
            out["server_unsent"] = tx
    return out


def _line(row: dict[str, Any]) -> str:
    b, p = row["burst"], row["probes"]
    return (
        f"{row['size']:,} members{' (one stalled)' if row['stalled'] else ''}:"
        f" burst {b['messages']:,} msgs -> {harness.rate(b['deliveries_per_s'])} deliveries/s"
        f" (server CPU {b['server_cpu_pct']:.0f}%, generator {b['loadgen_cpu_pct']:.0f}%);"
        f" last member p50 {harness.ms(p['last_member_ms']['p50'])} ms"
    )


def table(results: list[dict[str, Any]]) -> str:
    head = (
        "members",
        "stalled",
        "burst msgs",
        "deliveries/s",
        "srv CPU",
        "gen CPU",
        "other CPU",
        "first p50",
        "median p50",
        "last p50",
        "last p99",
        "last max",
    )
    rows = []
    for r in results:
        b, p = r["burst"], r["probes"]
        rows.append(
            (
                f"{r['size']:,}",
                "1" if r["stalled"] else "0",
                f"{b['messages']:,}" + ("" if b["complete"] else " (incomplete)"),
                harness.rate(b["deliveries_per_s"]),
                f"{b['server_cpu_pct']:.0f}%",
                f"{b['loadgen_cpu_pct']:.0f}%",
                f"{max(b['other_cpu_pct'], p['other_cpu_pct']):.0f}%",
                harness.ms(p["first_ms"]["p50"]),
                harness.ms(p["median_member_ms"]["p50"]),
                harness.ms(p["last_member_ms"]["p50"]),
                harness.ms(p["last_member_ms"]["p99"]),
                harness.ms(p["last_member_ms"]["max"]),
            )
        )
    return harness.table(head, rows) + (
        "\n(latencies in ms from the send, over the probes; CPU during the burst;"
        " other CPU: the most other processes and steal took in the burst or the probes,"
        " above ~10% the row is noisy)"
    )


def run(args: argparse.Namespace) -> int:
    harness.raise_fd_limit(max(args.sizes) * 2 + 1000)
    report = harness.header("fanout", args)
    with harness.pinned_server(
        {**FANOUT_ENV, **dict(args.server_env)},
        pin=args.pin,
        tmp_dir=args.tmp_dir,
        keep_data=args.keep_data,
    ) as server:
        bench = FanoutRun(args, server)
        try:
            report |= harness.run_then_close(bench)
        except KeyboardInterrupt:
            print("\nfanout: interrupted; the server was stopped", file=sys.stderr)
            return 130
        report["environment"] = harness.environment(server.pinned)
    path = harness.write_report("fanout", report, args.output)
    print(table(report["results"]))
    print(f"results: {path}", file=sys.stderr)
    return 0
