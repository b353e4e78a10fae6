"""What ``workhive demo`` measured, and how it prints it (split from ``_demo`` for size)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from workhive.hive import Hive
from workhive.inspector import DeadLetterView, Declaration, Snapshot
from workhive.middleware.metrics import TaskCounts
from workhive.worker import Worker


@dataclass
class TaskRow:
    enqueued: int = 0
    dropped: int = 0
    succeeded: int = 0
    retried: int = 0
    dead: int = 0


@dataclass
class DemoRun:
    """Counts gathered while the demo runs; ``finish`` fills in the outcome."""

    enqueued: Counter[str] = field(default_factory=Counter)
    dropped: Counter[str] = field(default_factory=Counter)
    dropped_flag: dict[str, str] = field(default_factory=dict)
    published: Counter[str] = field(default_factory=Counter)
    copies: int = 0
    tasks: dict[str, TaskRow] = field(default_factory=dict)
    groups: dict[str, tuple[int, int]] = field(default_factory=dict)  # group -> (handled, dead)
    dead_letters: list[DeadLetterView] = field(default_factory=list)
    outbox: Counter[str] = field(default_factory=Counter)

    def finish(self, baseline: Snapshot, final: Snapshot, worker: Worker,
               dead: Sequence[DeadLetterView], outbox: Sequence[Any], hive: Hive) -> None:
        counts: dict[str, TaskCounts] = dict(worker.metrics.counts) if worker.metrics else {}
        for name in sorted(set(hive.tasks) | set(self.dropped) | set(self.enqueued)):
            c = counts.get(name, TaskCounts())
            self.tasks[name] = TaskRow(self.enqueued[name], self.dropped[name], c.succeeded,
                                       c.retried, c.dead)
        before = {s.queue: s for s in baseline.queues}
        for stat in final.queues:
            if stat.queue.startswith("@"):
                prev = before.get(stat.queue)
                self.groups[stat.queue[1:]] = (stat.processed - (prev.processed if prev else 0),
                                               stat.dead - (prev.dead if prev else 0))
        self.dead_letters = list(dead)
        self.outbox = Counter(getattr(m, "kind", "mail") for m in outbox)


def print_declarations(out: Console, decls: Sequence[Declaration], backend: str) -> None:
    table = Table(title=f"Registered (backend: {backend})")
    for column in ("kind", "name", "module", "where", "feature flag", "status"):
        table.add_column(column)
    for d in decls:
        status = "[green]registered[/]" if d.enabled else "[yellow]off[/]"
        table.add_row(d.kind, d.name, d.module, escape(d.detail), d.flag or "", status)
    out.print(table)


def print_summary(out: Console, demo: DemoRun) -> None:
    tasks = Table(title="Tasks")
    for column in ("task", "enqueued", "dropped (flag off)", "succeeded", "retried", "dead"):
        tasks.add_column(column, justify="left" if column == "task" else "right")
    for name, row in demo.tasks.items():
        dropped = f"{row.dropped} ({demo.dropped_flag[name]})" if row.dropped else "0"
        tasks.add_row(name, str(row.enqueued), dropped, str(row.succeeded), str(row.retried),
                      str(row.dead), style="red" if row.dead else None)
    out.print(tasks)
    groups = Table(title="Subscriber groups")
    for column in ("group", "events handled", "dead"):
        groups.add_column(column, justify="left" if column == "group" else "right")
    for group, (handled, dead) in sorted(demo.groups.items()):
        groups.add_row(group, str(handled), str(dead))
    out.print(groups)
    dlq = Table(title="Dead-letter queue")
    for column in ("id", "task", "attempts", "reason"):
        dlq.add_column(column, no_wrap=column == "id")
    for view in demo.dead_letters:
        dlq.add_row(view.id, view.name, str(view.attempts), escape(view.letter.reason))
    if not demo.dead_letters:
        dlq.add_row("(empty)", "", "", "")
    out.print(dlq)
    sent = ", ".join(f"{kind} {n}" for kind, n in sorted(demo.outbox.items()))
    out.print(f"Outbox: {sum(demo.outbox.values())} message(s) ({sent or 'none'})")
