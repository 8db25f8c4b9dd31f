"""The WebSocket endpoint: origin check, ``hello``, then the frame loop.

Close codes: 4400 bad protocol version, 4401 not authenticated (no hello in
time, bad token, device removed), 4409 replaced by a newer connection of the
same device, 4429 sends without reading (too far behind), 1001 server
shutting down (connect again: another node takes over), 1009 frame over the
hard limit, 1013 try again later (the database is unavailable).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from urllib.parse import urlsplit

from aiohttp import WSMsgType, web

from taube.proto import frames
from taube.proto.codec import decode_client_frame, encode
from taube.proto.errors import ErrorCode, ProtocolError
from taube.proto.version import MIN_PROTOCOL_VERSION, PROTOCOL_VERSION
from taube.server.context import CLOSE_REPLACED, CLOSE_UNAUTHORIZED, Server
from taube.server.ratelimit import TokenBucket
from taube.server.ws.connection import CLOSE_TOO_FAR_BEHIND, Connection
from taube.store.accounts import DeviceAuth

log = logging.getLogger(__name__)

CLOSE_PROTOCOL = 4400
CLOSE_TRY_AGAIN = 1013


def _close_code(exc: ProtocolError) -> int:
    if exc.code is ErrorCode.PROTOCOL_VERSION:
        return CLOSE_PROTOCOL
    if exc.code is ErrorCode.UNAVAILABLE:
        return CLOSE_TRY_AGAIN
    return CLOSE_UNAUTHORIZED


def origin_allowed(request: web.Request, srv: Server) -> bool:
    """Browsers send ``Origin``: it must be this server or a configured one.

    Clients that are not browsers send none and are let through (they cannot
    be tricked into using a user's cookies; there are none).
    """
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    if origin in srv.config.server.origins:
        return True
    parts = urlsplit(origin)
    return parts.scheme in ("http", "https") and parts.netloc == request.host


async def websocket(request: web.Request) -> web.StreamResponse:
    srv: Server = request.app["srv"]
    if not origin_allowed(request, srv):
        raise ProtocolError(ErrorCode.ORIGIN_FORBIDDEN, "origin not allowed")
    limits = srv.config.limits
    ws = web.WebSocketResponse(
        max_msg_size=limits.max_frame_bytes * 2,
        heartbeat=limits.heartbeat_s,
        compress=False,
    )
    await ws.prepare(request)
    try:
        auth = await _hello(srv, ws)
        if auth is not None:
            touched = srv.clock.now_ms()
            await srv.store.touch_device(auth.device, touched, srv.token_expiry(touched))
    except ProtocolError as exc:
        with contextlib.suppress(Exception):
            await ws.send_frame(
                encode(frames.Error(code=exc.code, message=exc.message)), WSMsgType.TEXT
            )
            await ws.close(code=_close_code(exc), message=exc.message.encode())
        return ws
    if auth is None:
        return ws
    conn = Connection(srv, ws, auth.user, auth.device)
    old = srv.hub.attach(conn)
    if old is not None:
        await old.close(CLOSE_REPLACED, "replaced by a newer connection")
    log.debug("device %s connected", auth.device)
    with contextlib.suppress(Exception):  # presence is best effort
        await srv.presence.connected(auth.device)
    now = srv.clock.now_ms()
    conn.send(
        frames.Welcome(
            protocol=PROTOCOL_VERSION, user=auth.user, device=auth.device, server_time_ms=now
        )
    )
    try:
        async with asyncio.TaskGroup() as tasks:
            writer = tasks.create_task(conn.writer())
            pump = tasks.create_task(conn.pump())
            await _serve(srv, conn, ws)
            conn.closed = True
            conn.out.put_nowait(None)
            pump.cancel()
            await writer
    finally:
        conn.closed = True
        srv.hub.detach(conn)
        # "last seen" (presence) is when the device went away
        with contextlib.suppress(Exception):
            gone = srv.clock.now_ms()
            await srv.store.touch_device(auth.device, gone, srv.token_expiry(gone))
            await srv.presence.gone(auth.device)
    return ws


async def _hello(srv: Server, ws: web.WebSocketResponse) -> DeviceAuth | None:
    try:
        msg = await ws.receive(timeout=srv.config.limits.hello_timeout_s)
    except TimeoutError:
        raise ProtocolError(ErrorCode.UNAUTHORIZED, "no hello in time") from None
    if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
        return None
    if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
        raise ProtocolError(ErrorCode.UNAUTHORIZED, "the first frame must be hello")
    if len(msg.data) > srv.config.limits.max_frame_bytes:
        raise ProtocolError(ErrorCode.FRAME_TOO_LARGE, "hello frame too large")
    frame = decode_client_frame(msg.data)
    if not isinstance(frame, frames.Hello):
        raise ProtocolError(ErrorCode.UNAUTHORIZED, "the first frame must be hello")
    if not MIN_PROTOCOL_VERSION <= frame.protocol <= PROTOCOL_VERSION:
        raise ProtocolError(
            ErrorCode.PROTOCOL_VERSION,
            f"this server speaks protocol {MIN_PROTOCOL_VERSION}..{PROTOCOL_VERSION}",
        )
    return await srv.authenticate(frame.token)


async def _serve(srv: Server, conn: Connection, ws: web.WebSocketResponse) -> None:
    limits = srv.config.limits
    now = srv.clock.monotonic()
    bucket = TokenBucket(limits.ws_rate, limits.ws_burst, limits.ws_burst, now)
    async for msg in ws:
        if conn.closed:
            return
        if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
            if msg.type is WSMsgType.ERROR:
                log.info("websocket error: %s", ws.exception())
            return
        data = msg.data
        ref = None
        try:
            if len(data) > limits.max_frame_bytes:
                raise ProtocolError(
                    ErrorCode.FRAME_TOO_LARGE, f"a frame is at most {limits.max_frame_bytes} bytes"
                )
            wait = bucket.take(srv.clock.monotonic())
            if wait > 0:
                raise ProtocolError(ErrorCode.RATE_LIMITED, "slow down", retry_after=wait)
            frame = decode_client_frame(data)
            ref = getattr(frame, "id", None)
            await conn.handle(frame)
        except ProtocolError as exc:
            conn.send(
                frames.Error(
                    code=exc.code, message=exc.message, ref=ref, retry_after=exc.retry_after
                )
            )
        if conn.too_far_behind:
            await conn.close(CLOSE_TOO_FAR_BEHIND, "not reading: too far behind")
            return
