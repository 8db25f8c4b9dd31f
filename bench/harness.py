"""What every server workload needs around its measurement.

- ``pinned_server``: one ``taube serve`` of our own (data in a temporary
  directory, loopback only) on CPU 0 while this generator runs on CPU 1,
  stopped by its PID at the end;
- ``raise_fd_limit``: thousands of sockets need thousands of descriptors
  (the server inherits the limit, so raise it before starting one);
- ``rss_kib``: a process's resident memory, from ``/proc/PID/status``;
- ``table``, ``write_report``, ``environment``: the printed table and the
  JSON under ``bench/results/``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit

from bench import delivery, loadgen
from taube.testing import ServerProcess

T = TypeVar("T")

RESULTS_DIR = delivery.RESULTS_DIR
SERVER_CPUS = delivery.SERVER_CPUS
LOADGEN_CPUS = delivery.LOADGEN_CPUS

#: settings for servers that host thousands of bench accounts: password
#: hashing is not what these workloads measure, so it is made cheap, and the
#: per-IP and per-account limits (every device here comes from 127.0.0.1)
#: are lifted; bodies may carry a 1,100-event group creation
BULK_ENV = {
    **delivery.SERVER_ENV,
    "TAUBE_AUTH_ARGON2_TIME_COST": "1",
    "TAUBE_AUTH_ARGON2_MEMORY_KIB": "64",
    "TAUBE_LIMITS_AUTH_PER_IP_PER_MINUTE": "100000000",
    "TAUBE_LIMITS_AUTH_PER_ACCOUNT_PER_MINUTE": "100000",
    "TAUBE_LIMITS_ARGON2_QUEUE": "100000",
    "TAUBE_LIMITS_MAX_BODY_BYTES": str(8 << 20),
    "TAUBE_LOG_LEVEL": "warning",
}


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run the workload's coroutine on uvloop when it is there (as the server does)."""
    return delivery._event_loop_runner()(coro)


class Closing(Protocol):
    async def run(self) -> dict[str, Any]: ...

    async def close(self) -> None: ...


def run_then_close(bench: Closing) -> dict[str, Any]:
    """``bench.run()`` on a fresh event loop, then ``bench.close()`` whatever happened."""

    async def main() -> dict[str, Any]:
        try:
            return await bench.run()
        finally:
            await bench.close()

    return run_async(main())


def measure_on_server(
    name: str,
    args: Any,
    measure: Callable[[Any, RunningServer], Coroutine[Any, Any, dict[str, Any]]],
    env: Mapping[str, str] | None = None,
) -> tuple[dict[str, Any], Path] | None:
    """Start a pinned server, run ``measure(args, server)`` and write the report;
    ``None`` if interrupted (said on stderr; the server is stopped either way)."""
    report = header(name, args)
    with pinned_server(env, pin=args.pin, tmp_dir=args.tmp_dir, keep_data=args.keep_data) as server:
        try:
            report |= run_async(measure(args, server))
        except KeyboardInterrupt:
            print(f"\n{name}: interrupted; the server was stopped", file=sys.stderr)
            return None
        report["environment"] = environment(server.pinned)
    return report, write_report(name, report, args.output)


