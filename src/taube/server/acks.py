"""Acknowledgements, merged: cursors are written every few milliseconds.

A device acknowledges every entry it gets; writing each would cost a commit
apiece. Acks are merged per (device, conversation) and written in one job.
An ack lost in a crash only means the device gets those entries again, and
clients de-duplicate by message id.
"""

from __future__ import annotations

import asyncio
import logging

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
        await self.store.ack([(d, c, s) for (d, c), s in batch.items()])

    async def run(self) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            try:
                await self.flush()
            except Exception:  # the store logs it; acks come again
                log.exception("writing acknowledgements failed")
            await asyncio.sleep(self.interval)
