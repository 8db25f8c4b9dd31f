"""``python -m bench WORKLOAD``: run one benchmark workload.

Workloads are modules of this package, imported only when chosen; add one by
writing ``bench/<name>.py`` with ``add_arguments`` and ``run`` and listing it
in ``WORKLOADS``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Protocol

DESCRIPTION = "Run a taube benchmark workload."

#: name -> one-line description (the module is ``bench.<name>``)
WORKLOADS = {
    "delivery": "durable send and delivery latency, open loop, and the maximum send rate",
    "crypto": "client-side Olm/Megolm throughput and the cost of sharing a group key",
    "scaleout": "one node against two on PostgreSQL + Redis, and the cost of the Redis hop",
}


class Workload(Protocol):
    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


def load(name: str) -> Workload:
    module: Workload = importlib.import_module(f"bench.{name}")
    return module


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=DESCRIPTION)
    commands = parser.add_subparsers(dest="workload", metavar="WORKLOAD", required=True)
    for name, help_text in WORKLOADS.items():
        sub = commands.add_parser(name, help=help_text, description=help_text)
        load(name).add_arguments(sub)
    args = parser.parse_args(argv)
    return load(args.workload).run(args)


if __name__ == "__main__":
    sys.exit(main())
