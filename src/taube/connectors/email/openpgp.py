"""OpenPGP for the e-mail connector, in Delta Chat's shape: one adapter over rpgp-py.

rpgp-py (import name ``openpgp``) binds rPGP, the library Delta Chat core uses.
Nothing outside this module touches it, so it can be swapped. What Delta Chat
2.x expects (``docs``: interop notes, "OpenPGP for Delta Chat"):

- keys: v4, Ed25519 (legacy) primary that certifies and signs, a Curve25519
  encryption subkey, the SEIPD v2 feature, user id ``<addr>``;
- mail: an anonymous-recipient PKESK per recipient and one for the sender,
  SEIPD v2 AES-128 OCB (v1 AES-128 as soon as one recipient's key lacks the
  v2 feature), ZLIB compression inside, signed by the **primary** key — a
  signing subkey's signature counts as no signature at all;
- Secure-Join: SKESK v6 with a *Salted* S2K (SHA-256) + SEIPD v2 AES-128 OCB.
  rPGP writes only iterated and Argon2 S2Ks, which Delta Chat refuses, so the
  SKESK packet is written here (RFC 9580 §5.3) in front of the data that
  rPGP encrypts with a session key we chose.

Errors::

    MailCryptoError
    ├── NotEncryptedToUsError   no session key opens with our key / password
    ├── BadSignatureError       a signature by a candidate key does not verify
    └── MalformedError          not (valid) OpenPGP, or the integrity check failed
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import NewType

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESOCB3
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from openpgp.armor import BlockType
from openpgp.armor import write as armor_write
from openpgp.composed import (
    DecryptedMessage,
    EncryptionCaps,
    KeyType,
    Message,
    MessageBuilder,
    SecretKeyParamsBuilder,
    SignedPublicKey,
    SignedPublicSubKey,
    SignedSecretKey,
    SubkeyParamsBuilder,
)
from openpgp.errors import Error as RpgpError

__all__ = [
    "BadSignatureError",
    "Decrypted",
    "Fingerprint",
    "MailCryptoError",
    "MailKey",
    "MalformedError",
    "NotEncryptedToUsError",
    "PublicKey",
    "decrypt",
    "decrypt_with_password",
    "encrypt_and_sign",
    "encrypt_with_password",
    "verify",
]

#: an OpenPGP v4 fingerprint as upper-case hex (40 digits), as Delta Chat prints it
Fingerprint = NewType("Fingerprint", str)

#: SEIPD v2 chunk size octet: 2^(7+6) = 8 KiB chunks, as Delta Chat writes them
_CHUNK_SIZE_OCTET = 7
#: RFC 9580 algorithm ids for the SKESK v6 we write
_AES128, _OCB, _SHA256, _S2K_SALTED = 7, 2, 8, 1
_SKESK_TAG = 3
_OCB_NONCE_LEN = 15
_SALT_LEN = 8
_SESSION_KEY_LEN = 16


class MailCryptoError(Exception):
    """Root of the errors this module raises on bad input."""


class NotEncryptedToUsError(MailCryptoError):
    """None of the message's session-key packets opens with the key or password given."""


class BadSignatureError(MailCryptoError):
    """A signature names one of the candidate keys as its issuer and does not verify."""


class MalformedError(MailCryptoError, ValueError):
    """Not an OpenPGP message or key we accept, or its integrity check failed."""


def _fingerprint(hex_digits: str) -> Fingerprint:
    return Fingerprint(hex_digits.upper())


class PublicKey:
    """A peer's OpenPGP certificate (transferable public key) we can encrypt to."""

    __slots__ = ("_encryption_subkey", "_key")

    def __init__(self, key: SignedPublicKey) -> None:
        try:
            key.verify_bindings()
        except RpgpError as e:
            raise MalformedError("the key's self-signatures do not verify") from e
        subkey = _encryption_subkey(key)
        if subkey is None:
            raise MalformedError("the key has no encryption subkey")
        self._key = key
        self._encryption_subkey = subkey

    @classmethod
    def from_bytes(cls, data: bytes) -> PublicKey:
        """Parse a binary certificate (Autocrypt ``keydata``, a vCard ``KEY``)."""
        try:
            key = SignedPublicKey.from_bytes(data)
        except RpgpError as e:
            raise MalformedError("not an OpenPGP public key") from e
        return cls(key)

    def to_bytes(self) -> bytes:
        return self._key.to_bytes()

    @property
    def fingerprint(self) -> Fingerprint:
        """The primary key's fingerprint."""
        return _fingerprint(self._key.fingerprint)

    @property
    def user_ids(self) -> tuple[str, ...]:
        return tuple(self._key.user_ids)

    @property
    def supports_seipd_v2(self) -> bool:
        """Whether a self-signature advertises the SEIPD v2 feature (as Delta Chat checks)."""
        details = self._key.details
        signatures = [*details.direct_signatures]
        for user in details.users:
            signatures.extend(user.signatures)
        return any((f := s.features()) is not None and f.seipd_v2 for s in signatures)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PublicKey) and self.to_bytes() == other.to_bytes()

    def __hash__(self) -> int:
        return hash(self.to_bytes())

    def __repr__(self) -> str:
        return f"PublicKey({self.fingerprint})"


