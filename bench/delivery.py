"""``python -m bench delivery``: durable send and delivery latency, open loop.

Setup: one ``taube serve`` of our own (SQLite in a temporary directory, on
loopback), N sender/receiver device pairs, each pair sharing a direct
conversation. Every device holds one WebSocket and acknowledges what it gets
(``msg.ack``, and ``todevice.ack`` for its queue), once per read per
conversation, the way a client does. Senders acknowledge their own echoes.

Then, open loop (arrivals at a fixed rate, round robin over the senders,
random message ids, never waiting for answers):

1. a short warm-up (member caches, connections);
2. each rate of ``--rates`` for ``--duration`` seconds: latency to the
   ``msg.sent`` (durable: committed and synced) and to the receiver's ``msg``
   frame, p50/p90/p99/p99.9. Latency counts from a send's *intended* time,
   so the generator's own lateness is included, not hidden (the table shows
   that lag; the JSON also has the latencies from the actual write);
3. a ramp: the rate grows by ``--ramp-factor`` per step until the server no
   longer sustains it (acks fall behind the offered rate, a backlog builds,
   or the ack p99 exceeds ``--p99-bound-ms``), then ``--ramp-refine``
   bisection steps; the last rate that held is the maximum sustained durable
   send rate.

A step whose backlog exceeds ``--abort-backlog-s`` seconds of arrivals stops
early (the server is saturated; its backlog would only spill into the next
step). The server runs pinned to CPU 0 and this generator to CPU 1 when the
machine has two CPUs; CPU used by anything else during a step is reported
("other CPU"), since it makes the numbers noisy. Results go to stdout as a
table and to ``bench/results/delivery-<time>.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import dataclasses
import gc
import json
import math
import os
import platform
import random
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import msgspec

from bench import loadgen
from bench.wsclient import WsConnection, connect
from taube.proto import frames
from taube.proto.codec import encode
from taube.proto.ids import ConversationId, MessageId
from taube.proto.version import PROTOCOL_VERSION
from taube.testing import RawClient, ServerProcess

RESULTS_DIR = Path(__file__).resolve().parent / "results"
WS_PATH = "/api/v1/ws"
SERVER_CPUS = {0}
LOADGEN_CPUS = {1}

#: server settings for the run (on top of ``taube.testing.TEST_ENV``): the
#: per-connection frame limit is lifted so that ``--pairs`` can be small
SERVER_ENV = {
    "TAUBE_LIMITS_WS_RATE": "1000000",
    "TAUBE_LIMITS_WS_BURST": "1000000",
}

T = TypeVar("T")


def _tag(frame_type: type[msgspec.Struct]) -> str:
    return str(frame_type.__struct_config__.tag)


TYPE_SENT = _tag(frames.Sent)
TYPE_MSG = _tag(frames.Message)
TYPE_STATE = _tag(frames.State)
TYPE_TODEVICE = _tag(frames.ToDevice)
TYPE_KEYS_CHANGED = _tag(frames.KeysChanged)
TYPE_WELCOME = _tag(frames.Welcome)
TYPE_QUEUE_EMPTY = _tag(frames.QueueEmpty)
TYPE_ERROR = _tag(frames.Error)


class Incoming(msgspec.Struct):
    """The fields of a server frame this benchmark reads; msgspec skips the
    rest (bodies, state events) without building them. Full validation with
    ``decode_server_frame`` would cost more than the generator can afford."""

    type: str
    id: str = ""
    conversation: str = ""
    seq: int = 0
    code: str = ""
    ref: str | None = None
    message: str = ""


_decode = msgspec.json.Decoder(Incoming).decode


def random_ids(count: int) -> list[str]:
    """Message ids as clients make them: 128 random bits, URL-safe base64.

    Random rather than sequential on purpose: the server indexes sends by
    ``(device, id)``, and random keys land on random B-tree pages as they do
    in real use. (``random``, not ``secrets``: these are not secrets, and the
    generator needs them fast.)
    """
    raw = random.getrandbits(128 * count).to_bytes(16 * count, "little")
    return [
        base64.urlsafe_b64encode(raw[i : i + 16])[:22].decode("ascii")
        for i in range(0, 16 * count, 16)
    ]


# ---------------------------------------------------------------- per-step bookkeeping


def step_problems(
    tracker: Tracker,
    schedule: loadgen.ScheduleResult,
    durable_rate: float,
    ack_p99: Any,
    args: argparse.Namespace,
) -> list[str]:
    """Why a step does not count as sustained (empty: it does)."""
    problems: list[str] = []
    if schedule.aborted:
        problems.append(f"stopped early: {schedule.aborted}")
    if tracker.acks_behind > 0 or tracker.deliveries_behind > 0:
        problems.append(
            f"unanswered after {args.drain_timeout:g}s drain:"
            f" {tracker.acks_behind} acks, {tracker.deliveries_behind} deliveries"
        )
    if tracker.n_failed:
        problems.append(f"errors: {dict(tracker.errors)}")
    if durable_rate < 0.95 * tracker.rate:
        problems.append(f"durable rate {durable_rate:,.0f}/s below 95% of offered")
    if ack_p99 is None or ack_p99 > args.p99_bound_ms:
        problems.append(f"ack p99 above {args.p99_bound_ms:g} ms")
    return problems


class Tracker:
    """Arrival times and answers of one step, indexed by arrival."""

    def __init__(self, number: int, phase: str, rate: float, planned: int) -> None:
        self.number = number
        self.phase = phase
        self.rate = rate
        self.planned = planned
        self.ids = random_ids(planned)
        self.index = {msg_id: i for i, msg_id in enumerate(self.ids)}
        self.intended = [0.0] * planned
        self.acked = [0.0] * planned
        self.delivered = [0.0] * planned
        self.fired = 0
        self.n_acked = 0
        self.n_delivered = 0
        self.n_failed = 0
        self.duplicates = 0
        self.errors: Counter[str] = Counter()
        self.started = time.perf_counter()

    def ack(self, index: int, now: float) -> None:
        if self.acked[index] == 0.0:
            self.acked[index] = now
            self.n_acked += 1
        else:
            self.duplicates += 1

    def deliver(self, index: int, now: float) -> None:
        if self.delivered[index] == 0.0:
            self.delivered[index] = now
            self.n_delivered += 1
        else:
            self.duplicates += 1

    def fail(self, code: str) -> None:
        self.n_failed += 1
        self.errors[code] += 1

    @property
    def acks_behind(self) -> int:
        return self.fired - self.n_acked - self.n_failed

    @property
    def deliveries_behind(self) -> int:
        return self.fired - self.n_delivered - self.n_failed

    @property
    def complete(self) -> bool:
        return self.acks_behind <= 0 and self.deliveries_behind <= 0


class Bench:
    """Routes answers to the tracker of their step."""

    def __init__(self) -> None:
        self.tag = secrets.token_hex(4)  #: makes this run's addresses unique
        self.trackers: dict[int, Tracker] = {}
        self.other_errors: Counter[str] = Counter()
        self.closed: list[str] = []
        self.closing = False

    def _tracker(self, msg_id: str) -> tuple[Tracker | None, int]:
        for tracker in self.trackers.values():  # one, or two while a step drains
            index = tracker.index.get(msg_id)
            if index is not None:
                return tracker, index
        return None, 0

    def on_sent(self, msg_id: str, now: float) -> None:
        tracker, index = self._tracker(msg_id)
        if tracker is not None:
            tracker.ack(index, now)

    def on_delivered(self, msg_id: str, now: float) -> None:
        tracker, index = self._tracker(msg_id)
        if tracker is not None:
            tracker.deliver(index, now)

    def on_error(self, code: str, ref: str | None, message: str) -> None:
        tracker, _ = self._tracker(ref or "")
        if tracker is not None:
            tracker.fail(code)
        else:
            self.other_errors[f"{code}: {message}"] += 1

    def on_close(self, device: Device, reason: str) -> None:
        if not self.closing:
            self.closed.append(f"{device.role}: {reason}")


class Device:
    """One device's WebSocket: answers go to ``Bench``, entries are acknowledged."""

    def __init__(self, bench: Bench, role: str, token: str) -> None:
        loop = asyncio.get_running_loop()
        self.bench = bench
        self.role = role
        self.receiving = role == "receiver"
        self.token = token
        self.conn: WsConnection | None = None
        self.welcome: asyncio.Future[None] = loop.create_future()
        self.ready: asyncio.Future[None] = loop.create_future()
        self._acks: dict[str, int] = {}
        self._queue_ack = 0

    async def open(self, host: str, port: int) -> None:
        self.conn = await connect(host, port, WS_PATH, self)
        self.conn.send(
            encode(frames.Hello(protocol=PROTOCOL_VERSION, token=self.token, client="taube-bench"))
        )
        async with asyncio.timeout(30):
            await self.welcome
            await self.ready  # the backlog (state events, key changes) is through

    # ----------------------------------------------------------- FrameHandler

    def on_frame(self, payload: bytes, now: float) -> None:
        frame = _decode(payload)
        kind = frame.type
        if kind == TYPE_SENT:
            self.bench.on_sent(frame.id, now)
        elif kind == TYPE_MSG:
            if self.receiving:
                self.bench.on_delivered(frame.id, now)
            if frame.seq > self._acks.get(frame.conversation, 0):
                self._acks[frame.conversation] = frame.seq
        elif kind == TYPE_STATE:
            if frame.seq > self._acks.get(frame.conversation, 0):
                self._acks[frame.conversation] = frame.seq
        elif kind in (TYPE_TODEVICE, TYPE_KEYS_CHANGED):
            self._queue_ack = max(self._queue_ack, frame.seq)
        elif kind == TYPE_ERROR:
            self.bench.on_error(frame.code, frame.ref, frame.message)
        elif kind == TYPE_WELCOME:
            if not self.welcome.done():
                self.welcome.set_result(None)
        elif kind == TYPE_QUEUE_EMPTY and not self.ready.done():
            self.ready.set_result(None)

    def on_batch_end(self) -> None:
        """Acknowledge everything this read brought, one frame per conversation."""
        if self.conn is None or not (self._acks or self._queue_ack):
            return
        out = [
            encode(frames.Ack(conversation=ConversationId(c), seq=s)) for c, s in self._acks.items()
        ]
        if self._queue_ack:
            out.append(encode(frames.ToDeviceAck(seq=self._queue_ack)))
        self._acks.clear()
        self._queue_ack = 0
        self.conn.send_many(out)

    def on_close(self, reason: str) -> None:
        for future in (self.welcome, self.ready):
            if not future.done():
                future.set_exception(ConnectionError(reason))
        self.bench.on_close(self, reason)


