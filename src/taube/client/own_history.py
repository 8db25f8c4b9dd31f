"""History for the user's own device that logged in with the recovery code.

A recovery login brings the identity key but no messages, so the new device
asks the user's other devices (``taube.history.request {}``, Olm to-device);
this device answers ``taube.history.grant {history}`` with its history, in
the format linking uses (``taube.client.history``): encrypted and uploaded
like an attachment, its key inside the Olm message. Only devices certified
by the identity key this device holds are answered, and only their grants
taken: whoever holds the key is the user. The web app asks after a recovery
login; the SDK asks when told (``Client.request_history``); both answer.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Protocol

from taube.crypto import VerifiedDevice

if TYPE_CHECKING:
    from taube.client.background import Background
    from taube.client.history import History
    from taube.client.receiver import ToDeviceHandler
    from taube.proto.ids import DeviceId

PREFIX = "taube.history."
REQUEST = "taube.history.request"
GRANT = "taube.history.grant"


class OwnDevices(Protocol):
    """What this part needs of the client (``taube.client.Client``)."""

    @property
    def device(self) -> DeviceId: ...
    def is_own_device(self, device: VerifiedDevice) -> bool: ...
    def handle_to_device(self, prefix: str, handler: ToDeviceHandler) -> None: ...
    async def send_to_device(
        self, device: VerifiedDevice, type_: str, content: dict[str, Any]
    ) -> None: ...
    async def own_devices(self) -> list[VerifiedDevice]: ...


class OwnHistory:
    def __init__(self, client: OwnDevices, history: History, background: Background) -> None:
        self._client = client
        self._history = history
        self._background = background
        #: set when a history asked for has been stored
        self.received = asyncio.Event()
        self._asked = False
        client.handle_to_device(PREFIX, self._on_message)

    async def request(self) -> int:
        """Ask the user's other devices for their history; how many were asked."""
        devices = await self._client.own_devices()
        self.received.clear()
        self._asked = bool(devices)
        for device in devices:
            await self._client.send_to_device(device, REQUEST, {})
        return len(devices)

    async def _on_message(
        self, sender: VerifiedDevice, type_: str, content: dict[str, Any]
    ) -> None:
        client = self._client
        if sender.device == client.device or not client.is_own_device(sender):
            return
        if type_ == REQUEST:
            # not awaited here: the send's acknowledgement comes through this frame loop
            self._background.spawn(self._grant(sender))
        elif type_ == GRANT and self._asked and isinstance(content.get("history"), dict):
            self._asked = False  # the first answer is enough
            await self._history.import_(content["history"])
            self.received.set()

    async def _grant(self, device: VerifiedDevice) -> None:
        entry = await self._history.export()
        await self._client.send_to_device(device, GRANT, {"history": entry})
