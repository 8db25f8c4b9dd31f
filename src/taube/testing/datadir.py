"""Looking into a test server's data directory from outside the process.

The functional tests check what the server keeps on disk (rows in the
SQLite database, blob files), so that "delivered means deleted" and
retention are tested against the real files. The database is opened
read-only for each query: the server process stays the only writer.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any


class DataDir:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.database = root / "taube.db"
        self.blobs = root / "blobs"

    def query(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        conn = sqlite3.connect(f"file:{self.database}?mode=ro", uri=True)
        try:
            conn.execute("PRAGMA busy_timeout = 10000")
            return conn.execute(sql, args).fetchall()
        finally:
            conn.close()

    def count(self, sql: str, *args: Any) -> int:
        """``SELECT count(*) ...``: the single number it returns."""
        [(value,)] = self.query(sql, *args)
        return int(value)

    def log_rows(self, conversation: str) -> int:
        return self.count("SELECT count(*) FROM log WHERE conversation = ?", conversation)

    def blob_row(self, blob: str) -> bool:
        return self.count("SELECT count(*) FROM blobs WHERE blob = ?", blob) == 1

    def blob_path(self, blob: str) -> Path:
        return self.blobs / blob[:2] / blob

    def blob_file(self, blob: str) -> bool:
        return self.blob_path(blob).exists()

    def blob_gone(self, blob: str) -> bool:
        """Neither the row nor the file is left."""
        return not self.blob_row(blob) and not self.blob_file(blob)


async def eventually(
    check: Callable[[], bool], timeout: float = 10.0, interval: float = 0.05, what: str = ""
) -> None:
    """Poll ``check`` until it holds; fail after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            raise AssertionError(f"still not true after {timeout} s: {what or check}")
        await asyncio.sleep(interval)


__all__ = ["DataDir", "eventually"]
