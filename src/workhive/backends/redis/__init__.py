"""Redis: durable queues in Lua scripts (``redis://``), and at-most-once pub/sub (``redis-pubsub://``)."""

from workhive.backends.redis.backend import RedisBackend
from workhive.backends.redis.settings import RedisSettings

__all__ = ["RedisBackend", "RedisSettings"]
