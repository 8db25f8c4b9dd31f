"""Token buckets, keyed (per IP, per account, per connection)."""

from __future__ import annotations

import dataclasses

from taube.server.clock import Clock


@dataclasses.dataclass
class TokenBucket:
    rate: float  #: tokens per second
    burst: float
    tokens: float
    updated: float

    def take(self, now: float, cost: float = 1.0) -> float:
        """Take ``cost`` tokens; returns 0 on success, else seconds to wait."""
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= cost:
            self.tokens -= cost
            return 0.0
        return (cost - self.tokens) / self.rate


class RateLimiter:
    """Many buckets of one kind; idle full buckets are forgotten."""

    def __init__(self, clock: Clock, *, per_minute: float, burst: float | None = None) -> None:
        self.clock = clock
        self.rate = per_minute / 60.0
        self.burst = burst if burst is not None else max(per_minute, 1.0)
        self.buckets: dict[str, TokenBucket] = {}

    def take(self, key: str) -> float:
        now = self.clock.monotonic()
        bucket = self.buckets.get(key)
        if bucket is None:
            if len(self.buckets) > 100_000:
                self._forget(now)
            bucket = self.buckets[key] = TokenBucket(self.rate, self.burst, self.burst, now)
        return bucket.take(now)

    def _forget(self, now: float) -> None:
        full = [
            key
            for key, bucket in self.buckets.items()
            if bucket.tokens + (now - bucket.updated) * bucket.rate >= bucket.burst
        ]
        for key in full:
            del self.buckets[key]
