"""Federation: what the server must remember about other servers.

Transaction ids of signed requests are kept for the freshness window so
that a replayed request is refused even after a restart (the window is
what lets them be forgotten: an older request is refused for its time).
"""

from __future__ import annotations

from taube.store.sql import Tx


async def remember_txn(tx: Tx, origin: str, txn: str, now: int) -> bool:
    """Record ``(origin, txn)``; ``False`` if it was seen before (a replay)."""
    added = await tx.execute(
        "INSERT INTO federation_txns (origin, txn, ts) VALUES (?, ?, ?)"
        " ON CONFLICT (origin, txn) DO NOTHING",
        origin,
        txn,
        now,
    )
    return added == 1


async def forget_txns(tx: Tx, before: int) -> int:
    """Forget transaction ids recorded before ``before`` (outside the window)."""
    return await tx.execute("DELETE FROM federation_txns WHERE ts < ?", before)
