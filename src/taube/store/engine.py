"""The SQLite engine: one writer thread that commits in groups, reader threads.

Durable writes are the expensive part of a messenger. Every write is a *job*
(``async def job(tx, ...)``, see ``taube.store.sql``) put on a queue; the
writer thread takes all the jobs that are waiting, runs each inside its own
savepoint (so one job's failure leaves the others intact), commits once and
syncs once (``synchronous=FULL`` in WAL mode), and only then resolves the
callers' futures. Under load a batch holds hundreds of jobs, so thousands of
durable sends per second cost a few fsyncs.

Reads run on a small pool of threads, each with its own read-only
connection; in WAL mode they never wait for the writer.

Jobs are coroutines so that PostgreSQL can run the same ones on the event
loop; here ``SqliteTx`` answers every ``await`` at once, and ``run_sync``
steps the coroutine to its end on the calling thread without a loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Coroutine, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar, TypeVarTuple

from taube.proto.errors import ProtocolError
from taube.store.errors import IntegrityError, StoreUnavailable
from taube.store.migrations import migrate_sqlite
from taube.store.sql import Row, Tx, for_sqlite

log = logging.getLogger(__name__)

T = TypeVar("T")
Ts = TypeVarTuple("Ts")
Job = tuple[Callable[..., Any], tuple[Any, ...], "asyncio.Future[Any]"]

MAX_BATCH = 2000
_STOP = object()


class JobSuspended(RuntimeError):
    """A job awaited something other than its ``SqliteTx``: a bug in the job."""


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a job's coroutine to its end on this thread.

    ``SqliteTx`` methods never suspend, so one ``send`` finishes the job; a
    job that does suspend (awaits a sleep, a lock, another engine) cannot be
    run here and is closed with ``JobSuspended`` rather than left hanging.
    """
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    coro.close()
    name = getattr(coro, "__qualname__", coro)
    raise JobSuspended(f"store job {name} suspended; SQLite jobs must not")


class SqliteTx:
    """``Tx`` over a ``sqlite3`` connection: each call runs at once."""

    __slots__ = ("_conn",)

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    async def execute(self, sql: str, *args: Any) -> int:
        try:
            return self._conn.execute(for_sqlite(sql), args).rowcount
        except sqlite3.IntegrityError as exc:
            raise IntegrityError(str(exc)) from exc

    async def fetchone(self, sql: str, *args: Any) -> Row | None:
        try:
            row: Row | None = self._conn.execute(for_sqlite(sql), args).fetchone()
        except sqlite3.IntegrityError as exc:
            raise IntegrityError(str(exc)) from exc
        return row

    async def fetchall(self, sql: str, *args: Any) -> list[Row]:
        try:
            return self._conn.execute(for_sqlite(sql), args).fetchall()
        except sqlite3.IntegrityError as exc:
            raise IntegrityError(str(exc)) from exc

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        try:
            self._conn.executemany(for_sqlite(sql), rows)
        except sqlite3.IntegrityError as exc:
            raise IntegrityError(str(exc)) from exc