def _encryption_subkey(key: SignedPublicKey) -> SignedPublicSubKey | None:
    """The first subkey whose algorithm encrypts and whose binding allows it."""
    for subkey in key.public_subkeys:
        if not subkey.key.algorithm.can_encrypt():
            continue
        flags = [s.key_flags() for s in subkey.signatures]
        if any(f.encrypt_communications or f.encrypt_storage for f in flags):
            return subkey
    return None


class MailKey:
    """The user's own secret key for mail. Its ``repr`` shows only the fingerprint."""

    __slots__ = ("_public", "_secret")

    def __init__(self, secret: SignedSecretKey) -> None:
        self._secret = secret
        self._public = PublicKey(secret.to_public_key())

    @classmethod
    def generate(cls, addr: str) -> MailKey:
        """A new key in Delta Chat's shape for ``addr``."""
        subkey = (
            SubkeyParamsBuilder()
            .key_type(KeyType.ecdh("curve25519"))
            .can_encrypt(EncryptionCaps.all())
            .build()
        )
        params = (
            SecretKeyParamsBuilder()
            .version(4)
            .key_type(KeyType.ed25519_legacy())
            .can_certify(True)
            .can_sign(True)
            .feature_seipd_v2(True)
            .primary_user_id(f"<{addr}>")
            .preferred_symmetric_algorithms(["aes256", "aes192", "aes128"])
            .preferred_hash_algorithms(["sha256", "sha384", "sha512", "sha224"])
            .preferred_compression_algorithms(["zlib", "zip"])
            .subkey(subkey)
        )
        return cls(params.build().generate())

    @classmethod
    def from_bytes(cls, data: bytes) -> MailKey:
        try:
            secret = SignedSecretKey.from_bytes(data)
            secret.verify_bindings()
        except RpgpError as e:
            raise MalformedError("not an OpenPGP secret key") from e
        return cls(secret)

    def to_bytes(self) -> bytes:
        """The binary transferable secret key (unprotected: store it sealed)."""
        return self._secret.to_bytes()

    @property
    def public_key(self) -> PublicKey:
        return self._public

    @property
    def fingerprint(self) -> Fingerprint:
        return self._public.fingerprint

    def __repr__(self) -> str:
        return f"MailKey({self.fingerprint})"


@dataclass(frozen=True)
class Decrypted:
    """A decrypted message: ``data`` is the (decompressed) plaintext.

    ``issuer_fingerprints`` are the signers the signatures *claim* — unverified;
    pass the message to ``verify`` to learn who really signed it.
    """

    data: bytes
    issuer_fingerprints: tuple[Fingerprint, ...]
    _message: DecryptedMessage | Message = field(repr=False, compare=False)


def encrypt_and_sign(
    inner: bytes, recipients: Sequence[PublicKey], sender: MailKey, *, compress: bool = True
) -> str:
    """Encrypt ``inner`` to ``recipients`` and the sender, signed by the sender's primary.

    Returns the armored message. ``compress=False`` for Secure-Join messages
    (Delta Chat leaves them uncompressed: no compression side channel on tokens).
    """
    keys: dict[Fingerprint, PublicKey] = {sender.fingerprint: sender.public_key}
    for key in recipients:
        keys.setdefault(key.fingerprint, key)
    builder = MessageBuilder.from_bytes("", inner)
    if all(key.supports_seipd_v2 for key in keys.values()):
        builder = builder.seipd_v2("aes128", "ocb", _CHUNK_SIZE_OCTET)
    else:
        builder = builder.seipd_v1("aes128")
    for key in keys.values():
        builder = builder.encrypt_to_key_anonymous(key._encryption_subkey)
    builder = builder.sign(sender._secret, None, "sha256")
    if compress:
        builder = builder.compression("zlib")
    return builder.to_armored_string()


def decrypt(armored: str, key: MailKey) -> Decrypted:
    """Decrypt a message encrypted to ``key`` (PKESK v3 or v6, SEIPD v1 or v2)."""
    message = _encrypted_message(armored)
    if not message.public_key_encrypted_session_key_packets():
        raise NotEncryptedToUsError("the message is not encrypted to a public key")
    return _opened(lambda: message.decrypt(None, key._secret))


def decrypt_with_password(armored: str, password: str) -> Decrypted:
    """Decrypt a password message (Secure-Join, broadcast channels).

    Only Salted S2K packets are tried, as Delta Chat does: an iterated or
    Argon2 S2K costs the receiver work an attacker chooses.
    """
    message = _encrypted_message(armored)
    esks = message.symmetric_key_encrypted_session_key_packets()
    if not any((s2k := e.string_to_key) is not None and s2k.kind == "salted" for e in esks):
        raise NotEncryptedToUsError("the message has no salted password packet")
    return _opened(lambda: message.decrypt_with_password(password))


