"""The OpenPGP adapter: Delta Chat's key and message shapes, errors, Secure-Join SKESK v6.

rpgp-py is used directly here only to look inside what the adapter writes and
to make what the adapter refuses to make (old-style keys, subkey signatures).
"""

from __future__ import annotations

import hashlib
import io
import os
import re

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESOCB3
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from openpgp.armor import BlockType
from openpgp.armor import write as armor_write
from openpgp.composed import (
    EncryptionCaps,
    KeyType,
    Message,
    MessageBuilder,
    SecretKeyParamsBuilder,
    SignedSecretKey,
    SubkeyParamsBuilder,
)
from openpgp.types import StringToKey
from openpgp.util import sign_message

from taube.connectors.email.openpgp import (
    BadSignatureError,
    Decrypted,
    MailCryptoError,
    MailKey,
    MalformedError,
    NotEncryptedToUsError,
    PublicKey,
    _skesk_v6_packet,
    decrypt,
    decrypt_with_password,
    encrypt_and_sign,
    encrypt_with_password,
    verify,
)

PASSWORD = "securejoin/0123456789ABCDEF0123456789ABCDEF01234567/kH7sW2qLx9mN4pR"


@pytest.fixture(scope="module")
def alice() -> MailKey:
    return MailKey.generate("alice@example.org")


@pytest.fixture(scope="module")
def bob() -> MailKey:
    return MailKey.generate("bob@example.org")


def old_style_secret_key(addr: str, *, signing_subkey: bool = False) -> SignedSecretKey:
    """A key without the SEIPD v2 feature, optionally with a signing subkey."""
    encryption = (
        SubkeyParamsBuilder()
        .key_type(KeyType.ecdh("curve25519"))
        .can_encrypt(EncryptionCaps.all())
        .build()
    )
    builder = (
        SecretKeyParamsBuilder()
        .version(4)
        .key_type(KeyType.ed25519_legacy())
        .can_certify(True)
        .can_sign(True)
        .feature_seipd_v2(False)
        .primary_user_id(f"<{addr}>")
        .subkey(encryption)
    )
    if signing_subkey:
        signing = SubkeyParamsBuilder().key_type(KeyType.ed25519_legacy()).can_sign(True).build()
        builder = builder.subkey(signing)
    return builder.build().generate()


def armor(packets: bytes) -> str:
    out = io.StringIO()
    armor_write(packets, BlockType.Message, out)
    return out.getvalue()


def parsed(armored: str) -> Message:
    return Message.from_armor(armored)[0]


# -- keys ---------------------------------------------------------------------


def test_a_generated_key_has_delta_chats_shape(alice: MailKey) -> None:
    secret = SignedSecretKey.from_bytes(alice.to_bytes())
    assert secret.version == 4
    assert secret.public_key_algorithm == "eddsa-legacy"
    assert secret.user_ids == ["<alice@example.org>"]
    [subkey] = secret.to_public_key().public_subkeys
    assert subkey.key.public_key_algorithm == "ecdh"
    assert subkey.key.public_params.curve == "curve25519"
    assert alice.public_key.supports_seipd_v2
    assert re.fullmatch("[0-9A-F]{40}", alice.fingerprint)


def test_keys_round_trip_through_bytes(alice: MailKey) -> None:
    again = MailKey.from_bytes(alice.to_bytes())
    assert again.fingerprint == alice.fingerprint
    public = PublicKey.from_bytes(alice.public_key.to_bytes())
    assert public == alice.public_key
    assert hash(public) == hash(alice.public_key)
    assert public.fingerprint == alice.fingerprint
    assert public.user_ids == ("<alice@example.org>",)


def test_reprs_show_the_fingerprint_only(alice: MailKey) -> None:
    assert repr(alice) == f"MailKey({alice.fingerprint})"
    assert repr(alice.public_key) == f"PublicKey({alice.fingerprint})"


@pytest.mark.parametrize("data", [b"", b"not a key", bytes(range(256))])
def test_garbage_is_not_a_key(data: bytes) -> None:
    with pytest.raises(MalformedError):
        PublicKey.from_bytes(data)
    with pytest.raises(MalformedError):
        MailKey.from_bytes(data)


