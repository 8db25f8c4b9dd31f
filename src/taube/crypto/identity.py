"""The user's identity key and the device certificates it signs.

A user has one Ed25519 **identity key**; it lives only on the user's devices.
Everything a contact trusts hangs off it: the key is self-signed (proof of
possession), and every device's Olm keys are certified by it (DESIGN §4).
A device whose certificate does not verify gets no keys, so the server can
list devices but cannot add one that clients will trust.

``verify_device`` is the one door from the untrusted key directory into the
rest of this package: it returns a ``VerifiedDevice``, and the Olm, Megolm
and payload code take ``VerifiedDevice`` values only, so an unchecked
certificate cannot reach a session by accident. Whether the *identity key*
itself is the right one for the user (first contact, changed key, verified
contact) is the client's decision, made with the safety number.
"""

from __future__ import annotations

import dataclasses

import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from taube.crypto.errors import BadKey, UntrustedDevice
from taube.proto.errors import ErrorCode, ProtocolError
from taube.proto.ids import DeviceId, UserId
from taube.proto.keys import DeviceKeys, IdentityKey
from taube.proto.signing import (
    DOMAIN_DEVICE,
    DOMAIN_IDENTITY,
    b64encode,
    check_curve25519,
    ed25519_public_key,
    signing_bytes,
    verify,
)

#: the ``signature`` of an object not signed yet (left out when signing)
UNSIGNED = ""


@dataclasses.dataclass(frozen=True, slots=True)
class VerifiedDevice:
    """A device whose certificate verified against ``identity_key``.

    Made by ``verify_device``; hold on to it instead of the raw
    ``DeviceKeys`` so that the type says the check was done.
    """

    user: UserId
    device: DeviceId
    curve25519: str
    ed25519: str
    identity_key: str


class IdentityKeyPair:
    """A user's Ed25519 identity key pair (the private half stays in memory).

    ``repr`` shows the public key only.
    """

    __slots__ = ("_private", "_public")

    def __init__(self, private: Ed25519PrivateKey) -> None:
        self._private = private
        self._public = b64encode(private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))

    @classmethod
    def generate(cls) -> IdentityKeyPair:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_private_bytes(cls, raw: bytes) -> IdentityKeyPair:
        """From the 32-byte Ed25519 seed (as ``private_bytes`` gives it)."""
        if len(raw) != 32:
            raise BadKey("an Ed25519 private key is 32 bytes")
        return cls(Ed25519PrivateKey.from_private_bytes(raw))

    def private_bytes(self) -> bytes:
        """The 32-byte seed: for the encrypted backup and device linking only."""
        return self._private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())

    @property
    def public_key(self) -> str:
        """The public key, unpadded base64 (the form the key directory uses)."""
        return self._public

    def __repr__(self) -> str:
        return f"IdentityKeyPair(public_key={self._public!r})"

    def sign(self, domain: bytes, obj: msgspec.Struct) -> str:
        """Sign ``obj``'s canonical JSON under ``domain`` (see ``proto.signing``)."""
        return b64encode(self._private.sign(signing_bytes(domain, obj)))

    def identity_key(self, user: UserId) -> IdentityKey:
        """The self-signed ``IdentityKey`` to publish for ``user``."""
        unsigned = IdentityKey(user=user, identity_key=self._public, signature=UNSIGNED)
        return msgspec.structs.replace(unsigned, signature=self.sign(DOMAIN_IDENTITY, unsigned))

    def certify(self, device_keys: DeviceKeys) -> DeviceKeys:
        """Sign a device's keys: the device certificate.

        Refuses a Curve25519 key that is malformed or of low order, so that
        a buggy or hostile device cannot get such a key certified.
        """
        _check_curve(device_keys.curve25519)
        _check_ed25519(device_keys.ed25519)
        return msgspec.structs.replace(device_keys, signature=self.sign(DOMAIN_DEVICE, device_keys))


def verify_identity_key(key: IdentityKey) -> str:
    """Check the self-signature of a published identity key; its base64 form."""
    try:
        verify(DOMAIN_IDENTITY, key, key.identity_key, key.signature)
    except ProtocolError as exc:
        raise _translate(exc, "the identity key is not self-signed") from exc
    return key.identity_key


def verify_device(identity_key: str, device_keys: DeviceKeys) -> VerifiedDevice:
    """Check a device certificate against the user's identity key.

    ``identity_key`` must be the key the client trusts for
    ``device_keys.user`` (the caller matches the user). Raises
    ``UntrustedDevice`` if the signature does not verify and ``BadKey`` if
    one of the device's keys is malformed or of low order.
    """
    try:
        verify(DOMAIN_DEVICE, device_keys, identity_key, device_keys.signature)
    except ProtocolError as exc:
        raise _translate(exc, "the device certificate does not verify") from exc
    _check_curve(device_keys.curve25519)
    _check_ed25519(device_keys.ed25519)
    return VerifiedDevice(
        user=device_keys.user,
        device=device_keys.device,
        curve25519=device_keys.curve25519,
        ed25519=device_keys.ed25519,
        identity_key=identity_key,
    )


def _check_curve(key: str) -> None:
    try:
        check_curve25519(key)
    except ProtocolError as exc:
        raise BadKey(f"unusable Curve25519 key: {exc.message}") from exc


def _check_ed25519(key: str) -> None:
    try:
        ed25519_public_key(key)
    except ProtocolError as exc:
        raise BadKey(f"unusable Ed25519 key: {exc.message}") from exc


def _translate(exc: ProtocolError, message: str) -> BadKey | UntrustedDevice:
    """A malformed *signing key* is a ``BadKey``; anything else is untrusted."""
    if exc.code is ErrorCode.BAD_KEY:
        return BadKey(f"{message}: {exc.message}")
    return UntrustedDevice(f"{message}: {exc.message}")