def _connect(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    uri = f"file:{path}?mode=ro" if readonly else f"file:{path}"
    conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 10000")
    if not readonly:
        _enable_wal(conn)
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def _enable_wal(conn: sqlite3.Connection, attempts: int = 100) -> None:
    """Switch to WAL. While another process makes the same switch on a new
    file, SQLite answers "locked" at once instead of waiting: try again."""
    for attempt in range(attempts):
        try:
            conn.execute("PRAGMA journal_mode = WAL")
        except sqlite3.OperationalError:
            if attempt + 1 == attempts:
                raise
            time.sleep(0.05)
        else:
            return


class SqliteEngine:
    """Owns the database file; ``write`` and ``read`` run jobs off the loop."""

    def __init__(self, path: Path, *, synchronous: str = "FULL", readers: int = 2) -> None:
        self.path = path
        self._synchronous = synchronous
        self._readers = readers
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._local = threading.local()
        self._reader_conns: list[sqlite3.Connection] = []
        self._reader_lock = threading.Lock()
        self.batches = 0
        self.jobs = 0

    async def __aenter__(self) -> SqliteEngine:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = await asyncio.to_thread(self._open_writer)
        self._thread = threading.Thread(
            target=self._run, args=(conn,), name="taube-sqlite-writer", daemon=True
        )
        self._thread.start()
        self._executor = ThreadPoolExecutor(self._readers, thread_name_prefix="taube-sqlite-read")

    def _open_writer(self) -> sqlite3.Connection:
        conn = _connect(self.path)
        try:
            conn.execute(f"PRAGMA synchronous = {self._synchronous}")
            conn.execute("PRAGMA wal_autocheckpoint = 4000")
            # Delivered means deleted, down to the bytes: deleted rows are
            # overwritten with zeros (see checkpoint() for the WAL's old frames).
            conn.execute("PRAGMA secure_delete = ON")
            migrate_sqlite(conn)
        except BaseException:  # e.g. SchemaTooNew: do not leave the file open
            conn.close()
            raise
        return conn

    async def close(self) -> None:
        # Readers first: the writer's connection, closed last, then checkpoints
        # the WAL into the database and removes it.
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        with self._reader_lock:
            for conn in self._reader_conns:
                conn.close()
            self._reader_conns.clear()
        if self._thread is not None:
            self._queue.put(_STOP)
            await asyncio.to_thread(self._thread.join)
            self._thread = None

    async def checkpoint(self) -> None:
        """Copy the WAL into the database and truncate it.

        Old page images in the WAL may still hold deleted ciphertext; after
        this they are gone (``secure_delete`` zeroed them in the database).
        """
        await self.write(_truncate_wal)

    # ------------------------------------------------------------------ writes

    def write(
        self, fn: Callable[[Tx, *Ts], Coroutine[Any, Any, T]], *args: *Ts
    ) -> asyncio.Future[T]:
        """Run ``fn(tx, *args)`` in the next group commit; resolves once synced."""
        if self._loop is None or self._thread is None:
            raise StoreUnavailable("the store is not running")
        future: asyncio.Future[T] = self._loop.create_future()
        self._queue.put((fn, args, future))
        return future

    async def write_apart(self, fn: Callable[[Tx, *Ts], Coroutine[Any, Any, T]], *args: *Ts) -> T:
        """SQLite has one writer: the same as ``write``."""
        return await self.write(fn, *args)

    def _run(self, conn: sqlite3.Connection) -> None:
        try:
            while True:
                first = self._queue.get()
                if first is _STOP:
                    return
                batch: list[Job] = [first]
                stop = False
                while len(batch) < MAX_BATCH:
                    try:
                        job = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if job is _STOP:
                        stop = True
                        break
                    batch.append(job)
                self._commit(conn, batch)
                if stop:
                    return
        finally:
            conn.close()

    def _commit(self, conn: sqlite3.Connection, batch: list[Job]) -> None:
        """Commit ``batch``; a checkpoint job in it runs between transactions."""
        for index, job in enumerate(batch):
            if job[0] is _truncate_wal:
                if index:
                    self._commit_jobs(conn, batch[:index])
                self._checkpoint(conn, job)
                if index + 1 < len(batch):
                    self._commit(conn, batch[index + 1 :])
                return
        self._commit_jobs(conn, batch)

    def _commit_jobs(self, conn: sqlite3.Connection, batch: list[Job]) -> None:
        results: list[tuple[asyncio.Future[Any], bool, Any]] = []
        tx = SqliteTx(conn)
        try:
            conn.execute("BEGIN IMMEDIATE")
            for fn, args, future in batch:
                conn.execute("SAVEPOINT job")
                try:
                    value = run_sync(fn(tx, *args))
                except (ProtocolError, IntegrityError) as exc:
                    conn.execute("ROLLBACK TO job")
                    results.append((future, False, exc))
                except Exception as exc:
                    log.exception("store job %s failed", getattr(fn, "__name__", fn))
                    conn.execute("ROLLBACK TO job")
                    results.append((future, False, exc))
                else:
                    results.append((future, True, value))
                conn.execute("RELEASE job")
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            log.error("commit failed: %s", exc)
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            error = StoreUnavailable(f"storage error: {exc}")
            results = [(future, False, error) for _, _, future in batch]
        self.batches += 1
        self.jobs += len(batch)
        assert self._loop is not None
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
            self._loop.call_soon_threadsafe(_resolve, results)

    def _checkpoint(self, conn: sqlite3.Connection, job: Job) -> None:
        _, _, future = job
        try:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
            outcome: tuple[asyncio.Future[Any], bool, Any] = (future, True, None)
        except sqlite3.Error as exc:
            outcome = (future, False, StoreUnavailable(f"checkpoint failed: {exc}"))
        assert self._loop is not None
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(_resolve, [outcome])

    # ------------------------------------------------------------------ reads

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = _connect(self.path, readonly=True)
            self._local.conn = conn
            with self._reader_lock:
                self._reader_conns.append(conn)
        return conn

    def _run_read(self, fn: Callable[[Tx, *Ts], Coroutine[Any, Any, T]], args: tuple[*Ts]) -> T:
        return run_sync(fn(SqliteTx(self._reader()), *args))

    async def read(self, fn: Callable[[Tx, *Ts], Coroutine[Any, Any, T]], *args: *Ts) -> T:
        """Run ``fn(tx, *args)`` on a reader thread."""
        if self._loop is None or self._executor is None:
            raise StoreUnavailable("the store is not running")
        try:
            return await self._loop.run_in_executor(self._executor, self._run_read, fn, args)
        except sqlite3.OperationalError as exc:
            raise StoreUnavailable(f"storage error: {exc}") from exc


async def _truncate_wal(tx: Tx) -> None:
    """A marker job: the writer runs a WAL checkpoint outside a transaction instead."""


def _resolve(results: list[tuple[asyncio.Future[Any], bool, Any]]) -> None:
    for future, ok, value in results:
        if future.cancelled():
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)
