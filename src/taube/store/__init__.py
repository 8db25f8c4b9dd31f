"""Storage: the one source of truth (SQLite by default, PostgreSQL later)."""

from taube.store.errors import StoreError, StoreUnavailable
from taube.store.store import Store

__all__ = ["Store", "StoreError", "StoreUnavailable"]
