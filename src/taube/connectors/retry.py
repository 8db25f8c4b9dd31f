"""Retrying a network: exponential backoff with jitter, reset on success."""

from __future__ import annotations

import random


class Backoff:
    """Delays of ``initial`` seconds doubling up to ``cap``, each spread by
    ±50 % so that connectors that lost the same server do not come back in
    step."""

    def __init__(self, initial: float = 0.5, cap: float = 60.0) -> None:
        self.initial = initial
        self.cap = cap
        self._next = initial

    def next(self) -> float:
        delay = self._next * (0.5 + random.random())  # noqa: S311 - jitter, not a secret
        self._next = min(self._next * 2, self.cap)
        return delay

    def reset(self) -> None:
        self._next = self.initial
