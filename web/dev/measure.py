"""Dev-only: time to interactive of the chat list, and the bundle's size.

    .venv/bin/python web/dev/measure.py [--runs N] [--slowdown K]

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

``--slowdown 4`` runs the page on a CPU four times slower (Chromium's
throttling), roughly a mid-range phone.

Then the committed bundle's files, raw and gzipped (level 9; taube serve
itself sends them uncompressed, a proxy in front may compress).

On loopback the network costs next to nothing, so "warm" cannot beat
"cold" by much here; the service worker's gain is on a real network (and
offline). Compare runs on one machine, not across machines.
Numbers depend on the machine: they are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import os
import statistics
import sys
import tempfile
from contextlib import AsyncExitStack
from pathlib import Path

from playwright.async_api import Page, async_playwright, expect

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.web.conftest import CHROMIUM  # noqa: E402
from tests.web.driver import sdk_user, sign_up, tid  # noqa: E402

from taube.testing import ServerProcess  # noqa: E402
from taube.webapp import DIST  # noqa: E402

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


async def furnish(
    page: Page, server: ServerProcess, directory: Path, stack: AsyncExitStack
) -> None:
    me, _ = await sign_up(page, "me")
    for name in ("alice", "bob", "carol", "dave", "erin"):
        contact = await stack.enter_async_context(sdk_user(server, directory / name, name))
        chat = await contact.start_chat(me)
        for n in range(3):
            await contact.send_text(chat, f"message {n} from {name}")
    await expect(tid(page, "conversation")).to_have_count(CHATS)


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


async def measure(runs: int, slowdown: float = 1) -> list[tuple[str, list[dict[str, float]]]]:
    with tempfile.TemporaryDirectory() as tmp, ServerProcess(Path(tmp) / "server") as server:
        async with async_playwright() as pw, AsyncExitStack() as stack:
            browser = await pw.chromium.launch(
                executable_path=CHROMIUM, args=["--no-sandbox", "--disable-background-networking"]
            )
            context = await browser.new_context(viewport={"width": 1280, "height": 800})
            page = await context.new_page()
            await page.goto(server.url + "/")
            await furnish(page, server, Path(tmp), stack)
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
            await browser.close()
    return [("cold", cold), ("warm (service worker)", warm)]


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--slowdown", type=float, default=1, help="CPU throttling factor")
    args = parser.parse_args()
    results = asyncio.run(measure(args.runs, args.slowdown))
    print(
        f"Time to interactive of the chat list ({CHATS} chats),"
        f" {os.cpu_count()} CPUs, headless Chromium, CPU slowdown x{args.slowdown:g}"
    )
    print(timing_table(results))
    print()
    print("Bundle (src/taube/webapp/dist)")
    print(bundle_table())


if __name__ == "__main__":
    main()
