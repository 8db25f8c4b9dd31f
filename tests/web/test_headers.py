"""Security headers on everything the server serves, and a page that keeps to them.

The page, its script, style and WebAssembly, the service worker, the
manifest and the API (answers and errors alike) all carry the strict CSP,
``nosniff`` and ``no-referrer``. The page has no inline script or style;
hashed assets are cached for good, the rest revalidates. One browser run
signs up (loading the wasm, opening the WebSocket) without a single CSP
violation.
"""

from __future__ import annotations

import gzip
import re
from collections.abc import AsyncIterator
from html.parser import HTMLParser

import aiohttp
import pytest
from playwright.async_api import ConsoleMessage

from taube.testing import ServerProcess
from tests.web.conftest import PageFactory
from tests.web.driver import sign_up

#: directive → the exact sources it must allow
STRICT = {
    "script-src": {"'self'", "'wasm-unsafe-eval'"},
    "object-src": {"'none'"},
    "base-uri": {"'none'"},
    "frame-ancestors": {"'none'"},
    "connect-src": {"'self'"},
}
IMMUTABLE = "public, max-age=31536000, immutable"
#: what the page loads, by name; the hashed names are read off the page
RESOURCES = ["/", "main.js", "main.css", "olm.wasm", "/sw.js", "/manifest.webmanifest"]
API = ["/api/v1/info", "/api/v1/conversations", "/no/such/page"]


class PageParts(HTMLParser):
    """Scripts, style sheets, inline code and inline handlers of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[str] = []
        self.styles: list[str] = []
        self.inline: list[str] = []
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        for name, _ in attrs:
            if name.startswith("on") or name == "style":
                self.inline.append(f"<{tag} {name}=…>")
        if tag == "script":
            if values.get("src"):
                self.scripts.append(str(values["src"]))
            else:
                self._in = "script"
        elif tag == "style":
            self._in = "style"
        elif tag == "link" and values.get("rel") == "stylesheet" and values.get("href"):
            self.styles.append(str(values["href"]))

    def handle_endtag(self, tag: str) -> None:
        if tag == self._in:
            self.inline.append(f"<{tag}> without src")
            self._in = None


def csp_of(header: str) -> dict[str, set[str]]:
    directives: dict[str, set[str]] = {}
    for part in header.split(";"):
        name, *sources = part.split()
        directives[name.lower()] = set(sources)
    return directives


@pytest.fixture
async def http(web_server: ServerProcess) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(web_server.url) as session:
        yield session


async def fetch(http: aiohttp.ClientSession, url: str) -> tuple[int, dict[str, str], bytes]:
    async with http.get(url) as response:
        return response.status, dict(response.headers), await response.read()


async def page_parts(http: aiohttp.ClientSession) -> PageParts:
    status, _, body = await fetch(http, "/")
    assert status == 200
    parts = PageParts()
    parts.feed(body.decode())
    return parts


async def url_of(http: aiohttp.ClientSession, name: str) -> str:
    """The served URL of ``name``: as is, or the hashed asset the page loads."""
    if name.startswith("/"):
        return name
    parts = await page_parts(http)
    (script,) = parts.scripts
    if name == "main.js":
        return script
    if name == "main.css":
        (style,) = parts.styles
        return style
    _, _, code = await fetch(http, script)
    found = set(re.findall(rb"/assets/olm-[A-Za-z0-9_-]+\.wasm", code))
    assert len(found) == 1, f"the wasm the script loads: {found}"
    return bytes(found.pop()).decode()


def assert_security_headers(headers: dict[str, str]) -> None:
    csp = csp_of(headers["Content-Security-Policy"])
    for directive, sources in STRICT.items():
        assert csp.get(directive) == sources, f"{directive}: {csp.get(directive)}"
    assert csp["default-src"] == {"'self'"}
    for directive, sources in csp.items():
        assert not sources & {"'unsafe-inline'", "'unsafe-eval'", "*"}, directive
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "no-referrer"


@pytest.mark.parametrize("name", RESOURCES)
async def test_web_app_responses_carry_the_security_headers(
    http: aiohttp.ClientSession, name: str
) -> None:
    url = await url_of(http, name)
    status, headers, body = await fetch(http, url)
    assert status == 200, url
    assert body
    assert_security_headers(headers)


@pytest.mark.parametrize("url", API)
async def test_api_responses_and_errors_carry_the_security_headers(
    http: aiohttp.ClientSession, url: str
) -> None:
    status, headers, _ = await fetch(http, url)
    assert status == {"/api/v1/info": 200, "/api/v1/conversations": 401}.get(url, 404)
    assert headers["Content-Type"].startswith("application/json")
    assert_security_headers(headers)


async def test_content_types_and_caching(http: aiohttp.ClientSession) -> None:
    expected = {
        "/": ("text/html", "no-cache"),
        "main.js": ("text/javascript", IMMUTABLE),
        "main.css": ("text/css", IMMUTABLE),
        "olm.wasm": ("application/wasm", IMMUTABLE),
        "/sw.js": ("text/javascript", "no-cache"),
        "/manifest.webmanifest": ("application/manifest+json", "no-cache"),
    }
    for name, (content_type, cache) in expected.items():
        url = await url_of(http, name)
        _, headers, _ = await fetch(http, url)
        assert headers["Content-Type"].split(";")[0] == content_type, url
        assert headers["Cache-Control"] == cache, url
        assert url.startswith("/assets/") == (cache == IMMUTABLE), url


async def test_bundle_comes_gzipped_to_browsers_that_ask(http: aiohttp.ClientSession) -> None:
    for name in ("/", "main.js", "main.css", "olm.wasm"):
        url = await url_of(http, name)
        async with http.get(url, headers={"Accept-Encoding": "identity"}) as plain:
            assert "Content-Encoding" not in plain.headers
            original = await plain.read()
        async with http.get(
            url, headers={"Accept-Encoding": "gzip"}, auto_decompress=False
        ) as packed:
            assert packed.headers["Content-Encoding"] == "gzip", url
            assert packed.headers["Vary"] == "Accept-Encoding"
            assert_security_headers(dict(packed.headers))
            body = await packed.read()
        assert len(body) < len(original)
        assert gzip.decompress(body) == original


async def test_page_has_no_inline_script_or_style(http: aiohttp.ClientSession) -> None:
    parts = await page_parts(http)
    assert parts.inline == []
    assert [url.startswith("/assets/") for url in parts.scripts + parts.styles] == [True, True]


async def test_page_runs_without_csp_violations(
    web_server: ServerProcess, new_page: PageFactory
) -> None:
    page = await new_page(web_server)
    refused: list[str] = []

    def on_console(msg: ConsoleMessage) -> None:
        if "Content Security Policy" in msg.text:
            refused.append(msg.text)

    page.on("console", on_console)
    await page.context.add_init_script(
        "window.__violations = [];"
        "document.addEventListener('securitypolicyviolation', (e) =>"
        " window.__violations.push(`${e.effectiveDirective} ${e.blockedURI}`));"
    )
    await page.reload()
    # signing up loads the wasm, runs the crypto and opens the WebSocket
    await sign_up(page, "csp")
    assert await page.evaluate("window.__violations") == []
    assert refused == []
