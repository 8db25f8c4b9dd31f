"""Passwords (argon2id, capped concurrency) and bearer tokens (stored hashed)."""

from __future__ import annotations

import asyncio
import hashlib
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from taube.proto.errors import ErrorCode, ProtocolError
from taube.server.config import AuthSection, LimitsSection

TOKEN_BYTES = 32


def new_token() -> str:
    """A 256-bit bearer token (URL-safe base64)."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


class Passwords:
    """argon2id on worker threads, a few at a time.

    Unknown users are verified against a dummy hash, so the answer for an
    unknown address and for a wrong password take about as long.
    """

    def __init__(self, auth: AuthSection, limits: LimitsSection) -> None:
        self.hasher = PasswordHasher(
            time_cost=auth.argon2_time_cost,
            memory_cost=auth.argon2_memory_kib,
            parallelism=auth.argon2_parallelism,
        )
        self.dummy = self.hasher.hash(secrets.token_hex(16))
        self.slots = asyncio.Semaphore(limits.argon2_concurrency)
        self.max_waiting = limits.argon2_queue
        self.waiting = 0

    async def _run(self, fn: object, *args: str) -> object:
        if self.waiting >= self.max_waiting:
            raise ProtocolError(ErrorCode.RATE_LIMITED, "server busy, retry", retry_after=1.0)
        self.waiting += 1
        try:
            async with self.slots:
                return await asyncio.to_thread(fn, *args)  # type: ignore[arg-type]
        finally:
            self.waiting -= 1

    async def hash(self, password: str) -> str:
        return str(await self._run(self.hasher.hash, password))

    async def verify(self, stored: str | None, password: str) -> bool:
        """True if ``password`` matches ``stored`` (``None``: no such user)."""
        try:
            await self._run(self.hasher.verify, stored or self.dummy, password)
        except (VerificationError, InvalidHashError):
            return False
        return stored is not None

    def needs_rehash(self, stored: str) -> bool:
        return self.hasher.check_needs_rehash(stored)
