"""Verifying a contact: safety number, emoji / decimal SAS, and QR codes.

Verification answers one question: is the identity key the directory gives
for a contact the key that contact's devices hold? (Device keys hang off it
by certificate.) Three ways to answer, the same as in Signal and Element.

Safety number
=============

Sixty digits both people read out or compare; the same on both phones, no
matter who computes it. It is Signal's numeric fingerprint (libsignal
``NumericFingerprintGenerator``, fingerprint version 0, 5200 iterations)
with taube's inputs; Signal's own published test vector passes through the
same code (``tests/crypto/test_verification.py``). Exactly:

1. For each user, a 30-digit half from their identity key ``K`` (the raw
   32 Ed25519 bytes) and address ``A`` (UTF-8, as normalised by
   ``taube.proto.ids.parse_address``)::

       h = 0x00 0x00 || K || A                  (version 0 as a 16-bit big-endian int)
       repeat 5200 times:  h = SHA-512(h || K)
       digits = for i in 0, 5, 10, 15, 20, 25:
                    "%05d" % (big_endian_uint40(h[i:i+5]) mod 100000)

2. The two halves are joined **smaller first** (as strings; equal halves
   are possible only for the same key and address), so both sides get the
   same 60 digits. Shown as 12 groups of 5.

A half carries about 99.7 bits; an attacker who wants to pass off their key
must hit a given 30-digit half, at 5200 SHA-512 per try.

SAS (emoji / decimals)
======================

Two devices run a Curve25519 exchange (vodozemac ``Sas``) over an
unauthenticated channel and each shows 7 emoji (from 42 bits, out of the
64-emoji table of the Matrix spec) or three 4-digit numbers (1000-9191).
If both people see the same, no one is in the middle; each side then MACs
its identity key with the shared secret (``EstablishedSas.mac``) so the
other can mark it verified. The side that reveals its key last first sends
a ``commitment`` to it, so a man in the middle cannot pick keys after seeing
both and search for a colliding SAS.

The HKDF info string is ``TAUBE_SAS_V1|<txn>|`` followed by the two devices
as ``user|device|sas_key``, **sorted**, so no roles are needed to agree on
it. MACs use ``TAUBE_SAS_MAC_V1|<sender user>|<sender device>|<receiver
user>|<receiver device>|<txn>|<key id>``.

QR code
=======

``VerificationQr`` is the byte payload of a QR code one device shows::

    b"TAUBE" || 0x01 || identity key (32 bytes) || secret (16 random bytes) || address (UTF-8)

The scanner compares the key with the one the directory gives for the
address, and proves it scanned by sending the secret back over Olm; the
showing side checks it with ``check_secret`` (constant time) and marks the
scanner verified in turn.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import re
import secrets

import vodozemac

from taube.crypto.errors import BadKey, BadPayload, UntrustedDevice
from taube.proto.errors import ProtocolError
from taube.proto.ids import DeviceId, UserId, parse_address
from taube.proto.signing import b64decode, b64encode, check_curve25519, ed25519_public_key

# ==================================================================== safety number

SAFETY_NUMBER_VERSION = 0
SAFETY_NUMBER_ITERATIONS = 5200


def fingerprint_half(
    key: bytes, identifier: bytes, iterations: int = SAFETY_NUMBER_ITERATIONS
) -> str:
    """One user's 30 digits (step 1 of the module docstring)."""
    digest = SAFETY_NUMBER_VERSION.to_bytes(2, "big") + key + identifier
    for _ in range(iterations):
        digest = hashlib.sha512(digest + key).digest()
    return "".join(
        f"{int.from_bytes(digest[i : i + 5], 'big') % 100_000:05d}" for i in range(0, 30, 5)
    )


def combine_halves(own: str, theirs: str) -> str:
    """Step 2: the smaller half first, so both sides agree."""
    return own + theirs if own <= theirs else theirs + own


def safety_number(
    own_user: UserId, own_identity_key: str, their_user: UserId, their_identity_key: str
) -> str:
    """The 60-digit safety number of two users (see the module docstring)."""
    return combine_halves(
        fingerprint_half(_identity_key_bytes(own_identity_key), own_user.encode("utf-8")),
        fingerprint_half(_identity_key_bytes(their_identity_key), their_user.encode("utf-8")),
    )


def format_safety_number(number: str) -> str:
    """``"12345 67890 ..."``: groups of five, as people read them out."""
    return " ".join(number[i : i + 5] for i in range(0, len(number), 5))


