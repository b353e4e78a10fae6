"""Find the ``python`` code blocks of a Markdown page and the directives written before them.

A page's blocks run in order, in one scratch directory per page, so a later block can import a
file an earlier one saved. HTML comments just before a block (blank lines between are fine)
steer it; readers of the rendered page never see them:

* ``<!-- not run -->`` — shown only (a fragment, or code that needs a broker);
* ``<!-- file: tasks.py -->`` — saved under that name before running, so later blocks can
  ``import tasks``; a ``test_*.py`` file is run with pytest instead of python. Blocks in
  other languages are collected only with this directive, and only saved (a
  ``workhive.yaml`` the next example reads);
* ``<!-- requires: fastapi httpx -->`` — the page is skipped when one of these modules is not
  importable (an optional integration), instead of failing;
* ``<!-- requires-broker: nats -->`` — the page's examples talk to a broker (``nats``,
  ``rabbitmq``, ``kafka``, ``redis``, ``postgres``): the test gives them its URL in the
  variable workhive's configuration reads (``NATS_URL``...), and skips the page when the broker
  is not reachable, or fails under ``CI=true``, as every broker test does (``tests/_services``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

_FENCE = re.compile(r"^```(\w*)\s*$")
_DIRECTIVE = re.compile(r"^<!--\s*(not run|file:\s*(\S+)|requires:\s*([^>]*?)"
                        r"|requires-broker:\s*([^>]*?))\s*-->\s*$")


@dataclass
class Block:
    """One fenced ``python`` block: where it starts, its code and what the comments asked."""

    page: Path
    line: int
    code: str
    language: str = "python"
    run: bool = True
    filename: str | None = None
    requires: list[str] = field(default_factory=list)
    brokers: list[str] = field(default_factory=list)

    @property
    def where(self) -> str:
        return f"{self.page.name}:{self.line}"


def python_blocks(page: Path) -> list[Block]:
    """Every ``python`` block of ``page``, and every other block saved with ``file:``, with
    the directives found just above it."""
    lines = page.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    pending: list[str] = []
    i = 0
    while i < len(lines):
        fence = _FENCE.match(lines[i])
        if fence is None:
            text = lines[i].strip()
            if _DIRECTIVE.match(text):
                pending.append(text)
            elif text:
                pending = []
            i += 1
            continue
        end = i + 1
        while end < len(lines) and not lines[end].startswith("```"):
            end += 1
        block = _block(page, i + 1, "\n".join(lines[i + 1:end]) + "\n", pending)
        block.language = fence.group(1)
        if block.language == "python" or block.filename:
            blocks.append(block)
        pending = []
        i = end + 1
    return blocks


def _block(page: Path, line: int, code: str, directives: list[str]) -> Block:
    block = Block(page, line, code)
    for text in directives:
        match = _DIRECTIVE.match(text)
        assert match is not None
        if match.group(1) == "not run":
            block.run = False
        elif match.group(2):
            block.filename = match.group(2)
        elif match.group(3) is not None:
            block.requires.extend(match.group(3).replace(",", " ").split())
        else:
            block.brokers.extend(match.group(4).replace(",", " ").split())
    return block
