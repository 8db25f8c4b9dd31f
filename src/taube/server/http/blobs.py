"""Encrypted attachments: opaque bytes, served only to members."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

from aiohttp import web

from taube.proto import http
from taube.proto.errors import ErrorCode, ProtocolError
from taube.proto.ids import BLOB_ID_PATTERN, BlobId, new_blob_id
from taube.server.http.call import Call

_BLOB_ID = re.compile(BLOB_ID_PATTERN)


async def upload_blob(call: Call) -> http.BlobCreated:
    srv, request = call.srv, call.request
    limit = srv.config.limits.max_blob_bytes
    if request.content_length is not None and request.content_length > limit:
        raise ProtocolError(ErrorCode.PAYLOAD_TOO_LARGE, f"an attachment is at most {limit} bytes")
    blob = new_blob_id()

    async def chunks() -> AsyncIterator[bytes]:
        async for chunk in request.content.iter_chunked(1 << 16):
            yield chunk

    files = srv.store.files
    tmp, size = await files.receive(blob, chunks(), limit)
    # The file goes in place before its row: a crash in between leaves an
    # orphan file (removed at start), never a row without its file.
    await asyncio.to_thread(files.commit, blob, tmp)
    try:
        await srv.store.create_blob(
            blob, call.auth.user, size, srv.clock.now_ms(), srv.config.limits.blob_quota_bytes
        )
    except BaseException:
        files.delete([blob])
        raise
    return http.BlobCreated(blob=blob, size=size)


async def download_blob(call: Call) -> web.StreamResponse:
    blob = call.param("blob")
    if not _BLOB_ID.match(blob):
        raise ProtocolError(ErrorCode.NOT_FOUND, "no such blob")
    size = await call.srv.store.blob_for(BlobId(blob), call.auth.user)
    path = call.srv.store.files.path(BlobId(blob))
    if size is None or not path.exists():
        raise ProtocolError(ErrorCode.NOT_FOUND, "no such blob")
    return web.FileResponse(
        path,
        headers={
            "Content-Type": "application/octet-stream",
            "Content-Disposition": "attachment",
            "Cache-Control": "private, no-store",
        },
    )