@dataclasses.dataclass
class Pair:
    sender: Device
    receiver: Device
    conversation: ConversationId
    #: the ``msg.send`` frame around its id, encoded once
    head: bytes
    tail: bytes


def send_template(conversation: ConversationId, body: bytes) -> tuple[bytes, bytes]:
    placeholder = MessageId("P" * 22)
    encoded = encode(frames.Send(conversation=conversation, id=placeholder, body=body))
    head, found, tail = encoded.partition(placeholder.encode())
    assert found, "the message id must appear in the encoded frame"
    return head, tail


# ---------------------------------------------------------------- options


def _rates(text: str) -> list[float]:
    try:
        rates = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of numbers: {text!r}") from None
    if not rates or any(r <= 0 for r in rates):
        raise argparse.ArgumentTypeError("rates must be positive numbers")
    return rates


def _env_pair(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.startswith("TAUBE_"):
        raise argparse.ArgumentTypeError("expected TAUBE_SECTION_KEY=VALUE")
    return key, value


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--pairs",
        type=int,
        default=50,
        help="sender/receiver device pairs, one direct conversation each (50)",
    )
    p.add_argument(
        "--rates",
        type=_rates,
        default=_rates("1000,2000,5000,10000"),
        help="fixed arrival rates in messages/s, comma-separated (1000,2000,5000,10000)",
    )
    p.add_argument("--duration", type=float, default=10.0, help="seconds per fixed-rate step (10)")
    p.add_argument(
        "--body-bytes", type=int, default=256, help="ciphertext size of each message (256)"
    )
    p.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds at 500/s (2)")
    p.add_argument(
        "--no-ramp",
        dest="ramp",
        action="store_false",
        help="skip the search for the maximum sustained rate",
    )
    p.add_argument(
        "--ramp-start",
        type=float,
        default=0.0,
        help="first ramp rate (default: the best sustained fixed rate times the factor, else 500)",
    )
    p.add_argument(
        "--ramp-factor", type=float, default=1.25, help="rate growth per ramp step (1.25)"
    )
    p.add_argument("--ramp-duration", type=float, default=4.0, help="seconds per ramp step (4)")
    p.add_argument("--ramp-steps", type=int, default=12, help="at most this many ramp steps (12)")
    p.add_argument(
        "--ramp-refine",
        type=int,
        default=2,
        help="bisection steps between the last rate that held and the first that did not (2)",
    )
    p.add_argument(
        "--ramp-max-rate",
        type=float,
        default=100_000.0,
        help="stop ramping above this rate (100000)",
    )
    p.add_argument(
        "--p99-bound-ms",
        type=float,
        default=100.0,
        help="a step is sustained only if its ack p99 is within this (100)",
    )
    p.add_argument(
        "--abort-backlog-s",
        type=float,
        default=2.0,
        help="stop a step once this many seconds of arrivals await an answer (2)",
    )
    p.add_argument(
        "--drain-timeout",
        type=float,
        default=10.0,
        help="seconds to wait for outstanding answers after a step (10)",
    )
    p.add_argument(
        "--max-time",
        type=float,
        default=170.0,
        help="start no new step after this many seconds of the run (170)",
    )
    p.add_argument(
        "--no-pin",
        dest="pin",
        action="store_false",
        help="do not pin the server to CPU 0 and the generator to CPU 1",
    )
    p.add_argument(
        "--server-env",
        type=_env_pair,
        action="append",
        default=[],
        metavar="TAUBE_X_Y=VALUE",
        help="extra server setting (repeatable), e.g. TAUBE_STORAGE_SYNCHRONOUS=NORMAL",
    )
    p.add_argument(
        "--tmp-dir",
        type=Path,
        default=None,
        help="where the server's data directory is created (system temp)",
    )
    p.add_argument(
        "--keep-data",
        action="store_true",
        help="keep the server's data directory (and its log) afterwards",
    )
    p.add_argument(
        "--output",
        type=Path,
        default=None,
        help="results file (default bench/results/delivery-<time>.json)",
    )


