"""``EvilProxy``: a malicious server for tests, built from a real one.

DESIGN §2.1 says the server cannot add a device or a member that clients
will trust, and §4-6 list what clients check so that it cannot read, forge,
replay or hide messages either. To test that, a client talks to this proxy
instead of the server: an aiohttp server on 127.0.0.1 that forwards every
HTTP request and the WebSocket at ``/api/v1/ws`` to a real ``taube serve``,
and lets a test lie on the server's behalf:

- HTTP responses are rewritten by path (``on_response``, or typed with
  ``rewrite``): e.g. ``/api/v1/keys/query`` gains a device or another
  identity key.
- Frames from the server to the client pass through hooks
  (``on_server_frame``) that may drop, duplicate, replace or hold them
  (``Hold``: release later, so reorder), and ``inject`` sends frames the
  server never sent. Frames from the client to the server are recorded and
  can be hooked as well (``on_client_frame``).
- ``disconnect`` closes a client's connection so that it reconnects.

    async with EvilProxy(server.url) as proxy:
        client = Client(...); await client.register(proxy.url, ...)
        proxy.on_server_frame(lambda conn, frame: [frame, frame])  # everything twice

Hooks run in the connection's pump, in the order they were added, each on
the output of the one before; a hook returns ``None`` to pass a frame on
unchanged, or the list of frames to send instead (``[]`` drops it). Every
``on_*`` method returns a function that removes the hook. What the server
sent and what the client sent are kept, decoded, in ``server_frames`` and
``client_frames`` (before any hook). Test-only: it keeps tokens in memory
and has no limits.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
import socket
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import TypeVar

import aiohttp
import msgspec
from aiohttp import WSMsgType, web

from taube.proto import frames
from taube.proto.codec import decode_client_frame, decode_server_frame, encode
from taube.proto.errors import ProtocolError
from taube.proto.ids import DeviceId, UserId

log = logging.getLogger(__name__)

T = TypeVar("T")

WS_PATH = "/api/v1/ws"

#: request headers not forwarded (hop-by-hop, or recomputed by aiohttp)
_SKIP_REQUEST = frozenset(
    {
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "upgrade",
        "accept-encoding",
        "te",
        "trailer",
        "proxy-authorization",
        "proxy-connection",
    }
)
#: response headers not forwarded (aiohttp writes its own)
_SKIP_RESPONSE = frozenset(
    {
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "content-encoding",
        "date",
        "server",
    }
)


@dataclasses.dataclass
class HttpExchange:
    """One forwarded HTTP request and the server's (possibly rewritten) answer."""

    method: str
    path: str
    query: str
    request_body: bytes
    status: int
    body: bytes


#: rewrites an HTTP answer: the new body, or ``None`` to keep it
ResponseHook = Callable[[HttpExchange], bytes | None]


class Connection:
    """One client WebSocket through the proxy, and its upstream twin."""

    def __init__(self, number: int, client: web.WebSocketResponse) -> None:
        self.number = number  #: 1, 2, ... in the order clients connected
        self.client = client
        self.upstream: aiohttp.ClientWebSocketResponse | None = None
        #: who it is, from the server's ``welcome`` (empty before it)
        self.user = UserId("")
        self.device = DeviceId("")
        self.welcomed = asyncio.Event()
        self.closed = asyncio.Event()
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"Connection(number={self.number}, user={self.user!r}, device={self.device!r})"

    async def send(self, frame: frames.ServerFrame | bytes) -> None:
        """Send a frame to the client as if the server had sent it."""
        data = frame if isinstance(frame, bytes) else encode(frame)
        async with self._lock:
            if self.client.closed:
                return
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self.client.send_str(data.decode())


#: a server→client frame hook: ``None`` passes it on, a list replaces it
FrameHook = Callable[[Connection, frames.ServerFrame], Sequence[frames.ServerFrame] | None]
#: a client→server frame hook, the same way round
ClientFrameHook = Callable[[Connection, frames.ClientFrame], Sequence[frames.ClientFrame] | None]


