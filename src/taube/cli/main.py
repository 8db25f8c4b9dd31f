"""``taube``: the one entry point.

``taube serve`` hands its arguments to ``taube.server.main`` by name: the
client commands must work where the server's extra is not installed, and the
layering rule (nothing but the server imports the server) holds.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import taube

if TYPE_CHECKING:
    from taube.client import Client


def parser() -> argparse.ArgumentParser:
    from taube.cli.commands import add_commands, default_profile

    p = argparse.ArgumentParser(prog="taube", description="taube: end-to-end encrypted messenger")
    p.add_argument(
        "--profile",
        type=Path,
        default=default_profile(),
        help="client profile directory (default ~/.local/share/taube-client)",
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--verbose", action="store_true", help="log to stderr")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("serve", help="run the server (taube serve --help)", add_help=False)
    sub.add_parser("version", help="print the version")
    add_commands(sub)
    from taube.cli.connect import add_connect_commands

    add_connect_commands(sub)
    sub.add_parser("tui", help="the terminal UI (the tui extra)").set_defaults(handler=tui)
    return p


async def tui(client: Client, args: argparse.Namespace) -> int:
    """``taube tui``: the profile opened as for every command, then the app on it."""
    from taube.client import ClientError

    try:
        from taube.tui import run as run_tui
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ClientError(
            f"taube tui needs the tui extra: pip install 'taube[tui]' ({exc})"
        ) from exc
    if not client.logged_in:
        raise ClientError("no account on this device yet: taube account register (or login)")
    await run_tui(client, log_file=client.profile_dir / "tui.log")
    return 0


def main(argv: list[str] | None = None) -> int:
    args_list = sys.argv[1:] if argv is None else argv
    if args_list[:1] == ["serve"]:
        try:
            server_main = importlib.import_module("taube.server.main")
        except ImportError as exc:  # pragma: no cover - depends on the install
            print(
                f"taube serve needs the server extra: pip install 'taube[server]' ({exc})",
                file=sys.stderr,
            )
            return 2
        return int(server_main.main(args_list[1:]))
    p = parser()
    args = p.parse_args(args_list)
    if args.command is None:
        p.print_help()
        return 0
    if args.command == "version":
        print(taube.__version__)
        return 0
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)
    from taube.cli.commands import run
    from taube.client import ClientError

    try:
        return asyncio.run(run(args))
    except ClientError as exc:
        print(f"taube: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
