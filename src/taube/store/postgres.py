"""The PostgreSQL engine: the same jobs, group commit on an asyncpg pool.

Several ``taube serve`` nodes share one PostgreSQL database; each node runs
this engine. Writes keep the SQLite engine's contract: a writer *task* takes
every job waiting, runs them in one transaction (with a savepoint each,
asyncpg's nested ``transaction()``, once one of them fails), commits once with
``synchronous_commit = on`` (so a resolved write survives a crash of the
database server too), then resolves the futures in order. One commit and one
WAL flush serve a whole batch, as on SQLite.

What differs is that other nodes write at the same time. The jobs hold
exactly the locks they need, taken by the statements themselves under READ
COMMITTED: the ``UPDATE`` of a conversation's row orders its sends across
nodes, one-time keys are picked ``FOR UPDATE SKIP LOCKED``, the ``sent``
insert settles concurrent retries, refcounts change in single statements. A
batch never waits for a row while it holds others (``_commit``), so two
nodes' batches cannot deadlock; should a single job still meet a deadlock or
a serialisation failure, just that job fails with ``StoreUnavailable`` (its
client retries). A lost connection or a failed commit fails the whole batch
the same way, and the writer reconnects.

Reads run on pool connections, each statement seeing what was committed.
SQLite's deletion hygiene (``secure_delete``, WAL truncation) has no
equivalent here: PostgreSQL leaves deleted tuples in place until (auto)VACUUM
reclaims their space, so ``checkpoint`` does nothing; see docs/design.md.

This module needs asyncpg (``pip install "taube[postgres]"``); ``Store``
imports it only when the database is a ``postgresql://`` URL, so SQLite
installations do without.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Iterator, Sequence
from typing import Any, TypeVar, TypeVarTuple

import asyncpg

from taube.proto.errors import ProtocolError
from taube.store.errors import IntegrityError, StoreUnavailable
from taube.store.migrations import migrate_postgres
from taube.store.sql import Row, Tx, for_postgres

log = logging.getLogger(__name__)

T = TypeVar("T")
Ts = TypeVarTuple("Ts")
Job = tuple[Callable[..., Any], tuple[Any, ...], "asyncio.Future[Any]"]

#: a batch holds at most this many jobs. Each statement is a round trip to
#: the server, so a batch takes far longer than on SQLite; smaller batches
#: keep the first job's wait short and still share a commit under load.
MAX_BATCH = 256


def _rowcount(status: str) -> int:
    """``"UPDATE 3"``, ``"INSERT 0 1"``, ``"DELETE 0"``: the last number."""
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0


class PostgresTx:
    """``Tx`` over an asyncpg connection; driver errors become the store's."""

    __slots__ = ("_conn",)

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def execute(self, sql: str, *args: Any) -> int:
        with _translated_errors():
            status = await self._conn.execute(for_postgres(sql), *args)
        return _rowcount(status)

    async def fetchone(self, sql: str, *args: Any) -> Row | None:
        with _translated_errors():
            record = await self._conn.fetchrow(for_postgres(sql), *args)
        return None if record is None else tuple(record)

    async def fetchall(self, sql: str, *args: Any) -> list[Row]:
        with _translated_errors():
            records = await self._conn.fetch(for_postgres(sql), *args)
        return [tuple(record) for record in records]

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        batch = list(rows)
        if batch:
            with _translated_errors():
                await self._conn.executemany(for_postgres(sql), batch)


class LockBusy(StoreUnavailable):
    """A row stayed locked by another transaction beyond ``lock_timeout``."""

    def __init__(self) -> None:
        super().__init__("busy, retry")


#: how long a batch that already holds locks waits for another one (see _commit)
_SHORT_LOCK_TIMEOUT = "SET LOCAL lock_timeout = '10ms'"


@contextlib.contextmanager
def _translated_errors() -> Iterator[None]:
    try:
        yield
    except asyncpg.LockNotAvailableError as exc:
        raise LockBusy from exc
    except asyncpg.IntegrityConstraintViolationError as exc:
        raise IntegrityError(str(exc)) from exc
    except asyncpg.TransactionRollbackError as exc:  # deadlock, serialisation failure
        raise StoreUnavailable("concurrent update, retry") from exc


