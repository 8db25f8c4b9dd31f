"""The dialect shim: the few rewrites between the SQL the jobs are written in
and what each database wants (``taube.store.sql``)."""

from __future__ import annotations

import pytest

from taube.store.sql import for_postgres, for_sqlite, is_postgres_url


@pytest.mark.parametrize(
    ("written", "postgres"),
    [
        ("SELECT 1", "SELECT 1"),
        ("SELECT a FROM t WHERE b = ? AND c > ?", "SELECT a FROM t WHERE b = $1 AND c > $2"),
        # a question mark inside a literal is text, not a parameter
        ("INSERT INTO t VALUES (?, 'who?', '', ?)", "INSERT INTO t VALUES ($1, 'who?', '', $2)"),
        ("SELECT 'it''s ?', ?", "SELECT 'it''s ?', $1"),
    ],
)
def test_placeholders_are_numbered_for_postgres(written: str, postgres: str) -> None:
    assert for_postgres(written) == postgres


@pytest.mark.parametrize(
    ("written", "sqlite"),
    [
        (
            "UPDATE c SET seq = LEAST(GREATEST(seq, ?), (SELECT seq FROM x)) WHERE d = ?",
            "UPDATE c SET seq = MIN(MAX(seq, ?), (SELECT seq FROM x)) WHERE d = ?",
        ),
        (
            "DELETE FROM k WHERE id = (SELECT id FROM k WHERE d = ? LIMIT 1"
            " FOR UPDATE SKIP LOCKED) RETURNING data",
            "DELETE FROM k WHERE id = (SELECT id FROM k WHERE d = ? LIMIT 1) RETURNING data",
        ),
        ("SELECT seq FROM c WHERE id = ? FOR UPDATE", "SELECT seq FROM c WHERE id = ?"),
        ("SELECT MAX(seq) FROM log", "SELECT MAX(seq) FROM log"),  # aggregates stay
    ],
)
def test_sqlite_gets_its_own_spellings(written: str, sqlite: str) -> None:
    assert for_sqlite(written) == sqlite


def test_postgres_keeps_greatest_and_row_locks() -> None:
    sql = "SELECT GREATEST(a, ?) FROM t WHERE b = ? FOR UPDATE SKIP LOCKED"
    assert for_postgres(sql) == "SELECT GREATEST(a, $1) FROM t WHERE b = $2 FOR UPDATE SKIP LOCKED"


@pytest.mark.parametrize(
    ("database", "postgres"),
    [
        ("postgresql://taube@db/taube", True),
        ("postgres://taube@db/taube", True),
        ("", False),
        ("/var/lib/taube/taube.db", False),
        ("postgresql.db", False),
    ],
)
def test_the_url_selects_the_dialect(database: str, postgres: bool) -> None:
    assert is_postgres_url(database) is postgres
