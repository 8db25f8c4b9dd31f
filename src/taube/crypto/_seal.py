"""Sealing of pickled state: AES-256-GCM under a key derived from the pickle key.

vodozemac encrypts its own pickles, but the state around them (which peer a
session belongs to, the conversation of a room key, the Megolm indexes seen)
is ours. Sealing it as a whole keeps that metadata private *and* makes it
tamper-evident: someone who can write the client's files must not be able to
delete seen indexes and so re-enable replays. Each kind of state uses its own
``purpose`` label, which is both the HKDF info and the associated data, so a
sealed account can never be loaded as a group store.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from taube.crypto.errors import DecryptionFailed
from taube.proto.errors import ProtocolError
from taube.proto.signing import b64decode, b64encode

PICKLE_KEY_BYTES = 32


def check_pickle_key(key: bytes) -> None:
    """Pickle keys are exactly 32 bytes (vodozemac's rule, kept for ours)."""
    if len(key) != PICKLE_KEY_BYTES:
        raise ValueError("a pickle key is exactly 32 bytes")


def _aead(key: bytes, purpose: bytes) -> AESGCM:
    check_pickle_key(key)
    derived = HKDF(algorithm=SHA256(), length=32, salt=None, info=purpose).derive(key)
    return AESGCM(derived)


def seal(key: bytes, purpose: bytes, data: bytes) -> str:
    nonce = os.urandom(12)
    return b64encode(nonce + _aead(key, purpose).encrypt(nonce, data, purpose))


def unseal(key: bytes, purpose: bytes, sealed: str) -> bytes:
    try:
        raw = b64decode(sealed)
    except ProtocolError as exc:
        raise DecryptionFailed("the pickle is damaged") from exc
    if len(raw) < 12 + 16:
        raise DecryptionFailed("the pickle is damaged")
    try:
        return _aead(key, purpose).decrypt(raw[:12], raw[12:], purpose)
    except InvalidTag as exc:
        raise DecryptionFailed("wrong pickle key, or the pickle was changed") from exc
