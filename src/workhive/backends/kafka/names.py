"""Topic and consumer-group names, and the delay tiers.

Why names are derived, never stored: Kafka has no key-value store, so every process must reach
the same topics from configuration alone. With prefix ``P`` (option ``topic``) and group prefix
``G`` (option ``group``):

* ``P.q.<queue>.b<band>``: a workhive queue's priority band (band 0 lowest);
* ``P.events``: every published event, once; ``P.g.<group>``: retries of one subscriber
  group's events (they must reach that group only);
* ``P.delay.<tier>``: delay tiers (:data:`TIERS`); ``P.dead``: dead letters;
* consumer groups ``G.P.<queue>`` (``G.P.@billing`` for subscriber group ``billing``) and
  ``G.P.delay`` for the tier forwarders.

Queue names may hold characters Kafka topics may not (``:``, ``@``, ``/``); those are written
``_xx`` (hex), so distinct queue names always give distinct topics.
"""

from __future__ import annotations

import bisect
import re

#: delay tiers (seconds): a delay waits in the largest tier not longer than what remains
TIERS: tuple[int, ...] = (1, 5, 30, 120, 600, 3600, 21600)
_UNSAFE = re.compile(r"[^A-Za-z0-9.\-]")

# record headers
H_TS = "wh-ts"  # enqueue time (ns), orders records of one band across partitions
H_DUE = "wh-due"  # unix seconds when a delayed record is due
H_DEST = "wh-dest"  # the topic a delayed record goes to when due
H_NAME = "wh-name"  # event name, matched against subscription patterns
H_KEY = "wh-key"  # ordering key (also the record key): records of one key run one at a time


def safe(name: str) -> str:
    """``name`` with every character a topic cannot hold (and ``_``) written as ``_xx``."""
    return _UNSAFE.sub(lambda m: "".join(f"_{b:02x}" for b in m.group().encode()), name)


def tier_for(remaining: float) -> int:
    """The largest tier not longer than ``remaining`` seconds (the smallest tier when even
    that is too long: its forwarder then waits for the record's own due time)."""
    return TIERS[max(0, bisect.bisect_right(TIERS, remaining) - 1)]


class Names:
    """Every name for one ``topic`` prefix and ``group`` prefix."""

    def __init__(self, prefix: str, group: str, bands: int) -> None:
        self.prefix = prefix
        self.group_prefix = group
        self.bands = bands
        self.events = f"{prefix}.events"
        self.dead = f"{prefix}.dead"
        self.tiers = {t: f"{prefix}.delay.{t}" for t in TIERS}
        self.delay_group = f"{group}.{prefix}.delay"

    def band_topic(self, queue: str, band: int) -> str:
        return f"{self.prefix}.q.{safe(queue)}.b{band}"

    def group_topic(self, group: str) -> str:
        """Where retries of subscriber group ``group``'s events go."""
        return f"{self.prefix}.g.{safe(group)}"

    def consumer_group(self, queue: str) -> str:
        return f"{self.group_prefix}.{self.prefix}.{queue}"

    def bands_of(self, queue: str) -> int:
        """Event queues (``@group``) have one band; task queues ``bands``."""
        return 1 if queue.startswith("@") else self.bands

    def topics_of(self, queue: str) -> list[str]:
        """The topics a queue's consumer reads, highest band first."""
        if queue.startswith("@"):
            return [self.group_topic(queue[1:]), self.events]
        return [self.band_topic(queue, b) for b in range(self.bands - 1, -1, -1)]

    def base_topics(self) -> list[str]:
        return [self.events, self.dead, *self.tiers.values()]
