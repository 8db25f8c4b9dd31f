"""TURN credentials for calls: coturn's shared-secret REST scheme.

The username is ``<expiry>:<device>`` (expiry in seconds since the epoch)
and the password ``base64(HMAC-SHA1(secret, username))``; coturn, holding
the same ``static-auth-secret``, recomputes it and refuses it once the
expiry has passed. The server stores nothing, and the TURN server learns
only an opaque device id.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from taube.proto import http
from taube.server.config import TurnSection
from taube.server.http.call import Call


def credentials(turn: TurnSection, name: str, now_ms: int) -> http.TurnCredentials:
    if not turn.urls:
        return http.TurnCredentials(urls=[])
    expires_s = (now_ms // 1000) + int(turn.ttl_s)
    username = f"{expires_s}:{name}"
    digest = hmac.new(turn.secret.encode(), username.encode(), hashlib.sha1).digest()
    return http.TurnCredentials(
        urls=list(turn.urls),
        username=username,
        credential=base64.b64encode(digest).decode("ascii"),
        expires_ms=expires_s * 1000,
    )


async def turn_credentials(call: Call) -> http.TurnCredentials:
    return credentials(call.srv.config.turn, call.auth.device, call.srv.clock.now_ms())
