"""``Outbox``: the client side of durable sending, for raw test clients.

The design asks every client to keep an outbox: a send stays there until the
server acknowledges it with ``msg.sent`` (which it does only once the send is
committed and synced), and is written again, with the *same* message id,
after a reconnect. The server answers such a retry with the first send's
``seq`` and stores nothing, so retrying is always safe.

``Outbox`` does that for a ``RawClient``: sends go out in the order they were
added, at most ``window`` unacknowledged ones on the wire at a time (so a
crash leaves some in flight); ``flush`` returns ``False`` when the connection
dies, and after ``reconnect`` the next ``flush`` writes every unacknowledged
send again.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter

import aiohttp

from taube.proto import frames
from taube.proto.errors import RETRYABLE
from taube.proto.ids import BlobId, ConversationId, MessageId, new_message_id
from taube.testing.rawclient import RawClient, seal

#: what writing to a WebSocket that the peer dropped raises
_GONE = (ConnectionError, aiohttp.ClientError)


class Outbox:
    def __init__(self, client: RawClient, *, window: int = 32) -> None:
        self.client = client
        self.window = window
        #: every send added, in order, as written to the wire (sealed body)
        self.frames: dict[MessageId, frames.Send] = {}
        self.plaintexts: dict[MessageId, bytes] = {}
        #: the first ``msg.sent`` for each acknowledged send
        self.acked: dict[MessageId, frames.Sent] = {}
        #: sends refused for good (an error that a retry cannot fix)
        self.failed: dict[MessageId, frames.Error] = {}
        #: a second ``msg.sent`` for the same id with another seq (must never happen)
        self.mismatched: list[tuple[frames.Sent, frames.Sent]] = []
        #: how often each send was written to a socket
        self.writes: Counter[MessageId] = Counter()
        self._pending: dict[MessageId, None] = {}
        self._written_on: dict[MessageId, object] = {}
        self._retry_after = 0.0
        self._scanned = 0

    # ----------------------------------------------------------- queueing

    def add(
        self,
        conversation: str,
        plaintext: bytes,
        *,
        msg_id: MessageId | None = None,
        blobs: list[str] | None = None,
        expire_ms: int | None = None,
    ) -> MessageId:
        """Queue a send (sealed now, so every retry carries the same bytes)."""
        msg_id = msg_id or new_message_id()
        self.frames[msg_id] = frames.Send(
            conversation=ConversationId(conversation),
            id=msg_id,
            body=seal(plaintext),
            blobs=[BlobId(b) for b in blobs or ()],
            expire_ms=expire_ms,
        )
        self.plaintexts[msg_id] = plaintext
        self._pending[msg_id] = None
        return msg_id

    @property
    def unacked(self) -> list[MessageId]:
        """Sends neither acknowledged nor refused yet, in order."""
        self.collect()
        return list(self._pending)

    @property
    def retried(self) -> list[MessageId]:
        """Sends written more than once (after a reconnect or a retryable error)."""
        return [m for m, n in self.writes.items() if n > 1]

    def collect(self) -> None:
        """Take in the ``msg.sent`` and ``error`` frames that arrived."""
        others = self.client.others
        if len(others) < self._scanned:  # someone cleared the list
            self._scanned = 0
        for frame in others[self._scanned :]:
            if isinstance(frame, frames.Sent) and frame.id in self.frames:
                first = self.acked.setdefault(frame.id, frame)
                if first.seq != frame.seq or first.conversation != frame.conversation:
                    self.mismatched.append((first, frame))
                self._pending.pop(frame.id, None)
            elif isinstance(frame, frames.Error) and frame.ref in self.frames:
                msg_id = MessageId(frame.ref)
                if msg_id not in self._pending:
                    continue
                if frame.code in RETRYABLE:
                    self._written_on.pop(msg_id, None)  # write it again
                    self._retry_after = max(self._retry_after, frame.retry_after or 0.05)
                else:
                    self.failed[msg_id] = frame
                    self._pending.pop(msg_id, None)
        self._scanned = len(others)

    # ----------------------------------------------------------- sending

    @property
    def connected(self) -> bool:
        client = self.client
        return (
            client.ws is not None
            and not client.ws.closed
            and client.closed is not None
            and not client.closed.done()
        )

    async def flush(self, timeout: float = 30.0) -> bool:
        """Write what this connection has not carried yet and wait for the acks.

        Returns ``True`` once every send is acknowledged (or refused for
        good), ``False`` as soon as the connection is gone: ``reconnect`` and
        call it again.
        """
        client = self.client
        async with asyncio.timeout(timeout):
            while True:
                self.collect()
                if not self._pending:
                    return True
                if not self.connected:
                    return False
                if self._retry_after:
                    delay, self._retry_after = min(self._retry_after, 2.0), 0.0
                    await asyncio.sleep(delay)
                    continue
                ws = client.ws
                inflight = 0
                unwritten = []
                for msg_id in self._pending:
                    if self._written_on.get(msg_id) is ws:
                        inflight += 1
                    else:
                        unwritten.append(msg_id)
                if unwritten and inflight < self.window:
                    for msg_id in unwritten[: self.window - inflight]:
                        try:
                            await client.send_frame(self.frames[msg_id])
                        except _GONE:
                            return False
                        self._written_on[msg_id] = ws
                        self.writes[msg_id] += 1
                    continue
                # nothing has run since ``collect`` above: clearing loses no frame
                client.changed.clear()
                await client.changed.wait()

    async def reconnect(self, timeout: float = 20.0) -> None:
        """Open a new WebSocket (retrying while the server is down) and wait
        for its ``welcome``."""
        client = self.client
        async with asyncio.timeout(timeout):
            while True:
                await client.disconnect()
                start = len(client.others)

                def welcomed(start: int = start) -> bool:
                    new = client.others[start:]
                    return any(isinstance(f, frames.Welcome) for f in new) or not self.connected

                try:
                    await client.connect()
                except _GONE:
                    await asyncio.sleep(0.05)
                    continue
                with contextlib.suppress(TimeoutError):
                    await client.wait_for(welcomed, timeout)
                if self.connected:
                    return
                await asyncio.sleep(0.05)


__all__ = ["Outbox"]
