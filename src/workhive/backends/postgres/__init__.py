"""PostgreSQL: ``FOR UPDATE SKIP LOCKED`` claims, LISTEN/NOTIFY wake-ups, the database clock."""

from workhive.backends.postgres.backend import PostgresBackend
from workhive.backends.postgres.settings import PostgresSettings

__all__ = ["PostgresBackend", "PostgresSettings"]
