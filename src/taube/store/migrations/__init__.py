"""Numbered migrations, one SQL file per step for every dialect.

Files are ``NNNN_name.sql`` in this folder, written in the SQL both SQLite and
PostgreSQL speak, with a few dialect words in braces that ``render`` fills in:

- ``{blob}``: BLOB / BYTEA
- ``{serial}``: INTEGER PRIMARY KEY AUTOINCREMENT / BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY
- ``{without_rowid}``: WITHOUT ROWID / nothing

Applied steps are recorded in ``schema_migrations``; a database newer than
this code is refused.
"""

from __future__ import annotations

import re
import sqlite3
from importlib import resources

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


def migrate_sqlite(conn: sqlite3.Connection) -> int:
    """Bring ``conn`` up to date; returns the schema version."""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT)"
    )
    row = conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations").fetchone()
    current = int(row[0])
    all_steps = steps()
    if current > len(all_steps):
        raise SchemaTooNew(
            f"the database has schema version {current}; this taube knows {len(all_steps)}"
        )
    for number, name, sql in all_steps[current:]:
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in statements(render(sql, "sqlite")):
                conn.execute(statement)
            conn.execute("INSERT INTO schema_migrations VALUES (?, ?)", (number, name))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return len(all_steps)
