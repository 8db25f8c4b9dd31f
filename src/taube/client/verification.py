"""Verifying contacts: safety numbers, emoji (SAS), or by hand.

``Verification`` owns the emoji flows in progress (``sas.Flow`` by
transaction). A contact verified here is marked so in ``Keys``; from then
on a change of their identity key stops sending to them until they are
verified again, and ``on_verified`` lets what waited go out.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from taube.client import events as ev
from taube.client import sas
from taube.client.background import Background
from taube.client.carrier import TaubeCarrier
from taube.client.errors import ClientError
from taube.client.session import Emit, Session
from taube.crypto import (
    CryptoError,
    SasVerification,
    VerifiedDevice,
    format_safety_number,
    safety_number,
)
from taube.proto.ids import parse_address


class Verification:
    def __init__(
        self,
        session: Session,
        carrier: TaubeCarrier,
        background: Background,
        emit: Emit,
        on_verified: Callable[[], None],
    ) -> None:
        self._session = session
        self._carrier = carrier
        self._background = background
        self._emit = emit
        self._on_verified = on_verified
        self._flows: dict[str, sas.Flow] = {}

    async def safety_number(self, address: str) -> str:
        session = self._session
        keys = session.keys
        other = parse_address(address)
        await keys.refresh([other])
        pinned = keys.pinned(other)
        if pinned is None:
            raise ClientError(f"no identity key for {other}")
        digits = safety_number(session.user, keys.identity.public_key, other, pinned[0])
        return format_safety_number(digits)

    async def verify(self, address: str) -> None:
        keys = self._session.keys
        other = parse_address(address)
        await keys.refresh([other])
        pinned = keys.pinned(other)
        if pinned is None:
            raise ClientError(f"no identity key for {other}")
        keys.mark_verified(other, pinned[0])
        self._on_verified()  # what waited for this (SendingBlocked) goes out now

    # ---------------------------------------------------------------- emoji (SAS)

    async def start(self, address: str) -> str:
        session = self._session
        keys = session.keys
        other = parse_address(address)
        await keys.refresh([other])
        devices = [
            d
            for d in await keys.devices_of([other])
            if (d.user, d.device) != (session.user, session.device)
        ]
        if not devices:
            raise ClientError(f"{other} has no device to verify with")
        txn = sas.new_transaction()
        flow = sas.Flow(
            txn, None, devices, SasVerification(session.user, session.device, txn), True
        )
        self._flows[txn] = flow
        for device in devices:
            await self._carrier.send_to_device(
                device, sas.START, {"txn": txn, "commitment": flow.sas.commitment()}
            )
        return txn

    async def accept(self, transaction: str) -> None:
        flow = self._flow(transaction)
        assert flow.peer is not None
        await self._carrier.send_to_device(
            flow.peer, sas.KEY, {"txn": transaction, "key": flow.sas.public_key}
        )

    async def confirm(self, transaction: str) -> None:
        flow = self._flow(transaction)
        if flow.established is None or flow.peer is None:
            raise ClientError("nothing to confirm yet")
        flow.confirmed = True
        tag = flow.established.mac("identity", self._session.keys.identity.public_key)
        await self._carrier.send_to_device(flow.peer, sas.MAC, {"txn": transaction, "mac": tag})
        self._finish(flow)

    async def cancel(self, transaction: str, reason: str) -> None:
        flow = self._flow(transaction)
        flow.done = True
        for device in [flow.peer] if flow.peer is not None else flow.peers:
            await self._carrier.send_to_device(
                device, sas.CANCEL, {"txn": transaction, "reason": reason}
            )
        self._emit(ev.VerificationDone(transaction, flow.peers[0].user, False, reason))

    def _flow(self, transaction: str) -> sas.Flow:
        flow = self._flows.get(transaction)
        if flow is None or flow.done:
            raise ClientError("no such verification")
        return flow

    async def on_message(self, sender: VerifiedDevice, type_: str, content: dict[str, Any]) -> None:
        """A SAS message from ``sender`` (Olm-decrypted)."""
        session = self._session
        txn = str(content.get("txn", ""))
        flow = self._flows.get(txn)
        if type_ == sas.START and flow is None:
            try:
                verification = SasVerification(session.user, session.device, txn)
            except ValueError:
                return
            self._flows[txn] = sas.Flow(
                txn,
                sender,
                [sender],
                verification,
                False,
                commitment=str(content.get("commitment", "")),
            )
            self._emit(ev.VerificationRequest(txn, sender.user, sender.device))
            return
        if (
            flow is None
            or flow.done
            or all((p.user, p.device) != (sender.user, sender.device) for p in flow.peers)
        ):
            return
        try:
            if type_ == sas.KEY and flow.established is None:
                key = str(content.get("key", ""))
                if flow.initiator:
                    flow.peer = sender  # the first device that answers
                    flow.established = flow.sas.establish(sender.user, sender.device, key)
                    # not awaited here: the reply's acknowledgement comes through
                    # this very frame loop
                    self._background.spawn(
                        self._carrier.send_to_device(
                            sender, sas.KEY, {"txn": txn, "key": flow.sas.public_key}
                        )
                    )
                else:
                    flow.sas.check_commitment(key, flow.commitment)
                    flow.established = flow.sas.establish(sender.user, sender.device, key)
                self._emit(
                    ev.VerificationEmoji(
                        txn, sender.user, flow.established.emoji(), flow.established.decimals()
                    )
                )
            elif type_ == sas.MAC and flow.peer == sender:
                flow.their_mac = str(content.get("mac", ""))
                self._finish(flow)
            elif type_ == sas.CANCEL:
                flow.done = True
                self._emit(
                    ev.VerificationDone(
                        txn, sender.user, False, str(content.get("reason", "cancelled"))[:200]
                    )
                )
        except (CryptoError, ValueError) as exc:
            flow.done = True
            self._emit(ev.VerificationDone(txn, sender.user, False, str(exc)))

    def _finish(self, flow: sas.Flow) -> None:
        """Both confirmed and the peer's MAC is in: check it against the pinned key."""
        if not (flow.confirmed and flow.their_mac) or flow.established is None or flow.done:
            return
        assert flow.peer is not None
        flow.done = True
        keys = self._session.keys
        pinned = keys.pinned(flow.peer.user)
        try:
            if pinned is None:
                raise ClientError("no identity key pinned")
            flow.established.verify_mac("identity", pinned[0], flow.their_mac)
        except (CryptoError, ClientError) as exc:
            self._emit(ev.VerificationDone(flow.transaction, flow.peer.user, False, str(exc)))
            return
        keys.mark_verified(flow.peer.user, pinned[0])
        self._on_verified()
        self._emit(ev.VerificationDone(flow.transaction, flow.peer.user, True))
