"""The routes other servers call: the two well-known documents and the signed API.

The signed endpoints are listed in ``taube.proto.federation.FEDERATION_ENDPOINTS``;
their handlers are functions of the same name in ``keys`` or ``inbound``
taking ``(srv, origin, body, path parameters)``. A body larger than ``federation.max_body_bytes``
is refused before it is read, and before anything is checked.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from aiohttp import web

from taube.proto.api import Endpoint
from taube.proto.codec import decode, encode
from taube.proto.errors import ErrorCode, ProtocolError
from taube.proto.federation import (
    FEDERATION_ENDPOINTS,
    FEDERATION_PREFIX,
    WELL_KNOWN_KEYS,
    WELL_KNOWN_SERVER,
    ServerDiscovery,
)
from taube.server.federation import inbound, keys

if TYPE_CHECKING:
    from taube.server.context import Server

Handler = Callable[["Server", str, Any, Mapping[str, str]], Awaitable[Any]]


def _json(value: object) -> web.Response:
    return web.Response(
        body=encode(value),
        content_type="application/json",
        headers={"Cache-Control": "public, max-age=300", "Access-Control-Allow-Origin": "*"},
    )


async def _read_limited(request: web.Request, limit: int) -> bytes:
    if request.content_length is not None and request.content_length > limit:
        raise ProtocolError(ErrorCode.PAYLOAD_TOO_LARGE, f"a request body is at most {limit} bytes")
    body = await request.content.read(limit + 1)
    if len(body) > limit:
        raise ProtocolError(ErrorCode.PAYLOAD_TOO_LARGE, f"a request body is at most {limit} bytes")
    return body


def _signed(srv: Server, endpoint: Endpoint, fn: Handler) -> Any:
    async def handle(request: web.Request) -> web.StreamResponse:
        federation = srv.federation
        if federation is None:
            raise ProtocolError(ErrorCode.FORBIDDEN, "this server does not federate")
        data = await _read_limited(request, srv.config.federation.max_body_bytes)
        origin = await federation.authenticate(request, data)
        body = decode(data, endpoint.request) if endpoint.request is not None else None
        result = await fn(srv, origin, body, request.match_info)
        if isinstance(result, web.StreamResponse):
            return result
        return web.Response(
            body=encode(result), status=endpoint.status, content_type="application/json"
        )

    return handle


def add_routes(app: web.Application, srv: Server) -> None:
    async def discovery(request: web.Request) -> web.Response:
        if srv.federation is None:
            raise ProtocolError(ErrorCode.NOT_FOUND, "this server does not federate")
        public = srv.config.federation.public_url or f"{request.scheme}://{request.host}"
        return _json(ServerDiscovery(server=public.rstrip("/")))

    async def server_keys(_: web.Request) -> web.Response:
        federation = srv.federation
        if federation is None:
            raise ProtocolError(ErrorCode.NOT_FOUND, "this server does not federate")
        return _json(federation.keyring.published(federation.domain, srv.clock.now_ms()))

    app.router.add_get(WELL_KNOWN_SERVER, discovery)
    app.router.add_get(WELL_KNOWN_KEYS, server_keys)
    for endpoint in FEDERATION_ENDPOINTS:
        handler = getattr(keys, endpoint.name, None) or getattr(inbound, endpoint.name)
        app.router.add_route(
            endpoint.method, FEDERATION_PREFIX + endpoint.path, _signed(srv, endpoint, handler)
        )
