"""Names and declarations: every exchange and queue the ``rabbitmq`` backend uses.

Why versioned names: RabbitMQ refuses to redeclare a queue with different arguments (406
PRECONDITION_FAILED), so a layout change must get new names instead of breaking old
deployments. Everything carries a ``v1`` segment; the next incompatible layout will use ``v2``.

Layout (``X`` = the ``exchange`` option, ``Q`` = the ``queue`` option, default ``X.default``)::

    Q.v1.<band>                  quorum queue: workhive queue "default", one per priority band
    X.q.<name>.v1.<band>         quorum queue: workhive queue <name>
    X.group.<group>.v1           quorum queue: subscriber group <group> (queue "@<group>")
    X.v1.events                  topic exchange: events, routing key = event name
    X.v1.delay.NN                topic exchange + quorum queue per delay level NN (00..27,
                                 declared up to the highest level a delay needed)
    X.v1.delay.deliver           topic exchange: where a finished delay is routed home
    X.v1.dead                    quorum queue: dead letters when no coordination store keeps them
                                 (declared on the first dead letter)

Delays (no plugin; the scheme of NServiceBus and kombu's native delayed delivery): a delay of
``d`` whole seconds is written as 28 binary digits, most significant first, in the routing key
``b27.b26...b0.<destination queue>``. Level ``L``'s queue holds messages for exactly ``2**L``
seconds (``x-message-ttl``), then dead-letters them to level ``L-1``'s exchange, which sends
them to its own queue when bit ``L-1`` is 1 and straight on to level ``L-2`` when it is 0.
Level 0 ends at the ``deliver`` exchange, where every task queue is bound by its exact name.
Every queue holds one TTL, so a long delay never blocks a short one (the head-of-line trap of
per-message TTLs), and no client holds anything while it waits. Quorum level queues need
``x-dead-letter-strategy: at-least-once``, which in turn needs ``x-overflow: reject-publish``
(otherwise RabbitMQ silently falls back to at-most-once). At-least-once dead-lettering retries
an unroutable message only every 180 s, so a destination is declared and bound *before*
anything is published towards it.
"""

from __future__ import annotations

import math
from typing import Any

from aiormq.abc import AbstractChannel

from workhive.backend import event_group
from workhive.errors import BackendError, ConfigError

VERSION = "v1"
LEVELS = 28
MAX_DELAY = 2**LEVELS - 1  # seconds: about 8.5 years
QUORUM: dict[str, Any] = {"x-queue-type": "quorum"}
_FORBIDDEN = set("*# ")


class Names:
    """Physical names for one ``exchange`` prefix."""

    def __init__(self, exchange: str, default_queue: str, bands: int) -> None:
        self.exchange = exchange
        self.default_queue = default_queue
        self.bands = bands
        base = f"{exchange}.{VERSION}"
        self.events = f"{base}.events"
        self.dead = f"{base}.dead"
        self.deliver = f"{base}.delay.deliver"
        self.levels = [f"{base}.delay.{level:02d}" for level in range(LEVELS)]

    def bands_of(self, queue: str) -> int:
        """How many band queues a workhive queue has (subscriber groups have one)."""
        return 1 if event_group(queue) is not None else self.bands

    def physical(self, queue: str, band: int) -> str:
        """The quorum queue holding ``band`` of workhive queue ``queue``."""
        group = event_group(queue)
        if group is not None:
            name = f"{self.exchange}.group.{_checked(group, 'group')}.{VERSION}"
        elif queue == "default":
            name = f"{self.default_queue}.{VERSION}.{band}"
        else:
            name = f"{self.exchange}.q.{_checked(queue, 'queue')}.{VERSION}.{band}"
        if len(name) > 180:  # leaves room for the 56-character delay prefix (255 max)
            raise ConfigError(f"rabbitmq queue name too long: {name!r}")
        return name


def _checked(name: str, what: str) -> str:
    if not name or _FORBIDDEN & set(name):
        raise ConfigError(f"a rabbitmq {what} name must be non-empty and contain no '*', '#' "
                          f"or spaces: {name!r}")
    return name


