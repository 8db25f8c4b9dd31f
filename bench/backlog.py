"""``python -m bench backlog``: one device drains an offline backlog.

Setup: a sender and a receiver in a direct conversation. The receiver's
device is offline while the sender sends ``--messages`` messages (all
acknowledged as durable before the drain starts). Then the receiver
connects and reads: the time from the start of its TCP connect until it
has ``queue.empty`` with every message, acknowledging as it reads (one ack
per read per conversation, as a client does). Afterwards it reconnects
once more and must get nothing: its acknowledgements were written.
Repeated ``--runs`` times on the same conversation.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import secrets
import sys
import time
from pathlib import Path
from typing import Any

from bench import harness, loadgen, population
from bench.delivery import random_ids, send_template
from bench.population import BenchDevice


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--messages", type=int, default=10_000, help="messages queued (10000)")
    p.add_argument("--runs", type=int, default=3, help="drains, one after the other (3)")
    p.add_argument("--body-bytes", type=int, default=256, help="ciphertext bytes per message")
    p.add_argument(
        "--wait-quiet",
        type=float,
        default=30.0,
        help="before each drain, wait up to this long for other processes to go idle (30; 0: no)",
    )
    p.add_argument("--no-pin", dest="pin", action="store_false", help="do not pin CPUs")
    p.add_argument("--tmp-dir", type=Path, default=None, help="server data parent dir")
    p.add_argument("--keep-data", action="store_true", help="keep the server's data")
    p.add_argument("--output", type=Path, default=None, help="results JSON path")


async def _measure(args: argparse.Namespace, server: harness.RunningServer) -> dict[str, Any]:
    host, port = server.address
    tag = secrets.token_hex(3)
    status = "starting"
    started = time.perf_counter()
    progress = loadgen.Progress(lambda: f"[{time.perf_counter() - started:5.0f}s] {status}")
    runs: list[dict[str, Any]] = []
    with progress:
        sender_client = await population.owner(server.url, f"sender-{tag}@{server.domain}")
        try:
            (account,) = await population.register_many(
                server.url, [f"receiver-{tag}@{server.domain}"]
            )
            conversation = await sender_client.direct(account.user)
            sender_token = sender_client.token
        finally:
            await sender_client.__aexit__(None, None, None)
        echoes = 0

        def echoed(_device: BenchDevice, _msg_id: str, _now: float) -> None:
            nonlocal echoes
            echoes += 1

        sender = BenchDevice(sender_token, on_message=echoed)
        await sender.open(host, port)
        receiver = BenchDevice(account.token)
        await receiver.open(host, port)  # the join; from here on it is at the head
        receiver.close()
        head, tail = send_template(conversation, os.urandom(args.body_bytes))
        gc.collect()
        try:
            for number in range(1, args.runs + 1):
                await asyncio.sleep(0.5)  # the server has noticed the close
                want = echoes + args.messages
                assert sender.conn is not None
                sender.conn.send_many([head + m.encode() + tail for m in random_ids(args.messages)])
                while echoes < want:
                    status = f"run {number}: queueing {args.messages - (want - echoes):,}"
                    await asyncio.sleep(0.02)
                if args.wait_quiet:
                    status = f"run {number}: waiting for the machine to go quiet"
                    await harness.wait_quiet([server.pid], limit=args.wait_quiet)
                status = f"run {number}: draining"
                had = receiver.messages
                server_cpu = loadgen.CpuMeter(server.pid)
                server_cpu.start()
                start = time.perf_counter()
                await receiver.open(host, port, timeout=60)
                drained = receiver.ready_at - start
                server_pct = server_cpu.percent()
                got = receiver.messages - had
                await asyncio.sleep(0.5)  # the acknowledgements are written (every 50 ms)
                receiver.close()
                await asyncio.sleep(0.3)
                had = receiver.messages
                await receiver.open(host, port, timeout=60)
                again = receiver.messages - had
                receiver.close()
                result = {
                    "run": number,
                    "messages": args.messages,
                    "received": got,
                    "connect_to_queue_empty_s": drained,
                    "connect_to_welcome_s": receiver.welcome_at - start if got else None,
                    "messages_per_s": got / drained if drained > 0 else None,
                    "resent_after_reconnect": again,
                    "server_cpu_pct": server_pct,
                }
                runs.append(result)
                progress.log(
                    f"run {number}: {got:,} messages in {drained * 1000:,.0f} ms"
                    f" ({result['messages_per_s']:,.0f}/s), {again} sent again after reconnecting"
                )
        finally:
            sender.close()
            receiver.close()
            await asyncio.sleep(0.2)
    return {"runs": runs}


def table(report: dict[str, Any]) -> str:
    rows = [
        (
            str(r["run"]),
            f"{r['received']:,}/{r['messages']:,}",
            f"{r['connect_to_queue_empty_s'] * 1000:,.0f}",
            harness.rate(r["messages_per_s"]),
            str(r["resent_after_reconnect"]),
            f"{r['server_cpu_pct']:.0f}%",
        )
        for r in report["runs"]
    ]
    head = ("run", "received", "connect->queue.empty ms", "messages/s", "sent again", "srv CPU")
    return harness.table(head, rows)


def run(args: argparse.Namespace) -> int:
    done = harness.measure_on_server("backlog", args, _measure)
    if done is None:
        return 130
    report, path = done
    print(table(report))
    print(f"results: {path}", file=sys.stderr)
    return 0
