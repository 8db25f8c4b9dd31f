"""What a handler gets: the decoded body, the caller, the path parameters."""

from __future__ import annotations

import dataclasses
from typing import Any

from aiohttp import web

from taube.proto.errors import ErrorCode, ProtocolError
from taube.server.context import Server
from taube.server.proxies import client_ip
from taube.store.accounts import DeviceAuth


@dataclasses.dataclass
class Call:
    srv: Server
    request: web.Request
    body: Any
    auth_: DeviceAuth | None

    @property
    def auth(self) -> DeviceAuth:
        if self.auth_ is None:  # pragma: no cover - routes declare auth
            raise ProtocolError(ErrorCode.UNAUTHORIZED, "authentication required")
        return self.auth_

    def param(self, name: str) -> str:
        return self.request.match_info[name]

    @property
    def ip(self) -> str:
        """The client's address (from ``X-Forwarded-For`` behind a trusted proxy)."""
        return client_ip(
            self.request.remote,
            self.request.headers.get("X-Forwarded-For"),
            self.srv.trusted_proxies,
        )
