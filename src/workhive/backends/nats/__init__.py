"""The ``nats`` backend (NATS JetStream via nats-py): ``nats://`` and ``tls://`` URLs."""

from workhive.backends.nats.backend import NatsBackend
from workhive.backends.nats.settings import NatsSettings

__all__ = ["NatsBackend", "NatsSettings"]
