"""Identifiers: addresses, device, conversation, message and blob ids.

Every id is a ``NewType`` over ``str`` so that the type checker keeps them
apart; the ``*Field`` aliases add the wire validation msgspec applies.
Random ids carry 128 bits (blob ids 192) as unpadded URL-safe base64.
"""

from __future__ import annotations

import base64
import re
import secrets
from typing import Annotated, NewType

from msgspec import Meta

from taube.proto.errors import ErrorCode, ProtocolError

UserId = NewType("UserId", str)
DeviceId = NewType("DeviceId", str)
ConversationId = NewType("ConversationId", str)
MessageId = NewType("MessageId", str)
BlobId = NewType("BlobId", str)

# In Python (and so in msgspec, which uses ``re.search``) ``$`` also matches
# before a final newline; ``(?!\n)`` refuses that and reads the same in the
# ECMAScript regexes of the generated JSON Schema.
ADDRESS_PATTERN = (
    r"^[a-z0-9][a-z0-9._-]{0,63}@[a-z0-9](?:[a-z0-9.-]{0,251}[a-z0-9])?(?::[0-9]{1,5})?(?!\n)$"
)
RANDOM_ID_PATTERN = r"^[A-Za-z0-9_-]{22}(?!\n)$"
BLOB_ID_PATTERN = r"^[A-Za-z0-9_-]{32}(?!\n)$"

UserIdField = Annotated[UserId, Meta(pattern=ADDRESS_PATTERN, max_length=320)]
DeviceIdField = Annotated[DeviceId, Meta(pattern=RANDOM_ID_PATTERN)]
ConversationIdField = Annotated[ConversationId, Meta(pattern=RANDOM_ID_PATTERN)]
MessageIdField = Annotated[MessageId, Meta(pattern=RANDOM_ID_PATTERN)]
BlobIdField = Annotated[BlobId, Meta(pattern=BLOB_ID_PATTERN)]

_ADDRESS_RE = re.compile(ADDRESS_PATTERN)


def _random_id(nbytes: int) -> str:
    """Random url-safe base64; never starting with ``-``, so that an id given
    on a command line is not taken for an option (one draw in 64 is redone)."""
    while True:
        text = base64.urlsafe_b64encode(secrets.token_bytes(nbytes)).rstrip(b"=").decode("ascii")
        if not text.startswith("-"):
            return text


def new_device_id() -> DeviceId:
    return DeviceId(_random_id(16))


def new_conversation_id() -> ConversationId:
    return ConversationId(_random_id(16))


def new_message_id() -> MessageId:
    return MessageId(_random_id(16))


def new_blob_id() -> BlobId:
    return BlobId(_random_id(24))


def parse_address(text: str) -> UserId:
    """Normalise and validate ``name@domain`` (lower case, no phone numbers)."""
    address = text.strip().lower()
    if len(address) > 320 or not _ADDRESS_RE.match(address):
        raise ProtocolError(ErrorCode.BAD_REQUEST, "an address looks like name@example.org")
    return UserId(address)


def domain_of(user: UserId) -> str:
    return user.rpartition("@")[2]