# ---------------------------------------------------------------- the run


class DeliveryRun:
    def __init__(self, args: argparse.Namespace, server: ServerProcess, server_pid: int) -> None:
        self.args = args
        self.server = server
        self.server_pid = server_pid
        #: every server process whose CPU and I/O a step counts (several nodes)
        self.server_pids = [server_pid]
        url = urlsplit(server.url)
        assert url.hostname is not None
        assert url.port is not None
        self.host, self.port = url.hostname, url.port
        self.domain = server.env.get("TAUBE_SERVER_DOMAIN", "localhost")
        self.bench = Bench()
        self.pairs: list[Pair] = []
        self.steps: list[dict[str, Any]] = []
        self.step_number = 0
        self.current: Tracker | None = None
        self.status_line = "starting"
        self.started = time.perf_counter()
        self.progress = loadgen.Progress(self._status)
        self._last: tuple[float, int, int] = (time.perf_counter(), 0, 0)

    # ----------------------------------------------------------- progress

    def _status(self) -> str:
        tracker = self.current
        total = f"[{time.perf_counter() - self.started:5.0f}s]"
        if tracker is None:
            return f"{total} {self.status_line}"
        now = time.perf_counter()
        then, acked, delivered = self._last
        if then < tracker.started:
            then, acked, delivered = tracker.started, 0, 0
        dt = max(now - then, 1e-6)
        ack_rate = (tracker.n_acked - acked) / dt
        delivery_rate = (tracker.n_delivered - delivered) / dt
        self._last = (now, tracker.n_acked, tracker.n_delivered)
        buffered = sum(
            p.sender.conn.write_buffer_size for p in self.pairs if p.sender.conn is not None
        )
        return (
            f"{total} {tracker.phase} {tracker.rate:,.0f}/s"
            f" t={now - tracker.started:4.1f}s sent {tracker.fired:,}/{tracker.planned:,}"
            f" acked {ack_rate:,.0f}/s delivered {delivery_rate:,.0f}/s"
            f" behind {tracker.acks_behind:,}/{tracker.deliveries_behind:,}"
            f" client-buffer {buffered / 1024:,.0f} KiB"
        )

    def log(self, line: str) -> None:
        self.progress.log(line)

    # ----------------------------------------------------------- setup

    async def setup(self) -> None:
        args = self.args
        done = 0
        limit = asyncio.Semaphore(8)  # the server hashes passwords two at a time
        body = os.urandom(args.body_bytes)

        async def pair(i: int) -> Pair:
            nonlocal done
            tag = self.bench.tag
            async with (
                limit,
                RawClient(self.server.url, f"s{i}-{tag}@{self.domain}") as s,
                RawClient(self.server.url, f"r{i}-{tag}@{self.domain}") as r,
            ):
                await s.new_account(one_time_keys=1)
                await r.new_account(one_time_keys=1)
                conversation = await s.direct(r.address)
                tokens = s.token, r.token
            sender = Device(self.bench, "sender", tokens[0])
            receiver = Device(self.bench, "receiver", tokens[1])
            done += 1
            self.status_line = f"setting up: {done}/{args.pairs} pairs registered"
            return Pair(sender, receiver, conversation, *send_template(conversation, body))

        self.status_line = f"setting up: registering {args.pairs} pairs"
        self.pairs = list(await asyncio.gather(*(pair(i) for i in range(args.pairs))))
        self.status_line = f"setting up: connecting {2 * args.pairs} devices"
        devices = [d for p in self.pairs for d in (p.sender, p.receiver)]
        await asyncio.gather(*(d.open(self.host, self.port) for d in devices))
        self.log(
            f"set up {args.pairs} pairs ({2 * args.pairs} WebSockets)"
            f" in {time.perf_counter() - self.started:.1f}s"
        )

    async def close(self) -> None:
        self.bench.closing = True
        for p in self.pairs:
            for device in (p.sender, p.receiver):
                if device.conn is not None:
                    device.conn.close()
        await asyncio.sleep(0.1)

    # ----------------------------------------------------------- one step

    async def step(self, phase: str, rate: float, duration: float) -> dict[str, Any]:
        args = self.args
        self.step_number += 1
        number = self.step_number
        planned = max(1, round(rate * duration))
        tracker = Tracker(number, phase, rate, planned)
        self.bench.trackers[number] = tracker
        self.current = tracker
        ids = [msg_id.encode() for msg_id in tracker.ids]
        pairs = self.pairs
        n = len(pairs)
        intended_at = tracker.intended
        backlog_limit = max(200, int(rate * args.abort_backlog_s))
        closed_before = len(self.bench.closed)

        def fire(index: int, intended: float) -> None:
            pair = pairs[index % n]
            intended_at[index] = intended
            tracker.fired = index + 1
            assert pair.sender.conn is not None
            pair.sender.conn.send(pair.head + ids[index] + pair.tail)

        def check() -> str | None:
            if len(self.bench.closed) > closed_before:
                return f"connection closed: {self.bench.closed[-1]}"
            if tracker.acks_behind > backlog_limit:
                return f"acks fell behind by {tracker.acks_behind} messages"
            if tracker.deliveries_behind > backlog_limit:
                return f"deliveries fell behind by {tracker.deliveries_behind} messages"
            return None

        server_cpu = loadgen.GroupCpuMeter(self.server_pids)
        own_cpu = loadgen.CpuMeter()
        machine_cpu = loadgen.MachineCpuMeter()
        server_cpu.start()
        own_cpu.start()
        machine_cpu.start()
        io_before = loadgen.processes_io(self.server_pids)
        tracker.started = time.perf_counter()
        schedule = await loadgen.open_loop(rate, duration, fire, check=check)
        window_end = time.perf_counter()
        server_pct, own_pct = server_cpu.percent(), own_cpu.percent()
        machine_pct, irq_pct, steal_pct = machine_cpu.percent()
        io_after = loadgen.processes_io(self.server_pids)
        io = {key: io_after[key] - io_before[key] for key in io_after if key in io_before}
        cpu = {
            "server": server_pct,
            "loadgen": own_pct,
            "other": max(0.0, machine_pct - server_pct - own_pct),
            "steal": steal_pct,
            "irq": irq_pct,
        }
        client_buffer = sum(
            p.sender.conn.write_buffer_size for p in pairs if p.sender.conn is not None
        )
        deadline = window_end + args.drain_timeout
        while not tracker.complete and time.perf_counter() < deadline:
            if len(self.bench.closed) > closed_before:
                break
            await asyncio.sleep(0.02)
        drained = time.perf_counter()
        self.current = None
        self.status_line = "between steps"
        del self.bench.trackers[number]  # late answers are ignored from here on
        result = self._result(tracker, schedule, window_end, drained, cpu, io, client_buffer)
        self.steps.append(result)
        self.log(_step_line(result))
        await asyncio.sleep(0.5)  # let merged acks be written and the log pruned
        return result

    def _result(
        self,
        tracker: Tracker,
        schedule: loadgen.ScheduleResult,
        window_end: float,
        drained: float,
        cpu: dict[str, float],
        io: dict[str, int],
        client_buffer: int,
    ) -> dict[str, Any]:
        args = self.args
        fired = schedule.fired
        start = schedule.started
        # the arrivals fired span fired/rate seconds (the last one is due a gap early)
        window = max(window_end - start, fired / tracker.rate, 1e-9)
        sent_at = tracker.intended[:fired]
        acked = tracker.acked[:fired]
        delivered = tracker.delivered[:fired]
        lag = schedule.lag
        ack_lat = [a - s for a, s in zip(acked, sent_at, strict=True) if a]
        del_lat = [d - s for d, s in zip(delivered, sent_at, strict=True) if d]
        # the same, from when the frame was written rather than when it was due
        ack_write = [a - s - g for a, s, g in zip(acked, sent_at, lag, strict=True) if a]
        del_write = [d - s - g for d, s, g in zip(delivered, sent_at, lag, strict=True) if d]
        acks_in_window = sum(1 for a in acked if 0 < a <= start + window)
        deliveries_in_window = sum(1 for d in delivered if 0 < d <= start + window)
        last_ack = max(acked, default=0.0)
        ack_summary = loadgen.summarize(ack_lat, fired)
        delivery_summary = loadgen.summarize(del_lat, fired)
        durable_rate = acks_in_window / window
        problems = step_problems(tracker, schedule, durable_rate, ack_summary["p99"], args)
        lag_summary = loadgen.summarize(lag)
        notes: list[str] = []
        lag_p99 = lag_summary["p99"]
        if isinstance(lag_p99, float) and lag_p99 > 5.0:
            notes.append(f"generator ran late (send lag p99 {lag_p99:.1f} ms)")
        if cpu["loadgen"] > 85.0:
            notes.append(f"generator CPU at {cpu['loadgen']:.0f}%: it may be the limit")
        if cpu["other"] + cpu["steal"] > 10.0:
            notes.append(
                f"other processes used {cpu['other']:.0f}% of a CPU"
                f" (steal {cpu['steal']:.0f}%): the numbers are noisy"
            )
        return {
            "step": tracker.number,
            "phase": tracker.phase,
            "offered_rate": tracker.rate,
            "planned": tracker.planned,
            "sent": fired,
            "window_s": window,
            "send_rate": fired / window,
            "acked": tracker.n_acked,
            "delivered": tracker.n_delivered,
            "failed": tracker.n_failed,
            "errors": dict(tracker.errors),
            "duplicates": tracker.duplicates,
            "durable_rate": durable_rate,
            "delivery_rate": deliveries_in_window / window,
            "completion_s": (last_ack - start) if last_ack else None,
            "drain_s": drained - window_end,
            "ack_latency_ms": ack_summary,
            "delivery_latency_ms": delivery_summary,
            "ack_latency_from_write_ms": loadgen.summarize(ack_write, fired),
            "delivery_latency_from_write_ms": loadgen.summarize(del_write, fired),
            "send_lag_ms": lag_summary,
            "timeline": _timeline(sent_at, acked, start),
            "server_cpu_pct": _finite(cpu["server"]),
            "loadgen_cpu_pct": _finite(cpu["loadgen"]),
            "other_cpu_pct": _finite(cpu["other"]),
            "steal_cpu_pct": _finite(cpu["steal"]),
            "irq_cpu_pct": _finite(cpu["irq"]),  # includes loopback networking, ours too
            # what the server process wrote while the step ran (storage and sockets)
            "server_io": {
                "disk_write_bytes_per_msg": _per(io.get("write_bytes"), acks_in_window),
                "write_bytes_per_msg": _per(io.get("wchar"), acks_in_window),
                "write_syscalls_per_msg": _per(io.get("syscw"), acks_in_window),
                "read_syscalls_per_msg": _per(io.get("syscr"), acks_in_window),
                "disk_write_mb_per_s": _per(io.get("write_bytes"), window * 1e6),
            },
            "client_buffer_bytes": client_buffer,
            "aborted": schedule.aborted,
            "sustained": not problems,
            "problems": problems,
            "notes": notes,
        }

    # ----------------------------------------------------------- phases

    def _time_left(self) -> bool:
        limit: float = self.args.max_time
        return time.perf_counter() - self.started < limit

    async def run(self) -> dict[str, Any]:
        args = self.args
        with self.progress:
            await self.setup()
            gc.collect()
            gc.freeze()  # setup's objects never need scanning again
            if args.warmup > 0:
                await self.step("warmup", min(500.0, *args.rates), args.warmup)
            fixed: list[dict[str, Any]] = []
            for rate in args.rates:
                if not self._time_left():
                    self.log(f"--max-time reached: skipping the fixed rate {rate:g}/s")
                    continue
                fixed.append(await self.step("fixed", rate, args.duration))
            ramp = await self.ramp(fixed) if args.ramp else None
        return {"fixed": fixed, "ramp": ramp}

    async def ramp(self, fixed: list[dict[str, Any]]) -> dict[str, Any]:
        args = self.args
        held = [s["offered_rate"] for s in fixed if s["sustained"]]
        rate = args.ramp_start or (max(held) * args.ramp_factor if held else 500.0)
        best: dict[str, Any] | None = None
        failed: dict[str, Any] | None = None
        stopped = ""
        for _ in range(args.ramp_steps):
            if rate > args.ramp_max_rate:
                stopped = f"reached --ramp-max-rate {args.ramp_max_rate:g}"
                break
            if not self._time_left():
                stopped = "reached --max-time"
                break
            result = await self.step("ramp", round(rate), args.ramp_duration)
            if not result["sustained"]:
                failed = result
                break
            best = result
            rate *= args.ramp_factor
        else:
            stopped = f"reached --ramp-steps {args.ramp_steps}"
        if best is None:
            # not even the first ramp step held: start from the fixed steps
            best = max(
                (s for s in fixed if s["sustained"]), key=lambda s: s["offered_rate"], default=None
            )
        if best is not None and failed is not None:
            for _ in range(args.ramp_refine):
                mid = round(math.sqrt(best["offered_rate"] * failed["offered_rate"]))
                if not self._time_left() or mid / best["offered_rate"] < 1.03:
                    break
                result = await self.step("refine", mid, args.ramp_duration)
                if result["sustained"]:
                    best = result
                else:
                    failed = result
        return {
            "max_sustained_rate": best["offered_rate"] if best else None,
            "max_sustained_durable_rate": best["durable_rate"] if best else None,
            "max_sustained_step": best["step"] if best else None,
            "lowest_failing_rate": failed["offered_rate"] if failed else None,
            "lowest_failing_problems": failed["problems"] if failed else None,
            "stopped": stopped or "saturated",
        }


