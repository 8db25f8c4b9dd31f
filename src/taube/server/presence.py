"""Presence across nodes: who is connected somewhere, not only here.

A device's connection lives on one node. That node marks the device online
in the store until ``TTL_MS`` from now, renews the mark every ``RENEW_S``
while the device stays, and clears it when the device goes away (unless
another node has marked it since: a device that moved on stays online). A
node killed outright stops renewing, so its devices drop off within
``TTL_MS``. The privacy setting is enforced by the caller
(``taube.server.http.people``).
"""

from __future__ import annotations

import asyncio
import logging

from taube.proto.ids import DeviceId, UserId
from taube.server.clock import Clock
from taube.server.hub import Hub
from taube.store import Store
from taube.store import people as jobs

log = logging.getLogger(__name__)

#: how long a mark lasts without renewal
TTL_MS = 75_000
#: how often a node renews the marks of the devices connected to it
RENEW_S = 30.0


class Presence:
    def __init__(self, store: Store, clock: Clock, hub: Hub) -> None:
        self._store = store
        self._clock = clock
        self._hub = hub
        #: device → the mark this node wrote last for it
        self._marks: dict[DeviceId, int] = {}

    async def connected(self, device: DeviceId) -> None:
        await self._mark([device])

    async def gone(self, device: DeviceId) -> None:
        if device in self._hub.by_device:
            return  # replaced by a newer connection to this node
        written = self._marks.pop(device, None)
        if written is not None:
            await self._store.engine.write(jobs.set_offline, device, written)

    async def online(self, user: UserId) -> bool:
        if self._hub.by_user.get(user):
            return True
        return await self._store.engine.read(jobs.online, user, self._clock.now_ms())

    async def renew_forever(self) -> None:
        while True:
            await asyncio.sleep(RENEW_S)
            try:
                await self._mark(list(self._hub.by_device))
            except Exception:
                log.exception("renewing presence failed")

    async def _mark(self, devices: list[DeviceId]) -> None:
        if not devices:
            return
        now = self._clock.now_ms()
        until = now + TTL_MS
        await self._store.engine.write(jobs.set_online, devices, until, now)
        for device in devices:
            self._marks[device] = until