def _identity_key_bytes(key: str) -> bytes:
    try:
        ed25519_public_key(key)
        return b64decode(key)
    except ProtocolError as exc:
        raise BadKey(f"unusable identity key: {exc.message}") from exc


# ==================================================================== SAS

#: The SAS emoji of the Matrix spec (``data-definitions/sas-emoji.json``),
#: index → (emoji, English description). Clients may translate the names.
SAS_EMOJI: tuple[tuple[str, str], ...] = (
    ("🐶", "Dog"), ("🐱", "Cat"), ("🦁", "Lion"), ("🐎", "Horse"),
    ("🦄", "Unicorn"), ("🐷", "Pig"), ("🐘", "Elephant"), ("🐰", "Rabbit"),
    ("🐼", "Panda"), ("🐓", "Rooster"), ("🐧", "Penguin"), ("🐢", "Turtle"),
    ("🐟", "Fish"), ("🐙", "Octopus"), ("🦋", "Butterfly"), ("🌷", "Flower"),
    ("🌳", "Tree"), ("🌵", "Cactus"), ("🍄", "Mushroom"), ("🌏", "Globe"),
    ("🌙", "Moon"), ("☁️", "Cloud"), ("🔥", "Fire"), ("🍌", "Banana"),
    ("🍎", "Apple"), ("🍓", "Strawberry"), ("🌽", "Corn"), ("🍕", "Pizza"),
    ("🎂", "Cake"), ("❤️", "Heart"), ("😀", "Smiley"), ("🤖", "Robot"),
    ("🎩", "Hat"), ("👓", "Glasses"), ("🔧", "Spanner"), ("🎅", "Santa"),
    ("👍", "Thumbs Up"), ("☂️", "Umbrella"), ("⌛", "Hourglass"), ("⏰", "Clock"),
    ("🎁", "Gift"), ("💡", "Light Bulb"), ("📕", "Book"), ("✏️", "Pencil"),
    ("📎", "Paperclip"), ("✂️", "Scissors"), ("🔒", "Lock"), ("🔑", "Key"),
    ("🔨", "Hammer"), ("☎️", "Telephone"), ("🏁", "Flag"), ("🚂", "Train"),
    ("🚲", "Bicycle"), ("✈️", "Aeroplane"), ("🚀", "Rocket"), ("🏆", "Trophy"),
    ("⚽", "Ball"), ("🎸", "Guitar"), ("🎺", "Trumpet"), ("🔔", "Bell"),
    ("⚓", "Anchor"), ("🎧", "Headphones"), ("📁", "Folder"), ("📌", "Pin"),
)  # fmt: skip

_TRANSACTION_ID = re.compile(r"[A-Za-z0-9_-]{8,64}")


@dataclasses.dataclass(frozen=True, slots=True)
class SasParty:
    user: UserId
    device: DeviceId
    public_key: str

    def label(self) -> str:
        return f"{self.user}|{self.device}|{self.public_key}"


class SasVerification:
    """One device's side of a SAS verification (one use: one ``establish``)."""

    __slots__ = ("_sas", "own", "transaction_id")

    def __init__(self, user: UserId, device: DeviceId, transaction_id: str) -> None:
        if not _TRANSACTION_ID.fullmatch(transaction_id):
            raise ValueError("a transaction id is 8-64 characters of [A-Za-z0-9_-]")
        self._sas = vodozemac.Sas()
        self.transaction_id = transaction_id
        self.own = SasParty(user, device, self._sas.public_key.to_base64())

    @property
    def public_key(self) -> str:
        return self.own.public_key

    def commitment(self) -> str:
        """A hash binding this side's key, sent before the other side's key is seen."""
        return _commitment(self.public_key, self.transaction_id)

    def check_commitment(self, their_key: str, commitment: str) -> None:
        """``UntrustedDevice`` unless ``their_key`` is the key committed to."""
        if not hmac.compare_digest(_commitment(their_key, self.transaction_id), commitment):
            raise UntrustedDevice("the SAS key does not match its commitment")

    def establish(
        self, their_user: UserId, their_device: DeviceId, their_key: str
    ) -> EstablishedSas:
        """The shared secret with the other device's SAS key."""
        try:
            check_curve25519(their_key)
        except ProtocolError as exc:
            raise BadKey(f"unusable SAS key: {exc.message}") from exc
        try:
            established = self._sas.diffie_hellman(
                vodozemac.Curve25519PublicKey.from_base64(their_key)
            )
        except vodozemac.KeyException as exc:
            raise BadKey("unusable SAS key") from exc
        except vodozemac.SasException as exc:
            raise ValueError("a SasVerification is used once") from exc
        return EstablishedSas(
            established,
            self.own,
            SasParty(their_user, their_device, their_key),
            self.transaction_id,
        )


