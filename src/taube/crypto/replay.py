"""The Megolm indexes a device has accepted: replay detection and gaps.

Megolm decrypts the same message again without complaint (vodozemac and
libolm alike), so a server that re-sends an old entry, or a member who
re-posts one, would make it appear twice. The receiver therefore keeps every
``(session_id, message_index)`` pair it accepted and refuses a repeat
(DESIGN §5). The set must survive restarts, so it serialises to bytes; the
client stores it with its other state (``InboundGroupStore.pickle`` carries
it too, sealed).

A session carries at most ``MAX_MESSAGES`` (100) messages before it is
rotated, so a plain set per session stays small. The same bookkeeping gives
the gaps: indexes below the highest one seen that never arrived, for the
"missing message" marker.
"""

from __future__ import annotations

import msgspec

from taube.crypto.errors import BadPayload, ReplayedMessage

#: the largest index accepted: far beyond any rotation limit, small enough
#: that a hostile index cannot make ``gaps`` build a huge list
MAX_INDEX = 1 << 20


class SeenIndexes:
    """A set of ``(session_id, message_index)`` pairs with a strict ``add``."""

    __slots__ = ("_seen",)

    def __init__(self) -> None:
        self._seen: dict[str, set[int]] = {}

    def __contains__(self, pair: object) -> bool:
        if not isinstance(pair, tuple) or len(pair) != 2:
            return False
        session_id, index = pair
        return index in self._seen.get(session_id, ())

    def __len__(self) -> int:
        return sum(len(indexes) for indexes in self._seen.values())

    def check(self, session_id: str, index: int) -> None:
        """``ReplayedMessage`` if the pair was accepted before."""
        if index in self._seen.get(session_id, ()):
            raise ReplayedMessage(f"message {index} of session {session_id} was seen before")

    def add(self, session_id: str, index: int) -> None:
        """Record an accepted message; ``ReplayedMessage`` on a repeat."""
        if not 0 <= index <= MAX_INDEX:
            raise BadPayload("Megolm message index out of range")
        self.check(session_id, index)
        self._seen.setdefault(session_id, set()).add(index)

    def indexes(self, session_id: str) -> frozenset[int]:
        return frozenset(self._seen.get(session_id, ()))

    def gaps(self, session_id: str, first_index: int = 0) -> list[int]:
        """Indexes from ``first_index`` up to the highest seen that are missing."""
        seen = self._seen.get(session_id)
        if not seen:
            return []
        return [i for i in range(first_index, max(seen)) if i not in seen]

    def to_bytes(self) -> bytes:
        """JSON ``{session_id: [index, ...]}``, sorted, for storage."""
        return msgspec.json.encode(
            {sid: sorted(indexes) for sid, indexes in sorted(self._seen.items())}
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> SeenIndexes:
        try:
            raw = msgspec.json.decode(data, type=dict[str, list[int]])
        except msgspec.DecodeError as exc:
            raise BadPayload("not a stored set of seen Megolm indexes") from exc
        seen = cls()
        for session_id, indexes in raw.items():
            if any(not 0 <= index <= MAX_INDEX for index in indexes):
                raise BadPayload("Megolm message index out of range")
            seen._seen[session_id] = set(indexes)
        return seen
