"""Browser fixtures: Debian's Chromium driven by Playwright against a real
``taube serve`` on loopback, serving the committed bundle."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect

from taube.client import Client
from taube.testing import ServerProcess
from taube.webapp import DIST
from tests.conftest import missing_service

CHROMIUM = os.environ.get("TAUBE_CHROMIUM", "/usr/bin/chromium")
#: screenshots and traces land here (kept by CI as artifacts)
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "web"
PASSWORD = "correct horse battery staple"
#: the recovery backup's KDF is argon2id at 64 MiB (as in the SDK): slow-ish in wasm
STEP_TIMEOUT_MS = 30_000
expect.set_options(timeout=15_000)


def _need_browser() -> None:
    if not Path(CHROMIUM).exists() and shutil.which("chromium") is None:
        missing_service(f"Chromium is not installed at {CHROMIUM} (scripts/services installs it)")
    if not (DIST / "index.html").exists():
        missing_service("the web bundle is not built (cd web && npm ci && npm run build)")


@contextlib.asynccontextmanager
async def launch(*extra: str) -> AsyncIterator[Browser]:
    """Debian's Chromium as the web tests run it (``extra``: more flags)."""
    _need_browser()
    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--disable-gpu",
                "--use-fake-ui-for-media-stream",
                "--use-fake-device-for-media-stream",
                *extra,
            ],
        )
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with launch() as chromium:
        yield chromium


@pytest.fixture
def web_server(tmp_path: Path) -> Iterator[ServerProcess]:
    with ServerProcess(tmp_path / "server") as proc:
        yield proc


#: ``page = await new_page(server, viewport=(w, h))``: a fresh browser
#: context (its own IndexedDB: a separate device) on the server's page
PageFactory = Callable[..., Awaitable[Page]]


@pytest.fixture
async def new_page(browser: Browser, request: pytest.FixtureRequest) -> AsyncIterator[PageFactory]:
    contexts: list[BrowserContext] = []
    errors: list[str] = []

    async def make(proc: ServerProcess, viewport: tuple[int, int] = (1280, 800)) -> Page:
        context = await browser.new_context(
            viewport={"width": viewport[0], "height": viewport[1]},
            base_url=proc.url,
        )
        contexts.append(context)
        page = await context.new_page()
        page.set_default_timeout(STEP_TIMEOUT_MS)
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("console", lambda msg: print(f"[{len(contexts)}:{msg.type}] {msg.text}"))
        await page.goto(proc.url + "/")
        return page

    yield make
    # the last view of every page, for a person to look at (not compared)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for n, context in enumerate(contexts):
        for page in context.pages:
            await page.screenshot(path=ARTIFACTS / f"{request.node.name}-{n}.png")
        await context.close()
    assert not errors, f"uncaught errors in the page: {errors}"


#: ``client = await sdk("name")``: a Python SDK user on ``web_server``, synced;
#: ``profile=True`` also shares the display name ``Name``
SdkFactory = Callable[..., Awaitable[Client]]


@pytest.fixture
async def sdk(tmp_path: Path, web_server: ServerProcess) -> AsyncIterator[SdkFactory]:
    from tests.web.driver import sdk_user

    async with contextlib.AsyncExitStack() as stack:

        async def make(name: str, *, profile: bool = True) -> Client:
            user = sdk_user(web_server, tmp_path / f"sdk-{name}", name, profile=profile)
            return await stack.enter_async_context(user)

        yield make