#: what reaching a database that is down, restarting or shutting down raises
_UNREACHABLE = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.OperatorInterventionError,
)


def _is_closed(conn: Any) -> bool:
    """Whether the connection is gone (a pool proxy whose connection was lost
    is detached, and says so by raising)."""
    try:
        return bool(conn.is_closed())
    except asyncpg.InterfaceError:
        return True


class _JobFailed(Exception):
    """A job raised in a batch run without savepoints: run it again with them."""


class PostgresEngine:
    """Owns a connection pool; ``write`` and ``read`` run jobs on it."""

    def __init__(self, dsn: str, *, pool_size: int = 10) -> None:
        self._dsn = dsn  # may hold a password: never logged
        self._pool_size = pool_size
        self._pool: Any = None
        self._queue: collections.deque[Job] = collections.deque()
        self._wake = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._conn: Any = None  # the writer's connection, while it has one
        self._closing = False
        self.batches = 0
        self.jobs = 0

    async def __aenter__(self) -> PostgresEngine:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        try:
            self._pool = await asyncpg.create_pool(
                self._dsn,
                min_size=1,
                max_size=self._pool_size,
                # durable acks whatever the server's default; the settings in
                # the URL (search_path, ...) stay, these win over them
                server_settings={"synchronous_commit": "on", "application_name": "taube"},
            )
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise StoreUnavailable(f"cannot connect to PostgreSQL: {exc}") from exc
        try:
            async with self._pool.acquire() as conn:
                await migrate_postgres(conn)
        except BaseException:  # e.g. SchemaTooNew: do not leave the pool open
            await self._pool.close()
            self._pool = None
            raise
        self._closing = False
        # A task of the engine's own rather than a TaskGroup's: it lives from
        # start() to close(), which are the engine's context-manager edges.
        self._writer = asyncio.create_task(self._run(), name="taube-postgres-writer")

    async def close(self) -> None:
        """Finish the jobs already queued, then close every connection."""
        self._closing = True
        self._wake.set()
        if self._writer is not None:
            writer, self._writer = self._writer, None
            with contextlib.suppress(Exception):  # a writer that failed has logged why
                await writer
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def checkpoint(self) -> None:
        """Nothing to do: (auto)VACUUM reclaims deleted tuples on PostgreSQL."""

    # ------------------------------------------------------------------ writes

    def write(
        self, fn: Callable[[Tx, *Ts], Coroutine[Any, Any, T]], *args: *Ts
    ) -> asyncio.Future[T]:
        """Run ``fn(tx, *args)`` in the next group commit; resolves once committed."""
        if self._writer is None or self._closing or self._writer.done():
            raise StoreUnavailable("the store is not running")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.append((fn, args, future))
        self._wake.set()
        return future

    async def write_apart(self, fn: Callable[[Tx, *Ts], Coroutine[Any, Any, T]], *args: *Ts) -> T:
        """Its own transaction on a pool connection, committed without waiting
        for the WAL flush: the next group commit's flush covers it."""
        async with self._connection() as conn, conn.transaction():
            await conn.execute("SET LOCAL synchronous_commit = off")
            return await fn(PostgresTx(conn), *args)

    async def _run(self) -> None:
        try:
            while True:
                if not self._queue:
                    if self._closing:
                        return
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                batch = [self._queue.popleft() for _ in range(min(MAX_BATCH, len(self._queue)))]
                results = await self._commit(batch)
                self.batches += 1
                self.jobs += len(batch)
                for future, ok, value in results:
                    if future.done():  # cancelled by its caller
                        continue
                    if ok:
                        future.set_result(value)
                    else:
                        future.set_exception(value)
        except BaseException:
            # A bug or a cancellation: fail what is queued rather than leave
            # callers waiting; write() refuses from now on.
            log.exception("the PostgreSQL writer stopped")
            while self._queue:
                _, _, future = self._queue.popleft()
                if not future.done():
                    future.set_exception(StoreUnavailable("the store's writer stopped"))
            raise
        finally:
            if self._conn is not None:
                with contextlib.suppress(Exception):
                    await self._pool.release(self._conn)
                self._conn = None

    async def _commit(self, batch: list[Job]) -> list[tuple[asyncio.Future[Any], bool, Any]]:
        """Commit ``batch``: optimistically without savepoints, else with one per job.

        A savepoint costs two round trips to the server, a third of a send.
        Jobs rarely fail, so the batch first runs bare; if a job raises, that
        transaction is rolled back and the batch runs again with a savepoint
        per job, exactly as on SQLite. (Jobs are functions of the database
        and their arguments, so running one again is safe; a failing job
        costs its batch at most one extra run, whoever sends such jobs.)

        A batch never waits for a lock while it holds locks: after its first
        job, ``lock_timeout`` is short. Otherwise two nodes whose batches
        take two conversations' rows in opposite orders would deadlock again
        and again, each time for PostgreSQL's ``deadlock_timeout``. A job that
        finds a row busy is rolled back to its savepoint, the jobs before it
        are committed, and it starts the next transaction, where it may wait.
        """
        try:
            if self._conn is None:
                self._conn = await self._pool.acquire()
            conn = self._conn
            try:
                return await self._run_bare(conn, batch)
            except _JobFailed:
                pass  # rolled back; the errors come from the run below, without this context
            return await self._run_with_savepoints(conn, batch)
        except Exception as exc:
            # The connection broke or the commit failed: it did not happen, or
            # we cannot tell. Every job fails and its caller retries (sends are
            # idempotent), and the next batch gets a fresh connection.
            log.error("commit failed: %s: %s", type(exc).__name__, exc)
            await self._drop_connection()
            error = StoreUnavailable(f"storage error: {type(exc).__name__}")
            return [(future, False, error) for _, _, future in batch]

    async def _run_bare(
        self, conn: Any, batch: list[Job]
    ) -> list[tuple[asyncio.Future[Any], bool, Any]]:
        results: list[tuple[asyncio.Future[Any], bool, Any]] = []
        tx = PostgresTx(conn)
        async with conn.transaction():
            for index, (fn, args, future) in enumerate(batch):
                if index == 1:
                    await conn.execute(_SHORT_LOCK_TIMEOUT)
                try:
                    value = await fn(tx, *args)
                except Exception as exc:
                    if _is_closed(conn):
                        raise
                    raise _JobFailed from exc
                results.append((future, True, value))
        return results

    async def _run_with_savepoints(
        self, conn: Any, batch: list[Job]
    ) -> list[tuple[asyncio.Future[Any], bool, Any]]:
        results: list[tuple[asyncio.Future[Any], bool, Any]] = []
        tx = PostgresTx(conn)
        index = 0
        while index < len(batch):
            async with conn.transaction():
                first = True
                while index < len(batch):
                    fn, args, future = batch[index]
                    try:
                        async with conn.transaction():  # a savepoint
                            value = await fn(tx, *args)
                    except LockBusy as exc:
                        if not first:
                            break  # commit the jobs so far; this one goes first next time
                        # only if the server's own lock_timeout ran out: retryable
                        results.append((future, False, exc))
                    except (ProtocolError, IntegrityError) as exc:
                        results.append((future, False, exc))
                    except Exception as exc:
                        if _is_closed(conn):
                            raise
                        log.exception("store job %s failed", getattr(fn, "__name__", fn))
                        results.append((future, False, exc))
                    else:
                        results.append((future, True, value))
                    index += 1
                    if first and index < len(batch):
                        await conn.execute(_SHORT_LOCK_TIMEOUT)
                    first = False
        return results

    async def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            # A connection the server closed may already be detached from the
            # pool (its proxy then refuses every call): nothing left to do.
            with contextlib.suppress(Exception):
                conn.terminate()
            with contextlib.suppress(Exception):
                await self._pool.release(conn)

    # ------------------------------------------------------------------ reads

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[Any]:
        if self._pool is None:
            raise StoreUnavailable("the store is not running")
        try:
            async with self._pool.acquire() as conn:
                yield conn
        except _UNREACHABLE as exc:
            raise StoreUnavailable(f"storage error: {type(exc).__name__}") from exc

    async def read(self, fn: Callable[[Tx, *Ts], Coroutine[Any, Any, T]], *args: *Ts) -> T:
        """Run ``fn(tx, *args)`` on a pool connection (no transaction: each
        statement sees what is committed, as a SQLite reader does)."""
        async with self._connection() as conn:
            return await fn(PostgresTx(conn), *args)
