"""``python -m bench web``: the web app in Chromium: time to interactive,
draining a backlog, and the bundle's size.

Starts ``taube serve`` on loopback (a throw-away data directory), signs a
browser up, gives it five chats from Python SDK users, then loads that
signed-in profile again and again:

- cold: the HTTP cache and the service worker (with its caches) cleared
  before each load; the profile in IndexedDB is kept;
- warm: the service worker installed, its shell cache full.

Each load is timed from navigation start to

- paint:  the first contentful paint;
- list:   the conversation list rendered with all five chats;
- online: the list rendered and the connection online (the server's welcome
  received, the banner gone): time to interactive.

Then the backlog: with the tab closed, an SDK user sends ``--backlog``
messages; the tab is opened again and timed until the last one is shown
(decrypted, stored in IndexedDB and acknowledged in batches).

``--slowdown 4`` runs the page on a CPU four times slower (Chromium's
throttling), roughly a mid-range phone. Last, the committed bundle's files,
raw and gzipped (what ``taube serve`` sends to browsers that accept gzip).

On loopback the network costs next to nothing, so "warm" cannot beat
"cold" by much here; the service worker's gain is on a real network (and
offline). Numbers depend on the machine: they are printed, never asserted.
"""

from __future__ import annotations

import argparse
import gzip
import os
import statistics
import tempfile
import time
from contextlib import AsyncExitStack
from pathlib import Path

from playwright.async_api import Page, async_playwright, expect
from tests.web.conftest import CHROMIUM
from tests.web.driver import sdk_user, sign_up, tid

from bench import harness
from taube.testing import ServerProcess
from taube.webapp import DIST

CHATS = 5
#: records the moments of interest, in ms since navigation start
MARKS = """
(() => {
  const marks = (window.__marks = {});
  const check = () => {
    const n = document.querySelectorAll('[data-testid="conversation"]').length;
    if (marks.list === undefined && n >= __CHATS__) marks.list = performance.now();
    if (marks.list !== undefined && !document.querySelector('[data-testid="connection-banner"]')) {
      marks.online = performance.now();
      observer.disconnect();
    }
  };
  const observer = new MutationObserver(check);
  observer.observe(document, { childList: true, subtree: true, attributes: true });
})();
""".replace("__CHATS__", str(CHATS))


async def furnish(page: Page, server: ServerProcess, directory: Path, stack: AsyncExitStack) -> str:
    """Sign the page up and give it five chats; its address."""
    me, _ = await sign_up(page, "me")
    for name in ("alice", "bob", "carol", "dave", "erin"):
        contact = await stack.enter_async_context(sdk_user(server, directory / name, name))
        chat = await contact.start_chat(me)
        for n in range(3):
            await contact.send_text(chat, f"message {n} from {name}")
    await expect(tid(page, "conversation")).to_have_count(CHATS)
    return me


async def load(page: Page, url: str) -> dict[str, float]:
    await page.goto(url)
    await page.wait_for_function("() => window.__marks?.online !== undefined", timeout=60_000)
    marks: dict[str, float] = await page.evaluate(
        """() => ({
            ...window.__marks,
            paint: performance.getEntriesByName("first-contentful-paint")[0]?.startTime ?? NaN,
            sw: performance.getEntriesByType("resource").some(
              (e) => e.name.includes("/assets/main-") && e.name.endsWith(".js")
                && (e.deliveryType === "cache-storage" || e.workerStart > 0),
            ) ? 1 : 0,
        })"""
    )
    return marks


async def measure(
    runs: int, slowdown: float = 1, backlog: int = 2000
) -> tuple[list[tuple[str, list[dict[str, float]]]], dict[str, float]]:
    with tempfile.TemporaryDirectory() as tmp, ServerProcess(Path(tmp) / "server") as server:
        async with async_playwright() as pw, AsyncExitStack() as stack:
            browser = await pw.chromium.launch(
                executable_path=CHROMIUM, args=["--no-sandbox", "--disable-background-networking"]
            )
            context = await browser.new_context(viewport={"width": 1280, "height": 800})
            page = await context.new_page()
            await page.goto(server.url + "/")
            me = await furnish(page, server, Path(tmp), stack)
            await context.add_init_script(MARKS)
            cdp = await context.new_cdp_session(page)
            if slowdown > 1:
                await cdp.send("Emulation.setCPUThrottlingRate", {"rate": slowdown})
            url = server.url + "/"

            cold = []
            for _ in range(runs):
                await cdp.send("Network.clearBrowserCache")
                await cdp.send(
                    "Storage.clearDataForOrigin",
                    {"origin": server.url, "storageTypes": "service_workers,cache_storage"},
                )
                cold.append(await load(page, url))

            await page.evaluate("navigator.serviceWorker.ready.then(() => true)")
            await load(page, url)  # the first load under the worker's control
            warm = [await load(page, url) for _ in range(runs)]
            drained = await drain(page, me, server, Path(tmp), stack, backlog)
            await browser.close()
    return [("cold", cold), ("warm (service worker)", warm)], drained