def raise_fd_limit(wanted: int | None = None) -> int:
    """Raise this process's open-file limit (soft, up to the hard limit); the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if wanted is None else max(soft, wanted)
    if hard != resource.RLIM_INFINITY:
        target = min(target, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        return target
    return soft


def ephemeral_ports() -> int:
    """How many local ports one loopback address offers outgoing connections."""
    with contextlib.suppress(OSError, ValueError):
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(high) - int(low) + 1
    return 28_000


def rss_kib(pid: int) -> int:
    """Resident set size of ``pid`` in KiB (``VmRSS``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def rss_kib_self() -> int:
    return rss_kib(os.getpid())


def can_pin() -> bool:
    return (
        loadgen.cpu_count() >= 2
        and hasattr(os, "sched_setaffinity")
        and os.sched_getaffinity(0).issuperset(SERVER_CPUS | LOADGEN_CPUS)
    )


@dataclasses.dataclass
class RunningServer:
    server: ServerProcess
    pid: int
    pinned: bool

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def address(self) -> tuple[str, int]:
        parts = urlsplit(self.server.url)
        assert parts.hostname is not None
        assert parts.port is not None
        return parts.hostname, parts.port

    @property
    def domain(self) -> str:
        return self.server.env.get("TAUBE_SERVER_DOMAIN", "localhost")

    def describe(self) -> str:
        where = (
            f"server on CPU {sorted(SERVER_CPUS)}, generator on CPU {sorted(LOADGEN_CPUS)}"
            if self.pinned
            else "not pinned"
        )
        return f"taube serve pid {self.pid} at {self.url}; {where}"


@contextlib.contextmanager
def pinned_server(
    env: Mapping[str, str] | None = None,
    *,
    pin: bool = True,
    tmp_dir: Path | None = None,
    keep_data: bool = False,
) -> Iterator[RunningServer]:
    """Start a server (on CPU 0, this process then on CPU 1, where possible);
    stop it by its PID and remove its data when the block ends."""
    pin = pin and can_pin()
    root = Path(tempfile.mkdtemp(prefix="taube-bench-", dir=tmp_dir))
    server = ServerProcess(root / "server", env={**BULK_ENV, **(env or {})})
    before = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    failed = True
    try:
        with loadgen.affinity(SERVER_CPUS if pin else None):
            server.start()
        assert server.proc is not None
        running = RunningServer(server, server.proc.pid, pin)
        if pin:
            loadgen.pin_process(running.pid, SERVER_CPUS)
            os.sched_setaffinity(0, LOADGEN_CPUS)
        print(running.describe(), file=sys.stderr)
        yield running
        failed = False
    finally:
        if pin and before is not None:
            with contextlib.suppress(OSError):
                os.sched_setaffinity(0, before)
        server.stop()
        if failed:
            tail = server.logs().splitlines()[-10:]
            if tail:
                print("last lines of the server log:", *tail, sep="\n  ", file=sys.stderr)
        if keep_data:
            print(f"server data kept in {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)


async def wait_quiet(
    pids: Sequence[int] = (),
    *,
    below_pct: float = 15.0,
    window: float = 1.0,
    limit: float = 30.0,
) -> float:
    """Wait (at most ``limit`` seconds) until processes other than this one
    and ``pids`` use less than ``below_pct`` of a CPU over ``window``
    seconds (the machine may be shared); the last share seen."""
    import asyncio

    deadline = time.perf_counter() + limit
    other = 0.0
    while True:
        machine = loadgen.MachineCpuMeter()
        ours = loadgen.GroupCpuMeter([os.getpid(), *pids])
        machine.start()
        ours.start()
        await asyncio.sleep(window)
        busy, _irq, steal = machine.percent()
        other = max(0.0, busy - ours.percent()) + steal
        if other < below_pct or time.perf_counter() >= deadline:
            return other


# ---------------------------------------------------------------- reporting


def environment(pinned: bool | None = None) -> dict[str, Any]:
    return {
        "git_commit": delivery._git_commit(),
        "versions": delivery._versions(),
        "platform": platform.platform(),
        "cpu": delivery._cpu_model(),
        "cpus": os.cpu_count(),
        "pinned": pinned,
    }


def write_report(name: str, report: dict[str, Any], output: Path | None = None) -> Path:
    """``report`` as JSON in ``bench/results/<name>-<time>.json`` (or ``output``)."""
    started = report.get("started_at", time.time())
    path = output or RESULTS_DIR / time.strftime(f"{name}-%Y%m%d-%H%M%S.json", time.gmtime(started))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    return path


def header(name: str, args: Any) -> dict[str, Any]:
    """The fields every report starts with."""
    now = time.time()
    return {
        "workload": name,
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
        "started_at": now,
        "argv": sys.argv[1:],
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
    }


def table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain text table: the first column left-aligned, the others right-aligned."""
    all_rows = [list(head), *[list(r) for r in rows]]
    widths = [max(len(r[i]) for r in all_rows) for i in range(len(head))]
    lines = []
    for j, row in enumerate(all_rows):
        cells = [
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def ms(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def rate(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"
