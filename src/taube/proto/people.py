"""Bodies of the people endpoints: invites, presence, privacy, the directory.

An invite link carries the inviter's address, a fingerprint of their
identity key and a one-time secret in its fragment, which never reaches the
server. The server sees only the invite's *id*, derived one way from the
secret (``taube.client.invites``), and keeps only its SHA-256: enough to
expire, revoke and use up an invite, not to make or complete one.
"""

from __future__ import annotations

import enum
from typing import Annotated

from msgspec import Meta

from taube.proto.base import Wire
from taube.proto.ids import UserIdField

#: an invite id: 32 bytes (HMAC-SHA-256 of the link's secret), unpadded base64url
INVITE_ID_PATTERN = r"^[A-Za-z0-9_-]{43}(?!\n)$"
InviteIdField = Annotated[str, Meta(pattern=INVITE_ID_PATTERN)]

#: at most this long between making an invite and using it
MAX_INVITE_LIFETIME_S = 30 * 24 * 3600
DEFAULT_INVITE_LIFETIME_S = 7 * 24 * 3600


class NewInvite(Wire, kw_only=True):
    id: InviteIdField
    lifetime_s: Annotated[int, Meta(ge=60, le=MAX_INVITE_LIFETIME_S)] = DEFAULT_INVITE_LIFETIME_S


class InviteRef(Wire, kw_only=True):
    """Names an invite by its id (check, redeem)."""

    id: InviteIdField


class Invite(Wire, kw_only=True):
    inviter: UserIdField
    expires_ms: int


class Visibility(enum.StrEnum):
    """Who sees a user's presence ("online", "last seen")."""

    EVERYONE = "everyone"
    CONTACTS = "contacts"  #: people with a direct chat with the user
    NOBODY = "nobody"


DirectoryName = Annotated[str, Meta(max_length=100)]


class Privacy(Wire, kw_only=True):
    """The account's privacy settings, as stored by the server.

    ``findable``: others can find the account by ``name`` in the directory
    (off by default); the server keeps the name only while this is on.
    """

    presence: Visibility = Visibility.CONTACTS
    findable: bool = False
    name: DirectoryName = ""


class Presence(Wire, kw_only=True):
    """What the asker may see of ``user``: nothing (``visible`` false), or
    whether a device is online and, if not, when one last was (to 5 minutes)."""

    user: UserIdField
    visible: bool = False
    online: bool = False
    last_seen_ms: int | None = None


class DirectoryQuery(Wire, kw_only=True):
    query: Annotated[str, Meta(min_length=3, max_length=100)]


class Person(Wire, kw_only=True):
    user: UserIdField
    name: str


class DirectoryResults(Wire, kw_only=True):
    people: list[Person]
