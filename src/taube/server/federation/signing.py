"""Signed server-to-server requests: making the headers, checking them.

What is signed and the headers are described in ``taube.proto.federation``.
Checking a request, in this order (the cheap refusals first):

1. the headers are there and well-formed, the destination is this server;
2. the origin is allowed (``federation.allow`` / ``federation.deny``);
3. the time is within ``FRESHNESS_MS`` of ours;
4. the origin's server publishes the key (``Directory.key``), valid at
   that time, and the signature verifies over method, path, domains, time,
   transaction id and body hash;
5. the transaction id is new for that origin (remembered durably for the
   freshness window: a replay is refused even after a restart).
"""

from __future__ import annotations

import re
import secrets

from cryptography.exceptions import InvalidSignature
from multidict import CIMultiDictProxy

from taube.proto.errors import ErrorCode, ProtocolError
from taube.proto.federation import (
    FRESHNESS_MS,
    HEADER_DESTINATION,
    HEADER_KEY,
    HEADER_ORIGIN,
    HEADER_SIGNATURE,
    HEADER_TIME,
    HEADER_TXN,
    request_signing_bytes,
)
from taube.proto.signing import b64decode, ed25519_public_key
from taube.server.federation.discovery import Directory
from taube.server.federation.keyring import ServerKeyring

_DOMAIN = re.compile(r"^[a-z0-9](?:[a-z0-9.-]{0,251}[a-z0-9])?(?::[0-9]{1,5})?$")
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_TXN = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


def new_txn() -> str:
    return secrets.token_urlsafe(16)


def signed_headers(
    keyring: ServerKeyring,
    origin: str,
    destination: str,
    method: str,
    path: str,
    body: bytes,
    now_ms: int,
) -> dict[str, str]:
    txn = new_txn()
    key_id, signature = keyring.sign(
        request_signing_bytes(method, path, origin, destination, now_ms, txn, body)
    )
    return {
        HEADER_ORIGIN: origin,
        HEADER_DESTINATION: destination,
        HEADER_KEY: key_id,
        HEADER_TIME: str(now_ms),
        HEADER_TXN: txn,
        HEADER_SIGNATURE: signature,
    }


class SignedRequest:
    """The signature headers of an incoming request, parsed (not yet checked)."""

    def __init__(self, headers: CIMultiDictProxy[str]) -> None:
        def need(name: str, pattern: re.Pattern[str]) -> str:
            value = headers.get(name, "")
            if not pattern.match(value):
                raise ProtocolError(ErrorCode.UNAUTHORIZED, f"missing or malformed {name} header")
            return value

        self.origin = need(HEADER_ORIGIN, _DOMAIN)
        self.destination = need(HEADER_DESTINATION, _DOMAIN)
        self.key_id = need(HEADER_KEY, _TOKEN)
        time = need(HEADER_TIME, re.compile(r"^[0-9]{1,15}$"))
        self.ts = int(time)
        self.txn = need(HEADER_TXN, _TXN)
        self.signature = headers.get(HEADER_SIGNATURE, "")
        if not 86 <= len(self.signature) <= 88:
            raise ProtocolError(ErrorCode.UNAUTHORIZED, f"missing or malformed {HEADER_SIGNATURE}")

    def check_fresh(self, now_ms: int) -> None:
        if abs(now_ms - self.ts) > FRESHNESS_MS:
            raise ProtocolError(
                ErrorCode.UNAUTHORIZED, "the request's time is outside the freshness window"
            )

    async def check_signature(
        self, directory: Directory, method: str, path: str, body: bytes
    ) -> None:
        key = await directory.key(self.origin, self.key_id)
        if self.ts < key.valid_from_ms or (
            key.valid_until_ms is not None and self.ts > key.valid_until_ms
        ):
            raise ProtocolError(ErrorCode.BAD_SIGNATURE, "the key was not valid at that time")
        public = ed25519_public_key(key.public_key)
        signature = b64decode(self.signature)
        signed = request_signing_bytes(
            method, path, self.origin, self.destination, self.ts, self.txn, body
        )
        try:
            public.verify(signature, signed)
        except InvalidSignature as exc:
            raise ProtocolError(
                ErrorCode.BAD_SIGNATURE, "the request's signature is wrong"
            ) from exc
