"""Sealing a conversation's title and avatar from the server.

Title and avatar are signed state events (so every member can check who set
them), but their content is ``sealed``: AES-256-GCM under the conversation's
*state key*, with the key's id in front. An admin makes the state key and
sends it to the members inside an end-to-end encrypted message (type
``statekey``); whoever adds a member sends it again, so newcomers can read
the current title. The server sees neither.

Sealed form: ``key id (8 bytes) || nonce (12) || ciphertext``; the associated
data binds it to the conversation and the field (``title``/``avatar``).
"""

from __future__ import annotations

import os
import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

TYPE = "statekey"
KEY_ID_BYTES = 8


def new_key() -> tuple[str, bytes]:
    return secrets.token_hex(KEY_ID_BYTES), secrets.token_bytes(32)


def seal(key_id: str, key: bytes, conversation: str, field: str, text: bytes) -> bytes:
    nonce = os.urandom(12)
    aad = f"taube.state.sealed.v1|{conversation}|{field}".encode()
    return bytes.fromhex(key_id) + nonce + AESGCM(key).encrypt(nonce, text, aad)


def key_id_of(sealed: bytes) -> str:
    return sealed[:KEY_ID_BYTES].hex()


def unseal(key: bytes, conversation: str, field: str, sealed: bytes) -> bytes | None:
    aad = f"taube.state.sealed.v1|{conversation}|{field}".encode()
    body = sealed[KEY_ID_BYTES:]
    try:
        return AESGCM(key).decrypt(body[:12], body[12:], aad)
    except (InvalidTag, ValueError):
        return None
