"""Many accounts, big groups and thousands of connected devices, made through the API.

- ``register_many``: accounts over HTTP, a few at a time on one session
  (no keys: the server routes without them; only a group's owner publishes
  an identity key, since it signs the state events);
- ``build_group``: a group with a signed state chain: one ``create`` call
  with the first members (the API takes 1,100 events at most), then one
  signed ``member`` event per further member;
- ``fresh_devices``: every member signs in a new device and signs out the
  one it registered with. A device added to a conversation starts just
  before its own join, so in a group of N the k-th member owes the N - k
  joins after it (N²/2 state entries in all: 12.5 million for 5,000); a new
  device starts at the head, which is where members are once they have read
  those joins;
- ``BenchDevice``: one device's WebSocket (``bench.wsclient``): hello,
  welcome, backlog, ``queue.empty``; acknowledges what it gets, once per read
  per conversation, and hands each message to a callback;
- ``connect_all``: open many of them, a bounded number at a time.
"""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import time
from collections.abc import Awaitable, Callable, Sequence

import aiohttp
import msgspec

from bench.delivery import (
    TYPE_ERROR,
    TYPE_KEYS_CHANGED,
    TYPE_MSG,
    TYPE_QUEUE_EMPTY,
    TYPE_SENT,
    TYPE_STATE,
    TYPE_TODEVICE,
    TYPE_WELCOME,
    Incoming,
)
from bench.wsclient import WsConnection, connect
from taube.proto import frames, http
from taube.proto.codec import encode
from taube.proto.ids import ConversationId, UserId
from taube.proto.state import Kind, Member, StateEvent
from taube.proto.version import PROTOCOL_VERSION
from taube.testing import RawClient
from taube.testing.rawclient import PASSWORD

WS_PATH = "/api/v1/ws"
#: events the create call takes at most (``CreateConversation``)
MAX_CREATE_EVENTS = 1100

_decode = msgspec.json.Decoder(Incoming).decode
_session = msgspec.json.Decoder(http.Session).decode

#: called for every message a device gets: (device, message id, time of the read)
OnMessage = Callable[["BenchDevice", str, float], None]


@dataclasses.dataclass
class Account:
    address: str
    user: str
    device: str
    token: str


# ---------------------------------------------------------------- accounts


async def _post(
    session: aiohttp.ClientSession, url: str, body: bytes, token: str = ""
) -> http.Session:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    async with session.post(url, data=body, headers=headers) as response:
        content = await response.read()
        if response.status >= 400:
            raise RuntimeError(f"POST {url}: {response.status} {content[:200]!r}")
    return _session(content)


async def _each(
    count: int,
    job: Callable[[int], Awaitable[None]],
    concurrency: int,
    progress: Callable[[int], None] | None,
) -> None:
    """Run ``job(i)`` for every ``i`` below ``count``, ``concurrency`` at a time."""
    done = 0
    next_index = 0

    async def worker() -> None:
        nonlocal done, next_index
        while next_index < count:
            i = next_index
            next_index += 1
            await job(i)
            done += 1
            if progress is not None:
                progress(done)

    await asyncio.gather(*(worker() for _ in range(min(concurrency, count))))


async def register_many(
    base_url: str,
    addresses: Sequence[str],
    *,
    concurrency: int = 16,
    progress: Callable[[int], None] | None = None,
) -> list[Account]:
    """Register every address (one device each, no keys)."""
    accounts: list[Account | None] = [None] * len(addresses)
    url = base_url + "/api/v1/accounts"
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(i: int) -> None:
            body = encode(
                http.Credentials(address=addresses[i], password=PASSWORD, device_name="bench")
            )
            s = await _post(session, url, body)
            accounts[i] = Account(addresses[i], s.user, s.device, s.token)

        await _each(len(addresses), one, concurrency, progress)
    return [a for a in accounts if a is not None]


async def fresh_devices(
    base_url: str,
    accounts: Sequence[Account],
    *,
    concurrency: int = 16,
    progress: Callable[[int], None] | None = None,
) -> None:
    """Each account signs in a new device (at the head of its conversations)
    and signs out the old one, in place."""
    login_url = base_url + "/api/v1/sessions"
    logout_url = base_url + "/api/v1/sessions/current"
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(i: int) -> None:
            account = accounts[i]
            body = encode(
                http.Credentials(address=account.address, password=PASSWORD, device_name="bench")
            )
            s = await _post(session, login_url, body)
            headers = {"Authorization": f"Bearer {account.token}"}
            async with session.delete(logout_url, headers=headers) as response:
                if response.status >= 400:
                    raise RuntimeError(f"logout: {response.status}")
            account.device, account.token = s.device, s.token

        await _each(len(accounts), one, concurrency, progress)


async def owner(base_url: str, address: str) -> RawClient:
    """A registered account with an identity key, to sign a group's state (open it)."""
    client = RawClient(base_url, address)
    await client.__aenter__()
    await client.new_account(one_time_keys=1)
    return client


async def build_group(
    owner: RawClient,
    members: Sequence[str],
    *,
    progress: Callable[[int], None] | None = None,
) -> ConversationId:
    """A group of ``owner`` and ``members``, every join a signed state event."""
    first = owner.chain(Kind.GROUP, list(members[: MAX_CREATE_EVENTS - 1]))
    await owner.request("POST", "/api/v1/conversations", http.CreateConversation(events=first))
    conversation = first[0].conversation
    last: StateEvent = first[-1]
    added = len(first) - 1
    if progress is not None:
        progress(added)
    for member in members[MAX_CREATE_EVENTS - 1 :]:
        event = owner.event(
            conversation,
            last.depth + 1,
            last.event_hash(),
            Member(target=UserId(member), membership="join"),
        )
        await owner.request("POST", f"/api/v1/conversations/{conversation}/state", event)
        last = event
        added += 1
        if progress is not None and added % 100 == 0:
            progress(added)
    return conversation


