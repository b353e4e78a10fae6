"""Queue depths for ``stats`` (what ``workhive worker --burst`` and ``run_until_idle`` use to
decide they are done, and what the dashboard shows).

Why it is not trivial: Kafka has no "messages in a queue" count. ``ready`` is the log end
minus how far the queue's consumer group got: the group's committed offset, or this member's
read position where it owns the partition (records it has read are counted as ``in_flight``,
not ``ready``). ``delayed`` is what waits in the delay tiers, whatever its destination, so it is
the same for every queue. Committed offsets are read *before* log ends, so a record moving
between topics (forwarded from a tier, produced as a retry) is never missed by both.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from workhive.backend import QueueStats
from workhive.backends.kafka.consumer import QueueConsumer
from workhive.backends.kafka.names import Names
from workhive.backends.kafka.probe import Probe, lag


async def queue_stats(probe: Probe, names: Names, queues: Sequence[str],
                      consumers: Mapping[str, QueueConsumer]) -> list[QueueStats]:
    """One :class:`QueueStats` per queue in ``queues`` (driver errors propagate)."""
    done: dict[str, dict[Any, int]] = {}
    tps_of: dict[str, list[Any]] = {}
    for queue in queues:
        tps = await probe.partitions(names.topics_of(queue))
        committed = await probe.committed(names.consumer_group(queue), tps)
        consumer = consumers.get(queue)
        if consumer is not None:
            for tp, position in consumer.positions().items():
                committed[tp] = max(committed.get(tp, 0), position)
        tps_of[queue], done[queue] = tps, committed
    tiers = await probe.partitions(list(names.tiers.values()))
    forwarded = await probe.committed(names.delay_group, tiers)
    ends = await probe.ends([*tiers, *(tp for q in queues for tp in tps_of[q])])
    delayed = lag({tp: ends[tp] for tp in tiers}, forwarded)
    out = []
    for queue in queues:
        consumer = consumers.get(queue)
        ready = lag({tp: ends[tp] for tp in tps_of[queue]}, done[queue])
        out.append(QueueStats(queue, ready=ready, delayed=delayed,
                              in_flight=consumer.pending() if consumer else 0))
    return out
