"""What every command does the same way: ask for a secret, print a result."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import signal
import sys
from collections.abc import Coroutine
from typing import Any

from taube.client import ClientError


def secret(variable: str, prompt: str) -> str:
    """``variable`` from the environment, else asked on the terminal."""
    value = os.environ.get(variable)
    if value:
        return value
    if not sys.stdin.isatty():
        raise ClientError(f"set {variable} (no terminal to ask on)")
    return getpass.getpass(prompt)


def out(args: argparse.Namespace, data: Any, text: str) -> None:
    """``data`` as a JSON line with ``--json``, else ``text``."""
    if args.json:
        print(json.dumps(data, ensure_ascii=False), flush=True)
    else:
        print(text, flush=True)


async def run_until_signal(work: Coroutine[Any, Any, None]) -> int:
    """Run a connector's ``work`` until it ends or SIGTERM / SIGINT comes;
    a failure of the work is a ``ClientError``."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    running = asyncio.create_task(work)
    stopping = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({running, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        running.cancel()
        stopping.cancel()
        await asyncio.gather(running, stopping, return_exceptions=True)
    if running.done() and not running.cancelled() and running.exception() is not None:
        raise ClientError(f"the connector stopped: {running.exception()}")
    return 0