class EstablishedSas:
    """The emoji, decimals and key MACs of an established SAS."""

    __slots__ = ("_established", "own", "their", "transaction_id")

    def __init__(
        self,
        established: vodozemac.EstablishedSas,
        own: SasParty,
        their: SasParty,
        transaction_id: str,
    ) -> None:
        self._established = established
        self.own = own
        self.their = their
        self.transaction_id = transaction_id

    def _info(self) -> str:
        first, second = sorted((self.own.label(), self.their.label()))
        return f"TAUBE_SAS_V1|{self.transaction_id}|{first}|{second}"

    def emoji_indices(self) -> list[int]:
        return list(self._established.bytes(self._info()).emoji_indices)

    def emoji(self) -> list[tuple[str, str]]:
        """Seven ``(emoji, description)`` pairs to compare."""
        return [SAS_EMOJI[i] for i in self.emoji_indices()]

    def decimals(self) -> tuple[int, int, int]:
        """Three numbers from 1000 to 9191 to compare."""
        first, second, third = self._established.bytes(self._info()).decimals
        return (first, second, third)

    def _mac_info(self, sender: SasParty, receiver: SasParty, key_id: str) -> str:
        return (
            f"TAUBE_SAS_MAC_V1|{sender.user}|{sender.device}|{receiver.user}|"
            f"{receiver.device}|{self.transaction_id}|{key_id}"
        )

    def mac(self, key_id: str, key: str) -> str:
        """MAC of one of this side's keys (e.g. the identity key) for the other side."""
        return self._established.calculate_mac(key, self._mac_info(self.own, self.their, key_id))

    def verify_mac(self, key_id: str, key: str, tag: str) -> None:
        """``UntrustedDevice`` unless ``tag`` is the other side's MAC of ``key``."""
        try:
            self._established.verify_mac(key, self._mac_info(self.their, self.own, key_id), tag)
        except vodozemac.SasException as exc:
            raise UntrustedDevice("the SAS MAC does not match") from exc


def _commitment(key: str, transaction_id: str) -> str:
    data = b"taube.sas.commitment.v1\n" + key.encode("ascii") + b"\n" + transaction_id.encode()
    return b64encode(hashlib.sha256(data).digest())


# ==================================================================== QR code

QR_MAGIC = b"TAUBE"
QR_VERSION = 1
QR_SECRET_BYTES = 16
_QR_HEADER = len(QR_MAGIC) + 1


@dataclasses.dataclass(frozen=True, slots=True)
class VerificationQr:
    """The payload of a verification QR code (layout in the module docstring)."""

    user: UserId
    identity_key: str
    secret: bytes = dataclasses.field(repr=False)

    @classmethod
    def create(cls, user: UserId, identity_key: str) -> VerificationQr:
        """A code for ``user``'s ``identity_key`` with a fresh random secret."""
        _identity_key_bytes(identity_key)
        return cls(user, identity_key, secrets.token_bytes(QR_SECRET_BYTES))

    def to_bytes(self) -> bytes:
        return (
            QR_MAGIC
            + bytes([QR_VERSION])
            + _identity_key_bytes(self.identity_key)
            + self.secret
            + self.user.encode("utf-8")
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> VerificationQr:
        """Parse a scanned code; ``BadPayload`` if it is not one of ours."""
        if not data.startswith(QR_MAGIC) or len(data) <= _QR_HEADER + 32 + QR_SECRET_BYTES:
            raise BadPayload("not a taube verification code")
        if data[len(QR_MAGIC)] != QR_VERSION:
            raise BadPayload("unknown verification code version")
        key = data[_QR_HEADER : _QR_HEADER + 32]
        secret = data[_QR_HEADER + 32 : _QR_HEADER + 32 + QR_SECRET_BYTES]
        try:
            address = data[_QR_HEADER + 32 + QR_SECRET_BYTES :].decode("utf-8")
            user = parse_address(address)
            ed25519_public_key(b64encode(key))
        except (UnicodeDecodeError, ProtocolError) as exc:
            raise BadPayload("malformed verification code") from exc
        if user != address:
            raise BadPayload("the address in the code is not normalised")
        return cls(user, b64encode(key), secret)

    def check_secret(self, secret: bytes) -> bool:
        """Whether the scanner sent back this code's secret (constant time)."""
        return hmac.compare_digest(self.secret, secret)
