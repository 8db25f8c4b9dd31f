"""One body of SQL for SQLite and PostgreSQL: the ``Tx`` jobs run on, and the dialect shim.

Every store operation is a *job*, ``async def job(tx: Tx, ...)``, written once
with ``?`` placeholders in the SQL both databases speak. An engine runs it:
``SqliteEngine`` drives the coroutine to its end on its writer or reader
thread (``SqliteTx`` never suspends), ``PostgresEngine`` awaits it on the
event loop with an asyncpg connection behind ``PostgresTx``. Either way a
write job runs inside its own savepoint of a group commit, so a job sees
its own writes and those of the jobs before it in the batch.

The dialect shim is deliberately short; these are all the differences the
jobs may rely on:

1. Placeholders: ``?`` in the source; PostgreSQL gets ``$1, $2, ...``
   (question marks inside quoted literals are left alone).
2. Scalar ``GREATEST(a, b)`` and ``LEAST(a, b)``: SQLite spells them
   ``MAX(a, b)`` and ``MIN(a, b)``. SQLite returns NULL when an argument is
   NULL where PostgreSQL skips it, so use them on non-null values only.
3. Row locks ``FOR UPDATE [SKIP LOCKED]``: dropped on SQLite, where a write
   transaction already holds the whole database (one writer at a time).
4. Errors: a violated unique, foreign or check constraint raises
   ``IntegrityError``; a deadlock or serialisation failure on PostgreSQL
   raises ``StoreUnavailable`` (the caller retries, as after any outage).

Types: integers are BIGINT (or SMALLINT), text TEXT, bytes BLOB/BYTEA; pass
exactly those Python types (PostgreSQL does not coerce ``bytes`` to text).
Schema words (``{blob}``, ``{serial}``, ``{without_rowid}``) are the
migrations' business, see ``taube.store.migrations``.
"""

from __future__ import annotations

import asyncio
import functools
import re
from collections.abc import Callable, Coroutine, Iterable, Sequence
from typing import Any, Protocol, TypeVar, TypeVarTuple

T = TypeVar("T")
Ts = TypeVarTuple("Ts")

Row = tuple[Any, ...]


class Tx(Protocol):
    """A connection inside a transaction (writes) or a read-only one (reads).

    Jobs do not ask which database is behind it: the differences live in the
    shim below, not in the jobs.
    """

    async def execute(self, sql: str, *args: Any) -> int:
        """Run one statement; returns the number of rows it changed."""

    async def fetchone(self, sql: str, *args: Any) -> Row | None:
        """The first row, or ``None``."""

    async def fetchall(self, sql: str, *args: Any) -> list[Row]:
        """Every row."""

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """Run one statement once per row of arguments."""


class Engine(Protocol):
    """What ``Store`` needs of a database: both engines keep this contract."""

    #: group commits made, and the jobs they held (tests and metrics)
    batches: int
    jobs: int

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    def write(
        self, fn: Callable[[Tx, *Ts], Coroutine[Any, Any, T]], *args: *Ts
    ) -> asyncio.Future[T]:
        """Run ``fn(tx, *args)`` in the next group commit; resolves once durable."""
        ...

    async def write_apart(self, fn: Callable[[Tx, *Ts], Coroutine[Any, Any, T]], *args: *Ts) -> T:
        """Run ``fn`` in a transaction of its own, without holding up a group commit.

        For bulk work that needs no ordering with other writes (blob chunks).
        It is committed but not necessarily synced when this returns: the next
        ``write`` that resolves makes it durable (PostgreSQL's WAL is one
        sequence, so syncing a later commit syncs every earlier one). SQLite
        has one writer, so there this is ``write``.
        """
        ...

    async def read(self, fn: Callable[[Tx, *Ts], Coroutine[Any, Any, T]], *args: *Ts) -> T:
        """Run ``fn(tx, *args)`` on a connection of its own, seeing committed data."""
        ...

    async def checkpoint(self) -> None:
        """After deletions: make the database drop the deleted bytes where it can."""


# ------------------------------------------------------------------ the shim

_GREATEST = re.compile(r"\bGREATEST\(")
_LEAST = re.compile(r"\bLEAST\(")
_ROW_LOCK = re.compile(r"\s+FOR\s+UPDATE(?:\s+SKIP\s+LOCKED)?\b")


@functools.lru_cache(maxsize=1024)
def for_sqlite(sql: str) -> str:
    """The statement as SQLite wants it (differences 2 and 3)."""
    if "GREATEST(" in sql or "LEAST(" in sql:
        sql = _LEAST.sub("MIN(", _GREATEST.sub("MAX(", sql))
    if "FOR UPDATE" in sql:
        sql = _ROW_LOCK.sub("", sql)
    return sql


@functools.lru_cache(maxsize=1024)
def for_postgres(sql: str) -> str:
    """The statement as PostgreSQL wants it: ``?`` becomes ``$1``, ``$2``, ..."""
    if "?" not in sql:
        return sql
    out: list[str] = []
    number = 0
    quoted = False
    for char in sql:
        if char == "'":
            quoted = not quoted  # '' inside a literal toggles twice: still right
        elif char == "?" and not quoted:
            number += 1
            out.append(f"${number}")
            continue
        out.append(char)
    return "".join(out)


def is_postgres_url(database: object) -> bool:
    """``postgresql://...`` (or ``postgres://...``) selects PostgreSQL."""
    return isinstance(database, str) and database.startswith(("postgresql://", "postgres://"))