def test_a_key_without_an_encryption_subkey_is_refused() -> None:
    sign_only = (
        SecretKeyParamsBuilder()
        .version(4)
        .key_type(KeyType.ed25519_legacy())
        .can_certify(True)
        .can_sign(True)
        .primary_user_id("<x@example.org>")
        .build()
        .generate()
    )
    with pytest.raises(MalformedError, match="encryption subkey"):
        PublicKey.from_bytes(sign_only.to_public_key().to_bytes())


def test_a_secret_key_is_not_accepted_as_public(alice: MailKey) -> None:
    with pytest.raises(MalformedError):
        PublicKey.from_bytes(alice.to_bytes()[:-5])


# -- messages ------------------------------------------------------------------


def test_round_trip_to_each_recipient_and_the_sender(alice: MailKey, bob: MailKey) -> None:
    carol = MailKey.generate("carol@example.org")
    armored = encrypt_and_sign(
        b"Chat-Version: 1.0\r\n\r\nhi", [bob.public_key, carol.public_key], alice
    )
    assert armored.startswith("-----BEGIN PGP MESSAGE-----")
    for reader in (alice, bob, carol):
        decrypted = decrypt(armored, reader)
        assert decrypted.data == b"Chat-Version: 1.0\r\n\r\nhi"
        assert decrypted.issuer_fingerprints == (alice.fingerprint,)
        assert verify(decrypted, [bob.public_key, alice.public_key]) == alice.fingerprint


def test_the_message_has_delta_chats_shape(alice: MailKey, bob: MailKey) -> None:
    message = parsed(encrypt_and_sign(b"x", [bob.public_key, bob.public_key], alice))
    pkesks = message.public_key_encrypted_session_key_packets()
    assert [(p.version, p.recipient_is_anonymous) for p in pkesks] == [(6, True), (6, True)]
    data = message.encrypted_data_packet()
    assert (data.kind, data.symmetric_algorithm, data.aead_algorithm) == (
        "seipd-v2",
        "aes128",
        "ocb",
    )
    assert data.chunk_size == 7  # 8 KiB chunks, as Delta Chat writes
    assert decrypt(encrypt_and_sign(b"x", [bob.public_key], alice), bob)._message.is_compressed


def test_seipd_v1_when_a_recipient_lacks_the_v2_feature(alice: MailKey) -> None:
    old = old_style_secret_key("old@example.org")
    old_public = PublicKey(old.to_public_key())
    assert not old_public.supports_seipd_v2
    armored = encrypt_and_sign(b"for everyone", [old_public], alice)
    message = parsed(armored)
    assert message.encrypted_data_packet().kind == "seipd-v1"
    assert [p.version for p in message.public_key_encrypted_session_key_packets()] == [3, 3]
    assert decrypt(armored, MailKey(old)).data == b"for everyone"
    assert decrypt(armored, alice).data == b"for everyone"


def test_uncompressed_for_secure_join(alice: MailKey, bob: MailKey) -> None:
    decrypted = decrypt(
        encrypt_and_sign(b"vc-request", [bob.public_key], alice, compress=False), bob
    )
    assert decrypted.data == b"vc-request"
    assert not decrypted._message.is_compressed


def test_a_stranger_cannot_decrypt(alice: MailKey, bob: MailKey) -> None:
    armored = encrypt_and_sign(b"secret", [bob.public_key], alice)
    with pytest.raises(NotEncryptedToUsError):
        decrypt(armored, MailKey.generate("eve@example.org"))


def test_tampering_is_detected(alice: MailKey, bob: MailKey) -> None:
    message = parsed(encrypt_and_sign(b"pay 10 EUR", [bob.public_key], alice))
    raw = bytearray(message.to_bytes())
    raw[-20] ^= 0x01
    with pytest.raises(MalformedError):
        decrypt(armor(bytes(raw)), bob)


@pytest.mark.parametrize(
    "armored",
    ["", "hello", "-----BEGIN PGP MESSAGE-----\n\nAAAA\n-----END PGP MESSAGE-----\n"],
)
def test_garbage_is_malformed(armored: str, bob: MailKey) -> None:
    with pytest.raises(MalformedError):
        decrypt(armored, bob)


