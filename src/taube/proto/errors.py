"""Error codes of the protocol and the one exception the decoders raise.

Every error that crosses the wire is an ``ErrorCode`` (a stable string) plus a
human-readable message. Codes never reveal whether a resource the caller may
not access exists: such a resource is always ``not_found``.
"""

from __future__ import annotations

import enum


class ErrorCode(enum.StrEnum):
    BAD_REQUEST = "bad_request"
    UNKNOWN_TYPE = "unknown_type"
    FRAME_TOO_LARGE = "frame_too_large"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    QUOTA_EXCEEDED = "quota_exceeded"
    UNAUTHORIZED = "unauthorized"
    INVALID_CREDENTIALS = "invalid_credentials"
    ADDRESS_TAKEN = "address_taken"
    RATE_LIMITED = "rate_limited"
    NOT_FOUND = "not_found"
    FORBIDDEN = "forbidden"
    CONFLICT = "conflict"
    GONE = "gone"  #: used up, expired or revoked (an invite)
    BAD_SIGNATURE = "bad_signature"
    BAD_KEY = "bad_key"
    PROTOCOL_VERSION = "protocol_version"
    ORIGIN_FORBIDDEN = "origin_forbidden"
    UNAVAILABLE = "unavailable"
    INTERNAL = "internal"


#: HTTP status for each code.
HTTP_STATUS: dict[ErrorCode, int] = {
    ErrorCode.BAD_REQUEST: 400,
    ErrorCode.UNKNOWN_TYPE: 400,
    ErrorCode.FRAME_TOO_LARGE: 413,
    ErrorCode.PAYLOAD_TOO_LARGE: 413,
    ErrorCode.QUOTA_EXCEEDED: 507,
    ErrorCode.UNAUTHORIZED: 401,
    ErrorCode.INVALID_CREDENTIALS: 401,
    ErrorCode.ADDRESS_TAKEN: 409,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.CONFLICT: 409,
    ErrorCode.GONE: 410,
    ErrorCode.BAD_SIGNATURE: 400,
    ErrorCode.BAD_KEY: 400,
    ErrorCode.PROTOCOL_VERSION: 400,
    ErrorCode.ORIGIN_FORBIDDEN: 403,
    ErrorCode.UNAVAILABLE: 503,
    ErrorCode.INTERNAL: 500,
}

#: Codes after which the same request may succeed when retried unchanged.
RETRYABLE = frozenset({ErrorCode.RATE_LIMITED, ErrorCode.UNAVAILABLE, ErrorCode.INTERNAL})


class ProtocolError(Exception):
    """The root of every error in ``taube.proto``: bad input, a broken rule.

    Decoders raise nothing else on arbitrary bytes.
    """

    def __init__(self, code: ErrorCode, message: str, *, retry_after: float | None = None):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.retry_after = retry_after

    @property
    def status(self) -> int:
        return HTTP_STATUS[self.code]

    @property
    def retryable(self) -> bool:
        return self.code in RETRYABLE
