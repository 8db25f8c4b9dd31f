"""Numbered migrations, one SQL file per step for every dialect.

Files are ``NNNN_name.sql`` in this folder, written in the SQL both SQLite and
PostgreSQL speak, with a few dialect words in braces that ``render`` fills in:

- ``{blob}``: BLOB / BYTEA
- ``{serial}``: INTEGER PRIMARY KEY AUTOINCREMENT / BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY
- ``{without_rowid}``: WITHOUT ROWID / nothing

Applied steps are recorded in ``schema_migrations``; a database newer than
this code is refused. On PostgreSQL, where several nodes may start at once,
the whole upgrade is one transaction under an advisory lock: the first node
migrates, the others wait and then find nothing left to do.
"""

from __future__ import annotations

import re
import sqlite3
from importlib import resources
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import asyncpg

DIALECTS = {
    "sqlite": {
        "blob": "BLOB",
        "serial": "INTEGER PRIMARY KEY AUTOINCREMENT",
        "without_rowid": "WITHOUT ROWID",
    },
    "postgres": {
        "blob": "BYTEA",
        "serial": "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
        "without_rowid": "",
    },
}

_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


def steps() -> list[tuple[int, str, str]]:
    """``(number, name, sql)`` of every migration, in order."""
    found = []
    for entry in resources.files(__package__).iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append((int(match.group(1)), entry.name, entry.read_text("utf-8")))
    found.sort()
    numbers = [number for number, _, _ in found]
    if numbers != list(range(1, len(found) + 1)):
        raise RuntimeError(f"migrations must be numbered 1..n without gaps: {numbers}")
    return found


def render(sql: str, dialect: str) -> str:
    return sql.format(**DIALECTS[dialect])


def statements(sql: str) -> list[str]:
    """The statements of a migration file (comment lines dropped, split on ``;``)."""
    code = "\n".join(line for line in sql.splitlines() if not line.lstrip().startswith("--"))
    return [statement.strip() for statement in code.split(";") if statement.strip()]


class SchemaTooNew(RuntimeError):
    pass


#: ``pg_advisory_xact_lock`` key of taube's migrations (any constant would do)
PG_MIGRATION_LOCK = 0x7461756265  # "taube"

_CREATE_BOOKKEEPING = (
    "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT)"
)


def _pending(current: int) -> list[tuple[int, str, str]]:
    all_steps = steps()
    if current > len(all_steps):
        raise SchemaTooNew(
            f"the database has schema version {current}; this taube knows {len(all_steps)}"
        )
    return all_steps[current:]


def migrate_sqlite(conn: sqlite3.Connection) -> int:
    """Bring ``conn`` up to date; returns the schema version.

    The version is read inside the write transaction, so a second process
    opening the same file at the same moment waits and then finds nothing
    left to do.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(_CREATE_BOOKKEEPING)
        row = conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations").fetchone()
        for number, name, sql in _pending(int(row[0])):
            for statement in statements(render(sql, "sqlite")):
                conn.execute(statement)
            conn.execute("INSERT INTO schema_migrations VALUES (?, ?)", (number, name))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return len(steps())


async def migrate_postgres(conn: asyncpg.Connection) -> int:
    """Bring the database (the first schema on the search path) up to date."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", PG_MIGRATION_LOCK)
        await conn.execute(_CREATE_BOOKKEEPING)
        current = await conn.fetchval("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")
        for number, name, sql in _pending(int(current)):
            for statement in statements(render(sql, "postgres")):
                await conn.execute(statement)
            await conn.execute("INSERT INTO schema_migrations VALUES ($1, $2)", number, name)
    return len(steps())
