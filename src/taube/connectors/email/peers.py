"""The Autocrypt state of each correspondent, kept in the connector's state,
with the key a Secure-Join handshake verified (``verified``: its fingerprint)."""

from __future__ import annotations

import base64
from typing import Any

import msgspec

from taube.connectors.email.autocrypt import PeerState, PreferEncrypt
from taube.connectors.email.openpgp import MalformedError, PublicKey
from taube.connectors.state import ConnectorState

NETWORK = "email"


class Peers:
    def __init__(self, state: ConnectorState) -> None:
        self._state = state

    def get(self, address: str) -> PeerState | None:
        data = self._state.peer(NETWORK, address)
        return None if data is None else _decode(data)

    def put(self, peer: PeerState) -> None:
        self._state.put_peer(NETWORK, peer.addr, _encode(peer))

    def keys_of(self, address: str) -> list[PublicKey]:
        peer = self.get(address)
        if peer is None:
            return []
        return [k for k in (peer.verified_key, peer.public_key, peer.gossip_key) if k is not None]

    def verified(self, address: str) -> PublicKey | None:
        """The key a Secure-Join handshake with ``address`` verified, if any."""
        peer = self.get(address)
        return None if peer is None else peer.verified_key


def _key(value: Any) -> PublicKey | None:
    if not isinstance(value, str):
        return None
    try:
        return PublicKey.from_bytes(base64.b64decode(value))
    except (MalformedError, ValueError):
        return None


def _encode(peer: PeerState) -> bytes:
    return msgspec.json.encode(
        {
            "addr": peer.addr,
            "last_seen": peer.last_seen,
            "autocrypt_timestamp": peer.autocrypt_timestamp,
            "public_key": _b64(peer.public_key),
            "prefer_encrypt": peer.prefer_encrypt.value,
            "gossip_timestamp": peer.gossip_timestamp,
            "gossip_key": _b64(peer.gossip_key),
            "verified": None if peer.verified_key is None else peer.verified_key.fingerprint,
            "verified_key": _b64(peer.verified_key),
        }
    )


def _b64(key: PublicKey | None) -> str | None:
    return None if key is None else base64.b64encode(key.to_bytes()).decode("ascii")


def _decode(data: bytes) -> PeerState:
    raw = msgspec.json.decode(data)
    return PeerState(
        addr=str(raw["addr"]),
        last_seen=int(raw.get("last_seen") or 0),
        autocrypt_timestamp=raw.get("autocrypt_timestamp"),
        public_key=_key(raw.get("public_key")),
        prefer_encrypt=PreferEncrypt(raw.get("prefer_encrypt", PreferEncrypt.NOPREFERENCE.value)),
        gossip_timestamp=raw.get("gossip_timestamp"),
        gossip_key=_key(raw.get("gossip_key")),
        verified_key=_verified(raw),
    )


def _verified(raw: dict[str, Any]) -> PublicKey | None:
    """The verified key, if it still has the fingerprint stored beside it."""
    key = _key(raw.get("verified_key"))
    if key is None or key.fingerprint != raw.get("verified"):
        return None
    return key
