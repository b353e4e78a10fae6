"""Kafka / Redpanda: band topics, delay-tier topics, one consumer group per queue
(``kafka://``, ``redpanda://``); see ``docs/kafka.md``."""

from workhive.backends.kafka.backend import KafkaBackend
from workhive.backends.kafka.settings import KafkaSettings

__all__ = ["KafkaBackend", "KafkaSettings"]
