"""``taube serve``: parse flags, load the configuration, run."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from taube.server.config import ConfigError, load


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="taube serve",
        description="Run the taube server (SQLite and a data directory by default).",
    )
    p.add_argument("--config", type=Path, help="TOML configuration file (or TAUBE_CONFIG)")
    p.add_argument(
        "--data-dir", help="where the database and blobs live (default ~/.local/share/taube)"
    )
    p.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port to listen on (default 8470; 0 picks one)")
    p.add_argument("--domain", help="the domain of this server's addresses (default localhost)")
    p.add_argument(
        "--database",
        help="postgresql://user@host/db for PostgreSQL, or a SQLite"
        " file (default <data-dir>/taube.db)",
    )
    p.add_argument(
        "--bus",
        help="redis://host:6379/0 to wake other nodes through Redis (default: in-process,"
        " one node)",
    )
    p.add_argument(
        "--print-config", action="store_true", help="print the effective configuration and exit"
    )
    return p


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    server: dict[str, Any] = {}
    for key in ("data_dir", "host", "port", "domain"):
        value = getattr(args, key)
        if value is not None:
            server[key] = value
    overrides: dict[str, dict[str, Any]] = {}
    if server:
        overrides["server"] = server
    if args.database is not None:
        overrides["storage"] = {"database": args.database}
    if args.bus is not None:
        overrides["bus"] = {"url": args.bus}
    try:
        config = load(args.config, overrides=overrides or None)
    except ConfigError as exc:
        print(f"taube serve: {exc}", file=sys.stderr)
        return 2
    if args.print_config:
        print(json.dumps(config.public_dict(), indent=2))
        return 0
    from taube.server.app import run

    run(config)
    return 0
