"""The dashboard's Runners page: registered runners with their labels, version, state, the jobs they hold
and when they were last heard from, read from a real database, in a real browser at a desktop's and a
phone's width."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, expect

from bot.process import App, start_app, stop_app
from tests.accessibility import serious_violations
from tests.helpers import eventually
from tests.test_console import browser
from tests.test_console_api import Client, write_workflows
from tests.test_console_conversations import settings
from tests.test_dashboard_browser import LOW_CONTRAST
from tests.test_dashboard_pages import signed_in

__all__ = ["browser"]  # the console harness's fixture, used by name below

REMOTE = "name: remote\nsteps:\n  deploy: {runs_on: [deploy], run: ['./deploy.sh']}\n"
LONELY = "name: lonely\nsteps:\n  train: {runs_on: [gpu, big], run: ['./train.sh']}\n"


@pytest.fixture
async def app(tmp_path: Path, workflows_dir: Path) -> AsyncIterator[App]:
    write_workflows(workflows_dir)
    (workflows_dir / "remote.yaml").write_text(REMOTE)
    (workflows_dir / "lonely.yaml").write_text(LONELY)
    started = await start_app(settings(tmp_path, workflows_dir, None))
    yield started
    await stop_app(started, grace=1.0, flush=1.0)


async def runners_and_jobs(app: App) -> str:
    """Three runners (busy, idle, offline), one job leased and one waiting; the busy job's run id."""
    rt = app.runtime
    now = rt.clock()
    build = await rt.runners.register(
        "build-7", "t1", frozenset({"deploy", "linux"}), "0.4.0", "ci-1", 2, now
    )
    await rt.runners.register("spare-2", "t2", frozenset({"deploy"}), "0.4.0", "ci-2", 1, now - 1)
    old = await rt.runners.register("old-1", "t3", frozenset({"arm"}), "0.3.9", "pi", 1, now - 900)
    await rt.runners.seen(old.id, 0, now - 900)
    async with Client(app.url) as http:
        await http.command("/workflow run remote")
        await http.command("/workflow run lonely")

    async def two_queued() -> bool:
        return (await rt.jobs.counts()).get("queued", 0) == 2

    await eventually(two_queued, 30, "both jobs to be queued")
    job = await rt.jobs.claim(build.id, build.name, frozenset(build.labels), 2, rt.clock(), 600.0)
    assert job is not None and job.step == "deploy"
    return job.run_id


@pytest.mark.parametrize("width", [1440, 390])
async def test_the_runners_page_in_a_browser(app: App, browser: Browser, tmp_path: Path, width: int) -> None:
    run_id = await runners_and_jobs(app)
    problems: list[str] = []
    folder = Path(os.environ.get("DASHBOARD_SCREENSHOTS", tmp_path))
    context, page = await signed_in(browser, f"{app.url}/dashboard", "alice", width, problems)
    try:
        await page.locator("nav a", has_text="Runners").click()  # linked from every page's menu
        await expect(page.locator("h1")).to_have_text("Runners")
        build = page.locator('[data-runner="build-7"]')
        await expect(build.locator('[data-label="Labels"]')).to_have_text("deploy, linux")
        await expect(build.locator('[data-label="Version"]')).to_have_text("0.4.0")
        await expect(build.locator('[data-label="Host"]')).to_have_text("ci-1")
        await expect(build.locator("[data-state]")).to_have_text("busy 1/2")
        held = build.locator('[data-label="Jobs running"] a')
        await expect(held).to_have_text(run_id[:8])
        assert await held.get_attribute("href") == f"/dashboard/runs/{run_id}"
        await expect(build.locator('[data-label="Jobs running"]')).to_contain_text("deploy, for")
        await expect(build.locator('[data-label="Last seen"]')).to_contain_text("UTC")
        await expect(page.locator('[data-runner="spare-2"] [data-state]')).to_have_text("idle")
        await expect(page.locator('[data-runner="spare-2"] [data-label="Jobs running"]')).to_have_text("none")
        await expect(page.locator('[data-runner="old-1"] [data-state]')).to_have_text("offline")
        await expect(page.locator('[data-runner="old-1"] [data-label="Last seen"]')).to_contain_text("15 min")
        names = await page.locator("[data-runner]").evaluate_all("rows => rows.map(r => r.dataset.runner)")
        assert names == ["build-7", "spare-2", "old-1"]  # most recently heard from first
        await expect(page.locator('[data-figure="waiting"]')).to_have_text("1")
        await expect(page.locator('[data-figure="running"]')).to_have_text("1")
        await expect(page.locator('[data-figure="lost"]')).to_have_text("0")
        await page.screenshot(path=str(folder / f"runners-{width}.png"), full_page=True)
        assert await serious_violations(page) == []
        assert await page.evaluate(LOW_CONTRAST) == []
        assert await page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0
        await held.click()
        await expect(page).to_have_url(f"{app.url}/dashboard/runs/{run_id}")
    finally:
        await context.close()
    assert problems == []


async def test_no_runners_yet_says_how_to_start_one(app: App) -> None:
    async with Client(app.url) as http:
        alice = await http.session("alice")
        async with alice.get("/dashboard/runners") as res:
            assert res.status == 200
            page = await res.text()
    assert "No runner was heard from in the last hour" in page
    assert "switchboard runner --url URL --token TOKEN --labels LABEL" in page
    assert 'href="/dashboard/runners"' in page
