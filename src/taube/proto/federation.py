"""The server-to-server (federation) API: its bodies, endpoints and request signatures.

Servers find each other by a document on the domain
(``https://DOMAIN/.well-known/taube/server``, ``ServerDiscovery``) and sign
every request with an Ed25519 *server key* that the sending server publishes
at ``SERVER/.well-known/taube/keys`` (``ServerKeys``). Clients never talk to
a foreign server: their own server asks on their behalf.

A signed request carries these headers::

    Taube-Origin: a.example          the sending server's domain
    Taube-Destination: b.example     the receiving server's domain
    Taube-Key: k2026a                which of the origin's keys signed it
    Taube-Time: 1765152000000        milliseconds since the epoch
    Taube-Txn: 3q2-7wEAAAB...        128 random bits, never used twice
    Taube-Signature: <base64>        Ed25519 over ``request_signing_bytes``

The signature covers the method, the path with its query, both domains, the
time, the transaction id and the SHA-256 of the body (``RequestToSign``),
canonical JSON behind the label ``taube.federation.request.v1``. The
receiver refuses a request whose time is more than ``FRESHNESS_MS`` away
from its own clock, and one whose ``(origin, txn)`` it has seen: it
remembers transaction ids durably for that window.
"""

from __future__ import annotations

import hashlib
from typing import Annotated

import msgspec
from msgspec import Meta

from taube.proto import http
from taube.proto.api import Endpoint
from taube.proto.base import Wire
from taube.proto.frames import Body, ToDeviceMessage
from taube.proto.ids import (
    BlobIdField,
    ConversationIdField,
    DeviceIdField,
    MessageIdField,
    UserIdField,
)
from taube.proto.keys import Key
from taube.proto.signing import b64encode, canonical_json
from taube.proto.state import StateEvent

#: where a domain says which server serves it, and where a server lists its keys
WELL_KNOWN_SERVER = "/.well-known/taube/server"
WELL_KNOWN_KEYS = "/.well-known/taube/keys"
#: the prefix of the signed server-to-server endpoints
FEDERATION_PREFIX = "/_federation/v1"

DOMAIN_FEDERATION_REQUEST = b"taube.federation.request.v1"

#: a signed request is accepted this long before and after its ``Taube-Time``
FRESHNESS_MS = 5 * 60 * 1000

HEADER_ORIGIN = "Taube-Origin"
HEADER_DESTINATION = "Taube-Destination"
HEADER_KEY = "Taube-Key"
HEADER_TIME = "Taube-Time"
HEADER_TXN = "Taube-Txn"
HEADER_SIGNATURE = "Taube-Signature"

Domain = Annotated[
    str,
    Meta(
        max_length=255,
        pattern=r"^[a-z0-9](?:[a-z0-9.-]{0,251}[a-z0-9])?(?::[0-9]{1,5})?(?!\n)$",
    ),
]
ServerKeyId = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+(?!\n)$")]
TxnId = Annotated[str, Meta(min_length=16, max_length=64, pattern=r"^[A-Za-z0-9_-]+(?!\n)$")]
BaseUrl = Annotated[str, Meta(max_length=2048, pattern=r"^https?://[^\s/?#]+(?:/[^\s?#]*)?(?!\n)$")]


class ServerDiscovery(Wire, kw_only=True):
    """``/.well-known/taube/server`` on a domain: the base URL of its taube server."""

    server: BaseUrl


class ServerKey(Wire, kw_only=True):
    """One Ed25519 key of a server; a retired key stays listed until it expires."""

    key_id: ServerKeyId
    public_key: Key
    valid_from_ms: int
    #: after this the key signs nothing more (``None``: the current key)
    valid_until_ms: int | None = None


class ServerKeys(Wire, kw_only=True):
    """``/.well-known/taube/keys`` on a server: its domain and its keys."""

    domain: Domain
    keys: Annotated[list[ServerKey], Meta(min_length=1, max_length=32)]


class RequestToSign(Wire, kw_only=True):
    """What a server signs for one request (never sent as such)."""

    method: str
    path: str
    origin: str
    destination: str
    ts: int
    txn: str
    body_sha256: str


class FederationError(Wire, kw_only=True):
    """What a refused server-to-server request gets (the same shape as ``ErrorBody``)."""

    error: str
    message: str
    retry_after: float | None = None


# ----------------------------------------------------------- delivery


class FederatedMessage(Wire, tag="msg", kw_only=True):
    """A message a user of the origin sent to a conversation with members here."""

    conversation: ConversationIdField
    id: MessageIdField
    sender: UserIdField
    sender_device: DeviceIdField
    ts: int
    body: Body
    blobs: Annotated[list[BlobIdField], Meta(max_length=32)] = []
    expire_ms: Annotated[int, Meta(ge=0)] | None = None


