"""A lean WebSocket client for load generation: an ``asyncio.Protocol``.

Why not aiohttp's client here: a load generator must never wait for the
server. ``ClientWebSocketResponse.send_str`` awaits the transport's drain once
its buffer is full, which turns an open-loop generator into a closed-loop one
exactly when the server falls behind, and reading costs a coroutine switch per
frame. This client writes with ``transport.write`` (never blocks; the backlog
stays visible as ``write_buffer_size``) and parses every frame of a read in
one ``data_received`` call, handing them to a handler with one timestamp.

It speaks just what a benchmark needs (RFC 6455): the upgrade handshake,
masked text frames out, unfragmented text frames in, ping → pong, close.
Frames from the server are not masked and not compressed (the server turns
compression off).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import os
import random
import socket
import struct
import time
from typing import Protocol

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_OP_CONT, _OP_TEXT, _OP_BINARY, _OP_CLOSE, _OP_PING, _OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
_U16 = struct.Struct("!H")
_U64 = struct.Struct("!Q")
_MAX_HEADER = 64 * 1024


class FrameHandler(Protocol):
    """What a connection hands its frames to."""

    def on_frame(self, payload: bytes, now: float) -> None:
        """One text or binary message; ``now`` is ``time.perf_counter()`` at the read."""

    def on_batch_end(self) -> None:
        """Every frame of one read was handled (the place to coalesce replies)."""

    def on_close(self, reason: str) -> None:
        """The connection is gone."""


def _mask(payload: bytes, key: bytes) -> bytes:
    n = len(payload)
    if n == 0:
        return payload
    stream = (key * ((n >> 2) + 1))[:n]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(stream, "little")).to_bytes(
        n, "little"
    )


def encode_client_frame(payload: bytes, opcode: int = _OP_TEXT) -> bytes:
    """A final, masked client frame (clients must mask; RFC 6455 5.3)."""
    n = len(payload)
    if n < 126:
        header = bytes((0x80 | opcode, 0x80 | n))
    elif n < 1 << 16:
        header = bytes((0x80 | opcode, 0x80 | 126)) + _U16.pack(n)
    else:
        header = bytes((0x80 | opcode, 0x80 | 127)) + _U64.pack(n)
    key = random.getrandbits(32).to_bytes(4, "little")
    return header + key + _mask(payload, key)


class WsConnection(asyncio.Protocol):
    """One client WebSocket. Create with :func:`connect`."""

    def __init__(self, host: str, port: int, path: str, handler: FrameHandler) -> None:
        self.host = host
        self.port = port
        self.path = path
        self.handler = handler
        self.transport: asyncio.Transport | None = None
        self.open: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed = False
        self._key = base64.b64encode(os.urandom(16))
        self._upgraded = False
        self._buffer = bytearray()
        self._fragments: list[bytes] = []
        self.frames_in = 0
        self.frames_out = 0
        self.bytes_in = 0

    # ----------------------------------------------------------- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not ``asyncio.Transport`` subclasses, only alike
        self.transport = transport  # type: ignore[assignment]
        assert self.transport is not None
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        request = (
            f"GET {self.path} HTTP/1.1\r\n"
            f"Host: {self.host}:{self.port}\r\n"
            "Upgrade: websocket\r\n"
            "Connection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {self._key.decode()}\r\n"
            "Sec-WebSocket-Version: 13\r\n"
            "\r\n"
        )
        self.transport.write(request.encode())

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        self.bytes_in += len(data)
        self._buffer += data
        if not self._upgraded and not self._handshake():
            return
        self._parse(now)
        self.handler.on_batch_end()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        reason = str(exc) if exc else "closed"
        if not self.open.done():
            self.open.set_exception(ConnectionError(f"WebSocket handshake failed: {reason}"))
        self.handler.on_close(reason)

    # ----------------------------------------------------------- sending

    def send(self, payload: bytes) -> None:
        """Queue one text frame; never blocks (the transport buffers)."""
        if self.transport is None or self.closed:
            return
        self.transport.write(encode_client_frame(payload))
        self.frames_out += 1

    def send_many(self, payloads: list[bytes]) -> None:
        if self.transport is None or self.closed or not payloads:
            return
        self.transport.write(b"".join(encode_client_frame(p) for p in payloads))
        self.frames_out += len(payloads)

    @property
    def write_buffer_size(self) -> int:
        return self.transport.get_write_buffer_size() if self.transport is not None else 0

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            with contextlib.suppress(Exception):
                self.transport.write(encode_client_frame(_U16.pack(1000), _OP_CLOSE))
            self.transport.close()
        self.closed = True

    # ----------------------------------------------------------- receiving

    def _handshake(self) -> bool:
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buffer) > _MAX_HEADER:
                self._fail("oversized handshake response")
            return False
        head = bytes(self._buffer[:end]).decode("latin-1")
        del self._buffer[: end + 4]
        lines = head.split("\r\n")
        status = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        accept = base64.b64encode(hashlib.sha1(self._key + _GUID).digest()).decode()
        if len(status) < 2 or status[1] != "101" or headers.get("sec-websocket-accept") != accept:
            self._fail(f"upgrade refused: {lines[0]}")
            return False
        self._upgraded = True
        if not self.open.done():
            self.open.set_result(None)
        return True

    def _fail(self, reason: str) -> None:
        if not self.open.done():
            self.open.set_exception(ConnectionError(reason))
        self.close()

    def _parse(self, now: float) -> None:
        buf = self._buffer
        pos = 0
        end = len(buf)
        handler = self.handler
        while end - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            length = b1 & 0x7F
            start = pos + 2
            if length == 126:
                if end - start < 2:
                    break
                length = _U16.unpack_from(buf, start)[0]
                start += 2
            elif length == 127:
                if end - start < 8:
                    break
                length = _U64.unpack_from(buf, start)[0]
                start += 8
            if b1 & 0x80:  # servers must not mask; refuse rather than guess
                self._fail("masked frame from the server")
                return
            if end - start < length:
                break
            payload = bytes(buf[start : start + length])
            pos = start + length
            opcode = b0 & 0x0F
            fin = b0 & 0x80
            if opcode in (_OP_TEXT, _OP_BINARY, _OP_CONT):
                if not fin:
                    self._fragments.append(payload)
                    continue
                if self._fragments:
                    self._fragments.append(payload)
                    payload = b"".join(self._fragments)
                    self._fragments.clear()
                self.frames_in += 1
                handler.on_frame(payload, now)
            elif opcode == _OP_PING:
                if self.transport is not None and not self.closed:
                    self.transport.write(encode_client_frame(payload, _OP_PONG))
            elif opcode == _OP_CLOSE:
                self.close()
                break
        del buf[:pos]


async def connect(
    host: str, port: int, path: str, handler: FrameHandler, timeout: float = 10.0
) -> WsConnection:
    """Open a WebSocket to ``ws://host:port/path``."""
    loop = asyncio.get_running_loop()
    conn = WsConnection(host, port, path, handler)
    async with asyncio.timeout(timeout):
        await loop.create_connection(lambda: conn, host, port)
        await conn.open
    return conn
