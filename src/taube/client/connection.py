"""The live connection to the server: one WebSocket and its frames.

``Connection.run`` connects, says hello, and reconnects with backoff and
jitter until it is told to stop. Frames that carry something for the user
go to a ``FrameHandler`` (the receiver), and are acknowledged only after it
returns: what the handler stored survives a crash, what it did not comes
again. Frames that answer a request (``Sent``, ``ToDeviceSent``, errors with
a ``ref``) resolve the request waiting for them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from typing import Any, Protocol

import aiohttp

from taube.client.background import Background
from taube.client.errors import ServerError, Unavailable
from taube.client.session import Session
from taube.proto import frames
from taube.proto.codec import decode_server_frame, encode
from taube.proto.errors import ErrorCode
from taube.proto.ids import UserId
from taube.proto.version import PROTOCOL_VERSION

log = logging.getLogger(__name__)

#: how long a request waits for its answer (and for a connection being made)
SEND_TIMEOUT = 10.0
#: the server's close code for a token it does not know (any more)
CLOSE_BAD_TOKEN = 4401


class FrameHandler(Protocol):
    """What the connection hands on; each returns once its frame is stored."""

    async def on_message(self, frame: frames.Message) -> None: ...
    async def on_state(self, frame: frames.State) -> None: ...
    async def on_to_device(self, frame: frames.ToDevice) -> None: ...
    async def on_keys_changed(self, user: UserId) -> None: ...
    def on_typing(self, frame: frames.TypingEvent) -> None: ...


class Connection:
    def __init__(self, session: Session, background: Background) -> None:
        self._session = session
        self._background = background
        self.handler: FrameHandler | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self.connected = asyncio.Event()
        self.queue_empty = asyncio.Event()
        self.closing = False
        self._waiting: dict[str, asyncio.Future[Any]] = {}
        self._task: asyncio.Task[None] | None = None

    @property
    def started(self) -> bool:
        return self._task is not None

    def start(self) -> None:
        """Connect in the background (and stay connected until ``stop``)."""
        if self._task is None:
            self.closing = False
            self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        self.closing = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
            self._task = None

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
            self._ws = None
        self.connected.clear()

    async def _run(self) -> None:
        """Stay connected until ``closing`` (or the server refuses the token)."""
        session = self._session
        assert session.transport is not None
        assert session.api is not None
        backoff = 0.2
        while not self.closing:
            try:
                async with session.transport.session.ws_connect(
                    session.ws_url, max_msg_size=0
                ) as ws:
                    await ws.send_bytes(
                        encode(frames.Hello(protocol=PROTOCOL_VERSION, token=session.api.token))
                    )
                    async for msg in ws:
                        if msg.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                            break
                        frame = decode_server_frame(msg.data)
                        if isinstance(frame, frames.Welcome):
                            self._ws = ws
                            self.connected.set()
                            backoff = 0.2
                            # one-time keys get used up
                            self._background.spawn(session.keys.replenish())
                            continue
                        await self._on_frame(ws, frame)
                    if ws.close_code == CLOSE_BAD_TOKEN:
                        log.warning("the server refused this device's token")
                        self.closing = True
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                log.info("connection lost: %s", exc)
            except Exception:
                log.exception("sync failed")
            finally:
                self._ws = None
                self.connected.clear()
                self.queue_empty.clear()  # the next connection's backlog is still to come
                for future in self._waiting.values():
                    if not future.done():
                        future.set_exception(Unavailable(ErrorCode.UNAVAILABLE, "disconnected"))
            if not self.closing:
                await asyncio.sleep(backoff * (0.5 + random.random()))  # noqa: S311 - jitter
                backoff = min(backoff * 2, 15.0)

    async def _on_frame(
        self, ws: aiohttp.ClientWebSocketResponse, frame: frames.ServerFrame
    ) -> None:
        handler = self.handler
        assert handler is not None
        if isinstance(frame, frames.Message):
            await handler.on_message(frame)
            await ws.send_bytes(encode(frames.Ack(conversation=frame.conversation, seq=frame.seq)))
        elif isinstance(frame, frames.State):
            await handler.on_state(frame)
            await ws.send_bytes(encode(frames.Ack(conversation=frame.conversation, seq=frame.seq)))
        elif isinstance(frame, frames.ToDevice):
            await handler.on_to_device(frame)
            await ws.send_bytes(encode(frames.ToDeviceAck(seq=frame.seq)))
        elif isinstance(frame, frames.KeysChanged):
            await handler.on_keys_changed(UserId(frame.user))
            await ws.send_bytes(encode(frames.ToDeviceAck(seq=frame.seq)))
        elif isinstance(frame, frames.TypingEvent):
            handler.on_typing(frame)
        elif isinstance(frame, frames.QueueEmpty):
            self.queue_empty.set()
        elif isinstance(frame, frames.Sent | frames.ToDeviceSent):
            self._answer(frame.id, frame)
        elif isinstance(frame, frames.Error) and frame.ref is not None:
            self._answer(frame.ref, frame)

    def _answer(self, ref: str, frame: frames.ServerFrame) -> None:
        future = self._waiting.get(ref)
        if future is not None and not future.done():
            future.set_result(frame)

    async def request(
        self, frame: frames.Send | frames.ToDeviceSend, ref: str
    ) -> frames.ServerFrame:
        """Send a frame and wait for its acknowledgement (or error); waits a
        while for the connection if it is being made."""
        if self._ws is None and self._task is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(SEND_TIMEOUT):
                    await self.connected.wait()
        ws = self._ws
        if ws is None:
            raise Unavailable(ErrorCode.UNAVAILABLE, "not connected")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting[ref] = future
        try:
            await ws.send_bytes(encode(frame))
            async with asyncio.timeout(SEND_TIMEOUT):
                reply = await future
        finally:
            self._waiting.pop(ref, None)
        if isinstance(reply, frames.Error):
            kind = (
                Unavailable
                if reply.code in (ErrorCode.RATE_LIMITED, ErrorCode.UNAVAILABLE, ErrorCode.INTERNAL)
                else ServerError
            )
            raise kind(reply.code, reply.message)
        return reply  # type: ignore[no-any-return]

    async def send_nowait(self, frame: frames.Typing) -> None:
        """A frame nobody waits an answer for (dropped when not connected)."""
        ws = self._ws
        if ws is not None:
            await ws.send_bytes(encode(frame))
