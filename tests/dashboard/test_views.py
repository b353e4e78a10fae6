"""Every page and JSON endpoint against memory and sqlite: numbers, escaping, errors."""

from __future__ import annotations

import base64
import hashlib
import re
from urllib.parse import quote

import httpx
import pytest

from tests.dashboard.conftest import XSS, client_for
from workhive import Hive
from workhive.backend import WorkerInfo
from workhive.dashboard import create_app
from workhive.inspector import inspect_of
from workhive.testing import run_until_idle

ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"
PAGES = ["/", "/dead", "/cron", "/registrations"]


async def _dead_id(client: httpx.AsyncClient) -> str:
    (entry,) = (await client.get("/api/dead")).json()["dead_letters"]
    return str(entry["id"])


async def test_every_page_is_200_and_escaped(client: httpx.AsyncClient) -> None:
    dead_id = await _dead_id(client)
    for path in [*PAGES, f"/dead/{dead_id}"]:
        response = await client.get(path)
        assert response.status_code == 200, path
        assert response.headers["content-type"].startswith("text/html")
        body = response.text
        assert XSS not in body, path
        assert body.count("<script>") == 1, path  # only the dashboard's own script
    detail = (await client.get(f"/dead/{dead_id}")).text
    assert detail.count(ESCAPED) >= 4  # payload, reason, error heading, traceback
    assert "Attempt 1 at" in detail and "Attempt 2 at" in detail
    assert detail.count("Traceback (most recent call last)") == 2
    assert ESCAPED in (await client.get("/dead")).text  # the reason in the list


async def test_overview_shows_the_numbers(client: httpx.AsyncClient) -> None:
    body = (await client.get("/")).text
    # queue, ready, delayed, in-flight, dead, processed, failed
    assert ('<td><a href="/queues/fast">fast</a></td><td>0</td><td>0</td><td>0</td><td>0</td>'
            "<td>3</td><td>0</td>") in body
    assert ('<tr class="bad"><td><a href="/queues/default">default</a></td><td>0</td><td>0</td>'
            "<td>0</td><td>1</td><td>0</td><td>2</td>") in body
    assert "(no live workers)" in body
    assert "rates appear from the next refresh" in body


async def test_api_counts(client: httpx.AsyncClient) -> None:
    data = (await client.get("/api/queues")).json()
    queues = {q["queue"]: q for q in data["queues"]}
    assert queues["fast"]["processed"] == 3
    assert queues["default"]["dead"] == 1 and queues["default"]["failed"] == 2
    assert {"exports", "@mailer"} - set(queues) == {"exports"}  # flagged off: not consumed
    assert data["rate_interval_s"] is None and queues["fast"]["processed_per_s"] is None
    assert (await client.get("/api/workers")).json()["workers"] == []
    dead_id = await _dead_id(client)
    letter = (await client.get(f"/api/dead/{dead_id}")).json()
    assert letter["payload"] == {"note": XSS, "i": "0"}
    assert letter["attempts"] == 2 and letter["name"] == "demo:boom"
    assert [h["attempt"] for h in letter["history"]] == [0, 1]
    assert all("RuntimeError: refused" in h["traceback"] for h in letter["history"])
    assert (await client.get(f"/api/dead/{dead_id[:12]}")).json()["id"] == dead_id  # prefix
    (job,) = (await client.get("/api/cron")).json()["jobs"]
    assert job["schedule"] == "*/5 * * * *" and job["target"] == "publish demo.tick"
    regs = (await client.get("/api/registrations")).json()["registrations"]
    assert {(r["kind"], r["name"], r["enabled"]) for r in regs} >= {
        ("task", "demo:ok", True), ("task", "demo:export", False),
        ("subscriber", "users.created", True), ("cron", "demo:tick", True)}


async def test_cron_and_registrations_pages(client: httpx.AsyncClient) -> None:
    cron = (await client.get("/cron")).text
    assert "*/5 * * * *" in cron and "publish demo.tick" in cron
    regs = (await client.get("/registrations")).text
    assert "<td>demo:export</td><td>demo</td><td>queue exports</td><td>data_export</td>" \
           "<td>no (flag off)</td>" in regs


async def test_workers_show_heartbeats(hive: Hive, client: httpx.AsyncClient) -> None:
    info = WorkerInfo("w-1", "host-a", 42, ["fast", "default"], 8, 1000.0, 1000.0,
                      {"in_flight": 2, "processed": 17})
    await inspect_of(hive.backend, "test").heartbeat(info, 3600)
    (worker,) = (await client.get("/api/workers")).json()["workers"]
    assert (worker["id"], worker["in_flight"], worker["processed"]) == ("w-1", 2, 17)
    assert worker["heartbeat_age_s"] >= 0
    body = (await client.get("/")).text
    assert "<td>w-1</td><td>host-a</td><td>42</td><td>fast,default</td><td>8</td>" \
           "<td>2</td><td>17</td>" in body


