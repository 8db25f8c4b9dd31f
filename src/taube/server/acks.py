"""Acknowledgements, merged: cursors are written every few milliseconds.

A device acknowledges every entry it gets; writing each would cost a commit
apiece. Acks are merged per (device, conversation) and written in one job.
An ack lost in a crash only means the device gets those entries again, and
clients de-duplicate by message id.
"""

from __future__ import annotations

import asyncio
import logging

from taube.proto.errors import ProtocolError
from taube.proto.ids import ConversationId, DeviceId
from taube.store import Store

log = logging.getLogger(__name__)


class AckBuffer:
    def __init__(self, store: Store, interval: float) -> None:
        self.store = store
        self.interval = interval
        self.pending: dict[tuple[DeviceId, ConversationId], int] = {}
        self.wake = asyncio.Event()

    def add(self, device: DeviceId, conversation: ConversationId, seq: int) -> None:
        key = (device, conversation)
        if seq > self.pending.get(key, -1):
            self.pending[key] = seq
            self.wake.set()

    async def settle(self, device: DeviceId) -> None:
        """Write the device's pending acks now (before it reads its cursors)."""
        if any(key[0] == device for key in self.pending):
            await self.flush()

    async def flush(self) -> None:
        if not self.pending:
            return
        batch, self.pending = self.pending, {}
        try:
            await self.store.ack([(d, c, s) for (d, c), s in batch.items()])
        except BaseException:
            # keep them for the next flush (the database may be restarting)
            for key, seq in batch.items():
                if seq > self.pending.get(key, -1):
                    self.pending[key] = seq
            raise

    async def run(self) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            try:
                await self.flush()
            except ProtocolError as exc:  # unavailable: kept, written next time
                log.warning("writing acknowledgements failed: %s", exc.message)
                self.wake.set()
                await asyncio.sleep(max(self.interval, exc.retry_after or 1.0))
            except Exception:
                log.exception("writing acknowledgements failed")
                self.wake.set()
                await asyncio.sleep(1.0)
            await asyncio.sleep(self.interval)
