"""The embedded default: one SQLite file, WAL mode, leases in rows (``sqlite:///path``)."""

from workhive.backends.sqlite.backend import SQLiteBackend
from workhive.backends.sqlite.settings import SQLiteSettings

__all__ = ["SQLiteBackend", "SQLiteSettings"]