def test_a_signed_but_unencrypted_message_is_malformed(alice: MailKey) -> None:
    signed = sign_message(b"hello", SignedSecretKey.from_bytes(alice.to_bytes()))
    with pytest.raises(MalformedError, match="not encrypted"):
        decrypt(signed, alice)


def test_every_error_is_a_mail_crypto_error() -> None:
    for error in (NotEncryptedToUsError, BadSignatureError, MalformedError):
        assert issubclass(error, MailCryptoError)


# -- signatures ----------------------------------------------------------------


def test_an_unknown_signer_is_no_signer(alice: MailKey, bob: MailKey) -> None:
    decrypted = decrypt(encrypt_and_sign(b"x", [bob.public_key], alice), bob)
    assert verify(decrypted, [bob.public_key]) is None
    assert verify(decrypted, []) is None


def test_an_unsigned_message_has_no_signer(alice: MailKey, bob: MailKey) -> None:
    builder = MessageBuilder.from_bytes("", b"anonymous").seipd_v2("aes128", "ocb")
    builder = builder.encrypt_to_key_anonymous(bob.public_key._encryption_subkey)
    decrypted = decrypt(builder.to_armored_string(), bob)
    assert decrypted.issuer_fingerprints == ()
    assert verify(decrypted, [alice.public_key]) is None


def test_a_signing_subkeys_signature_counts_as_unsigned(bob: MailKey) -> None:
    """Delta Chat drops such mail; rpgp's own ``verify`` would accept it."""
    mallory = old_style_secret_key("mallory@example.org", signing_subkey=True)
    mallory_public = PublicKey(mallory.to_public_key())
    builder = MessageBuilder.from_bytes("", b"from a subkey").seipd_v2("aes128", "ocb")
    builder = builder.encrypt_to_key_anonymous(bob.public_key._encryption_subkey)
    builder = builder.sign(mallory.secret_subkeys[1], None, "sha256")
    decrypted = decrypt(builder.to_armored_string(), bob)
    assert decrypted.issuer_fingerprints != (mallory_public.fingerprint,)
    decrypted._message.verify(mallory.to_public_key())  # rpgp accepts it ...
    assert verify(decrypted, [mallory_public]) is None  # ... we do not


def test_a_signature_that_does_not_verify_is_a_bad_signature(alice: MailKey) -> None:
    signed = Message.from_armor(sign_message(b"hello world", alice._secret))[0]
    forged = Message.from_bytes(signed.to_bytes().replace(b"hello world", b"jello world"))
    decrypted = Decrypted(forged.as_data_vec(), (alice.fingerprint,), forged)
    with pytest.raises(BadSignatureError):
        verify(decrypted, [alice.public_key])


# -- password messages (Secure-Join) -------------------------------------------


def test_password_round_trip(alice: MailKey) -> None:
    armored = encrypt_with_password(b"vc-request-with-auth", PASSWORD, signer=alice)
    decrypted = decrypt_with_password(armored, PASSWORD)
    assert decrypted.data == b"vc-request-with-auth"
    assert verify(decrypted, [alice.public_key]) == alice.fingerprint
    assert not decrypted._message.is_compressed


def test_rpgp_reads_our_skesk_v6() -> None:
    """The known-answer check: rPGP's own reader opens the packet we write."""
    armored = encrypt_with_password(b"hello", PASSWORD, compress=True)
    message = parsed(armored)
    [esk] = message.symmetric_key_encrypted_session_key_packets()
    assert esk.version == 6
    assert (esk.symmetric_algorithm, esk.aead_algorithm) == ("aes128", "ocb")
    assert esk.string_to_key is not None
    assert esk.string_to_key.kind == "salted"
    assert esk.string_to_key.hash_algorithm == "sha256"
    assert message.encrypted_data_packet().kind == "seipd-v2"
    assert message.decrypt_with_password(PASSWORD).as_data_vec() == b"hello"


def test_a_wrong_password_does_not_open(alice: MailKey) -> None:
    armored = encrypt_with_password(b"x", PASSWORD)
    with pytest.raises(NotEncryptedToUsError):
        decrypt_with_password(armored, PASSWORD + "x")
    with pytest.raises(NotEncryptedToUsError):
        decrypt(armored, alice)