def encrypt_with_password(
    data: bytes, password: str, *, signer: MailKey | None = None, compress: bool = False
) -> str:
    """Encrypt ``data`` for ``password`` the way Delta Chat reads Secure-Join messages.

    SKESK v6 (Salted S2K SHA-256, AES-128 OCB) + SEIPD v2 AES-128 OCB; signed
    by ``signer``'s primary key if given. Uncompressed unless asked (Delta Chat
    compresses broadcast messages but not Secure-Join ones).
    """
    session_key = os.urandom(_SESSION_KEY_LEN)
    builder = (
        MessageBuilder.from_bytes("", data)
        .seipd_v2("aes128", "ocb", _CHUNK_SIZE_OCTET)
        .set_session_key(session_key)
    )
    if signer is not None:
        builder = builder.sign(signer._secret, None, "sha256")
    if compress:
        builder = builder.compression("zlib")
    packets = _skesk_v6_packet(session_key, password) + builder.to_vec()
    out = io.StringIO()
    armor_write(packets, BlockType.Message, out)
    return out.getvalue()


def _skesk_v6_packet(
    session_key: bytes, password: str, *, salt: bytes | None = None, iv: bytes | None = None
) -> bytes:
    """A SKESK v6 packet (RFC 9580 §5.3) carrying an AES-128 session key for SEIPD v2.

    Salted S2K with SHA-256; the key-encryption key is HKDF-SHA256 of the S2K
    output with info = packet tag | version | cipher | AEAD; the session key is
    AES-128-OCB encrypted under it with that info as associated data.
    ``salt`` and ``iv`` are for known-answer tests only.
    """
    if len(session_key) != _SESSION_KEY_LEN:
        raise ValueError("an AES-128 session key is 16 bytes")
    salt = os.urandom(_SALT_LEN) if salt is None else salt
    iv = os.urandom(_OCB_NONCE_LEN) if iv is None else iv
    if len(salt) != _SALT_LEN or len(iv) != _OCB_NONCE_LEN:
        raise ValueError("the salt is 8 bytes and the OCB nonce 15")
    s2k = bytes([_S2K_SALTED, _SHA256]) + salt
    s2k_key = hashlib.sha256(salt + password.encode()).digest()[:16]
    header_octet = 0xC0 | _SKESK_TAG  # OpenPGP (new) packet format
    info = bytes([header_octet, 6, _AES128, _OCB])
    kek = HKDF(algorithm=hashes.SHA256(), length=16, salt=None, info=info).derive(s2k_key)
    encrypted_key = AESOCB3(kek).encrypt(iv, session_key, info)
    fields = bytes([_AES128, _OCB, len(s2k)]) + s2k + iv
    body = bytes([6, len(fields)]) + fields + encrypted_key
    return bytes([header_octet, len(body)]) + body  # 64 octets: a one-octet length


def verify(decrypted: Decrypted, candidates: Iterable[PublicKey]) -> Fingerprint | None:
    """The fingerprint of the candidate whose **primary** key signed the message, or None.

    None when the message is unsigned, signed by an unknown key, or signed by
    a subkey (Delta Chat drops such mail as unsigned). Raises
    ``BadSignatureError`` when a signature names a candidate's primary key as
    issuer but does not verify.
    """
    by_fingerprint = {key.fingerprint: key for key in candidates}
    by_key_id = {fp[-16:]: key for fp, key in by_fingerprint.items()}
    for index, signature in enumerate(decrypted._message.signatures()):
        issuers = [_fingerprint(fp) for fp in signature.issuer_fingerprint()]
        if issuers:
            key = next((by_fingerprint[fp] for fp in issuers if fp in by_fingerprint), None)
        else:  # an old-style signature names only the key id
            ids = [key_id.upper() for key_id in signature.issuer_key_id()]
            key = next((by_key_id[i] for i in ids if i in by_key_id), None)
        if key is None:
            continue
        try:
            decrypted._message.verify(key._key, index)
        except RpgpError as e:
            raise BadSignatureError(f"the signature by {key.fingerprint} does not verify") from e
        return key.fingerprint
    return None


def _encrypted_message(armored: str) -> Message:
    try:
        message, _headers = Message.from_armor(armored)
    except RpgpError as e:
        raise MalformedError("not an armored OpenPGP message") from e
    if message.kind != "encrypted":
        raise MalformedError("the OpenPGP message is not encrypted")
    return message


def _opened(open_message: Callable[[], DecryptedMessage]) -> Decrypted:
    try:
        message = open_message()
        data = message.as_data_vec()
        issuers = tuple(
            _fingerprint(fp) for s in message.signatures() for fp in s.issuer_fingerprint()
        )
    except RpgpError as e:
        if e.code == "CRYPTO" and "missing key" in str(e):
            raise NotEncryptedToUsError("no session key opens with this key") from e
        raise MalformedError("the message does not decrypt (corrupt or tampered)") from e
    return Decrypted(data=data, issuer_fingerprints=issuers, _message=message)
