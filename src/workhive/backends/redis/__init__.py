"""Redis: durable queues in Lua scripts (``redis://``; Redis Cluster with ``redis+cluster://`` or
``?cluster=true``; a Sentinel-watched master with ``redis+sentinel://``), and at-most-once
pub/sub (``redis-pubsub://``)."""

from workhive.backends.redis.backend import RedisBackend
from workhive.backends.redis.settings import RedisSettings

__all__ = ["RedisBackend", "RedisSettings"]