# ---------------------------------------------------------------- devices


class BenchDevice:
    """One device's WebSocket: authenticates, acknowledges, counts."""

    def __init__(
        self,
        token: str,
        *,
        on_message: OnMessage | None = None,
        on_sent: OnMessage | None = None,
        name: str = "",
    ) -> None:
        self.token = token
        self.name = name
        self.on_message = on_message
        #: called for every ``msg.sent`` (a send of this device is durable)
        self.on_sent = on_sent
        self.conn: WsConnection | None = None
        self.messages = 0  #: messages received, over every connection
        self.state = 0  #: state entries received
        self.errors: list[str] = []
        self.closed_reason: str | None = None
        self.hello_at = 0.0
        self.welcome_at = 0.0
        self.ready_at = 0.0
        self._acks: dict[str, int] = {}
        self._queue_ack = 0
        self._new_futures()

    def _new_futures(self) -> None:
        loop = asyncio.get_running_loop()
        self.welcome: asyncio.Future[None] = loop.create_future()
        self.ready: asyncio.Future[None] = loop.create_future()

    async def open(
        self,
        host: str,
        port: int,
        *,
        rcvbuf: int | None = None,
        wait_ready: bool = True,
        timeout: float = 60.0,
    ) -> None:
        """Connect, say hello, and (``wait_ready``) wait for ``queue.empty``.

        ``rcvbuf`` sets a small receive buffer on the socket (a stalled reader
        fills it fast)."""
        if self.welcome.done() or self.ready.done():
            self._new_futures()
        self.closed_reason = None
        if rcvbuf is None:
            self.conn = await connect(host, port, WS_PATH, self, timeout=timeout)
        else:
            self.conn = await _connect_small_buffer(host, port, self, rcvbuf, timeout)
        self.hello_at = time.perf_counter()
        self.conn.send(
            encode(frames.Hello(protocol=PROTOCOL_VERSION, token=self.token, client="taube-bench"))
        )
        if wait_ready:
            async with asyncio.timeout(timeout):
                await self.welcome
                await self.ready

    def pause(self) -> None:
        """Stop reading the socket (the server's pushes pile up)."""
        if self.conn is not None and self.conn.transport is not None:
            self.conn.transport.pause_reading()

    def resume(self) -> None:
        if self.conn is not None and self.conn.transport is not None:
            self.conn.transport.resume_reading()

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()

    @property
    def is_open(self) -> bool:
        return self.conn is not None and not self.conn.closed

    # ----------------------------------------------------------- FrameHandler

    def on_frame(self, payload: bytes, now: float) -> None:
        frame = _decode(payload)
        kind = frame.type
        if kind == TYPE_MSG:
            self.messages += 1
            if frame.seq > self._acks.get(frame.conversation, 0):
                self._acks[frame.conversation] = frame.seq
            if self.on_message is not None:
                self.on_message(self, frame.id, now)
        elif kind == TYPE_SENT:
            if self.on_sent is not None:
                self.on_sent(self, frame.id, now)
        elif kind == TYPE_STATE:
            self.state += 1
            if frame.seq > self._acks.get(frame.conversation, 0):
                self._acks[frame.conversation] = frame.seq
        elif kind in (TYPE_TODEVICE, TYPE_KEYS_CHANGED):
            self._queue_ack = max(self._queue_ack, frame.seq)
        elif kind == TYPE_WELCOME:
            self.welcome_at = now
            if not self.welcome.done():
                self.welcome.set_result(None)
        elif kind == TYPE_QUEUE_EMPTY:
            self.ready_at = now
            if not self.ready.done():
                self.ready.set_result(None)
        elif kind == TYPE_ERROR:
            self.errors.append(f"{frame.code}: {frame.message}")

    def on_batch_end(self) -> None:
        """Acknowledge what this read brought: one frame per conversation."""
        if self.conn is None or not (self._acks or self._queue_ack):
            return
        out = [
            encode(frames.Ack(conversation=ConversationId(c), seq=s)) for c, s in self._acks.items()
        ]
        if self._queue_ack:
            out.append(encode(frames.ToDeviceAck(seq=self._queue_ack)))
        self._acks.clear()
        self._queue_ack = 0
        self.conn.send_many(out)

    def on_close(self, reason: str) -> None:
        self.closed_reason = reason
        for future in (self.welcome, self.ready):
            if not future.done():
                future.set_exception(ConnectionError(reason))
                future.exception()  # retrieved: a closed device is not an error here


async def _connect_small_buffer(
    host: str, port: int, handler: BenchDevice, rcvbuf: int, timeout: float
) -> WsConnection:
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.setblocking(False)
    conn = WsConnection(host, port, WS_PATH, handler)
    async with asyncio.timeout(timeout):
        await loop.sock_connect(sock, (host, port))
        await loop.create_connection(lambda: conn, sock=sock)
        await conn.open
    return conn


async def connect_all(
    devices: Sequence[BenchDevice],
    host: str,
    port: int,
    *,
    concurrency: int = 200,
    progress: Callable[[int], None] | None = None,
) -> None:
    """Open every device and wait until each has its backlog (``concurrency`` at a time)."""

    async def one(i: int) -> None:
        await devices[i].open(host, port)

    await _each(len(devices), one, concurrency, progress)