# ---------------------------------------------------------------- reporting


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _timeline(
    sent_at: list[float], acked: list[float], start: float, width: float = 1.0
) -> list[dict[str, Any]]:
    """Per ``width`` seconds of arrivals: how many, and their ack latencies
    (stalls, such as a checkpoint, show up here and vanish in percentiles)."""
    buckets: dict[int, list[float]] = {}
    unanswered: Counter[int] = Counter()
    for sent, ack in zip(sent_at, acked, strict=True):
        key = int((sent - start) / width)
        if ack:
            buckets.setdefault(key, []).append(ack - sent)
        else:
            unanswered[key] += 1
    out = []
    for key in sorted(buckets.keys() | unanswered.keys()):
        values = sorted(buckets.get(key, []))
        out.append(
            {
                "t": key * width,
                "sent": len(values) + unanswered[key],
                "unanswered": unanswered[key],
                "ack_p50_ms": loadgen.percentile(values, 50) * 1000 if values else None,
                "ack_p99_ms": loadgen.percentile(values, 99) * 1000 if values else None,
                "ack_max_ms": values[-1] * 1000 if values else None,
            }
        )
    return out


def _per(value: int | None, count: float) -> float | None:
    return value / count if value is not None and count > 0 else None


def _ms(value: object) -> str:
    return f"{value:.1f}" if isinstance(value, float) else "-"