async def test_replay_and_purge(backend_url: str) -> None:
    from tests.dashboard.conftest import build_hive, populate

    hive = build_hive(backend_url)
    await populate(hive, dead=3)
    async with client_for(hive) as client:
        first, second, third = [d["id"] for d in
                                (await client.get("/api/dead")).json()["dead_letters"]]
        page = await client.post(f"/dead/{first}/replay")  # the HTML form
        assert page.status_code == 303 and page.headers["location"] == "/dead?replayed=1"
        assert "Replayed 1 dead letter(s)." in (await client.get("/dead?replayed=1")).text
        assert (await client.post(f"/api/dead/{second}/purge")).json() == {"purged": 1}
        queues = {q["queue"]: q for q in (await client.get("/api/queues")).json()["queues"]}
        assert queues["default"]["ready"] == 1 and queues["default"]["dead"] == 1
        remaining = [d["id"] for d in (await client.get("/api/dead")).json()["dead_letters"]]
        assert remaining == [third]
        other = await client.post("/dead/replay-all", data={"queue": "fast"})
        assert other.headers["location"] == "/dead?replayed=0"  # the queue filter applies
        assert (await client.post("/api/dead/replay-all")).json() == {"replayed": 1}
        assert (await client.post("/api/dead/purge-all")).json() == {"purged": 0}
        assert "The dead-letter queue is empty." in (await client.get("/dead")).text
    await hive.close()


async def test_read_only_refuses_actions(hive: Hive, ro_client: httpx.AsyncClient) -> None:
    dead_id = await _dead_id(ro_client)
    for path in (f"/dead/{dead_id}/replay", f"/dead/{dead_id}/purge", "/dead/replay-all",
                 "/dead/purge-all"):
        html = await ro_client.post(path)
        assert html.status_code == 403 and "read-only" in html.text
        api = await ro_client.post("/api" + path)
        assert api.status_code == 403 and "read-only" in api.json()["error"]
    assert await _dead_id(ro_client) == dead_id  # still there
    for path in ("/", "/dead", f"/dead/{dead_id}", "/cron"):
        body = (await ro_client.get(path)).text
        assert 'method="post"' not in body and "(read-only)" in body, path


async def test_cross_site_post_is_refused(client: httpx.AsyncClient) -> None:
    refused = await client.post("/dead/purge-all", headers={"origin": "http://evil.example"})
    assert refused.status_code == 403 and "cross-site" in refused.text
    refused = await client.post("/dead/purge-all", headers={"sec-fetch-site": "cross-site"})
    assert refused.status_code == 403
    assert len((await client.get("/api/dead")).json()["dead_letters"]) == 1
    same = await client.post("/dead/purge-all", headers={"origin": "http://testserver",
                                                         "sec-fetch-site": "same-origin"})
    assert same.status_code == 303


async def test_unknown_dead_letter_is_404(client: httpx.AsyncClient) -> None:
    api = await client.get("/api/dead/nope")
    assert api.status_code == 404
    assert api.json() == {"error": "no dead letter with id 'nope' (it may have been replayed "
                                   "or purged already)"}
    html = await client.get("/dead/%3Cb%3Enope")
    assert html.status_code == 404 and "no dead letter with id &#x27;&lt;b&gt;nope" in html.text
    assert (await client.post("/api/dead/nope/replay")).status_code == 404
    assert (await client.get("/api/dead?limit=x")).status_code == 400


async def test_csp_allows_exactly_the_inline_script(client: httpx.AsyncClient) -> None:
    response = await client.get("/")
    csp = response.headers["content-security-policy"]
    for tag in ("script", "style"):
        match = re.search(f"<{tag}>(.*?)</{tag}>", response.text, re.S)
        assert match is not None
        digest = base64.b64encode(hashlib.sha256(match.group(1).encode()).digest()).decode()
        assert f"{tag}-src 'self' 'sha256-{digest}'" in csp  # 'self': the chart library
    assert response.headers["x-frame-options"] == "DENY"


@pytest.mark.parametrize("path", ["/dead", "/api/dead", "/"])
async def test_backend_without_the_capability(path: str) -> None:
    hive = Hive("noop://")
    async with client_for(hive) as client:
        response = await client.get(path)
    assert response.status_code == 501
    assert "CapabilityError" in response.text and "noop" in response.text
    await hive.close()


async def test_event_dead_letter_ids_with_at_sign(hive: Hive, client: httpx.AsyncClient) -> None:
    await hive.publish("users.deleted", {"id": "9"})
    await run_until_idle(hive)
    (event,) = [d for d in (await client.get("/api/dead")).json()["dead_letters"]
                if d["kind"] == "event"]
    assert event["id"].endswith("@audit") and event["queue"] == "@audit"
    listing = (await client.get("/dead")).text
    assert f'href="/dead/{quote(event["id"], safe="")}"' in listing
    assert (await client.get(f"/dead/{quote(event['id'], safe='')}")).status_code == 200
    replayed = await client.post(f"/api/dead/{quote(event['id'], safe='')}/replay")
    assert replayed.json() == {"replayed": 1}


async def test_dead_letter_pages(backend_url: str) -> None:
    from tests.dashboard.conftest import build_hive, populate

    hive = build_hive(backend_url)
    await populate(hive, dead=3)
    async with client_for(hive) as client:
        full = (await client.get("/dead?limit=2&queue=default")).text
        assert 'href="/dead?offset=2&amp;limit=2&amp;queue=default">next page' in full
        last = await client.get("/api/dead?offset=2&limit=2")
        assert len(last.json()["dead_letters"]) == 1
        assert "next page" not in (await client.get("/dead?offset=2&limit=2")).text
    await hive.close()


async def test_allowed_hosts_refuse_a_rebinding_name(hive: Hive) -> None:
    app = create_app(hive, allowed_hosts=["127.0.0.1", "localhost"])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8181") as c:
        assert (await c.get("/api/queues")).status_code == 200
        rebound = await c.get("/api/queues", headers={"host": "evil.example:8181"})
        assert rebound.status_code == 400
