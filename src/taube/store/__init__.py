"""Storage: the one source of truth (SQLite by default, PostgreSQL for several nodes)."""

from taube.store.errors import StoreError, StoreUnavailable
from taube.store.sql import is_postgres_url
from taube.store.store import Store

__all__ = ["Store", "StoreError", "StoreUnavailable", "is_postgres_url"]
