"""Sharing Megolm room keys over Olm, and accepting them.

The sending device encrypts its ``OutboundGroup``'s key once per member
device (``share_room_key``); a device that has no Olm session yet is handed
back so the client can claim a one-time key for it and try again. Mark the
devices as having the key (``OutboundGroup.mark_shared``) only once the server
acknowledged the to-device messages, so a lost send is retried.

On the receiving side ``accept_room_key`` is the only way a key from another
device enters the ``InboundGroupStore``: the Olm sender becomes the session's
creator, so a key can only ever decrypt messages from the device that sent
it (see ``taube.crypto.payload``: forwarded keys are never accepted).
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from taube.crypto.errors import BadPayload
from taube.crypto.identity import VerifiedDevice
from taube.crypto.megolm import InboundGroupStore, OutboundGroup
from taube.crypto.olm import OlmMachine
from taube.crypto.payload import TYPE_ROOM_KEY, ToDevicePayload, room_key_of
from taube.proto.frames import ToDeviceMessage


def share_room_key(
    olm: OlmMachine, group: OutboundGroup, devices: Iterable[VerifiedDevice]
) -> tuple[list[ToDeviceMessage], list[VerifiedDevice]]:
    """The room key of ``group`` encrypted for each of ``devices``.

    Returns the to-device messages to send and the devices without an Olm
    session (claim a one-time key for each, create the session, call again).
    Devices that already have the key are skipped.
    """
    content = msgspec.to_builtins(group.room_key())
    messages: list[ToDeviceMessage] = []
    without_session: list[VerifiedDevice] = []
    for device in devices:
        if not group.needs_key(device):
            continue
        if not olm.has_session(device):
            without_session.append(device)
            continue
        body = olm.encrypt_to_device(device, TYPE_ROOM_KEY, content)
        messages.append(ToDeviceMessage(user=device.user, device=device.device, body=body))
    return messages, without_session


def accept_room_key(
    store: InboundGroupStore, sender: VerifiedDevice, payload: ToDevicePayload
) -> bool:
    """File the room key in ``payload``, which ``OlmMachine.decrypt_to_device``
    returned for a message from ``sender``. Returns whether the store changed."""
    if payload.sender != sender.user or payload.sender_device != sender.device:
        raise BadPayload("a room key is accepted only from the device that created it")
    return store.add_room_key(room_key_of(payload), sender)