def test_a_public_key_message_has_no_password(alice: MailKey, bob: MailKey) -> None:
    with pytest.raises(NotEncryptedToUsError):
        decrypt_with_password(encrypt_and_sign(b"x", [bob.public_key], alice), PASSWORD)


def test_costly_s2k_kinds_are_not_tried() -> None:
    """Like Delta Chat: only Salted S2K, so a sender cannot make us run an expensive KDF."""
    builder = MessageBuilder.from_bytes("", b"x").seipd_v2("aes128", "ocb")
    builder = builder.encrypt_with_password(StringToKey.iterated("sha256", 96), PASSWORD)
    with pytest.raises(NotEncryptedToUsError):
        decrypt_with_password(builder.to_armored_string(), PASSWORD)


def open_skesk_v6(packet: bytes, password: str) -> bytes:
    """RFC 9580 §5.3 written out once more, independently of the module, to open a SKESK v6.

    Accepts Salted (1) and Iterated-and-Salted (3) SHA-256 S2Ks.
    """
    assert packet[0] == 0xC3  # tag 3, OpenPGP packet format
    assert packet[1] == len(packet) - 2  # a one-octet length
    body = packet[2:]
    version, count, cipher, aead, s2k_len = body[:5]
    assert (version, cipher, aead) == (6, 7, 2)
    s2k, iv, sealed = body[5 : 5 + s2k_len], body[5 + s2k_len : 2 + count], body[2 + count :]
    kind, hash_id, salt = s2k[0], s2k[1], s2k[2:10]
    assert hash_id == 8
    unit = salt + password.encode()
    if kind == 1:
        material = unit
    else:
        assert kind == 3
        octets = (16 + (s2k[10] & 15)) << ((s2k[10] >> 4) + 6)
        material = (unit * (octets // len(unit) + 1))[: max(octets, len(unit))]
    info = bytes([0xC3, 6, 7, 2])
    kek = HKDF(hashes.SHA256(), 16, None, info).derive(hashlib.sha256(material).digest()[:16])
    return AESOCB3(kek).decrypt(iv, sealed, info)


def test_our_key_derivation_matches_rpgps_writer() -> None:
    """Open a SKESK v6 that rPGP wrote (iterated S2K) with the RFC's derivation, and ours."""
    builder = MessageBuilder.from_bytes("", b"from rpgp").seipd_v2("aes128", "ocb")
    builder = builder.encrypt_with_password(StringToKey.iterated("sha256", 96), PASSWORD)
    expected = builder.session_key()
    data = builder.to_vec()
    packet = data[: 2 + data[1]]
    session_key = open_skesk_v6(packet, PASSWORD)
    assert session_key == expected
    ours = _skesk_v6_packet(session_key, PASSWORD)
    assert open_skesk_v6(ours, PASSWORD) == session_key


def test_the_skesk_v6_layout_is_fixed_by_salt_and_iv() -> None:
    session_key, salt, iv = bytes(range(16)), b"\x01" * 8, b"\x02" * 15
    packet = _skesk_v6_packet(session_key, PASSWORD, salt=salt, iv=iv)
    assert packet == _skesk_v6_packet(session_key, PASSWORD, salt=salt, iv=iv)
    assert len(packet) == 2 + 2 + 3 + 10 + 15 + 16 + 16
    assert packet[:9].hex() == "c3" + "3e" + "06" + "1c" + "07" + "02" + "0a" + "01" + "08"
    assert packet[9:17] == salt
    assert packet[17:32] == iv
    assert open_skesk_v6(packet, PASSWORD) == session_key
    built = MessageBuilder.from_bytes("", b"known").seipd_v2("aes128", "ocb")
    built = built.set_session_key(session_key)
    message = Message.from_bytes(packet + built.to_vec())
    assert message.decrypt_with_password(PASSWORD).as_data_vec() == b"known"


def test_skesk_input_checks() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        _skesk_v6_packet(os.urandom(32), PASSWORD)
    with pytest.raises(ValueError, match="salt"):
        _skesk_v6_packet(os.urandom(16), PASSWORD, salt=b"short")
