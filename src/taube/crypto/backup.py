"""Recovery code and the encrypted server-side backup of the identity key.

A user who loses every device gets their identity back with the recovery
code shown once at sign-up (DESIGN §4); the server keeps only a blob it
cannot open.

Recovery code
    24 characters of Crockford's base32 (``0-9 A-Z`` without ``I L O U``),
    120 random bits, shown as six groups of four: ``7K2M-...``. Reading it
    back forgives case, spaces, dashes and the look-alikes ``O→0``,
    ``I/L→1``. The 15 decoded bytes, not the text, are the secret.

Backup blob (``IdentityBackup``, JSON, format version 1)
    The identity key's 32-byte seed, sealed with AES-256-GCM under a key
    derived with **argon2id** (RFC 9106; default t=3, m=64 MiB, p=4, a
    random 16-byte salt) from the code's bytes. The KDF parameters, salt,
    nonce, user and public identity key are stored in the clear beside the
    ciphertext and are all authenticated: the associated data is
    ``taube.backup.v1\\n`` + the blob's canonical JSON without
    ``ciphertext``. A server that changes the parameters, swaps blobs
    between users or substitutes another key gets a decryption failure; a
    server that inflates the parameters to exhaust the client's memory is
    refused by the limits checked before deriving.

120 random bits are out of reach of any offline search even without the
KDF; argon2id is the margin for the day someone weakens the code format.
"""

from __future__ import annotations

import os
import secrets
from typing import Annotated, Final, NewType

import msgspec
from argon2.low_level import Type, hash_secret_raw
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from msgspec import Meta

from taube.crypto.errors import BadPayload, WrongRecoveryCode
from taube.crypto.identity import IdentityKeyPair
from taube.proto.errors import ProtocolError
from taube.proto.ids import UserId, UserIdField
from taube.proto.keys import Key
from taube.proto.signing import b64decode, b64encode, canonical_json

RecoveryCode = NewType("RecoveryCode", str)

ALPHABET: Final = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
CODE_LENGTH: Final = 24
CODE_BYTES: Final = CODE_LENGTH * 5 // 8
_GROUP: Final = 4
_LOOKALIKES: Final = str.maketrans({"O": "0", "I": "1", "L": "1", " ": None, "-": None})

_DOMAIN: Final = b"taube.backup.v1"
_SALT_BYTES: Final = 16
_NONCE_BYTES: Final = 12


class KdfParams(msgspec.Struct, frozen=True, kw_only=True):
    """argon2id cost parameters (``memory_cost`` in KiB)."""

    time_cost: int = 3
    memory_cost: int = 64 * 1024
    parallelism: int = 4


#: RFC 9106's second recommended option
DEFAULT_KDF = KdfParams()
#: the most a stored blob may ask of this device (1 GiB, 10 passes)
MAX_KDF = KdfParams(time_cost=10, memory_cost=1024 * 1024, parallelism=16)


# ==================================================================== the code


def new_recovery_code() -> RecoveryCode:
    """A fresh code to show the user once (never store or log it)."""
    text = "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))
    return RecoveryCode("-".join(text[i : i + _GROUP] for i in range(0, CODE_LENGTH, _GROUP)))


def recovery_code_bytes(code: str) -> bytes:
    """The 15 secret bytes of a typed code; ``WrongRecoveryCode`` if malformed."""
    text = code.upper().translate(_LOOKALIKES)
    if len(text) != CODE_LENGTH or any(ch not in ALPHABET for ch in text):
        raise WrongRecoveryCode(f"a recovery code is {CODE_LENGTH} letters and digits")
    value = 0
    for ch in text:
        value = value << 5 | ALPHABET.index(ch)
    return value.to_bytes(CODE_BYTES, "big")


# ==================================================================== the blob

Base64 = Annotated[str, Meta(max_length=200)]