class FederatedState(Wire, tag="state", kw_only=True):
    """A state event the conversation's home server appended."""

    conversation: ConversationIdField
    event: StateEvent


class FederatedToDevice(Wire, kw_only=True):
    """To-device messages of one ``todevice.send`` for devices on the receiving server."""

    id: MessageIdField
    sender: UserIdField
    sender_device: DeviceIdField
    messages: Annotated[list[ToDeviceMessage], Meta(min_length=1, max_length=5000)]


class Transaction(Wire, kw_only=True):
    """What a server pushes to another: log entries in order, then to-device messages.

    Each entry is stored at most once however often it comes (messages by
    sender device and id, state events by depth, to-device messages by
    sender device and id), so a sender retries a transaction until it has
    an answer."""

    entries: Annotated[list[FederatedMessage | FederatedState], Meta(max_length=500)] = []
    to_device: Annotated[list[FederatedToDevice], Meta(max_length=100)] = []
    #: users of the origin whose identity key or devices changed
    keys_changed: Annotated[list[UserIdField], Meta(max_length=1000)] = []


class EntryResult(Wire, kw_only=True):
    """The outcome of one entry: stored (no ``error``), or refused for good."""

    error: str | None = None
    message: str = ""


class TransactionResult(Wire, kw_only=True):
    """One result per entry and per to-device batch, in order. A refused entry
    is not retried (it would be refused again); the sender logs it."""

    entries: list[EntryResult]
    to_device: list[EntryResult] = []


class TypingNotice(Wire, kw_only=True):
    """A user of the origin started or stopped typing (passed to online members, not stored)."""

    conversation: ConversationIdField
    user: UserIdField
    active: bool


class Empty(Wire, kw_only=True):
    """An answer without content."""


class RemoteStateEvent(Wire, kw_only=True):
    """A member of the origin appends a state event to a conversation homed here."""

    event: StateEvent


def body_digest(body: bytes) -> str:
    return b64encode(hashlib.sha256(body).digest())


def request_signing_bytes(
    method: str, path: str, origin: str, destination: str, ts: int, txn: str, body: bytes
) -> bytes:
    """The bytes a server signs for a request (see the module docstring)."""
    signed = RequestToSign(
        method=method.upper(),
        path=path,
        origin=origin,
        destination=destination,
        ts=ts,
        txn=txn,
        body_sha256=body_digest(body),
    )
    return DOMAIN_FEDERATION_REQUEST + b"\n" + canonical_json(signed)


#: the signed endpoints under ``FEDERATION_PREFIX``; ``auth`` there means a
#: server signature, never a device token
FEDERATION_ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint(
        "federation_query_keys",
        "POST",
        "/keys/query",
        "Identity keys and device certificates of the receiving server's users",
        request=http.QueryKeys,
        response=http.KeysResponse,
        errors=(400, 401, 403, 413),
    ),
    Endpoint(
        "federation_claim_keys",
        "POST",
        "/keys/claim",
        "Claim one one-time key (else the fallback key) per device of the receiving server's users",
        request=http.ClaimKeys,
        response=http.ClaimResponse,
        errors=(400, 401, 403, 413),
    ),
    Endpoint(
        "federation_send",
        "POST",
        "/send",
        "Log entries and to-device messages for the receiving server's users, in order",
        request=Transaction,
        response=TransactionResult,
        errors=(400, 401, 403, 409, 413, 429),
    ),
    Endpoint(
        "federation_typing",
        "POST",
        "/typing",
        "A user of the origin started or stopped typing in a conversation with members here",
        request=TypingNotice,
        response=Empty,
        errors=(400, 401, 403, 404),
    ),
    Endpoint(
        "federation_get_blob",
        "GET",
        "/blobs/{blob}",
        "An attachment named in a conversation the origin has a member in (raw bytes)",
        raw_response=True,
        errors=(401, 404),
    ),
    Endpoint(
        "federation_get_state",
        "GET",
        "/conversations/{conversation}/state",
        "The signed state chain of a conversation the origin has a member in",
        response=http.StateChain,
        errors=(401, 404),
    ),
    Endpoint(
        "federation_append_state",
        "POST",
        "/conversations/{conversation}/state",
        "A member of the origin appends a state event to a conversation homed here",
        request=RemoteStateEvent,
        response=http.Appended,
        errors=(400, 401, 403, 404, 409),
    ),
)


def federation_schema() -> dict[str, object]:
    """One JSON Schema document for the bodies of the server-to-server API."""
    bodies: list[type] = [ServerDiscovery, ServerKeys, FederationError, Empty]
    for endpoint in FEDERATION_ENDPOINTS:
        bodies += [t for t in (endpoint.request, endpoint.response) if t is not None]
    bodies = list(dict.fromkeys(bodies))
    _, components = msgspec.json.schema_components(bodies, ref_template="#/$defs/{name}")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "taube server-to-server bodies",
        "$defs": components,
    }
