"""The dashboard over HTTP: the real app on port 0, signed in as the console signs in (dev mode)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from bot.dashboard.dag import Node, layout, nodes_from, render_svg
from bot.dashboard.queries import RunFilter, runs_page
from bot.process import App, start_app, stop_app
from engine.loader import load_text
from tests.fakes.oidc_provider import FakeOidc
from tests.helpers import eventually
from tests.test_console_api import Client, console_settings, write_workflows
from tests.test_web_auth_oidc import oidc_settings

FANOUT = """
name: fanout
steps:
  list:
    run: ["python3", "-c", "print('listed')"]
  each:
    needs: [list]
    for_each: [1, 2, 3]
    run: ["python3", "-c", "print('item')"]
  broken:
    needs: [list]
    run: ["python3", "-c", "import sys; print('bad', file=sys.stderr); sys.exit(3)"]
"""

ASK = """
name: ask
steps:
  build:
    run: ["python3", "-c", "print('built')"]
  sign_off:
    needs: [build]
    approval:
      title: "Ship it?"
      approvers: ["console:carol"]
  ship:
    needs: [sign_off]
    run: ["python3", "-c", "print('shipped')"]
"""


@pytest.fixture
async def app(tmp_path: Path, workflows_dir: Path, db_url: str) -> AsyncIterator[App]:
    write_workflows(workflows_dir)
    (workflows_dir / "fanout.yaml").write_text(FANOUT)
    (workflows_dir / "ask.yaml").write_text(ASK)
    settings = console_settings(tmp_path, workflows_dir).model_copy(update={"database_url": db_url})
    started = await start_app(settings)
    yield started
    await stop_app(started, grace=1.0, flush=1.0)


@pytest.fixture
async def http(app: App) -> AsyncIterator[Client]:
    async with Client(app.url) as client:
        yield client


async def finished_run(app: App, http: Client, text: str) -> str:
    await http.command(text)

    async def done() -> str | None:
        runs = await app.runtime.store.list_runs(limit=1)
        return runs[0].id if runs and runs[0].status in ("succeeded", "failed") else None

    return await eventually(done)


async def test_runs_list_and_a_run_page(app: App, http: Client) -> None:
    deployed = await finished_run(app, http, "/workflow run deploy service=api")
    failed = await finished_run(app, http, "/workflow run fanout")
    session = await http.session("alice")

    async with session.get("/dashboard") as res:
        assert res.status == 200
        assert "script-src 'self'" in res.headers["Content-Security-Policy"]
        page = await res.text()
    assert '<meta name="viewport"' in page and "Signed in as <strong>alice</strong>" in page
    rows = re.findall(r'<tr data-run="([^"]+)"', page)
    assert rows == [failed, deployed]  # newest first

    async with session.get("/dashboard", params={"status": "failed"}) as res:
        assert re.findall(r'<tr data-run="([^"]+)"', await res.text()) == [failed]
    async with session.get("/dashboard", params={"workflow": "deploy"}) as res:
        assert re.findall(r'<tr data-run="([^"]+)"', await res.text()) == [deployed]
    async with session.get("/dashboard", params={"status": "nope"}) as res:
        assert res.status == 400 and "There is no run status" in await res.text()
    async with session.get("/dashboard", params={"by": "alice", "since": "2000-01-01"}) as res:
        assert re.findall(r'<tr data-run="([^"]+)"', await res.text()) == [failed, deployed]
    for params in ({"by": "bob"}, {"since": "2999-01-01"}):
        async with session.get("/dashboard", params=params) as res:
            assert "No runs match these filters" in await res.text()
    async with session.get("/dashboard", params={"since": "yesterday"}) as res:
        assert res.status == 400 and "must be a date such as" in await res.text()

    async with session.get(f"/dashboard/runs/{failed}") as res:
        assert res.status == 200
        page = await res.text()
    assert '<svg class="dag"' in page
    assert re.search(r'class="dag__node dag__node--succeeded" data-step="list"', page)
    assert re.search(r'class="dag__node dag__node--failed" data-step="broken"', page)
    assert "succeeded 3/3" in page  # the fan-out is one node with its count
    assert page.count('class="dag__edge"') == 2
    assert "run_finished" in page  # the events timeline
    assert '<a href="/#ops">#ops in the console</a>' in page  # where its card and thread are
    assert 'href="#step-broken"' in page and 'id="step-broken"' in page  # a node links to its row
    assert re.search(r"Last lines of stderr:</p><pre class=\"stderr\">bad</pre>", page)

    async with session.get(f"/dashboard/runs/{failed[:8]}/state") as res:
        state = await res.json()
    assert state["finished"] is True and state["status"] == "failed"
    assert state["nodes"]["each"] == {"status": "succeeded", "label": "succeeded 3/3", "items": "3/3"}
    assert "3/3 items" in state["steps"]
    assert "broken" in state["steps"]

    async with session.get("/dashboard/runs/doesnotexist") as res:
        assert res.status == 404 and "No run" in await res.text()


async def test_a_run_waiting_for_approval(app: App, http: Client) -> None:
    await http.command("/workflow run ask")

    async def waiting() -> str | None:
        runs = await app.runtime.store.list_runs(limit=1)
        return runs[0].id if runs and runs[0].status == "waiting" else None

    run_id = await eventually(waiting)
    session = await http.session("bob")
    async with session.get(f"/dashboard/runs/{run_id}/state") as res:
        state = await res.json()
    assert state["finished"] is False
    assert state["nodes"]["sign_off"]["status"] == "waiting"
    assert "ship" not in state["nodes"]  # not started: drawn as pending
    assert "Ship it?" in state["approvals"] and "console:carol" in state["approvals"]
    async with session.get(f"/dashboard/runs/{run_id}") as res:
        page = await res.text()
    assert 'class="dag__node dag__node--pending" data-step="ship"' in page
    assert 'data-finished="false"' in page  # the page keeps polling


async def test_sign_in_is_the_consoles(app: App) -> None:
    async with aiohttp.ClientSession(app.url, cookie_jar=aiohttp.CookieJar(unsafe=True)) as anon:
        async with anon.get("/dashboard") as res:
            assert res.status == 401
            assert 'id="dev-sign-in"' in await res.text()
        async with anon.get("/dashboard/runs/x/state") as res:
            assert res.status == 401
        async with anon.get("/dashboard", headers={"Host": "evil.example:80"}) as res:
            assert res.status == 403  # dev mode answers only at a loopback name
        async with anon.post("/auth/dev", json={"user": "bob"}) as res:
            assert res.status == 200
        async with anon.get("/dashboard") as res:
            assert res.status == 200 and "Signed in as <strong>bob</strong>" in await res.text()


async def test_pages_of_runs(app: App, http: Client) -> None:
    for _ in range(3):
        await finished_run(app, http, "/workflow run fanout")
    first = await runs_page(app.engine, 1, RunFilter(), size=2)
    second = await runs_page(app.engine, 2, RunFilter(), size=2)
    assert len(first.lines) == 2 and first.more
    assert len(second.lines) == 1 and not second.more
    assert {r.id for r in first.lines}.isdisjoint(r.id for r in second.lines)
    assert first.workflows == ["fanout"]
    session = await http.session("alice")
    async with session.get("/dashboard", params={"workflow": "fanout", "page": "1"}) as res:
        page = await res.text()
    assert "Older runs" not in page  # 25 a page: three runs fit
    async with session.get("/dashboard", params={"page": "0"}) as res:
        assert res.status == 400


def test_the_svg_is_drawn_from_needs() -> None:
    workflow = load_text(FANOUT, "fanout.yaml").spec
    placed = {p.step_id: p for p in layout(workflow.steps)}
    assert placed["list"].x < placed["each"].x == placed["broken"].x
    nodes = nodes_from(
        [("list", None, "succeeded", None), ("each", None, "running", 3), ("each", 0, "succeeded", None)]
    )
    assert nodes["each"] == Node("running", 1, 3) and nodes["each"].label == "running 1/3"
    svg = render_svg(workflow.steps, nodes, "fanout <run>")
    assert "fanout &lt;run&gt;" in svg and 'data-step="broken"' in svg
    assert "dag__node--pending" in svg  # a step with no row yet


async def test_off_without_the_console(tmp_path: Path, workflows_dir: Path) -> None:
    # No console, no sign-in routes; and dev sign-in on a network bind, which nothing else refuses here.
    settings = console_settings(tmp_path, workflows_dir).model_copy(
        update={"console": False, "host": "0.0.0.0"}
    )
    started = await start_app(settings)
    try:
        async with aiohttp.ClientSession(f"http://127.0.0.1:{started.port}") as anon:
            async with anon.get("/dashboard") as res:
                assert res.status == 404
            async with anon.get("/healthz") as res:
                assert res.status == 200
    finally:
        await stop_app(started, grace=1.0, flush=1.0)


async def test_with_a_provider_it_sends_you_to_sign_in(tmp_path: Path, workflows_dir: Path) -> None:
    async with FakeOidc() as idp:
        started = await start_app(oidc_settings(tmp_path, workflows_dir, idp))
        try:
            async with aiohttp.ClientSession(started.url) as anon:
                async with anon.get("/dashboard", allow_redirects=False) as res:
                    assert res.status == 302 and res.headers["Location"] == "/auth/login"
                async with anon.get("/dashboard/runs/x/state") as res:
                    assert res.status == 401 and "sign in at /auth/login" in (await res.json())["error"]
        finally:
            await stop_app(started, grace=1.0, flush=1.0)
