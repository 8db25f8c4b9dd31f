"""``python -m bench search``: searching 100,000 messages on one device.

No server: a fresh SDK profile is filled with ``--messages`` text messages
(through ``Messages.store``, the path every received or sent message takes,
so the search index is kept as it is in use), spread over ``--chats``
conversations, words drawn from a vocabulary with a Zipf-like spread (a few
words in almost every message, most words rare), 1% of them edited and
0.5% deleted by their authors. Then each query runs ``--repeat`` times
through ``Messages.search`` (what ``Client.search`` calls: the index, then
the messages as the user sees them, 50 at most) and ``search_hits`` (the
index only, what a search screen lists), and the table gives p50 and p99
per query in milliseconds. The target is under 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import harness
from taube.client import events as ev
from taube.client.messages import Messages
from taube.client.session import Session
from taube.proto.ids import ConversationId, DeviceId, MessageId, UserId

SYLLABLES = ["ka", "lo", "mi", "ne", "ru", "ta", "be", "do", "fi", "gu", "sa", "we", "zo", "pe"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--messages", type=int, default=100_000, help="messages stored (100000)")
    p.add_argument("--chats", type=int, default=200, help="conversations (200)")
    p.add_argument("--vocabulary", type=int, default=20_000, help="distinct words (20000)")
    p.add_argument("--repeat", type=int, default=200, help="runs of each query (200)")
    p.add_argument("--limit", type=int, default=50, help="hits asked for (50)")
    p.add_argument("--seed", type=int, default=16)
    p.add_argument("--output", type=Path, default=None, help="results JSON path")


def vocabulary(count: int, rng: random.Random) -> list[str]:
    words: set[str] = set()
    while len(words) < count:
        words.add("".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 5))))
    return sorted(words, key=lambda w: rng.random())


def fill(
    session: Session,
    messages: Messages,
    args: argparse.Namespace,
    words: list[str],
    rng: random.Random,
) -> float:
    """Store the messages; returns the seconds it took."""
    profile = session.profile
    assert profile is not None
    weights = list(itertools.accumulate(1 / (rank + 1) for rank in range(len(words))))
    chats = [ConversationId(f"chat{c:04d}".ljust(22, "x")) for c in range(args.chats)]
    users = [UserId(f"user{u}@example.org") for u in range(20)]
    device = DeviceId("D" * 22)
    started = time.perf_counter()
    last_shown = started
    batch = 1000
    sent: list[tuple[ConversationId, MessageId, UserId]] = []
    for first in range(0, args.messages, batch):
        with profile.transaction():
            for n in range(first, min(first + batch, args.messages)):
                chat = chats[n % len(chats)]
                roll = rng.random()
                msg_id = MessageId(f"m{n:021d}")
                if sent and roll < 0.015:
                    target_chat, target, author = rng.choice(sent)
                    type_ = ev.DELETE if roll < 0.005 else ev.EDIT
                    content: dict[str, Any] = {"target": target}
                    if type_ == ev.EDIT:
                        content["body"] = " ".join(rng.choices(words, cum_weights=weights, k=8))
                    messages.store(
                        target_chat, msg_id, n, author, device, n, type_, content, "received", None
                    )
                    continue
                author = rng.choice(users)
                body = " ".join(rng.choices(words, cum_weights=weights, k=rng.randint(3, 20)))
                messages.store(
                    chat, msg_id, n, author, device, n, ev.TEXT, {"body": body}, "received", None
                )
                sent.append((chat, msg_id, author))
        now = time.perf_counter()
        if now - last_shown >= 1 or first + batch >= args.messages:
            done = min(first + batch, args.messages)
            print(
                f"[{now - started:5.1f}s] filling: {done:,}/{args.messages:,}",
                file=sys.stderr,
                flush=True,
            )
            last_shown = now
    return time.perf_counter() - started


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure(fn: Any, repeat: int) -> tuple[float, float, int]:
    """p50 and p99 in ms over ``repeat`` runs, and the number of hits."""
    times = []
    found = 0
    for _ in range(repeat):
        started = time.perf_counter()
        found = len(fn())
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), percentile(times, 0.99), found


async def _run(args: argparse.Namespace, directory: Path) -> dict[str, Any]:
    rng = random.Random(args.seed)
    session = Session(directory, None, lambda: int(time.time() * 1000), lambda _e: None)
    await session.open()
    try:
        messages = Messages(session)
        words = vocabulary(args.vocabulary, rng)
        fill_s = fill(session, messages, args, words, rng)
        chat = ConversationId("chat0000".ljust(22, "x"))
        queries = [
            ("the commonest word", words[0], None),
            ("a word of rank 100", words[100], None),
            ("a rare word", words[-1], None),
            ("two common words", f"{words[0]} {words[1]}", None),
            ("a prefix of 2 letters", words[0][:2], None),
            ("a prefix of 3 letters", words[5][:3], None),
            ("no such word", "zzzzqqq", None),
            ("common word, one chat", words[0], chat),
            ("rare word, one chat", words[-1], chat),
        ]
        rows = []
        for label, text, where in queries:
            full = measure(lambda t=text, w=where: messages.search(t, args.limit, w), args.repeat)
            hits = measure(
                lambda t=text, w=where: messages.search_hits(t, args.limit, w), args.repeat
            )
            rows.append(
                {
                    "query": label,
                    "text": text,
                    "hits": full[2],
                    "search_p50_ms": full[0],
                    "search_p99_ms": full[1],
                    "hits_p50_ms": hits[0],
                    "hits_p99_ms": hits[1],
                }
            )
        return {"fill_s": fill_s, "queries": rows}
    finally:
        await session.close()


def run(args: argparse.Namespace) -> int:
    report = harness.header("search", args)
    with tempfile.TemporaryDirectory(prefix="taube-bench-search-") as directory:
        result = asyncio.run(_run(args, Path(directory)))
        result["profile_bytes"] = sum(p.stat().st_size for p in Path(directory).iterdir())
    report.update(result)
    report["environment"] = harness.environment()
    rows = [
        [
            q["query"],
            f"{q['hits']}",
            harness.ms(q["search_p50_ms"], 2),
            harness.ms(q["search_p99_ms"], 2),
            harness.ms(q["hits_p50_ms"], 2),
            harness.ms(q["hits_p99_ms"], 2),
        ]
        for q in result["queries"]
    ]
    print(
        f"search over {args.messages:,} messages in {args.chats} chats"
        f" (filled in {result['fill_s']:.1f} s,"
        f" {args.messages / result['fill_s']:,.0f} messages/s;"
        f" profile {result['profile_bytes'] / 1e6:.1f} MB); at most {args.limit} hits"
    )
    print(
        harness.table(
            ["query", "hits", "search p50", "p99", "hits only p50", "p99"],
            rows,
        )
    )
    worst = max(q["search_p99_ms"] for q in result["queries"])
    print(f"slowest p99: {worst:.1f} ms (target < 50 ms)")
    path = harness.write_report("search", report, args.output)
    print(f"results: {path}")
    return 0