class EvilProxy:
    """A proxy in front of the server at ``upstream`` (``http://host:port``)."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.url = ""
        self.connections: list[Connection] = []  #: every connection so far, open or not
        self.server_frames: list[tuple[Connection, frames.ServerFrame]] = []
        self.client_frames: list[tuple[Connection, frames.ClientFrame]] = []
        self.exchanges: list[HttpExchange] = []
        self._response_hooks: list[tuple[str, ResponseHook]] = []
        self._server_hooks: list[FrameHook] = []
        self._client_hooks: list[ClientFrameHook] = []
        self._numbers = itertools.count(1)
        self._session: aiohttp.ClientSession | None = None
        self._runner: web.AppRunner | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # ----------------------------------------------------------- lifecycle

    async def start(self) -> str:
        app = web.Application(client_max_size=256 << 20)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._session = aiohttp.ClientSession()  # answers decompressed: hooks see JSON
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock).start()
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def close(self) -> None:
        for conn in self.connections:
            await _close(conn, 1001)
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> EvilProxy:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # ----------------------------------------------------------- hooks

    def on_response(self, path: str, hook: ResponseHook) -> Callable[[], None]:
        """Rewrite the answers to requests for ``path`` (e.g. ``/api/v1/keys/query``)."""
        entry = (path, hook)
        self._response_hooks.append(entry)
        return lambda: _remove(self._response_hooks, entry)

    def rewrite(self, path: str, type_: type[T], change: Callable[[T], T]) -> Callable[[], None]:
        """Rewrite successful JSON answers for ``path``, decoded as ``type_``."""

        def hook(exchange: HttpExchange) -> bytes | None:
            if exchange.status >= 300:
                return None
            return encode(change(msgspec.json.decode(exchange.body, type=type_)))

        return self.on_response(path, hook)

    def on_server_frame(self, hook: FrameHook) -> Callable[[], None]:
        self._server_hooks.append(hook)
        return lambda: _remove(self._server_hooks, hook)

    def on_client_frame(self, hook: ClientFrameHook) -> Callable[[], None]:
        self._client_hooks.append(hook)
        return lambda: _remove(self._client_hooks, hook)

    # ----------------------------------------------------------- acting

    def live(self, device: str | None = None) -> list[Connection]:
        """The open, welcomed connections (of ``device``)."""
        return [
            c
            for c in self.connections
            if c.welcomed.is_set()
            and not c.closed.is_set()
            and (device is None or c.device == device)
        ]

    async def connection(self, device: str, timeout: float = 10.0) -> Connection:
        """The open connection of ``device``, waiting for it if needed."""
        async with asyncio.timeout(timeout):
            while True:
                found = self.live(device)
                if found:
                    return found[-1]
                await asyncio.sleep(0.02)

    async def inject(self, frame: frames.ServerFrame | bytes, *, device: str) -> None:
        """Send ``frame`` to ``device``'s connection as if the server had."""
        await (await self.connection(device)).send(frame)

    async def disconnect(self, device: str, code: int = 1012) -> None:
        """Close ``device``'s connection (both sides): the client reconnects."""
        for conn in self.live(device):
            await _close(conn, code)
            await conn.closed.wait()

    def sent_to(self, device: str, kind: type[T]) -> list[T]:
        """The frames of type ``kind`` the server sent to ``device`` (before hooks)."""
        return [f for c, f in self.server_frames if c.device == device and isinstance(f, kind)]

    def sent_by(self, device: str, kind: type[T]) -> list[T]:
        """The frames of type ``kind`` that ``device`` sent to the server."""
        return [f for c, f in self.client_frames if c.device == device and isinstance(f, kind)]

    # ----------------------------------------------------------- HTTP

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.path == WS_PATH and request.headers.get("Upgrade", "").lower() == "websocket":
            return await self._websocket(request)
        assert self._session is not None
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _SKIP_REQUEST}
        async with self._session.request(
            request.method,
            self.upstream + request.path_qs,
            data=body or None,
            headers=headers,
            allow_redirects=False,
        ) as upstream:
            content = await upstream.read()
            status = upstream.status
            out = {k: v for k, v in upstream.headers.items() if k.lower() not in _SKIP_RESPONSE}
        exchange = HttpExchange(
            request.method, request.path, request.query_string, body, status, content
        )
        for path, hook in list(self._response_hooks):
            if path == request.path:
                changed = hook(exchange)
                if changed is not None:
                    exchange.body = changed
        self.exchanges.append(exchange)
        return web.Response(status=exchange.status, body=exchange.body, headers=out)

    # ----------------------------------------------------------- WebSocket

    async def _websocket(self, request: web.Request) -> web.WebSocketResponse:
        assert self._session is not None
        client = web.WebSocketResponse(max_msg_size=0)
        await client.prepare(request)
        conn = Connection(next(self._numbers), client)
        self.connections.append(conn)
        try:
            url = self.upstream.replace("http", "ws", 1) + WS_PATH
            conn.upstream = await self._session.ws_connect(url, max_msg_size=0)
        except (aiohttp.ClientError, OSError) as exc:
            log.info("upstream WebSocket failed: %s", exc)
            await client.close(code=1011)
            conn.closed.set()
            return client
        down = asyncio.create_task(self._downstream(conn))
        self._tasks.add(down)
        try:
            await self._upstream(conn)
        finally:
            await _close(conn, conn.upstream.close_code or 1000)
            with contextlib.suppress(BaseException):
                await down
            self._tasks.discard(down)
            conn.closed.set()
        return client

    async def _upstream(self, conn: Connection) -> None:
        """Client → server."""
        assert conn.upstream is not None
        async for msg in conn.client:
            if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                break
            try:
                frame = decode_client_frame(msg.data)
            except ProtocolError:
                await conn.upstream.send_str(_text(msg.data))  # let the server refuse it
                continue
            self.client_frames.append((conn, frame))
            for out in _run(self._client_hooks, conn, frame):
                await conn.upstream.send_bytes(encode(out))

    async def _downstream(self, conn: Connection) -> None:
        """Server → client, through the hooks."""
        assert conn.upstream is not None
        try:
            async for msg in conn.upstream:
                if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                    break
                try:
                    frame = decode_server_frame(msg.data)
                except ProtocolError:
                    await conn.send(_text(msg.data).encode())
                    continue
                if isinstance(frame, frames.Welcome):
                    conn.user, conn.device = UserId(frame.user), DeviceId(frame.device)
                self.server_frames.append((conn, frame))
                for out in _run(self._server_hooks, conn, frame):
                    await conn.send(out)
                if isinstance(frame, frames.Welcome):
                    conn.welcomed.set()
        finally:
            # the server closed (or went away): close the client with its code
            await _close(conn, conn.upstream.close_code or 1001)


