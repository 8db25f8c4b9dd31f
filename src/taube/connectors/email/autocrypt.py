"""Autocrypt Level 1: the header, the per-peer state, the encryption recommendation.

https://autocrypt.org/level1.html. ``Autocrypt:`` and ``Autocrypt-Gossip:``
share one format: ``addr=...; [prefer-encrypt=mutual;] keydata=BASE64``. An
unknown attribute makes the header invalid unless its name starts with ``_``.
Delta Chat sends ``prefer-encrypt=mutual`` in its own header and none in
gossip, and puts both inside the encrypted part.

Times are integer milliseconds since the epoch. A peer state is immutable:
``update_peer`` and ``update_peer_gossip`` return the next one.
"""

from __future__ import annotations

import base64
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum

from taube.connectors.email.openpgp import MailCryptoError, MalformedError, PublicKey

__all__ = [
    "AutocryptHeader",
    "AutocryptHeaderError",
    "EncryptionAdvice",
    "PeerState",
    "PreferEncrypt",
    "Recommendation",
    "addr_matches",
    "effective_date",
    "parse_gossip",
    "recommend",
    "select_autocrypt_header",
    "update_peer",
    "update_peer_gossip",
]

#: the spec's limit for a whole header, prefix and folding included
MAX_HEADER_BYTES = 10 * 1024
#: a key last sent this long before the peer's latest mail only "discourages"
STALE_AFTER_MS = 35 * 24 * 3600 * 1000
#: keydata is cut with spaces so the header folds there: "keydata=" + 68, then 76 a line
_FIRST_CHUNK, _CHUNK = 68, 76


class AutocryptHeaderError(MailCryptoError, ValueError):
    """An ``Autocrypt`` / ``Autocrypt-Gossip`` header value is invalid."""


class PreferEncrypt(StrEnum):
    MUTUAL = "mutual"
    NOPREFERENCE = "nopreference"


def addr_matches(a: str, b: str) -> bool:
    """Addresses compare case-insensitively (as Delta Chat does)."""
    return a.strip().casefold() == b.strip().casefold()


@dataclass(frozen=True)
class AutocryptHeader:
    """One parsed (or to-be-sent) ``Autocrypt`` or ``Autocrypt-Gossip`` header."""

    addr: str
    key: PublicKey
    prefer_encrypt: PreferEncrypt = PreferEncrypt.NOPREFERENCE

    def to_value(self) -> str:
        """The header value, with spaces in ``keydata`` where a mail writer may fold.

        Lines then stay within 78 columns; gossip headers should leave
        ``prefer_encrypt`` at ``NOPREFERENCE`` (the spec says not to send it).
        """
        keydata = base64.b64encode(self.key.to_bytes()).decode("ascii")
        rest = keydata[_FIRST_CHUNK:]
        chunks = [keydata[:_FIRST_CHUNK]]
        chunks += [rest[i : i + _CHUNK] for i in range(0, len(rest), _CHUNK)]
        prefer = " prefer-encrypt=mutual;" if self.prefer_encrypt is PreferEncrypt.MUTUAL else ""
        return f"addr={self.addr.lower()};{prefer} keydata={' '.join(chunks)}"

    @classmethod
    def parse(cls, value: str) -> AutocryptHeader:
        """Parse a header value; raises ``AutocryptHeaderError`` when it is invalid."""
        if len(value.encode("utf-8", "surrogateescape")) > MAX_HEADER_BYTES:
            raise AutocryptHeaderError("longer than 10 KiB")
        attributes: dict[str, str] = {}
        for part in value.split(";"):
            if not part.strip():
                continue
            name, sep, attribute_value = part.partition("=")
            name = name.strip()
            if not sep or not name:
                raise AutocryptHeaderError(f"not an attribute: {part.strip()[:40]!r}")
            if name in attributes:
                raise AutocryptHeaderError(f"attribute {name!r} given twice")
            attributes[name] = attribute_value.strip()
        critical = set(attributes) - {"addr", "prefer-encrypt", "keydata"}
        unknown = sorted(n for n in critical if not n.startswith("_"))
        if unknown:
            raise AutocryptHeaderError(f"unknown critical attribute {unknown[0][:40]!r}")
        addr = attributes.get("addr", "")
        if "@" not in addr or any(c.isspace() for c in addr):
            raise AutocryptHeaderError("no addr")
        if "keydata" not in attributes:
            raise AutocryptHeaderError("no keydata")
        try:
            raw = base64.b64decode("".join(attributes["keydata"].split()), validate=True)
            key = PublicKey.from_bytes(raw)
        except (ValueError, MalformedError) as e:  # binascii.Error, or non-ASCII
            raise AutocryptHeaderError("keydata is not a usable OpenPGP key") from e
        prefer = attributes.get("prefer-encrypt")
        prefer_encrypt = (
            PreferEncrypt.MUTUAL if prefer == PreferEncrypt.MUTUAL else PreferEncrypt.NOPREFERENCE
        )
        return cls(addr=addr, key=key, prefer_encrypt=prefer_encrypt)


def select_autocrypt_header(values: Iterable[str], from_addr: str) -> AutocryptHeader | None:
    """The one valid ``Autocrypt`` header for ``from_addr`` among a message's, or None.

    Invalid headers and headers for another address are skipped; more than one
    valid header is an error by the spec, and then all are discarded.
    """
    valid: list[AutocryptHeader] = []
    for value in values:
        try:
            header = AutocryptHeader.parse(value)
        except AutocryptHeaderError:
            continue
        if addr_matches(header.addr, from_addr):
            valid.append(header)
    return valid[0] if len(valid) == 1 else None