def _step_line(s: dict[str, Any]) -> str:
    a, d = s["ack_latency_ms"], s["delivery_latency_ms"]
    verdict = "ok" if s["sustained"] else "NOT SUSTAINED: " + "; ".join(s["problems"])
    return (
        f"step {s['step']} {s['phase']} {s['offered_rate']:,.0f}/s: durable"
        f" {s['durable_rate']:,.0f}/s, ack p50/p99/p99.9 {_ms(a['p50'])}/{_ms(a['p99'])}/"
        f"{_ms(a['p99.9'])} ms, delivery p99 {_ms(d['p99'])} ms, server CPU"
        f" {s['server_cpu_pct'] or 0:.0f}%, generator CPU {s['loadgen_cpu_pct'] or 0:.0f}%"
        f" -> {verdict}" + "".join(f" [{note}]" for note in s["notes"])
    )


def table(steps: list[dict[str, Any]]) -> str:
    header = (
        "phase",
        "offered/s",
        "sent/s",
        "durable/s",
        "ack p50",
        "p99",
        "p99.9",
        "max",
        "dlv p50",
        "p99",
        "p99.9",
        "srv CPU",
        "gen CPU",
        "other CPU",
        "gen lag p99",
        "result",
    )
    rows = [header]
    for s in steps:
        a, d = s["ack_latency_ms"], s["delivery_latency_ms"]
        rows.append(
            (
                s["phase"],
                f"{s['offered_rate']:,.0f}",
                f"{s['send_rate']:,.0f}",
                f"{s['durable_rate']:,.0f}",
                _ms(a["p50"]),
                _ms(a["p99"]),
                _ms(a["p99.9"]),
                _ms(a["max"]),
                _ms(d["p50"]),
                _ms(d["p99"]),
                _ms(d["p99.9"]),
                f"{s['server_cpu_pct'] or 0:.0f}%",
                f"{s['loadgen_cpu_pct'] or 0:.0f}%",
                f"{(s['other_cpu_pct'] or 0) + (s['steal_cpu_pct'] or 0):.0f}%",
                _ms(s["send_lag_ms"]["p99"]),
                "ok" if s["sustained"] else ("saturated" if s["aborted"] else "missed"),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = []
    for j, row in enumerate(rows):
        cells = [
            c.ljust(w) if i in (0, len(row) - 1) else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).resolve().parent,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def _filesystem(path: Path) -> str | None:
    """The type of the filesystem holding ``path`` (fsync costs differ a lot)."""
    try:
        mounts = [line.split() for line in Path("/proc/mounts").read_text().splitlines()]
    except OSError:
        return None
    target = str(path.resolve())
    best = max(
        (
            m
            for m in mounts
            if len(m) > 2 and (target == m[1] or target.startswith(m[1].rstrip("/") + "/"))
        ),
        key=lambda m: len(m[1]),
        default=None,
    )
    return f"{best[2]} ({best[0]} on {best[1]})" if best else None


def _cpu_model() -> str | None:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return None


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in ("taube", "aiohttp", "msgspec", "uvloop"):
        with contextlib.suppress(PackageNotFoundError):
            out[name] = version(name)
    return out


def _server_log_summary(server: ServerProcess) -> dict[str, Any]:
    levels: Counter[str] = Counter()
    samples: list[str] = []
    for line in server.logs().splitlines():
        try:
            level = str(json.loads(line).get("level", "?"))
        except (ValueError, AttributeError):
            level = "text"
        levels[level] += 1
        if level in ("error", "critical", "text") and len(samples) < 5:
            samples.append(line[:300])
    return {"lines_by_level": dict(levels), "error_samples": samples}


# ---------------------------------------------------------------- entry point


def _event_loop_runner() -> Callable[[Coroutine[Any, Any, T]], T]:
    try:
        import uvloop
    except ImportError:
        return asyncio.run
    runner: Callable[[Coroutine[Any, Any, T]], T] = uvloop.run
    return runner


def run(args: argparse.Namespace) -> int:
    if args.pairs < 1 or args.duration <= 0 or args.body_bytes < 0:
        print("delivery: --pairs and --duration must be positive", file=sys.stderr)
        return 2
    try:
        report = _run(args)
    except KeyboardInterrupt:
        print("\ndelivery: interrupted; the server was stopped", file=sys.stderr)
        return 130
    output: Path = args.output or RESULTS_DIR / time.strftime(
        "delivery-%Y%m%d-%H%M%S.json", time.gmtime(report["started_at"])
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2) + "\n")
    print_summary(report)
    print(f"results: {output}", file=sys.stderr)
    return 0


def _run(args: argparse.Namespace) -> dict[str, Any]:
    """Start the server, run the phases, stop the server; the report."""
    pin = args.pin and loadgen.cpu_count() >= 2 and hasattr(os, "sched_setaffinity")
    if pin and not os.sched_getaffinity(0).issuperset(SERVER_CPUS | LOADGEN_CPUS):
        pin = False
    data_root = Path(tempfile.mkdtemp(prefix="taube-bench-", dir=args.tmp_dir))
    server = ServerProcess(data_root / "server", env={**SERVER_ENV, **dict(args.server_env)})
    started_at = time.time()
    failed = True
    try:
        with loadgen.affinity(SERVER_CPUS if pin else None):
            server.start()  # the child inherits CPU 0 (and so do its threads)
        assert server.proc is not None
        server_pid = server.proc.pid
        if pin:
            loadgen.pin_process(server_pid, SERVER_CPUS)
            os.sched_setaffinity(0, LOADGEN_CPUS)
        where = (
            f"server on CPU {sorted(SERVER_CPUS)}, generator on CPU {sorted(LOADGEN_CPUS)}"
            if pin
            else "not pinned"
        )
        print(
            f"taube serve pid {server_pid} at {server.url}; data in {server.data_dir}"
            f" ({_filesystem(server.data_dir)}); {where}",
            file=sys.stderr,
        )
        bench = DeliveryRun(args, server, server_pid)

        async def main() -> dict[str, Any]:
            try:
                return await bench.run()
            finally:
                await bench.close()

        phases = _event_loop_runner()(main())
        failed = False
    finally:
        if pin:
            with contextlib.suppress(OSError):
                os.sched_setaffinity(0, SERVER_CPUS | LOADGEN_CPUS)
        exit_code = server.stop()
        if failed:
            tail = server.logs().splitlines()[-10:]
            if tail:
                print("last lines of the server log:", *tail, sep="\n  ", file=sys.stderr)
        if args.keep_data:
            print(f"server data kept in {data_root}", file=sys.stderr)
        else:
            shutil.rmtree(data_root, ignore_errors=True)
    return {
        "workload": "delivery",
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started_at)),
        "started_at": started_at,
        "duration_s": time.time() - started_at,
        "argv": sys.argv[1:],
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "server_env": dict(server.env),
        "environment": {
            "git_commit": _git_commit(),
            "versions": _versions(),
            "platform": platform.platform(),
            "cpu": _cpu_model(),
            "cpus": os.cpu_count(),
            "pinned": {"server": sorted(SERVER_CPUS), "loadgen": sorted(LOADGEN_CPUS)}
            if pin
            else None,
            "data_filesystem": _filesystem(data_root),
        },
        "steps": bench.steps,
        "ramp": phases["ramp"],
        "other_errors": dict(bench.bench.other_errors),
        "unexpected_closes": bench.bench.closed,
        "server_exit_code": exit_code,
        "server_log": _server_log_summary(server),
    }


