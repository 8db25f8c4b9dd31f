"""Retention: what was not delivered in time is deleted anyway."""

from __future__ import annotations

import asyncio
import logging

from taube.server.clock import Clock
from taube.server.config import RetentionSection
from taube.store import Store

log = logging.getLogger(__name__)


async def sweep_forever(store: Store, clock: Clock, retention: RetentionSection) -> None:
    while True:
        await asyncio.sleep(retention.sweep_interval_s)
        try:
            removed = await store.sweep(
                clock.now_ms(),
                int(retention.max_age_s * 1000),
                int(retention.unattached_blob_s * 1000),
            )
        except Exception:
            log.exception("retention sweep failed")
            continue
        if removed:
            log.info("retention removed %d undelivered entries", removed)
