"""A tiny HTML builder whose default is *escaped*.

Why not a template engine: the dashboard is five small pages and must not pull in Jinja for
them. Why not f-strings: payloads, reasons, tracebacks and queue names are user data and can
contain ``<script>``; with f-strings every forgotten ``html.escape`` is an XSS hole. Here a
value is escaped unless it is :class:`Safe` (markup this module built), so forgetting
something produces visible ``&lt;`` text, never live markup.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from datetime import UTC, datetime


class Safe(str):
    """Markup that is already escaped; :func:`esc` passes it through unchanged."""

    __slots__ = ()


NOTHING = Safe("")


def esc(value: object) -> Safe:
    """``value`` as HTML text (quotes escaped too, so it is safe inside attributes)."""
    if isinstance(value, Safe):
        return value
    return Safe(html.escape("" if value is None else str(value), quote=True))


def fmt(template: str, /, **values: object) -> Safe:
    """``template.format(**values)`` with every value escaped (pre-format numbers first)."""
    return Safe(template.format(**{name: esc(v) for name, v in values.items()}))


def join(parts: Iterable[object], sep: str = "") -> Safe:
    """Escape and concatenate ``parts`` (already-:class:`Safe` parts are kept as they are)."""
    return Safe(sep.join(esc(p) for p in parts))


def table(columns: Iterable[str], rows: Iterable[Iterable[object]], *, empty: str,
          attrs: Safe = NOTHING, row_classes: Iterable[str] | None = None,
          col_classes: Iterable[str] | None = None) -> Safe:
    """A ``<table>``; ``empty`` is the one-row text shown when there are no rows.

    ``attrs`` (built with :func:`fmt`) lets the live-refresh script find the table;
    ``row_classes``/``col_classes`` give each row/column a CSS class ("" for none).
    """
    cols = list(columns)
    cell_cls = [fmt(' class="{c}"', c=c) if c else NOTHING for c in (col_classes or [])]
    cell_cls += [NOTHING] * (len(cols) - len(cell_cls))
    row_cls = iter(row_classes or ())
    head = join(fmt("<th>{c}</th>", c=c) for c in cols)
    lines = []
    for row in rows:
        cls = next(row_cls, "")
        cells = join(fmt("<td{cls}>{v}</td>", cls=k, v=v)
                     for k, v in zip(cell_cls, row, strict=False))
        lines.append(fmt("<tr{cls}>{cells}</tr>", cells=cells,
                         cls=fmt(' class="{c}"', c=cls) if cls else NOTHING))
    body = join(lines)
    if not lines:
        body = fmt('<tr><td colspan="{n}" class="empty">{text}</td></tr>', n=len(cols),
                   text=empty)
    return fmt("<table {attrs}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>",
               attrs=attrs, head=head, body=body)


def link(href: str, text: object) -> Safe:
    return fmt('<a href="{href}">{text}</a>', href=href, text=text)


def when(ts: float | None) -> str:
    """A unix time as ``YYYY-MM-DD HH:MM:SS`` UTC (the CLI's format), or "" for none."""
    if ts is None:
        return ""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")
