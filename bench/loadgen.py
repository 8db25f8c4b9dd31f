"""Reusable pieces for open-loop load generation.

Open loop: arrivals are scheduled at a fixed rate from the start time, and
never wait for responses. When the generator itself runs late (a timer tick,
a slow callback) it catches up at once, and every arrival keeps its
*intended* time, so latencies measured from it include the generator's lag
instead of hiding it (no coordinated omission). The lag is reported too, so
a run can tell whether the generator kept up.

Also here: CPU pinning, CPU time of a process, percentiles, and a progress
line on stderr.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

#: a callback that fires arrival ``index`` scheduled for ``intended`` (perf_counter seconds)
Fire = Callable[[int, float], None]
#: polled between ticks; a string stops the schedule early (the reason)
Check = Callable[[], str | None]

_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


# ---------------------------------------------------------------- schedule


@dataclasses.dataclass
class ScheduleResult:
    rate: float
    planned: int
    fired: int
    started: float  #: perf_counter at the first arrival
    finished: float  #: perf_counter when the last arrival was fired
    aborted: str | None  #: why the schedule stopped early, if it did
    lag: list[float]  #: per arrival: fired minus intended, seconds

    @property
    def elapsed(self) -> float:
        return max(self.finished - self.started, 1e-9)


async def open_loop(
    rate: float,
    duration: float,
    fire: Fire,
    *,
    check: Check | None = None,
    min_sleep: float = 0.001,
    max_sleep: float = 0.005,
) -> ScheduleResult:
    """Fire ``rate * duration`` arrivals evenly spaced at ``rate`` per second.

    The loop sleeps until the next arrival is due and then fires every
    arrival that is due by then, so timer granularity becomes a small,
    measured lag rather than a lower rate. Sleeps are at least ``min_sleep``:
    event loop timers have millisecond resolution (uvloop rounds shorter
    delays to zero, which would spin the CPU the generator needs).
    """
    if rate <= 0 or duration <= 0:
        raise ValueError("rate and duration must be positive")
    planned = max(1, round(rate * duration))
    interval = 1.0 / rate
    lag: list[float] = []
    clock = time.perf_counter
    start = clock()
    fired = 0
    aborted: str | None = None
    while fired < planned:
        now = clock()
        due = min(planned, int((now - start) * rate) + 1)
        while fired < due:
            intended = start + fired * interval
            fire(fired, intended)
            lag.append(clock() - intended)
            fired += 1
        if check is not None:
            aborted = check()
            if aborted is not None:
                break
        if fired < planned:
            delay = start + fired * interval - clock()
            await asyncio.sleep(min(max(delay, min_sleep), max_sleep))
    return ScheduleResult(rate, planned, fired, start, clock(), aborted, lag)


# ---------------------------------------------------------------- statistics


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of ascending values (``q`` in 0..100)."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q / 100.0 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


PERCENTILES = (50.0, 90.0, 99.0, 99.9)


def summarize(values: list[float], expected: int | None = None) -> dict[str, float | int | None]:
    """Percentiles in milliseconds. Missing values (``expected`` minus those
    given) count as infinitely slow, so a percentile that lands on one is
    ``None``: "did not complete"."""
    values = sorted(values)
    missing = max(0, (expected or len(values)) - len(values))
    padded: list[float] = values + [math.inf] * missing
    out: dict[str, float | int | None] = {"count": len(values), "missing": missing}
    for q in PERCENTILES:
        value = percentile(padded, q)
        out[f"p{q:g}"] = None if math.isinf(value) or math.isnan(value) else value * 1000.0
    out["mean"] = sum(values) / len(values) * 1000.0 if values else None
    out["max"] = None if missing or not values else values[-1] * 1000.0
    return out


# ---------------------------------------------------------------- CPUs


def cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1


@contextlib.contextmanager
def affinity(cpus: set[int] | None) -> Iterator[None]:
    """Run the block on ``cpus`` (children started inside inherit them)."""
    if not cpus or not hasattr(os, "sched_setaffinity"):
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def pin_process(pid: int, cpus: set[int]) -> bool:
    """Pin every thread of ``pid`` (threads started later inherit from theirs)."""
    if not hasattr(os, "sched_setaffinity"):
        return False
    ok = True
    try:
        tids = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        tids = [pid]
    for tid in tids:
        try:
            os.sched_setaffinity(tid, cpus)
        except OSError:
            ok = False
    return ok


def cpu_seconds(pid: int | None = None) -> float:
    """User plus system CPU time of a whole process (all its threads)."""
    if pid is None:
        return time.process_time()
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return math.nan
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def process_io(pid: int) -> dict[str, int]:
    """``/proc/PID/io``: bytes and system calls read and written, all threads."""
    try:
        lines = Path(f"/proc/{pid}/io").read_text().splitlines()
    except OSError:
        return {}
    return {key: int(value) for key, _, value in (line.partition(": ") for line in lines)}


def processes_io(pids: list[int]) -> dict[str, int]:
    """``process_io`` summed over several processes (the nodes of a cluster)."""
    total: dict[str, int] = {}
    for pid in pids:
        for key, value in process_io(pid).items():
            total[key] = total.get(key, 0) + value
    return total


def machine_cpu_seconds() -> tuple[float, float, float]:
    """CPU seconds of the whole machine, all CPUs together: busy in processes,
    in interrupts (loopback networking runs there, for everyone), stolen."""
    try:
        with open("/proc/stat") as stat:
            fields = stat.readline().split()
    except OSError:
        return math.nan, math.nan, math.nan
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[1:9])
    return (user + nice + system) / _CLK_TCK, (irq + softirq) / _CLK_TCK, steal / _CLK_TCK


@dataclasses.dataclass
class MachineCpuMeter:
    """CPU of the whole machine between ``start`` and ``percent`` (process
    time, interrupt time, stolen time), in percent of one core. With the CPU
    of known processes subtracted from the first, what is left is noise from
    everything else running."""

    _before: tuple[float, float, float] = (0.0, 0.0, 0.0)
    _wall: float = 0.0

    def start(self) -> None:
        self._before, self._wall = machine_cpu_seconds(), time.perf_counter()

    def percent(self) -> tuple[float, float, float]:
        wall = time.perf_counter() - self._wall
        now = machine_cpu_seconds()
        if wall <= 0:
            return math.nan, math.nan, math.nan
        busy, irq, steal = ((b - a) / wall * 100.0 for a, b in zip(self._before, now, strict=True))
        return busy, irq, steal


@dataclasses.dataclass
class CpuMeter:
    """CPU use of a process between ``start`` and ``stop``, in percent of one core."""

    pid: int | None = None
    _cpu: float = 0.0
    _wall: float = 0.0

    def start(self) -> None:
        self._cpu, self._wall = cpu_seconds(self.pid), time.perf_counter()

    def percent(self) -> float:
        wall = time.perf_counter() - self._wall
        return (cpu_seconds(self.pid) - self._cpu) / wall * 100.0 if wall > 0 else math.nan


# ---------------------------------------------------------------- progress


class Progress:
    """A status line on stderr, refreshed every ``interval`` seconds.

    On a terminal the line is rewritten in place; otherwise one line is
    printed per refresh, so logs stay readable.
    """

    def __init__(self, status: Callable[[], str], interval: float = 1.0) -> None:
        self.status = status
        self.interval = interval
        self.tty = sys.stderr.isatty()
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            self.show(self.status())

    def show(self, line: str) -> None:
        if self.tty:
            sys.stderr.write("\r\x1b[2K" + line)
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()

    def log(self, line: str) -> None:
        """A line that stays (ends the status line first on a terminal)."""
        if self.tty:
            sys.stderr.write("\r\x1b[2K")
        sys.stderr.write(line + "\n")
        sys.stderr.flush()

    def __enter__(self) -> Progress:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
        if self.tty:
            sys.stderr.write("\r\x1b[2K")
            sys.stderr.flush()


@dataclasses.dataclass
class GroupCpuMeter:
    """``CpuMeter`` summed over several processes, in percent of one core."""

    pids: list[int]
    _cpu: float = 0.0
    _wall: float = 0.0

    def _total(self) -> float:
        return sum(cpu_seconds(pid) for pid in self.pids)

    def start(self) -> None:
        self._cpu, self._wall = self._total(), time.perf_counter()

    def percent(self) -> float:
        wall = time.perf_counter() - self._wall
        return (self._total() - self._cpu) / wall * 100.0 if wall > 0 else math.nan
