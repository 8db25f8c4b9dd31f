"""The aiohttp application: routes from ``taube.proto.api``, headers, errors,
and the process lifecycle (``serve``)."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from taube.proto.api import ENDPOINTS, PREFIX, Endpoint
from taube.proto.codec import decode, encode
from taube.proto.errors import ErrorCode, ProtocolError
from taube.proto.http import ErrorBody
from taube.proto.schema import openapi
from taube.server import logs, webapp
from taube.server.clock import Clock, SystemClock
from taube.server.config import Config, masked_url
from taube.server.context import CLOSE_GOING_AWAY, Server
from taube.server.federation import Federation
from taube.server.federation.routes import add_routes as federation_routes
from taube.server.http.call import Call
from taube.server.retention import sweep_forever
from taube.server.ws.gateway import websocket
from taube.store import Store

if TYPE_CHECKING:
    from taube.server.redisbus import RedisBus

log = logging.getLogger(__name__)

#: how long shutting down waits for sends in flight, and for the bus
DRAIN_TIMEOUT = 5.0
BUS_FLUSH_TIMEOUT = 2.0
#: how long a starting node waits for its bus subscription
BUS_START_TIMEOUT = 5.0
#: connections the kernel queues before they are accepted. aiohttp's 128
#: overflows when thousands of devices reconnect at once (after a restart or a
#: network blip): the rest wait for TCP's retries (1, 3, 7, 15 s...). The
#: kernel caps it at net.core.somaxconn (4096 on current Linux).
LISTEN_BACKLOG = 4096

HANDLER_MODULES = ("accounts", "keys", "conversations", "blobs", "meta", "turn", "people")

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; object-src 'none'; "
        "base-uri 'none'; frame-ancestors 'none'; connect-src 'self'; img-src 'self' blob: data:; "
        "media-src 'self' blob:; style-src 'self'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "geolocation=(), camera=(self), microphone=(self)",
}

INDEX = b"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>taube</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body><h1>taube</h1><p>This taube server is running. The API is at
<a href="/api/v1/info">/api/v1/info</a>; its description at
<a href="/api/openapi.json">/api/openapi.json</a>.</p></body></html>
"""


def _error_response(exc: ProtocolError) -> web.Response:
    headers = {}
    if exc.retry_after is not None:
        headers["Retry-After"] = str(max(1, round(exc.retry_after + 0.5)))
    body = ErrorBody(error=exc.code, message=exc.message, retry_after=exc.retry_after)
    return web.Response(
        body=encode(body), status=exc.status, content_type="application/json", headers=headers
    )


@web.middleware
async def errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except ProtocolError as exc:
        return _error_response(exc)
    except web.HTTPRequestEntityTooLarge:
        return _error_response(ProtocolError(ErrorCode.PAYLOAD_TOO_LARGE, "request too large"))
    except web.HTTPNotFound:
        return _error_response(ProtocolError(ErrorCode.NOT_FOUND, "no such resource"))
    except web.HTTPMethodNotAllowed:
        return _error_response(ProtocolError(ErrorCode.BAD_REQUEST, "method not allowed"))
    except web.HTTPException:
        raise
    except (asyncio.CancelledError, ConnectionError):
        raise
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return _error_response(ProtocolError(ErrorCode.INTERNAL, "internal error"))


