"""PGP/MIME (RFC 3156) with header protection (RFC 9788), as Delta Chat 2.65 writes it.

Sending is two steps around the encryption (``openpgp.encrypt_and_sign``)::

    protected = protect_headers(inner, outer_date=random_outer_date(now))
    armored = encrypt_and_sign(protected.payload, recipients, key)
    mail = wrap_encrypted(armored, protected.outer_headers)

What stays outside, from Delta Chat core's ``mimefactory.rs``: ``From`` (the
bare address), a ``Date`` up to six days in the past, ``Message-ID``,
``MIME-Version``, and — copied from the inner message — ``Chat-Version`` and
``Chat-Is-Post-Message`` as they are, ``Subject: [...]`` and
``To: "hidden-recipients": ;``. The inner message carries everything (the
real From with display name, Autocrypt, Autocrypt-Gossip, Chat-Group-*,
In-Reply-To, References, ...) plus an ``HP-Outer:`` copy of each outer
header, and ``protected-headers="v1"; hp="cipher"`` on its Content-Type,
which tells Delta Chat to ignore the outer headers altogether.
"""

from __future__ import annotations

import copy
import email.policy
import email.utils
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage, Message
from email.parser import BytesParser

__all__ = [
    "ProtectedMessage",
    "has_header_protection",
    "hp_outer_headers",
    "parse_inner",
    "protect_headers",
    "random_outer_date",
    "unwrap_encrypted",
    "wrap_encrypted",
]

#: CRLF line ends and 78-column folding, as mail goes over SMTP
POLICY = email.policy.SMTP
#: Delta Chat's outer Date lies up to this far in the past (older trips a mail filter)
OUTER_DATE_SPREAD = timedelta(days=6)
HIDDEN_RECIPIENTS = '"hidden-recipients": ;'
#: inner headers shown outside unchanged (Delta Chat's list)
_COPIED_OUTSIDE = {"chat-version", "chat-is-post-message"}
#: RFC 9787 structural headers never get an HP-Outer copy
_STRUCTURAL = {"mime-version", "content-type", "content-transfer-encoding", "content-disposition"}


@dataclass(frozen=True)
class ProtectedMessage:
    """The inner message to encrypt and the headers that go on the outer one."""

    payload: bytes
    outer_headers: tuple[tuple[str, str], ...]


def random_outer_date(now: datetime) -> datetime:
    """A Date for the outer message: ``now`` minus up to six days, at whole seconds, UTC."""
    offset = secrets.randbelow(int(OUTER_DATE_SPREAD.total_seconds()))
    return (now.astimezone(UTC) - timedelta(seconds=offset)).replace(microsecond=0)


def protect_headers(inner: EmailMessage, *, outer_date: datetime) -> ProtectedMessage:
    """Split ``inner`` (a complete message: From, Message-ID, To, ...) for RFC 9788.

    ``inner`` is not changed: the payload is a copy with ``HP-Outer`` headers
    and the ``hp="cipher"`` Content-Type parameter added.
    """
    from_header = inner.get("From")
    message_id = inner.get("Message-ID")
    if from_header is None or message_id is None:
        raise ValueError("the inner message needs From and Message-ID")
    addresses = email.utils.getaddresses([str(from_header)])
    if len(addresses) != 1 or "@" not in addresses[0][1]:
        raise ValueError("the inner message needs exactly one From address")
    outer: list[tuple[str, str]] = [
        ("From", addresses[0][1]),
        ("Date", email.utils.format_datetime(outer_date.astimezone(UTC))),
        ("Message-ID", str(message_id)),
    ]
    for name, value in inner.items():
        lowered = name.lower()
        if lowered in _STRUCTURAL:
            continue
        if lowered in _COPIED_OUTSIDE:
            outer.append((name, str(value)))
        elif lowered == "subject":
            outer.append((name, "[...]"))
        elif lowered == "to":
            outer.append((name, HIDDEN_RECIPIENTS))
    payload = copy.deepcopy(inner)
    for name, value in outer:
        payload["HP-Outer"] = f"{name}: {value}"
    payload.set_param("protected-headers", "v1")
    payload.set_param("hp", "cipher")
    return ProtectedMessage(payload=payload.as_bytes(policy=POLICY), outer_headers=tuple(outer))


def wrap_encrypted(armored: str, outer_headers: Sequence[tuple[str, str]]) -> EmailMessage:
    """The RFC 3156 ``multipart/encrypted`` mail around an armored OpenPGP message."""
    outer = EmailMessage(policy=POLICY)
    for name, value in outer_headers:
        outer[name] = value
    outer["MIME-Version"] = "1.0"
    outer["Content-Type"] = 'multipart/encrypted; protocol="application/pgp-encrypted"'
    version = EmailMessage(policy=POLICY)
    version["Content-Type"] = "application/pgp-encrypted"
    version.set_payload("Version: 1\r\n")
    data = EmailMessage(policy=POLICY)
    data["Content-Type"] = "application/octet-stream"
    data.set_payload(armored)
    outer.attach(version)
    outer.attach(data)
    return outer


def unwrap_encrypted(msg: Message) -> str | None:
    """The armored OpenPGP message of a PGP/MIME mail, or None if it is not one.

    Also accepts the structure some Microsoft servers turn it into: a
    ``multipart/mixed`` of an empty text part, then the two PGP/MIME parts.
    """
    if not msg.is_multipart():
        return None
    parts = msg.get_payload()
    if not isinstance(parts, list):
        return None
    if msg.get_content_type() == "multipart/encrypted" and len(parts) == 2:
        version, data = parts
    elif msg.get_content_type() == "multipart/mixed" and len(parts) == 3:
        _empty, version, data = parts
    else:
        return None
    if not isinstance(version, Message) or not isinstance(data, Message):
        return None
    if version.get_content_type() != "application/pgp-encrypted":
        return None
    if data.get_content_type() != "application/octet-stream":
        return None
    body = data.get_payload(decode=True)
    if not isinstance(body, bytes):
        return None
    try:
        return body.decode("ascii")
    except UnicodeDecodeError:
        return None


def parse_inner(payload: bytes) -> EmailMessage:
    """The decrypted inner message."""
    return BytesParser(policy=email.policy.default).parsebytes(payload)


def has_header_protection(inner: Message) -> bool:
    """Whether the inner message declares RFC 9788 protection (then ignore outer headers)."""
    return inner.get_param("hp") is not None


def hp_outer_headers(inner: Message) -> list[tuple[str, str]]:
    """The ``HP-Outer`` copies: the headers the sender put outside, as (name, value)."""
    found: list[tuple[str, str]] = []
    for value in inner.get_all("HP-Outer", []):
        name, sep, rest = str(value).partition(":")
        if sep and name.strip():
            found.append((name.strip(), rest.strip()))
    return found
