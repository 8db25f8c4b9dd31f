"""Encrypted attachments: opaque bytes, served only to members."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

from aiohttp import web
from aiohttp.payload import AsyncIterablePayload

from taube.proto import http
from taube.proto.errors import ErrorCode, ProtocolError
from taube.proto.ids import BLOB_ID_PATTERN, BlobId, new_blob_id
from taube.server.http.call import Call
from taube.store import Store

_BLOB_ID = re.compile(BLOB_ID_PATTERN)

_DOWNLOAD_HEADERS = {
    "Content-Type": "application/octet-stream",
    "Content-Disposition": "attachment",
    "Cache-Control": "private, no-store",
}


async def upload_blob(call: Call) -> http.BlobCreated:
    srv, request = call.srv, call.request
    limit = srv.config.limits.max_blob_bytes
    if request.content_length is not None and request.content_length > limit:
        raise ProtocolError(ErrorCode.PAYLOAD_TOO_LARGE, f"an attachment is at most {limit} bytes")
    blob = new_blob_id()

    async def chunks() -> AsyncIterator[bytes]:
        async for chunk in request.content.iter_chunked(1 << 16):
            yield chunk

    now = srv.clock.now_ms()
    store = srv.store
    # The bytes are in place before their row: a crash in between leaves
    # orphaned bytes (removed later), never a row without its bytes.
    size = await store.blobs.receive(blob, chunks(), limit, now)
    try:
        await store.create_blob(blob, call.auth.user, size, now, srv.config.limits.blob_quota_bytes)
    except BaseException:
        await store.blobs.delete([blob])
        raise
    return http.BlobCreated(blob=blob, size=size)


async def download_blob(call: Call) -> web.StreamResponse:
    blob = call.param("blob")
    if not _BLOB_ID.match(blob):
        raise ProtocolError(ErrorCode.NOT_FOUND, "no such blob")
    store = call.srv.store
    size = await store.blob_for(BlobId(blob), call.auth.user)
    if size is None:
        raise ProtocolError(ErrorCode.NOT_FOUND, "no such blob")
    return await blob_response(store, BlobId(blob), size)


async def blob_response(store: Store, blob: BlobId, size: int) -> web.StreamResponse:
    """The bytes of ``blob`` (access was checked), streamed."""
    path = store.blobs.file(blob)
    if path is not None:  # a file: sent as is (sendfile, ranges)
        if not path.exists():
            raise ProtocolError(ErrorCode.NOT_FOUND, "no such blob")
        return web.FileResponse(path, headers=_DOWNLOAD_HEADERS)
    # Chunks from the database, streamed as they are read. The first one is
    # read before the response starts, so a blob freed meanwhile is a 404.
    chunks = store.blobs.chunks(blob)
    first = await anext(chunks, None)
    if first is None:
        raise ProtocolError(ErrorCode.NOT_FOUND, "no such blob")

    async def body() -> AsyncIterator[bytes]:
        yield first
        async for chunk in chunks:
            yield chunk

    return web.Response(
        body=AsyncIterablePayload(body()),
        headers={**_DOWNLOAD_HEADERS, "Content-Length": str(size)},
    )
