"""Safety numbers (known answers), SAS emoji/decimals, and the QR payload."""

from __future__ import annotations

import contextlib
import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taube.crypto import (
    SAS_EMOJI,
    BadKey,
    BadPayload,
    IdentityKeyPair,
    SasVerification,
    UntrustedDevice,
    VerificationQr,
    format_safety_number,
    safety_number,
)
from taube.crypto.verification import combine_halves, fingerprint_half
from taube.proto.ids import DeviceId, UserId
from taube.proto.signing import b64encode

ALICE, BOB = UserId("alice@example.org"), UserId("bob@example.org")
ALICE_DEVICE, BOB_DEVICE = DeviceId("A" * 22), DeviceId("B" * 22)
#: the public keys of RFC 8032's Ed25519 test vectors 1 and 2
ALICE_KEY = b64encode(
    bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
)
BOB_KEY = b64encode(
    bytes.fromhex("3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c")
)
LOW_ORDER = bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800")

# ---------------------------------------------------------------- safety number


def test_signal_published_vector() -> None:
    """libsignal's NumericFingerprintGeneratorTest (version 1 display string):
    33-byte keys (0x05 type prefix), phone numbers as identifiers."""
    alice = bytes.fromhex("0506863bc66d02b40d27b8d49ca7c09e9239236f9d7d25d6fcca5ce13c7064d868")
    bob = bytes.fromhex("05f781b6fb32fed9ba1cf2de978d4d5da28dc34046ae814402b5c0dbd96fda907b")
    own, theirs = fingerprint_half(alice, b"+14152222222"), fingerprint_half(bob, b"+14153333333")
    expected = "300354477692869396892869876765458257569162576843440918079131"
    assert combine_halves(own, theirs) == combine_halves(theirs, own) == expected


def test_known_answer() -> None:
    """Fixed keys and addresses → fixed digits. If this changes, every
    user's safety numbers change: that needs a new version, not a new answer."""
    number = safety_number(ALICE, ALICE_KEY, BOB, BOB_KEY)
    assert number == "095174171840932887398285009437518343022568198807543950771810"
    assert format_safety_number(number) == (
        "09517 41718 40932 88739 82850 09437 51834 30225 68198 80754 39507 71810"
    )
    assert (
        fingerprint_half(
            bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"),
            b"alice@example.org",
        )
        == "095174171840932887398285009437"
    )


def test_the_algorithm_as_documented() -> None:
    """An independent rendering of the module docstring's steps."""
    key = bytes.fromhex("3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c")
    h = b"\x00\x00" + key + b"bob@example.org"
    for _ in range(5200):
        h = hashlib.sha512(h + key).digest()
    digits = "".join(
        str(int.from_bytes(h[i : i + 5], "big") % 100000).zfill(5) for i in range(0, 30, 5)
    )
    assert digits == fingerprint_half(key, b"bob@example.org") == "518343022568198807543950771810"


def test_both_sides_compute_the_same_number() -> None:
    alice, bob = IdentityKeyPair.generate(), IdentityKeyPair.generate()
    from_alice = safety_number(ALICE, alice.public_key, BOB, bob.public_key)
    from_bob = safety_number(BOB, bob.public_key, ALICE, alice.public_key)
    assert from_alice == from_bob
    assert len(from_alice) == 60
    assert from_alice.isdigit()


def test_another_key_or_address_changes_the_number() -> None:
    base = safety_number(ALICE, ALICE_KEY, BOB, BOB_KEY)
    mallory = IdentityKeyPair.generate().public_key
    assert safety_number(ALICE, ALICE_KEY, BOB, mallory) != base
    assert safety_number(ALICE, ALICE_KEY, UserId("bob@example.com"), BOB_KEY) != base
    # swapping the keys between the addresses changes it too
    assert safety_number(ALICE, BOB_KEY, BOB, ALICE_KEY) != base


@pytest.mark.parametrize("key", ["", "***", b64encode(bytes(16))])
def test_malformed_identity_key(key: str) -> None:
    with pytest.raises(BadKey):
        safety_number(ALICE, key, BOB, BOB_KEY)


# ---------------------------------------------------------------- SAS


def test_the_emoji_table_is_the_matrix_table() -> None:
    assert len(SAS_EMOJI) == 64
    assert len({emoji for emoji, _ in SAS_EMOJI}) == 64
    assert len({name for _, name in SAS_EMOJI}) == 64
    spot = {
        0: ("\U0001f436", "Dog"),
        21: ("\u2601\ufe0f", "Cloud"),
        36: ("\U0001f44d", "Thumbs Up"),
        38: ("\u231b", "Hourglass"),
        53: ("\u2708\ufe0f", "Aeroplane"),
        63: ("\U0001f4cc", "Pin"),
    }
    for index, entry in spot.items():
        assert SAS_EMOJI[index] == entry


def sas_pair(txn: str = "txn-00000001") -> tuple[SasVerification, SasVerification]:
    return SasVerification(ALICE, ALICE_DEVICE, txn), SasVerification(BOB, BOB_DEVICE, txn)


