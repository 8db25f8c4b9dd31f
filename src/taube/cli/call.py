"""``taube call``: a voice or video call from the terminal, with a test tone or a file.

    taube call bob@example.org --tone              # ring bob, send a 440 Hz tone
    taube call bob@example.org --file talk.ogg --video --seconds 30
    taube call --answer                            # wait, answer the next call

The call needs the ``calls`` extra (``pip install 'taube[calls]'``, aiortc).
It ends after ``--seconds`` of talking, when the other side hangs up, or on
Ctrl-C / SIGTERM (then it hangs up).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from pathlib import Path
from typing import Any

from taube.cli.io import out as _out
from taube.client import Client, ClientError
from taube.client import events as ev


def _media(args: argparse.Namespace) -> Any:
    try:
        from taube.client.calls.media import Media
    except ImportError as exc:
        raise ClientError(f"calls need: pip install 'taube[calls]' ({exc})") from exc
    if args.file:
        path = Path(args.file)
        if not path.is_file():
            raise ClientError(f"no such file: {path}")
        return Media.file(path)
    return Media.tone(args.video)


async def call(client: Client, args: argparse.Namespace) -> int:
    if not client.logged_in:
        raise ClientError("log in or register first (taube account ...)")
    media = _media(args)
    await client.sync()
    if args.answer:
        ring = await _wait_ring(client, args.timeout)
        _out(
            args,
            {"event": "ringing", "call": ring.call, "from": ring.caller},
            f"ringing: {ring.caller}",
        )
        placed = await client.answer_call(ring.call, media)
    elif args.address:
        placed = await client.call(args.address, media, video=args.video)
        _out(args, {"event": "calling", "call": placed.id}, f"calling {args.address}")
    else:
        raise ClientError("give an ADDRESS to call, or --answer")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    try:
        ended = asyncio.ensure_future(placed.ended.wait())
        stopped = asyncio.ensure_future(stop.wait())
        connected = asyncio.ensure_future(placed.wait_media(timeout=args.timeout))
        done, _ = await asyncio.wait(
            {ended, stopped, connected}, return_when=asyncio.FIRST_COMPLETED
        )
        if connected in done and connected.exception() is None:
            _out(args, {"event": "connected", "call": placed.id}, "connected: media flowing")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait(
                    {ended, stopped},
                    timeout=args.seconds or None,
                    return_when=asyncio.FIRST_COMPLETED,
                )
        for task in (ended, stopped, connected):
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        if not placed.ended.is_set():
            await client.hang_up(placed.id)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
    frames = placed.peer_conn.frames if placed.peer_conn is not None else {}
    summary = {
        "event": "ended",
        "call": placed.id,
        "reason": placed.reason,
        "duration_ms": placed.duration_ms,
        "frames": frames,
    }
    _out(args, summary, f"ended: {placed.reason} after {placed.duration_ms / 1000:.1f} s")
    if placed.outgoing:
        await client.flush()  # the call's event in the chat
    return 0 if placed.connected_ms is not None else 1


async def _wait_ring(client: Client, timeout: float) -> ev.IncomingCall:
    async for event in client.events(timeout=timeout):
        if isinstance(event, ev.IncomingCall):
            return event
    raise ClientError(f"no call within {timeout:.0f} s")


def add_call_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("call", help="a voice or video call with a test tone or a file")
    p.add_argument("address", nargs="?", help="whom to call (omit with --answer)")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--tone", action="store_true", help="send a 440 Hz tone (the default)")
    source.add_argument("--file", help="send this audio or video file (looped)")
    p.add_argument("--video", action="store_true", help="a video call (a test picture with --tone)")
    p.add_argument("--answer", action="store_true", help="wait for a call and answer it")
    p.add_argument("--seconds", type=float, default=0, help="hang up after this long (0: never)")
    p.add_argument("--timeout", type=float, default=60, help="give up ringing after this long")
    p.set_defaults(handler=call)