async def drain(
    page: Page, me: str, server: ServerProcess, directory: Path, stack: AsyncExitStack, count: int
) -> dict[str, float]:
    """Close the tab, let an SDK user send ``count`` messages, open it again
    and time until the last one is in the chat list."""
    sender = await stack.enter_async_context(sdk_user(server, directory / "sender", "sender"))
    chat = await sender.start_chat(me)
    await sender.send_text(chat, "hello")
    await sender.flush()
    await expect(tid(page, "conversation")).to_have_count(CHATS + 1)
    context = page.context
    await page.close()
    started = time.perf_counter()
    for n in range(count):
        await sender.send_text(chat, f"backlog {n}")
        if n % 500 == 499:
            print(f"  queued {n + 1:,}/{count:,} messages", flush=True)
    await sender.flush(timeout=600)
    queued = time.perf_counter() - started
    page = await context.new_page()
    started = time.perf_counter()
    await page.goto(server.url + "/")
    last = tid(page, "conversation-preview").filter(has_text=f"backlog {count - 1}")
    await last.wait_for(timeout=600_000)
    took = time.perf_counter() - started
    return {"messages": count, "queued_s": queued, "drained_s": took, "per_s": count / took}


def timing_table(results: list[tuple[str, list[dict[str, float]]]]) -> str:
    lines = [
        f"{'load':<22} {'runs':>4} {'sw':>3}  {'paint ms':>14}  {'list ms':>14}"
        f"  {'online (TTI) ms':>16}",
    ]
    for name, samples in results:
        cells = []
        for key in ("paint", "list", "online"):
            values = [s[key] for s in samples]
            cells.append(
                f"{statistics.median(values):6.0f} ({min(values):4.0f}-{max(values):4.0f})"
            )
        controlled = sum(int(s["sw"]) for s in samples)
        lines.append(
            f"{name:<22} {len(samples):>4} {controlled:>3}"
            f"  {cells[0]:>14}  {cells[1]:>14}  {cells[2]:>16}"
        )
    lines.append("(median, and min-max; sw: loads whose script came through the service worker)")
    return "\n".join(lines)


def bundle_table(dist: Path = DIST) -> str:
    index = (dist / "index.html").read_text()
    lines = [f"{'file':<34} {'bytes':>9} {'gzip -9':>9}"]
    first_raw = first_gz = 0
    for path in sorted(p for p in dist.rglob("*") if p.is_file()):
        data = path.read_bytes()
        packed = len(gzip.compress(data, 9))
        name = path.relative_to(dist).as_posix()
        lines.append(f"{name:<34} {len(data):>9,} {packed:>9,}")
        # what a first visit loads: the page, what it names, the wasm
        if name == "index.html" or name in index or name.endswith(".wasm"):
            first_raw += len(data)
            first_gz += packed
    lines.append(f"{'first visit (page, js, css, wasm)':<34} {first_raw:>9,} {first_gz:>9,}")
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs", type=int, default=5, help="loads per kind (default 5)")
    parser.add_argument("--slowdown", type=float, default=1, help="CPU throttling factor")
    parser.add_argument(
        "--backlog", type=int, default=2000, help="messages queued while the tab is closed"
    )
    parser.add_argument("--output", type=Path, help="results file (default bench/results/)")


def run(args: argparse.Namespace) -> int:
    report = harness.header("web", args)
    results, drained = harness.run_async(measure(args.runs, args.slowdown, args.backlog))
    print(
        f"Time to interactive of the chat list ({CHATS} chats),"
        f" {os.cpu_count()} CPUs, headless Chromium, CPU slowdown x{args.slowdown:g}"
    )
    print(timing_table(results))
    print()
    print(
        f"Backlog: {drained['messages']:,} messages queued while the tab was closed,"
        f" shown {drained['drained_s']:.2f} s after opening it ({drained['per_s']:,.0f}/s)"
    )
    print()
    print("Bundle (src/taube/webapp/dist)")
    print(bundle_table())
    report["loads"] = dict(results)
    report["backlog"] = drained
    report["environment"] = harness.environment()
    path = harness.write_report("web", report, args.output)
    print(f"\nresults: {path}")
    return 0
