"""Emoji (SAS) verification between two devices, over Olm to-device messages.

    initiator                                   responder
    start {txn, commitment}        ───────────▶  (shown as VerificationRequest)
                                   ◀───────────  key {txn, key}      (after accept)
    key {txn, key}                 ───────────▶  checks the commitment
    both show the same 7 emoji (VerificationEmoji); each user confirms
    mac {txn, identity MAC}        ◀──────────▶  mac {txn, identity MAC}
    each side checks the other's MAC of the pinned identity key → verified

The initiator commits to its key before it sees the responder's, so a man in
the middle cannot pick keys to make the emoji match (``taube.crypto.verification``).
"""

from __future__ import annotations

import dataclasses
import secrets

from taube.crypto import EstablishedSas, SasVerification, VerifiedDevice

START = "taube.sas.start"
KEY = "taube.sas.key"
MAC = "taube.sas.mac"
CANCEL = "taube.sas.cancel"
TYPES = frozenset({START, KEY, MAC, CANCEL})


def new_transaction() -> str:
    return secrets.token_urlsafe(12)


@dataclasses.dataclass
class Flow:
    """One verification in progress on this device."""

    transaction: str
    peer: VerifiedDevice | None  #: the other device (None until one answers a start)
    peers: list[VerifiedDevice]  #: devices a start went to
    sas: SasVerification
    initiator: bool
    commitment: str = ""  #: the initiator's, as received (responder side)
    established: EstablishedSas | None = None
    confirmed: bool = False  #: our user said the emoji match
    their_mac: str = ""  #: held until our user confirms
    done: bool = False
