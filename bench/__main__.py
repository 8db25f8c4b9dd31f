"""``python -m bench WORKLOAD``: run one benchmark workload; ``python -m bench all``: each.

Workloads are modules of this package, imported only when chosen; add one by
writing ``bench/<name>.py`` with ``add_arguments`` and ``run`` and listing it
in ``WORKLOADS``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from typing import Protocol

DESCRIPTION = "Run a taube benchmark workload."

#: name -> one-line description (the module is ``bench.<name>``)
WORKLOADS = {
    "delivery": "durable send and delivery latency, open loop, and the maximum send rate",
    "fanout": "group fan-out to 10, 100, 1,000 and 5,000 members, with one member stalled",
    "idle": "server memory per idle authenticated connection at 5k and 15k connections",
    "reconnect": "5k devices reconnecting at once: time until 99% have their backlog",
    "backlog": "one device draining 10k queued messages",
    "attachments": "blob upload/download MB/s while 1:1 delivery runs at a fixed rate",
    "crypto": "client-side Olm/Megolm throughput and the cost of sharing a group key",
    "synapse": "1:1 delivery and fan-out to 100, side by side with Matrix Synapse",
    "web": "the web app in Chromium: time to interactive, a backlog drained, bundle size",
    "scaleout": "one node against two on PostgreSQL + Redis, and the cost of the Redis hop",
    "mail": "chat over e-mail: mails in through the connector, send latency beside Delta Chat",
    "search": "searching 100,000 messages on one device (SDK, SQLite FTS5): p50/p99 per query",
    "websearch": "the web app's search on 100,000 messages (its in-memory index, in Node)",
    "federation": "1:1 delivery across two federated servers, side by side with one server",
    "calls": "1:1 call set-up (dial -> media) direct and through TURN, CPU per participant",
}

#: ``all`` runs these unless told otherwise (``scaleout`` needs PostgreSQL and Redis,
#: ``mail`` Postfix, Dovecot, Delta Chat and root, ``calls`` coturn)
DEFAULT_ALL = [name for name in WORKLOADS if name not in ("scaleout", "mail", "calls")]


class Workload(Protocol):
    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


def load(name: str) -> Workload:
    module: Workload = importlib.import_module(f"bench.{name}")
    return module


def _names(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in WORKLOADS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown workloads: {', '.join(unknown)}")
    return names


def run_all(args: argparse.Namespace) -> int:
    """Each chosen workload with its default settings, one after the other."""
    chosen = [n for n in (args.only or DEFAULT_ALL) if n not in args.skip]
    failed: list[str] = []
    started = time.perf_counter()
    for number, name in enumerate(chosen, 1):
        print(f"\n=== [{number}/{len(chosen)}] bench {name}: {WORKLOADS[name]}", flush=True)
        parser = argparse.ArgumentParser(prog=f"python -m bench {name}")
        workload = load(name)
        workload.add_arguments(parser)
        mark = time.perf_counter()
        try:
            code = workload.run(parser.parse_args([]))
        except Exception as exc:  # one broken workload must not hide the others' results
            print(f"bench {name} failed: {exc!r}", file=sys.stderr)
            code = 1
        print(f"=== bench {name}: exit {code} after {time.perf_counter() - mark:.0f}s", flush=True)
        if code != 0:
            failed.append(name)
    print(
        f"\nbench all: {len(chosen) - len(failed)}/{len(chosen)} workloads ok"
        f" in {time.perf_counter() - started:.0f}s"
        + (f"; failed: {', '.join(failed)}" if failed else "")
    )
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=DESCRIPTION)
    commands = parser.add_subparsers(dest="workload", metavar="WORKLOAD", required=True)
    for name, help_text in WORKLOADS.items():
        sub = commands.add_parser(name, help=help_text, description=help_text)
        load(name).add_arguments(sub)
    every = commands.add_parser(
        "all",
        help="every workload with its defaults, one after the other (scaleout only if named)",
        description="Every workload with its default settings, one after the other.",
    )
    every.add_argument("--only", type=_names, default=None, help="these workloads, comma-separated")
    every.add_argument("--skip", type=_names, default=[], help="not these, comma-separated")
    args = parser.parse_args(argv)
    if args.workload == "all":
        return run_all(args)
    return load(args.workload).run(args)


if __name__ == "__main__":
    sys.exit(main())
