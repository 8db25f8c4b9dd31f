"""Errors of the SDK.

::

    ClientError
    ├── ServerError          the server refused a request (``code``: ErrorCode)
    │   └── Unavailable      the server cannot be reached or is overloaded: retry later
    ├── NotLoggedIn          the profile has no account yet
    ├── NotAMember           not a conversation of this account
    └── SendingBlocked       a verified contact's identity key changed: re-verify first
"""

from __future__ import annotations

from collections.abc import Sequence

from taube.proto.errors import ErrorCode


class ClientError(Exception):
    """The root of every error the SDK raises on its own."""


class ServerError(ClientError):
    def __init__(
        self, code: ErrorCode | str, message: str, status: int = 0, retry_after: float | None = None
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status
        self.retry_after = retry_after


class Unavailable(ServerError):
    """Network trouble or a retryable refusal; the outbox retries these itself."""


class NotLoggedIn(ClientError):
    pass


class NotAMember(ClientError):
    pass


class SendingBlocked(ClientError):
    """The identity key of a verified contact changed; sending waits for re-verification."""

    def __init__(self, users: Sequence[str]) -> None:
        super().__init__(f"identity key changed for verified contact(s): {', '.join(users)}")
        self.users = list(users)
