"""Errors of the storage layer."""

from __future__ import annotations

from taube.proto.errors import ErrorCode, ProtocolError


class StoreError(Exception):
    """The root of storage failures that are not the caller's fault."""


class StoreUnavailable(StoreError, ProtocolError):
    """The database cannot take writes right now; the same request may succeed later."""

    def __init__(self, message: str = "storage unavailable, retry") -> None:
        ProtocolError.__init__(self, ErrorCode.UNAVAILABLE, message, retry_after=1.0)


class IntegrityError(StoreError):
    """A constraint refused a write (a key already taken): the job is rolled back.

    The same class on both dialects, so jobs and callers need not know which
    driver raised it.
    """
