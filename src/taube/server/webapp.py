"""Serving the web app: the committed bundle in ``taube.webapp``.

Files are read once at start-up and kept in memory (the bundle is small).
Hashed assets are cached for a year; the page, the service worker and the
manifest are revalidated on every load so an upgrade reaches users at once.
The security headers (CSP and the rest) are added by the app's middleware
to every response, these included.
"""

from __future__ import annotations

import gzip
import mimetypes
from pathlib import Path

from aiohttp import web

from taube.webapp import DIST

#: types the platform's table may lack or get wrong
TYPES = {
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".css": "text/css",
    ".wasm": "application/wasm",
    ".webmanifest": "application/manifest+json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".html": "text/html",
    ".json": "application/json",
}
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"
#: compressed once at start-up (wasm and scripts shrink to a third); images
#: are compressed already
COMPRESSIBLE = ("text/", "application/javascript", "application/wasm", "application/json")
COMPRESSIBLE_EXTRA = ("application/manifest+json", "image/svg+xml")


def _type_of(path: Path) -> str:
    guessed = mimetypes.guess_type(path.name)[0]
    return TYPES.get(path.suffix) or guessed or "application/octet-stream"


class File:
    """One bundle file in memory, with its gzip form when that is smaller."""

    __slots__ = ("body", "cache", "content_type", "gzipped")

    def __init__(self, body: bytes, content_type: str, cache: str) -> None:
        self.body = body
        self.content_type = content_type
        self.cache = cache
        self.gzipped: bytes | None = None
        if content_type.startswith(COMPRESSIBLE) or content_type in COMPRESSIBLE_EXTRA:
            packed = gzip.compress(body, compresslevel=9, mtime=0)
            if len(packed) < len(body):
                self.gzipped = packed


def load(dist: Path = DIST) -> dict[str, File]:
    """URL path → the file, for every file of the bundle."""
    files: dict[str, File] = {}
    if not dist.is_dir():
        return files
    for path in sorted(dist.rglob("*")):
        if not path.is_file():
            continue
        url = "/" + path.relative_to(dist).as_posix()
        cache = IMMUTABLE if url.startswith("/assets/") else REVALIDATE
        files[url] = File(path.read_bytes(), _type_of(path), cache)
    if "/index.html" in files:
        files["/"] = files["/index.html"]
    return files


def add_routes(app: web.Application, fallback: bytes) -> None:
    """Serve the bundle at ``/``; without a bundle, ``fallback`` at ``/``."""
    files = load()
    if "/" not in files:
        files["/"] = File(fallback, "text/html", REVALIDATE)

    async def serve(request: web.Request) -> web.Response:
        found = files.get(request.path)
        if found is None:
            raise web.HTTPNotFound()
        headers = {"Cache-Control": found.cache, "Vary": "Accept-Encoding"}
        body = found.body
        if found.gzipped is not None and "gzip" in request.headers.get("Accept-Encoding", ""):
            body = found.gzipped
            headers["Content-Encoding"] = "gzip"
        return web.Response(body=body, content_type=found.content_type, headers=headers)

    for url in files:
        app.router.add_get(url, serve)
