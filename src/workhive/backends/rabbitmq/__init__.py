"""RabbitMQ: quorum queues per priority band, TTL-level delays and topic-exchange events
(``amqp://``, ``amqps://``); see ``docs/rabbitmq.md``."""

from workhive.backends.rabbitmq.backend import RabbitMQBackend
from workhive.backends.rabbitmq.settings import RabbitMQSettings

__all__ = ["RabbitMQBackend", "RabbitMQSettings"]
