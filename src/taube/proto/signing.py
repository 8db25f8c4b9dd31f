"""What is signed, and how signatures and public keys are checked.

Signed objects are encoded as *canonical JSON*: the object's fields without
``signature``, keys sorted, no insignificant white space, UTF-8. The bytes
signed are a domain label, a newline, then that JSON, so a signature made for
one purpose can never be replayed as another::

    b"taube.device.v1\\n" + b'{"curve25519":"...","device":"...",...}'

Keys and signatures travel as standard base64 without padding (the form
vodozemac and libolm use); decoders here accept padding too.
"""

from __future__ import annotations

import base64
import binascii
import functools
from typing import Any

import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from taube.proto.errors import ErrorCode, ProtocolError

DOMAIN_IDENTITY = b"taube.identity.v1"
DOMAIN_DEVICE = b"taube.device.v1"
DOMAIN_ONE_TIME_KEY = b"taube.otk.v1"
DOMAIN_STATE = b"taube.state.v1"


def b64encode(data: bytes) -> str:
    """Standard base64 without padding."""
    return base64.b64encode(data).rstrip(b"=").decode("ascii")


def b64decode(text: str) -> bytes:
    """Standard base64, padding optional; raises ``ProtocolError`` on garbage."""
    stripped = text.rstrip("=")
    try:
        return base64.b64decode(stripped + "=" * (-len(stripped) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ProtocolError(ErrorCode.BAD_REQUEST, "invalid base64") from exc


def canonical_json(obj: msgspec.Struct | dict[str, Any], *, without: str = "signature") -> bytes:
    """The canonical JSON of ``obj`` with the field ``without`` left out."""
    data = msgspec.to_builtins(obj) if isinstance(obj, msgspec.Struct) else dict(obj)
    data.pop(without, None)
    return msgspec.json.encode(data, order="sorted")


def signing_bytes(domain: bytes, obj: msgspec.Struct | dict[str, Any]) -> bytes:
    return domain + b"\n" + canonical_json(obj)


#: Encodings of the Ed25519 points of small order (sign bit cleared), including
#: the non-canonical ones (y >= p). Under such a key a signature can verify for
#: any message, and verifiers disagree about them: refuse them outright.
_ED25519_SMALL_ORDER = frozenset(
    bytes.fromhex(h)
    for h in (
        "0000000000000000000000000000000000000000000000000000000000000000",
        "0100000000000000000000000000000000000000000000000000000000000000",
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    )
)


def ed25519_public_key(text: str) -> Ed25519PublicKey:
    raw = b64decode(text)
    if len(raw) != 32:
        raise ProtocolError(ErrorCode.BAD_KEY, "an Ed25519 key is 32 bytes")
    if raw[:31] + bytes([raw[31] & 0x7F]) in _ED25519_SMALL_ORDER:
        raise ProtocolError(ErrorCode.BAD_KEY, "small-order Ed25519 key")
    try:
        return Ed25519PublicKey.from_public_bytes(raw)
    except ValueError as exc:
        raise ProtocolError(ErrorCode.BAD_KEY, "malformed Ed25519 key") from exc


def verify(domain: bytes, obj: msgspec.Struct, public_key: str, signature: str) -> None:
    """Raise ``ProtocolError(BAD_SIGNATURE)`` unless ``signature`` is valid."""
    key = ed25519_public_key(public_key)
    sig = b64decode(signature)
    if len(sig) != 64:
        raise ProtocolError(ErrorCode.BAD_SIGNATURE, "an Ed25519 signature is 64 bytes")
    try:
        key.verify(sig, signing_bytes(domain, obj))
    except InvalidSignature as exc:
        raise ProtocolError(ErrorCode.BAD_SIGNATURE, "signature does not verify") from exc


@functools.cache
def _probe_key() -> X25519PrivateKey:
    return X25519PrivateKey.generate()


def check_curve25519(text: str) -> None:
    """Reject malformed, all-zero and low-order Curve25519 public keys.

    A Diffie-Hellman exchange with a low-order point yields the all-zero
    secret, which the X25519 implementation refuses; that catches every
    low-order point in every encoding.
    """
    raw = b64decode(text)
    if len(raw) != 32:
        raise ProtocolError(ErrorCode.BAD_KEY, "a Curve25519 key is 32 bytes")
    try:
        _probe_key().exchange(X25519PublicKey.from_public_bytes(raw))
    except ValueError as exc:
        raise ProtocolError(ErrorCode.BAD_KEY, "low-order Curve25519 key") from exc