@web.middleware
async def headers(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    response = await handler(request)
    if not response.prepared:
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
    return response


def _route(srv: Server, endpoint: Endpoint, fn: Callable[[Call], Awaitable[Any]]) -> Any:
    async def handle(request: web.Request) -> web.StreamResponse:
        auth = None
        if endpoint.auth:
            header = request.headers.get("Authorization", "")
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token:
                raise ProtocolError(ErrorCode.UNAUTHORIZED, "invalid or expired token")
            auth = await srv.authenticate(token.strip())
        body = None
        if endpoint.request is not None:
            body = decode(await request.read(), endpoint.request)
        result = await fn(Call(srv, request, body, auth))
        if isinstance(result, web.StreamResponse):
            return result
        if result is None:
            return web.Response(status=204)
        return web.Response(
            body=encode(result), status=endpoint.status, content_type="application/json"
        )

    return handle


def create_app(srv: Server) -> web.Application:
    app = web.Application(
        middlewares=[headers, errors], client_max_size=srv.config.limits.max_body_bytes
    )
    app["srv"] = srv
    handlers: dict[str, Any] = {}
    for name in HANDLER_MODULES:
        module = importlib.import_module(f"taube.server.http.{name}")
        handlers.update(
            {e.name: getattr(module, e.name) for e in ENDPOINTS if hasattr(module, e.name)}
        )
    for endpoint in ENDPOINTS:
        app.router.add_route(
            endpoint.method, PREFIX + endpoint.path, _route(srv, endpoint, handlers[endpoint.name])
        )
    app.router.add_get(PREFIX + "/ws", websocket)
    document = encode(openapi())
    app.router.add_get(
        "/api/openapi.json",
        lambda _: _static(document, "application/json"),
    )
    federation_routes(app, srv)
    webapp.add_routes(app, INDEX)
    return app


def _bound_address(site: web.TCPSite) -> tuple[str, int]:
    """Where the site listens (``--port 0`` lets the kernel choose)."""
    server = site._server
    sockets = getattr(server, "sockets", None)
    if not sockets:
        raise RuntimeError("the server is not listening")
    host, port = sockets[0].getsockname()[:2]
    return str(host), int(port)


async def _static(body: bytes, content_type: str) -> web.Response:
    return web.Response(body=body, content_type=content_type)


async def serve(
    config: Config,
    *,
    clock: Clock | None = None,
    ready: Callable[[str], None] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Run the server until SIGTERM/SIGINT (or ``stop``), then drain and stop."""
    clock = clock or SystemClock()
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    data_dir = config.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    store = Store.open(
        config.database,
        data_dir / "blobs",
        blobs=config.storage.blobs,
        synchronous=config.storage.synchronous,
    )
    async with store, contextlib.AsyncExitStack() as stack:
        srv = Server(config, clock, store)
        if config.bus.url:
            srv.bus = await stack.enter_async_context(_open_bus(srv))
        if config.federation.enabled:
            srv.federation = await stack.enter_async_context(Federation(config, clock, store))
        runner = web.AppRunner(create_app(srv), access_log=None, shutdown_timeout=5.0)
        await runner.setup()
        site = web.TCPSite(
            runner,
            config.server.host,
            config.server.port,
            reuse_address=True,
            backlog=LISTEN_BACKLOG,
        )
        await site.start()
        host, port = _bound_address(site)
        url = f"http://{host}:{port}"
        log.info(
            "serving",
            extra={"url": url, "data_dir": str(data_dir), "bus": "redis" if srv.bus else "local"},
        )
        if ready is not None:
            ready(url)
        background = [
            asyncio.create_task(srv.acks.run(), name="acks"),
            asyncio.create_task(sweep_forever(store, clock, config.retention), name="retention"),
            asyncio.create_task(srv.presence.renew_forever(), name="presence"),
        ]
        if srv.federation is not None:
            background.append(asyncio.create_task(srv.federation.run(), name="federation"))
        if config.bus.recheck_s > 0:
            background.append(
                asyncio.create_task(srv.recheck_forever(config.bus.recheck_s), name="recheck")
            )
        try:
            await stop.wait()
        finally:
            await _drain(srv, runner, site, background)
    log.info("stopped")


def _open_bus(srv: Server) -> contextlib.AbstractAsyncContextManager[RedisBus]:
    from taube.server.redisbus import RedisBus

    bus = srv.config.bus

    @contextlib.asynccontextmanager
    async def opened() -> AsyncIterator[RedisBus]:
        async with RedisBus(bus.url, bus.channel, srv.node_id, srv.receive, srv.resync) as redis:
            if not await redis.wait_subscribed(BUS_START_TIMEOUT):
                log.error(
                    "the bus (%s) cannot be reached; serving anyway, other nodes' messages"
                    " arrive within bus.recheck_s until it can",
                    masked_url(bus.url),
                )
            yield redis

    return opened()


async def _drain(
    srv: Server, runner: web.AppRunner, site: web.TCPSite, background: list[asyncio.Task[None]]
) -> None:
    """Stop accepting, move clients on, finish what is in flight, write acks.

    Clients get 1001 and connect again, through the load balancer to another
    node; sends already handed to the store are committed and their notices
    published first, so nothing a client was told is lost on the way out.
    """
    conns = srv.hub.connections()
    log.info("draining", extra={"connections": len(conns)})
    await site.stop()
    await asyncio.gather(
        *(conn.close(CLOSE_GOING_AWAY, "server shutting down") for conn in conns),
        return_exceptions=True,
    )
    await runner.cleanup()
    await srv.wait_writes(DRAIN_TIMEOUT)
    for task in background:
        task.cancel()
    await asyncio.gather(*background, return_exceptions=True)
    try:
        await srv.acks.flush()
    except Exception as exc:
        log.error("acknowledgements not written at shutdown: %s", exc)
    if srv.bus is not None and not await srv.bus.flush(BUS_FLUSH_TIMEOUT):
        log.warning("some notices were not published at shutdown")


def run(config: Config) -> None:
    logs.setup(config.log.level, config.log.format, config.node_id)
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:
        runner = asyncio.run

    def announce(url: str) -> None:
        print(f"taube serving on {url}", flush=True)

    try:
        runner(serve(config, ready=announce))
    except KeyboardInterrupt:  # pragma: no cover
        sys.exit(130)
