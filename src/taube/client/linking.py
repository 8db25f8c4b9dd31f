"""Linking a new device: the identity key travels over an Olm channel.

1. The **existing** device shows a code (or QR): 96 random bits ``S`` and the
   first 80 bits of SHA-256 of the account's identity key.
2. The **new** device logs in with the password, looks up the account's
   devices and keeps only those whose certificate verifies under an identity
   key matching the code's fingerprint (so the server cannot put a device of
   its own in the middle). To each it sends a link request: its Curve25519
   and Ed25519 keys beside an Olm message (on a claimed one-time key) that
   carries ``S`` and its name.
3. The existing device decrypts the request with the keys beside it (a
   server that swaps them gets a message that does not decrypt: the pre-key
   message authenticates the sender's key), checks ``S``, and asks the user
   to confirm the new device. Only then it sends, over the same Olm session,
   the identity key and ``S`` again.
4. The new device checks ``S`` and that the identity key is the one the
   fingerprint names, certifies itself and publishes its keys.

The code is good for one link and ``LINK_TTL_S`` seconds.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import secrets
import time
from typing import Any

import msgspec

from taube.client.errors import ClientError
from taube.crypto import OlmCiphertext, OlmMachine, VerifiedDevice
from taube.proto.ids import DeviceId, UserId
from taube.proto.keys import Key

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  #: Crockford base32, as the recovery code
_LOOKALIKES = str.maketrans({"O": "0", "I": "1", "L": "1", " ": None, "-": None})
SECRET_BYTES = 12
FINGERPRINT_BYTES = 10
CODE_CHARS = 36  #: 22 bytes, padded to 180 bits
LINK_TTL_S = 600
TYPE_REQUEST = "taube.link.request"
TYPE_GRANT = "taube.link.grant"


class LinkError(ClientError):
    """The code is malformed, expired or used, or the other side did not check out."""


def fingerprint(identity_key: str) -> bytes:
    return hashlib.sha256(identity_key.encode()).digest()[:FINGERPRINT_BYTES]


def make_code(identity_key: str) -> tuple[str, bytes]:
    """A new link code for display, and its secret."""
    secret = secrets.token_bytes(SECRET_BYTES)
    value = int.from_bytes(secret + fingerprint(identity_key), "big") << 4
    text = "".join(ALPHABET[(value >> (5 * i)) & 31] for i in reversed(range(CODE_CHARS)))
    return "-".join(text[i : i + 4] for i in range(0, CODE_CHARS, 4)), secret


def parse_code(code: str) -> tuple[bytes, bytes]:
    """``(secret, identity fingerprint)`` of a typed code."""
    text = code.upper().translate(_LOOKALIKES)
    if len(text) != CODE_CHARS or any(ch not in ALPHABET for ch in text):
        raise LinkError(f"a link code is {CODE_CHARS} letters and digits")
    value = 0
    for ch in text:
        value = value << 5 | ALPHABET.index(ch)
    raw = (value >> 4).to_bytes(SECRET_BYTES + FINGERPRINT_BYTES, "big")
    return raw[:SECRET_BYTES], raw[SECRET_BYTES:]


class LinkEnvelope(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A link request's to-device body: the new device's keys beside the Olm
    message (they cannot be in the certificate-based directory yet)."""

    link: int = 1
    curve25519: Key
    ed25519: Key
    olm: OlmCiphertext


@dataclasses.dataclass
class PendingLink:
    """A code this device is showing."""

    secret: bytes
    expires: float
    used: bool = False

    def check(self, secret: str) -> None:
        if self.used or time.monotonic() > self.expires:
            raise LinkError("the link code expired or was used")
        if not hmac.compare_digest(bytes.fromhex(secret), self.secret):
            raise LinkError("the link request does not carry this device's code")


@dataclasses.dataclass(frozen=True)
class LinkRequest:
    """A device asks to be linked; confirm with ``Client.link_confirm``."""

    device: DeviceId
    name: str
    peer: VerifiedDevice = dataclasses.field(repr=False)


def provisional_device(
    user: UserId, envelope: LinkEnvelope, device: DeviceId, identity_key: str
) -> VerifiedDevice:
    """The requesting device as the keys beside its request name it: used
    only to decrypt that request, whose content the code then vouches for."""
    return VerifiedDevice(
        user=user,
        device=device,
        curve25519=envelope.curve25519,
        ed25519=envelope.ed25519,
        identity_key=identity_key,
    )


def decode_envelope(body: bytes) -> LinkEnvelope | None:
    try:
        return msgspec.json.decode(body, type=LinkEnvelope)
    except msgspec.MsgspecError:
        return None


def request_body(olm: OlmMachine, peer: VerifiedDevice, secret: bytes, name: str) -> bytes:
    content: dict[str, Any] = {"secret": secret.hex(), "name": name}
    ciphertext = OlmCiphertext.from_body(olm.encrypt_to_device(peer, TYPE_REQUEST, content))
    envelope = LinkEnvelope(
        curve25519=olm.account.curve25519, ed25519=olm.account.ed25519, olm=ciphertext
    )
    return msgspec.json.encode(envelope)