def print_summary(report: dict[str, Any]) -> None:
    steps: list[dict[str, Any]] = report["steps"]
    print(table([s for s in steps if s["phase"] != "warmup"]))
    ramp = report["ramp"]
    if ramp is not None:
        best = ramp["max_sustained_rate"]
        print(
            "\nmax sustained durable send rate: "
            + (
                f"{best:,.0f}/s offered, {ramp['max_sustained_durable_rate']:,.0f}/s acked"
                if best
                else "none of the steps held"
            )
            + (
                f"; {ramp['lowest_failing_rate']:,.0f}/s did not hold"
                f" ({'; '.join(ramp['lowest_failing_problems'])})"
                if ramp["lowest_failing_rate"]
                else f" ({ramp['stopped']})"
            )
        )
    peak = max(steps, key=lambda s: s["durable_rate"], default=None)
    if peak is not None:
        print(
            f"peak durable throughput seen: {peak['durable_rate']:,.0f}/s"
            f" (step {peak['step']}, offered {peak['offered_rate']:,.0f}/s,"
            f" server CPU {peak['server_cpu_pct'] or 0:.0f}%)"
        )
    noisy = [s["step"] for s in steps if any("noisy" in n for n in s["notes"])]
    if noisy:
        print(f"note: other processes competed for the CPUs during steps {noisy}; see other CPU")
