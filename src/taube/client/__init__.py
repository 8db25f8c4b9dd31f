"""The taube SDK: an end-to-end encrypted client for one device of one account."""

from taube.client.client import Client
from taube.client.errors import (
    ClientError,
    NotAMember,
    NotLoggedIn,
    SendingBlocked,
    ServerError,
    Unavailable,
)
from taube.client.events import (
    Event,
    KeyChanged,
    MembershipChanged,
    Message,
    MissingMessages,
    Profile,
    Received,
    Typing,
    Undecryptable,
    VerificationDone,
    VerificationEmoji,
    VerificationRequest,
)
from taube.client.search import SearchHit

__all__ = [
    "Client",
    "ClientError",
    "Event",
    "KeyChanged",
    "MembershipChanged",
    "Message",
    "MissingMessages",
    "NotAMember",
    "NotLoggedIn",
    "Profile",
    "Received",
    "SearchHit",
    "SendingBlocked",
    "ServerError",
    "Typing",
    "Unavailable",
    "Undecryptable",
    "VerificationDone",
    "VerificationEmoji",
    "VerificationRequest",
]
