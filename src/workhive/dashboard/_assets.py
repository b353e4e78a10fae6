"""The dashboard's only CSS and JavaScript, inline, plus the CSP that allows exactly them.

Why inline and hashed: the machine running the dashboard may have no internet, so nothing
comes from a CDN and there is no build step. Every page carries a Content-Security-Policy
whose ``script-src``/``style-src`` are the SHA-256 of these two strings: even if some value
ever escaped :mod:`._html`'s escaping, an injected ``<script>`` would not run.

The script refreshes every table marked ``data-live`` from its JSON endpoint every 2 seconds
(building cells with ``textContent``, never ``innerHTML``), draws the charts (``div[data-chart]``)
from ``/api/history`` with uPlot, rewrites ``<time>`` elements in the browser's time zone and
asks for confirmation before a form marked ``data-confirm`` is submitted. The one external
file is the chart library, served by the dashboard itself from ``static/vendor`` (hence
``'self'`` in the CSP); it sets styles only through the CSSOM, which the CSP allows.
"""

from __future__ import annotations

import base64
import hashlib

REFRESH_MS = 2000

CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
header{background:#1d2330;color:#fff;padding:.6em 1.2em;display:flex;gap:1.4em;
align-items:baseline;flex-wrap:wrap}
header a{color:#cfd8ea;text-decoration:none}header a.on{color:#fff;font-weight:600}
header .brand{font-weight:700;color:#ffc94d}
#live-status{margin-left:auto;font-size:12px;color:#9aa6bd}
main{padding:1em 1.2em;max-width:1400px}
table{border-collapse:collapse;background:#fff;margin:.4em 0 1.4em;min-width:40%}
th,td{border:1px solid #dde1e8;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#eef1f5;font-weight:600}
tr.bad td{background:#fff0f0}td.empty{color:#778;text-align:left;font-style:italic}
td.reason{max-width:40em;overflow:hidden;text-overflow:ellipsis}
pre{background:#fff;border:1px solid #dde1e8;padding:.6em;overflow:auto;max-height:30em}
.notice{background:#e9f7ec;border:1px solid #9fd4aa;padding:.4em .8em;display:inline-block}
.error{background:#fff0f0;border:1px solid #e5a1a1;padding:.4em .8em;display:inline-block}
form.inline{display:inline;margin-right:.6em}
button{font:inherit;padding:.2em .9em;cursor:pointer}button.danger{color:#a11}
.muted{color:#778}
.charts{display:flex;flex-wrap:wrap;gap:1em}
.charts figure{margin:0;background:#fff;border:1px solid #dde1e8;padding:.4em;flex:1 1 480px}
.charts figcaption{font-weight:600;margin-bottom:.3em}.chart{min-height:260px}
.chart-controls{margin:.4em 0}.chart-controls select{font:inherit;margin-right:.4em}
details summary{cursor:pointer;margin:.3em 0}form.login{margin:1em 0}
form.login input{font:inherit;padding:.2em .4em;margin:0 .4em}
header form.inline button{font-size:12px}
nav.tabs{margin:.4em 0 .8em}nav.tabs a{margin-right:1.2em;text-decoration:none;color:#3d4b66}
nav.tabs a.on{font-weight:700;color:#1d2330;border-bottom:2px solid #ffc94d}
form.search input{font:inherit;padding:.2em .4em;min-width:22em}.pager a{margin-left:.8em}
progress{width:8em;vertical-align:middle}form.bulk{margin:.4em 0}td.pick{width:1.5em}
"""

JS = """
(function () {
  "use strict";
  var fmts = {
    rate: function (v) { return v.toFixed(1); },
    ago: function (v) { return dur(v) + " ago"; },
    secs: function (v) { return dur(v); },
    ms: function (v) { return v < 1000 ? Math.round(v) + " ms" : dur(v / 1000, true); },
    list: function (v) { return v.join(","); },
    time: function (v) { return new Date(v * 1000).toLocaleString(); },
    bar: function (v) { return Math.round(v * 100) + "%"; }
  };
  function dur(seconds, precise) {
    if (precise && seconds < 60) { return seconds.toFixed(1) + "s"; }
    var total = Math.round(seconds), parts = [];
    [["d", 86400], ["h", 3600], ["m", 60], ["s", 1]].forEach(function (u) {
      if (parts.length < 2 && (total >= u[1] || (u[0] === "s" && !parts.length))) {
        parts.push(Math.floor(total / u[1]) + u[0]);
        total = total % u[1];
      }
    });
    return parts.join(" ");
  }
  function localTimes() {
    document.querySelectorAll("time[datetime]").forEach(function (el) {
      el.textContent = fmts.time(parseFloat(el.getAttribute("datetime")));
    });
  }
  var plots = {};
  function chartQuery() {
    var params = new URLSearchParams();
    document.querySelectorAll("[data-history-filter]").forEach(function (el) {
      if (el.value) { params.set(el.name, el.value); }
    });
    return params.toString();
  }
  var SERIES = {
    throughput: [["succeeded", "#2a9d5c"], ["failed", "#d1495b"]],
    latency: [["wait_ms", "#8a94a6", "queue wait"], ["p50_ms", "#3d6bd1", "run p50"],
              ["p95_ms", "#e0a100", "run p95"]]
  };
  function drawCharts() {
    var holders = Array.prototype.slice.call(document.querySelectorAll("div[data-chart]"));
    if (!holders.length || typeof uPlot === "undefined" || document.hidden) {
      return Promise.resolve();
    }
    var query = chartQuery();
    return fetch("/api/history?" + query, {headers: {Accept: "application/json"}})
      .then(function (r) {
        if (!r.ok) { throw new Error("/api/history: HTTP " + r.status); }
        return r.json();
      })
      .then(function (d) {
        holders.forEach(function (el) {
          var kind = el.dataset.chart, spec = SERIES[kind], data = [d.t], series = [{}];
          spec.forEach(function (s) {
            data.push(d[s[0]]);
            series.push({label: s[2] || s[0], stroke: s[1], width: 2,
                         spanGaps: kind !== "throughput",
                         points: {show: kind !== "throughput", size: 5}});
          });
          if (kind === "throughput") { el.dataset.total = d.total; }
          var old = plots[kind];
          if (old && old.query === query) { old.plot.setData(data); return; }
          if (old) { old.plot.destroy(); }
          el.textContent = "";
          plots[kind] = {query: query, plot: new uPlot({
            width: Math.max(el.clientWidth, 320), height: 220, series: series,
            scales: {x: {time: true}}, axes: [{}, {size: 60}]
          }, data, el)};
        });
      });
  }
  function text(v, fmt) {
    if (v === null || v === undefined) { return ""; }
    return fmts[fmt] ? fmts[fmt](v) : String(v);
  }
  function fill(table, rows) {
    var cols = JSON.parse(table.dataset.cols), body = document.createElement("tbody");
    var select = table.dataset.select, ticked = {};
    if (select) {
      table.querySelectorAll("tbody input[name=id]:checked").forEach(function (box) {
        ticked[box.value] = true;
      });
    }
    rows.forEach(function (row) {
      var tr = document.createElement("tr"), pick, box;
      if (table.dataset.bad && row[table.dataset.bad] > 0) { tr.className = "bad"; }
      if (select) {
        pick = document.createElement("td"); box = document.createElement("input");
        pick.className = "pick"; box.type = "checkbox"; box.name = "id";
        box.value = row.id; box.checked = !!ticked[row.id];
        box.setAttribute("form", select); box.setAttribute("aria-label", "select");
        pick.appendChild(box); tr.appendChild(pick);
      }
      cols.forEach(function (col) {
        var td = document.createElement("td"), t = text(row[col[0]], col[1]), a, bar;
        var href = !col[2] ? "" : col[2].charAt(0) === "@" ? row[col[2].slice(1)] || ""
          : col[2] + encodeURIComponent(row[col[0]]);
        if (col[1] === "reason") { td.className = "reason"; }
        if (col[1] === "bar" && t) {
          bar = document.createElement("progress");
          bar.max = 1; bar.value = row[col[0]];
          td.appendChild(bar);
          td.appendChild(document.createTextNode(" " + t));
        } else if (href) {
          a = document.createElement("a");
          a.href = href;
          a.textContent = t;
          td.appendChild(a);
        } else { td.textContent = t; }
        tr.appendChild(td);
      });
      body.appendChild(tr);
    });
    if (!rows.length) {
      var tr = document.createElement("tr"), td = document.createElement("td");
      td.colSpan = cols.length + (select ? 1 : 0); td.className = "empty";
      td.textContent = table.dataset.empty;
      tr.appendChild(td); body.appendChild(tr);
    }
    table.replaceChild(body, table.tBodies[0]);
  }
  function refresh() {
    var tables = Array.prototype.slice.call(document.querySelectorAll("table[data-live]"));
    var status = document.getElementById("live-status");
    if (!tables.length || document.hidden) { return Promise.resolve(); }
    return Promise.all([drawCharts()].concat(tables.map(function (table) {
      return fetch(table.dataset.live, {headers: {Accept: "application/json"}})
        .then(function (r) {
          if (!r.ok) { throw new Error(table.dataset.live + ": HTTP " + r.status); }
          return r.json();
        })
        .then(function (data) { fill(table, data[table.dataset.rows]); });
    }))).then(function () {
      status.textContent = "updated " + new Date().toLocaleTimeString();
    }, function (err) {
      status.textContent = "refresh failed: " + err.message;
    });
  }
  function loop() { refresh().then(function () { setTimeout(loop, REFRESH_MS); }); }
  localTimes();
  drawCharts().catch(function (err) {
    document.getElementById("live-status").textContent = "charts failed: " + err.message;
  });
  setTimeout(loop, REFRESH_MS);
  document.addEventListener("change", function (event) {
    var el = event.target;
    if (el.hasAttribute && el.hasAttribute("data-select-all")) {
      el.closest("table").querySelectorAll("tbody input[name=id]").forEach(function (box) {
        box.checked = el.checked;
      });
      return;
    }
    if (!el.dataset || !el.dataset.historyFilter) { return; }
    if (el.name === "range") {
      document.querySelectorAll("table[data-live]").forEach(function (t) {
        t.dataset.live = t.dataset.live.replace(/range=[^&]*/, "range=" + el.value);
      });
    }
    drawCharts();
  });
  document.addEventListener("submit", function (event) {
    var question = (event.submitter && event.submitter.dataset.confirm) ||
      event.target.dataset.confirm;
    if (question && !window.confirm(question)) { event.preventDefault(); }
  });
}());
""".replace("REFRESH_MS", str(REFRESH_MS))


def _sha256(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


CSP = "; ".join([
    "default-src 'self'",
    f"script-src 'self' '{_sha256(JS)}'",
    f"style-src 'self' '{_sha256(CSS)}'",
    "img-src 'self' data:",
    "form-action 'self'",
    "frame-ancestors 'none'",
    "base-uri 'none'",
])

#: Headers every HTML page carries (the CSP above; no MIME sniffing; not framable).
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