def parse_gossip(values: Iterable[str], recipients: Collection[str]) -> dict[str, PublicKey]:
    """Gossiped keys by lower-cased address, only for the message's own recipients.

    Invalid headers are skipped one by one; the caller must only pass the
    gossip of an encrypted *and* signed message (Delta Chat's rule).
    """
    wanted = {addr.strip().casefold() for addr in recipients}
    keys: dict[str, PublicKey] = {}
    for value in values:
        try:
            header = AutocryptHeader.parse(value)
        except AutocryptHeaderError:
            continue
        addr = header.addr.strip().casefold()
        if addr in wanted:
            keys[addr] = header.key
    return keys


@dataclass(frozen=True)
class PeerState:
    """What we know about one correspondent's Autocrypt key (spec: ``peers[addr]``)."""

    addr: str
    last_seen: int = 0
    autocrypt_timestamp: int | None = None
    public_key: PublicKey | None = None
    prefer_encrypt: PreferEncrypt = PreferEncrypt.NOPREFERENCE
    gossip_timestamp: int | None = None
    gossip_key: PublicKey | None = None
    #: the key a Secure-Join handshake verified (it wins over Autocrypt's)
    verified_key: PublicKey | None = None


def effective_date(date_header_ms: int | None, received_ms: int) -> int:
    """The message's ``Date``, or the time of receipt if that is missing or in the future."""
    return received_ms if date_header_ms is None else min(date_header_ms, received_ms)


def update_peer(
    peer: PeerState | None, addr: str, date_ms: int, header: AutocryptHeader | None
) -> PeerState:
    """The peer state after a message from ``addr`` with effective date ``date_ms``.

    ``header`` is the one valid ``Autocrypt`` header for ``addr`` (see
    ``select_autocrypt_header``). The caller skips auto-replies, ``multipart/report``
    and messages with several ``From`` addresses, as the spec says.
    """
    state = peer if peer is not None else PeerState(addr=addr)
    if state.autocrypt_timestamp is not None and date_ms < state.autocrypt_timestamp:
        return state  # older than the header we hold: nothing changes
    state = replace(state, last_seen=max(state.last_seen, date_ms))
    if header is None:
        return state
    return replace(
        state,
        autocrypt_timestamp=date_ms,
        public_key=header.key,
        prefer_encrypt=header.prefer_encrypt,
    )


def update_peer_gossip(
    peer: PeerState | None, addr: str, date_ms: int, key: PublicKey
) -> PeerState:
    """The peer state after ``key`` was gossiped for ``addr`` in a message of ``date_ms``."""
    state = peer if peer is not None else PeerState(addr=addr)
    if state.gossip_timestamp is not None and state.gossip_timestamp > date_ms:
        return state
    return replace(state, gossip_timestamp=date_ms, gossip_key=key)


class Recommendation(StrEnum):
    """The spec's ``ui-recommendation``, weakest first."""

    DISABLE = "disable"
    DISCOURAGE = "discourage"
    AVAILABLE = "available"
    ENCRYPT = "encrypt"


@dataclass(frozen=True)
class EncryptionAdvice:
    recommendation: Recommendation
    #: the key to encrypt to, per recipient address as given
    target_keys: Mapping[str, PublicKey] = field(default_factory=dict)

    @property
    def can_encrypt(self) -> bool:
        """Every recipient has a key. Delta Chat then always encrypts, and so does taube."""
        return self.recommendation is not Recommendation.DISABLE


def recommend(
    peers: Mapping[str, PeerState | None],
    *,
    own_prefer: PreferEncrypt = PreferEncrypt.MUTUAL,
    reply_to_encrypted: bool = False,
) -> EncryptionAdvice:
    """The Autocrypt recommendation for a message to ``peers`` (address → state or None)."""
    targets: dict[str, PublicKey] = {}
    per_peer: list[Recommendation] = []
    for addr, peer in peers.items():
        recommendation, key = _recommend_one(peer, own_prefer, reply_to_encrypted)
        per_peer.append(recommendation)
        if key is not None:
            targets[addr] = key
    if Recommendation.DISABLE in per_peer:
        return EncryptionAdvice(Recommendation.DISABLE)
    if all(r is Recommendation.ENCRYPT for r in per_peer):
        return EncryptionAdvice(Recommendation.ENCRYPT, targets)
    if Recommendation.DISCOURAGE in per_peer:
        return EncryptionAdvice(Recommendation.DISCOURAGE, targets)
    return EncryptionAdvice(Recommendation.AVAILABLE, targets)


def _recommend_one(
    peer: PeerState | None, own_prefer: PreferEncrypt, reply_to_encrypted: bool
) -> tuple[Recommendation, PublicKey | None]:
    if peer is not None and peer.verified_key is not None:
        return Recommendation.ENCRYPT, peer.verified_key
    if peer is None or (peer.public_key is None and peer.gossip_key is None):
        return Recommendation.DISABLE, None
    if peer.public_key is None:
        key, preliminary = peer.gossip_key, Recommendation.DISCOURAGE
    else:
        key = peer.public_key
        stamp = peer.autocrypt_timestamp or 0
        stale = peer.last_seen - stamp > STALE_AFTER_MS
        preliminary = Recommendation.DISCOURAGE if stale else Recommendation.AVAILABLE
    if reply_to_encrypted:
        return Recommendation.ENCRYPT, key
    mutual = peer.prefer_encrypt is PreferEncrypt.MUTUAL and own_prefer is PreferEncrypt.MUTUAL
    if preliminary is Recommendation.AVAILABLE and mutual:
        return Recommendation.ENCRYPT, key
    return preliminary, key