def delay_seconds(delay: float) -> int:
    """Whole seconds to wait so a message is never early; refuses what the levels cannot hold."""
    seconds = math.ceil(delay)
    if seconds > MAX_DELAY:
        raise BackendError(f"rabbitmq delays are limited to {MAX_DELAY} s (about 8.5 years, "
                           f"{LEVELS} delay levels); got {delay:.0f} s")
    return seconds


def delay_route(names: Names, seconds: int, destination: str) -> tuple[str, str]:
    """``(exchange, routing key)`` that delivers to ``destination`` after ``seconds`` (>= 1).

    The message enters at the level of its highest 1 bit: the levels above would only pass
    it down, so skipping them saves hops (about 2 ms each).
    """
    bits = format(seconds, f"0{LEVELS}b")
    return names.levels[entry_level(seconds)], ".".join(bits) + "." + destination


def delivery_binding(destination: str) -> str:
    """How a task queue is bound to the ``deliver`` exchange: any 28 delay bits, then exactly
    its own name (so ``a.b`` never catches messages for ``x.a.b``)."""
    return "*." * LEVELS + destination


def level_queue_args(names: Names, level: int) -> dict[str, Any]:
    dlx = names.deliver if level == 0 else names.levels[level - 1]
    return {
        **QUORUM,
        "x-message-ttl": 1000 * 2**level,
        "x-dead-letter-exchange": dlx,
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }


def level_bindings(names: Names, level: int) -> tuple[str, str]:
    """``(queue binding, pass-down binding)`` keys of level ``level``: its bit is 1 / 0."""
    skip = "*." * (LEVELS - 1 - level)
    return f"{skip}1.#", f"{skip}0.#"


def pass_down_target(names: Names, level: int) -> str:
    """Where level ``level``'s exchange sends messages whose bit is 0."""
    return names.deliver if level == 0 else names.levels[level - 1]


async def declare_exchanges(channel: AbstractChannel, names: Names) -> None:
    """The ``deliver`` and ``events`` exchanges (exchanges cost the broker nothing)."""
    await channel.exchange_declare(names.deliver, exchange_type="topic", durable=True)
    await channel.exchange_declare(names.events, exchange_type="topic", durable=True)


async def declare_levels(channel: AbstractChannel, names: Names, start: int, stop: int) -> None:
    """Delay levels ``start .. stop-1``, bottom up so every dead-letter target exists first.

    Levels are declared on demand (a delay needs the levels up to its highest 1 bit), so the
    levels that exist are always ``0 .. n-1``: each quorum queue costs the broker about three
    file handles even when empty, and most applications never delay for days.
    """
    for level in range(start, stop):
        name = names.levels[level]
        await channel.exchange_declare(name, exchange_type="topic", durable=True)
        await channel.queue_declare(name, durable=True, arguments=level_queue_args(names, level))
        to_queue, pass_down = level_bindings(names, level)
        await channel.queue_bind(name, name, routing_key=to_queue)
        await channel.exchange_bind(pass_down_target(names, level), name, routing_key=pass_down)


async def declare_dead(channel: AbstractChannel, names: Names) -> None:
    await channel.queue_declare(names.dead, durable=True, arguments=QUORUM)


async def declare_queue(channel: AbstractChannel, names: Names, physical: str) -> int:
    """Declare a task/group quorum queue and bind it to the ``deliver`` exchange (delayed
    messages and retries find their way home); returns its ready message count."""
    ok = await channel.queue_declare(physical, durable=True, arguments=QUORUM)
    await channel.queue_bind(physical, names.deliver, routing_key=delivery_binding(physical))
    return ok.message_count or 0


async def ready_count(channel: AbstractChannel, physical: str) -> int:
    """Messages ready in an existing queue (a passive declare: no side effects)."""
    ok = await channel.queue_declare(physical, passive=True)
    return ok.message_count or 0


def entry_level(seconds: int) -> int:
    """The level a delay of ``seconds`` enters at (its highest 1 bit)."""
    return seconds.bit_length() - 1
