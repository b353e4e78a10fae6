"""The escaping helper, cell formatting and the rate tracker, without a server."""

from __future__ import annotations

from workhive.backend import QueueStats
from workhive.dashboard._board import RateTracker
from workhive.dashboard._html import Safe, esc, fmt, join, table
from workhive.dashboard._pages import duration, value
from workhive.inspector import Snapshot


def test_esc_escapes_text_and_attributes_but_not_safe_markup() -> None:
    assert esc("<script>alert('x')</script>") == \
        "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;"
    assert esc('" onmouseover="x') == "&quot; onmouseover=&quot;x"
    assert esc(None) == "" and esc(3) == "3"
    assert esc(Safe("<b>ok</b>")) == "<b>ok</b>"
    assert esc(esc("<i>")) == "&lt;i&gt;"  # escaping twice is a no-op, not &amp;lt;


def test_fmt_and_join_escape_every_value() -> None:
    assert fmt('<a href="{h}">{t}</a>', h='x" onclick="y', t="<b>") == \
        '<a href="x&quot; onclick=&quot;y">&lt;b&gt;</a>'
    assert fmt("{x}", x=Safe("<br>")) == "<br>"
    assert join(["<", Safe("<hr>"), ">"]) == "&lt;<hr>&gt;"


def test_table_escapes_cells_and_shows_the_empty_text() -> None:
    html = table(["a<"], [["<td>"]], empty="none", row_classes=["bad"], col_classes=["c"])
    assert html == ('<table ><thead><tr><th>a&lt;</th></tr></thead><tbody>'
                    '<tr class="bad"><td class="c">&lt;td&gt;</td></tr></tbody></table>')
    assert '<td colspan="2" class="empty">&lt;nothing&gt;</td>' in \
        table(["a", "b"], [], empty="<nothing>")


def test_cell_formats_match_the_scripts() -> None:
    assert value(None, "rate") == "" and value(2.345, "rate") == "2.3"
    assert value(3.2, "ago") == "3s ago" and value(61.6, "secs") == "1m 2s"
    assert value(12.4, "ms") == "12 ms" and value(2500, "ms") == "2.5s"
    assert [duration(s) for s in (0, 59.4, 3600, 3725, 93784)] == \
        ["0s", "59s", "1h", "1h 2m", "1d 2h"]
    assert value(["a", "b"], "list") == "a,b"
    assert value(0.0, "time") == "1970-01-01 00:00:00"


def _snap(at: float, processed: int, failed: int = 0) -> Snapshot:
    return Snapshot("memory", at, [QueueStats("q", processed=processed, failed=failed)], [])


def test_rate_tracker_measures_between_refreshes() -> None:
    tracker = RateTracker(min_interval=1.0)
    assert tracker.update(_snap(100.0, 10)) == (None, None)  # first refresh: no rates yet
    rates, interval = tracker.update(_snap(102.0, 30, 4))
    assert interval == 2.0 and rates is not None
    assert (rates["q"].processed_per_s, rates["q"].failed_per_s) == (10.0, 2.0)
    # a second tab 0.1 s later reuses the last rates instead of measuring over 0.1 s
    again, interval = tracker.update(_snap(102.1, 31))
    assert again is rates and interval == 2.0
    rates, interval = tracker.update(_snap(104.0, 30))  # counters reset: never negative
    assert rates is not None and rates["q"].processed_per_s == 0.0
    assert tracker.update(_snap(50.0, 0)) == (None, None)  # the clock went back: start over