class IdentityBackup(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The encrypted identity key, as stored on the server."""

    v: int = 1
    user: UserIdField
    identity_key: Key
    kdf: str = "argon2id"
    time_cost: Annotated[int, Meta(ge=1)]
    memory_cost: Annotated[int, Meta(ge=8)]
    parallelism: Annotated[int, Meta(ge=1)]
    salt: Base64
    nonce: Base64
    ciphertext: Base64

    def to_bytes(self) -> bytes:
        return msgspec.json.encode(self)

    @classmethod
    def from_bytes(cls, data: bytes) -> IdentityBackup:
        try:
            return msgspec.json.decode(data, type=cls)
        except msgspec.DecodeError as exc:
            raise BadPayload("not an identity key backup") from exc


def code_key(code: str, salt: bytes, params: KdfParams = DEFAULT_KDF) -> bytes:
    """A 32-byte key from a code of ``new_recovery_code``'s kind (e.g. the
    key of a history archive); ``params`` within ``MAX_KDF``."""
    if (
        params.time_cost > MAX_KDF.time_cost
        or params.memory_cost > MAX_KDF.memory_cost
        or params.parallelism > MAX_KDF.parallelism
    ):
        raise BadPayload("the key derivation asks for more than this device gives")
    return _derive(recovery_code_bytes(code), salt, params)


def _derive(secret: bytes, salt: bytes, params: KdfParams) -> bytes:
    return hash_secret_raw(
        secret=secret,
        salt=salt,
        time_cost=params.time_cost,
        memory_cost=params.memory_cost,
        parallelism=params.parallelism,
        hash_len=32,
        type=Type.ID,
    )


def _associated_data(blob: IdentityBackup) -> bytes:
    return _DOMAIN + b"\n" + canonical_json(blob, without="ciphertext")


def wrap_identity_key(
    identity: IdentityKeyPair,
    code: str,
    user: UserId,
    *,
    params: KdfParams = DEFAULT_KDF,
) -> IdentityBackup:
    """Encrypt ``identity`` for the server with a key derived from ``code``."""
    secret = recovery_code_bytes(code)
    salt = os.urandom(_SALT_BYTES)
    nonce = os.urandom(_NONCE_BYTES)
    blob = IdentityBackup(
        user=user,
        identity_key=identity.public_key,
        time_cost=params.time_cost,
        memory_cost=params.memory_cost,
        parallelism=params.parallelism,
        salt=b64encode(salt),
        nonce=b64encode(nonce),
        ciphertext="",
    )
    sealed = AESGCM(_derive(secret, salt, params)).encrypt(
        nonce, identity.private_bytes(), _associated_data(blob)
    )
    return msgspec.structs.replace(blob, ciphertext=b64encode(sealed))


def unwrap_identity_key(
    blob: IdentityBackup, code: str, *, expected_user: UserId | None = None
) -> IdentityKeyPair:
    """The identity key in ``blob``; ``WrongRecoveryCode`` if ``code`` does
    not open it (or the blob was changed), ``BadPayload`` if the blob is
    malformed or asks for more than ``MAX_KDF``."""
    if blob.v != 1 or blob.kdf != "argon2id":
        raise BadPayload("unknown backup format")
    if expected_user is not None and blob.user != expected_user:
        raise BadPayload("the backup belongs to another user")
    if (
        blob.time_cost > MAX_KDF.time_cost
        or blob.memory_cost > MAX_KDF.memory_cost
        or blob.parallelism > MAX_KDF.parallelism
        or blob.memory_cost < 8 * blob.parallelism
    ):
        raise BadPayload("the backup's KDF parameters are out of range")
    try:
        salt, nonce, sealed = (
            b64decode(blob.salt),
            b64decode(blob.nonce),
            b64decode(blob.ciphertext),
        )
    except ProtocolError as exc:
        raise BadPayload("malformed backup") from exc
    if len(salt) < _SALT_BYTES or len(nonce) != _NONCE_BYTES:
        raise BadPayload("malformed backup")
    secret = recovery_code_bytes(code)
    params = KdfParams(
        time_cost=blob.time_cost, memory_cost=blob.memory_cost, parallelism=blob.parallelism
    )
    try:
        seed = AESGCM(_derive(secret, salt, params)).decrypt(nonce, sealed, _associated_data(blob))
    except InvalidTag as exc:
        raise WrongRecoveryCode("the recovery code does not open this backup") from exc
    identity = IdentityKeyPair.from_private_bytes(seed)
    if identity.public_key != blob.identity_key:
        raise BadPayload("the backup holds another key than it names")
    return identity