def test_both_sides_see_the_same_emoji_and_decimals() -> None:
    alice, bob = sas_pair()
    on_alice = alice.establish(BOB, BOB_DEVICE, bob.public_key)
    on_bob = bob.establish(ALICE, ALICE_DEVICE, alice.public_key)
    assert on_alice.emoji() == on_bob.emoji()
    assert len(on_alice.emoji()) == 7
    assert all(entry in SAS_EMOJI for entry in on_alice.emoji())
    assert on_alice.decimals() == on_bob.decimals()
    assert all(1000 <= n <= 9191 for n in on_alice.decimals())


def test_a_man_in_the_middle_shows_different_emoji() -> None:
    alice, bob = sas_pair()
    to_alice, to_bob = sas_pair()  # mallory's two halves
    on_alice = alice.establish(BOB, BOB_DEVICE, to_alice.public_key)
    on_bob = bob.establish(ALICE, ALICE_DEVICE, to_bob.public_key)
    assert on_alice.emoji_indices() != on_bob.emoji_indices()


def test_commitment() -> None:
    alice, bob = sas_pair()
    commitment = bob.commitment()
    alice.check_commitment(bob.public_key, commitment)
    with pytest.raises(UntrustedDevice):
        alice.check_commitment(
            SasVerification(BOB, BOB_DEVICE, "txn-00000001").public_key, commitment
        )
    other_txn = SasVerification(ALICE, ALICE_DEVICE, "txn-00000002")
    with pytest.raises(UntrustedDevice):
        other_txn.check_commitment(bob.public_key, commitment)


def test_key_macs() -> None:
    alice, bob = sas_pair()
    on_alice = alice.establish(BOB, BOB_DEVICE, bob.public_key)
    on_bob = bob.establish(ALICE, ALICE_DEVICE, alice.public_key)
    tag = on_alice.mac("identity", ALICE_KEY)
    on_bob.verify_mac("identity", ALICE_KEY, tag)
    with pytest.raises(UntrustedDevice):
        on_bob.verify_mac("identity", BOB_KEY, tag)
    with pytest.raises(UntrustedDevice):
        on_bob.verify_mac("device", ALICE_KEY, tag)
    with pytest.raises(UntrustedDevice):  # a MAC does not verify in the other direction
        on_alice.verify_mac("identity", ALICE_KEY, tag)
    with pytest.raises(UntrustedDevice):
        on_bob.verify_mac("identity", ALICE_KEY, "not base64!")


@pytest.mark.parametrize("raw", [bytes(32), LOW_ORDER])
def test_low_order_sas_key_is_refused(raw: bytes) -> None:
    alice, _ = sas_pair()
    with pytest.raises(BadKey):
        alice.establish(BOB, BOB_DEVICE, b64encode(raw))


def test_a_sas_is_used_once() -> None:
    alice, bob = sas_pair()
    alice.establish(BOB, BOB_DEVICE, bob.public_key)
    with pytest.raises(ValueError, match="once"):
        alice.establish(BOB, BOB_DEVICE, bob.public_key)


@pytest.mark.parametrize("txn", ["", "short", "has space in it", "x" * 65, "pipe|pipe|pipe"])
def test_transaction_ids_are_checked(txn: str) -> None:
    with pytest.raises(ValueError, match="transaction id"):
        SasVerification(ALICE, ALICE_DEVICE, txn)


# ---------------------------------------------------------------- QR


def test_qr_round_trip_and_secret() -> None:
    code = VerificationQr.create(ALICE, ALICE_KEY)
    data = code.to_bytes()
    assert data.startswith(b"TAUBE\x01")
    assert data.endswith(b"alice@example.org")
    assert len(data) == 6 + 32 + 16 + len(b"alice@example.org")
    scanned = VerificationQr.from_bytes(data)
    assert scanned == code
    assert code.check_secret(scanned.secret)
    assert not code.check_secret(bytes(16))
    assert VerificationQr.create(ALICE, ALICE_KEY).secret != code.secret
    assert code.secret.hex() not in repr(code)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"TAUBE",
        b"TAUBE\x02" + bytes(48) + b"a@b.org",
        b"XAUBE\x01" + bytes(48) + b"a@b.org",
        b"TAUBE\x01" + bytes(48),
        b"TAUBE\x01" + bytes(48) + b"not an address",
        b"TAUBE\x01" + bytes(48) + b"Alice@Example.org",
        b"TAUBE\x01" + bytes(48) + b"\xff@b.org",
    ],
)
def test_malformed_qr_codes(data: bytes) -> None:
    with pytest.raises(BadPayload):
        VerificationQr.from_bytes(data)


@settings(max_examples=200)
@given(st.binary(max_size=120))
def test_qr_decoder_raises_bad_payload_only(data: bytes) -> None:
    with contextlib.suppress(BadPayload):
        VerificationQr.from_bytes(b"TAUBE\x01" + data)
