"""``python -m bench websearch``: the web app's search on 100,000 messages.

No browser and no server: ``bench/websearch.ts`` (bundled with the web
app's rolldown, run by Node) fills the web app's ``Messages`` with
``--messages`` text rows over ``--chats`` conversations (words drawn with a
Zipf-like spread, 1% edited and 0.5% deleted by their authors), loads them
as a reload does, builds the in-memory index (``web/src/client/search.ts``:
what the first search of a visit pays) and runs each query ``--repeat``
times through ``Messages.search`` (the index, then the messages as the
user sees them, 50 at most). Last, one new message is stored and searched
for (the index follows). Node's JIT is not Chromium's, but both are V8.
The target is under 50 ms per query.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
from pathlib import Path

from bench import harness

ROOT = Path(__file__).resolve().parents[1]
WEB = ROOT / "web"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--messages", type=int, default=100_000, help="messages stored (100000)")
    p.add_argument("--chats", type=int, default=200, help="conversations (200)")
    p.add_argument("--vocabulary", type=int, default=20_000, help="distinct words (20000)")
    p.add_argument("--repeat", type=int, default=100, help="runs of each query (100)")
    p.add_argument("--seed", type=int, default=16)
    p.add_argument("--output", type=Path, default=None, help="results JSON path")


LABELS = [
    "the commonest word",
    "a prefix of 2 letters",
    "a word of rank 10,000",
    "two words, the last a prefix",
    "a rare word",
    "no such word",
]


def run(args: argparse.Namespace) -> int:
    report = harness.header("websearch", args)
    with tempfile.TemporaryDirectory(prefix="taube-bench-websearch-") as directory:
        bundle = Path(directory) / "websearch.mjs"
        build = ["npx", "rolldown", str(ROOT / "bench" / "websearch.ts"), "--format", "esm"]
        subprocess.run(
            [*build, "--platform", "node", "-o", str(bundle)],
            cwd=WEB,
            check=True,
            capture_output=True,
        )
        given = {
            "messages": args.messages,
            "chats": args.chats,
            "vocabulary": args.vocabulary,
            "repeat": args.repeat,
            "seed": args.seed,
            "queries": None,
        }
        out = subprocess.run(
            ["node", str(bundle), json.dumps(given)], check=True, capture_output=True, text=True
        ).stdout
    result = json.loads(out.strip().splitlines()[-1])
    report.update(result)
    report["environment"] = harness.environment()
    rows = [
        [label, q["query"], f"{q['hits']}", harness.ms(q["p50"], 2), harness.ms(q["p99"], 2)]
        for label, q in zip(LABELS, result["results"], strict=True)
    ]
    print(
        f"web search over {args.messages:,} messages in {args.chats} chats"
        f" ({result['rows']:,} rows with edits and deletions);"
        f" index built in {result['build']:.0f} ms (the first search)"
    )
    print(harness.table(["query", "text", "hits", "p50", "p99"], rows))
    worst = max(q["p99"] for q in result["results"])
    print(f"slowest p99: {worst:.1f} ms (target < 50 ms)")
    print(f"a new message stored and found: {result['follow']:.1f} ms")
    path = harness.write_report("websearch", report, args.output)
    print(f"results: {path}")
    return 0