class Hold:
    """A server-frame hook that keeps what ``match`` selects until ``release``.

    Withholding a frame and releasing it after later ones reorders them;
    never releasing it withholds it for good. ``device`` limits it to one
    device's connections.
    """

    def __init__(
        self,
        proxy: EvilProxy,
        match: Callable[[frames.ServerFrame], bool],
        *,
        device: str | None = None,
    ) -> None:
        self.proxy = proxy
        self.match = match
        self.device = device
        self.held: list[tuple[Connection, frames.ServerFrame]] = []
        self.remove = proxy.on_server_frame(self._hook)

    def _hook(self, conn: Connection, frame: frames.ServerFrame) -> list[frames.ServerFrame] | None:
        if (self.device is None or conn.device == self.device) and self.match(frame):
            self.held.append((conn, frame))
            return []
        return None

    async def release(self, *, stop: bool = True) -> int:
        """Send what was held (to the device's connection now open) and, if
        ``stop``, hold nothing more. Returns how many frames went out."""
        if stop:
            self.remove()
        held, self.held = self.held, []
        for conn, frame in held:
            await self.proxy.inject(frame, device=conn.device)
        return len(held)


def _run(
    hooks: Sequence[Callable[[Connection, T], Sequence[T] | None]], conn: Connection, frame: T
) -> list[T]:
    out = [frame]
    for hook in list(hooks):
        result: list[T] = []
        for item in out:
            changed = hook(conn, item)
            result.extend([item] if changed is None else changed)
        out = result
    return out


async def _close(conn: Connection, code: int) -> None:
    if code < 1000 or code in (1005, 1006, 1015):  # not sendable in a close frame
        code = 1001
    with contextlib.suppress(Exception):
        await asyncio.wait_for(conn.client.close(code=code), 2.0)
    if conn.upstream is not None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(conn.upstream.close(), 2.0)


def _text(data: str | bytes) -> str:
    return data if isinstance(data, str) else data.decode("utf-8", "replace")


def _remove(items: list[T], item: T) -> None:
    with contextlib.suppress(ValueError):
        items.remove(item)


__all__ = [
    "ClientFrameHook",
    "Connection",
    "EvilProxy",
    "FrameHook",
    "Hold",
    "HttpExchange",
    "ResponseHook",
]
