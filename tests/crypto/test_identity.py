"""Identity keys, device certificates and their verification."""

from __future__ import annotations

import base64

import msgspec
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from taube.crypto import (
    BadKey,
    CryptoError,
    DeviceAccount,
    IdentityKeyPair,
    UntrustedDevice,
    VerifiedDevice,
    verify_device,
    verify_identity_key,
)
from taube.proto.ids import UserId
from taube.proto.keys import DeviceKeys, IdentityKey
from taube.proto.signing import DOMAIN_DEVICE, b64decode, b64encode, signing_bytes

from .helpers import device_id

ALICE = UserId("alice@example.org")

#: a point of order 8 on Curve25519 (a low-order key)
LOW_ORDER = bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800")


def test_private_bytes_round_trip_keeps_the_key() -> None:
    identity = IdentityKeyPair.generate()
    again = IdentityKeyPair.from_private_bytes(identity.private_bytes())
    assert again.public_key == identity.public_key
    assert len(b64decode(identity.public_key)) == 32
    assert "=" not in identity.public_key


def test_repr_shows_no_secret() -> None:
    identity = IdentityKeyPair.generate()
    secret = identity.private_bytes()
    text = repr(identity)
    assert identity.public_key in text
    assert b64encode(secret) not in text
    assert base64.b64encode(secret).decode() not in text


def test_wrong_length_private_key_is_refused() -> None:
    with pytest.raises(BadKey):
        IdentityKeyPair.from_private_bytes(bytes(31))


def test_identity_key_is_self_signed_and_verifies() -> None:
    identity = IdentityKeyPair.generate()
    published = identity.identity_key(ALICE)
    assert published.user == ALICE
    assert verify_identity_key(published) == identity.public_key
    # it is a valid wire object
    msgspec.json.decode(msgspec.json.encode(published), type=IdentityKey)


def test_identity_key_signed_by_another_key_is_refused() -> None:
    published = IdentityKeyPair.generate().identity_key(ALICE)
    forged = msgspec.structs.replace(published, identity_key=IdentityKeyPair.generate().public_key)
    with pytest.raises(UntrustedDevice):
        verify_identity_key(forged)


def test_certify_and_verify_device() -> None:
    identity = IdentityKeyPair.generate()
    account = DeviceAccount.create()
    device = device_id()
    certificate = identity.certify(account.device_keys(ALICE, device))
    # the signature is a plain Ed25519 signature over the documented bytes
    Ed25519PublicKey.from_public_bytes(b64decode(identity.public_key)).verify(
        b64decode(certificate.signature), signing_bytes(DOMAIN_DEVICE, certificate)
    )
    verified = verify_device(identity.public_key, certificate)
    assert verified == VerifiedDevice(
        user=ALICE,
        device=device,
        curve25519=account.curve25519,
        ed25519=account.ed25519,
        identity_key=identity.public_key,
    )
    msgspec.json.decode(msgspec.json.encode(certificate), type=DeviceKeys)


def test_certificate_of_another_identity_is_refused() -> None:
    account = DeviceAccount.create()
    certificate = IdentityKeyPair.generate().certify(account.device_keys(ALICE, device_id()))
    with pytest.raises(UntrustedDevice):
        verify_device(IdentityKeyPair.generate().public_key, certificate)


@pytest.mark.parametrize("field", ["user", "device", "curve25519", "ed25519"])
def test_changing_any_certified_field_breaks_the_certificate(field: str) -> None:
    identity = IdentityKeyPair.generate()
    account, other = DeviceAccount.create(), DeviceAccount.create()
    certificate = identity.certify(account.device_keys(ALICE, device_id()))
    replacement = {
        "user": UserId("mallory@example.org"),
        "device": device_id(),
        "curve25519": other.curve25519,
        "ed25519": other.ed25519,
    }[field]
    changed = msgspec.structs.replace(certificate, **{field: replacement})
    with pytest.raises(UntrustedDevice):
        verify_device(identity.public_key, changed)


def test_a_device_signature_is_not_an_identity_signature() -> None:
    """Domain separation: the same key signing the same object under another label."""
    identity = IdentityKeyPair.generate()
    account = DeviceAccount.create()
    unsigned = account.device_keys(ALICE, device_id())
    wrong_domain = msgspec.structs.replace(
        unsigned, signature=identity.sign(b"taube.identity.v1", unsigned)
    )
    with pytest.raises(UntrustedDevice):
        verify_device(identity.public_key, wrong_domain)


@pytest.mark.parametrize("raw", [bytes(32), LOW_ORDER, b"\x01" + bytes(31)])
def test_low_order_device_keys_are_neither_certified_nor_accepted(raw: bytes) -> None:
    identity = IdentityKeyPair.generate()
    account = DeviceAccount.create()
    keys = msgspec.structs.replace(
        account.device_keys(ALICE, device_id()), curve25519=b64encode(raw)
    )
    with pytest.raises(BadKey):
        identity.certify(keys)
    # a certificate some other (buggy) signer made is still refused
    signed = msgspec.structs.replace(keys, signature=identity.sign(DOMAIN_DEVICE, keys))
    with pytest.raises(BadKey):
        verify_device(identity.public_key, signed)


def test_malformed_inputs_raise_crypto_errors_only() -> None:
    identity = IdentityKeyPair.generate()
    certificate = identity.certify(DeviceAccount.create().device_keys(ALICE, device_id()))
    for key in ["", "!!!", "A" * 43, b64encode(bytes(16))]:
        with pytest.raises(CryptoError):
            verify_device(key, certificate)
    for signature in ["", "***", "A" * 86]:
        with pytest.raises(UntrustedDevice):
            verify_device(
                identity.public_key, msgspec.structs.replace(certificate, signature=signature)
            )
