"""HTTP to the server: one method, so the SDK can be tested without sockets."""

from __future__ import annotations

from typing import IO, Any, Protocol, TypeVar

import aiohttp
import msgspec

from taube.client.errors import ServerError, Unavailable
from taube.proto.codec import encode
from taube.proto.errors import RETRYABLE, ErrorCode
from taube.proto.http import ErrorBody

T = TypeVar("T")

_error = msgspec.json.Decoder(ErrorBody)


class Transport(Protocol):
    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        raw: bytes | IO[bytes] | None = None,
        token: str = "",
    ) -> tuple[int, bytes]: ...

    async def close(self) -> None: ...


class AiohttpTransport:
    """The real transport: aiohttp against ``base_url`` (``http://host:port``)."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        raw: bytes | IO[bytes] | None = None,
        token: str = "",
    ) -> tuple[int, bytes]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        data = raw if raw is not None else (encode(body) if body is not None else None)
        try:
            async with self.session.request(
                method, self.base_url + path, data=data, headers=headers
            ) as response:
                return response.status, await response.read()
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise Unavailable(ErrorCode.UNAVAILABLE, f"cannot reach the server: {exc}") from exc

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def check(status: int, content: bytes) -> bytes:
    """Raise the server's error, if it answered with one."""
    if status < 400:
        return content
    try:
        error = _error.decode(content)
    except msgspec.MsgspecError:
        raise Unavailable(ErrorCode.UNAVAILABLE, f"HTTP {status}", status) from None
    kind = Unavailable if error.error in RETRYABLE else ServerError
    raise kind(error.error, error.message, status, error.retry_after)


class Api:
    """Typed calls: ``await api.call("POST", "/keys/claim", body, ClaimResponse)``."""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport
        self.token = ""

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        response: type[T] | None = None,
        *,
        raw: bytes | IO[bytes] | None = None,
    ) -> T | None:
        status, content = await self.transport.request(
            method, "/api/v1" + path, body=body, raw=raw, token=self.token
        )
        content = check(status, content)
        if response is None:
            return None
        if response is bytes:
            return content  # type: ignore[return-value]
        return msgspec.json.decode(content, type=response)

    async def get(self, path: str, response: type[T]) -> T:
        result = await self.call("GET", path, None, response)
        assert result is not None
        return result

    async def post(self, path: str, body: Any, response: type[T]) -> T:
        result = await self.call("POST", path, body, response)
        assert result is not None
        return result
