"""The dashboard's run buttons over HTTP: chat's permissions, the CSRF token, the action log."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from playwright.async_api import Browser, expect

from bot.process import App, start_app, stop_app
from bot.storage.tables import action_log
from tests.accessibility import serious_violations
from tests.helpers import eventually
from tests.test_console import browser
from tests.test_console_api import Client, console_settings, write_workflows

__all__ = ["browser"]  # the console harness's fixture, used by name below

# Fails until the flag file exists; then a retry succeeds. Only release managers may run (and retry) it;
# rollback is for the eng directors.
FLAKY = """
name: flaky
permissions: {{run: ["group:release-managers"], rollback: ["group:eng-directors"]}}
steps:
  prepare:
    run: ["python3", "-c", "print('ready')"]
    compensate:
      run: ["python3", "-c", "print('undone')"]
  check:
    needs: [prepare]
    run: ["python3", "-c", "import os, sys\\nif not os.path.exists({flag!r}): sys.exit('not yet: no flag')"]
"""


@pytest.fixture
async def app(tmp_path: Path, workflows_dir: Path) -> AsyncIterator[App]:
    write_workflows(workflows_dir)
    (workflows_dir / "flaky.yaml").write_text(FLAKY.format(flag=str(tmp_path / "flag")))
    started = await start_app(console_settings(tmp_path, workflows_dir))
    yield started
    await stop_app(started, grace=1.0, flush=1.0)


async def status_of(app: App, run_id: str, *wanted: str) -> str:
    async def reached() -> str | None:
        row = await app.runtime.store.run_row(run_id)
        return row.status if row is not None and row.status in wanted else None

    return await eventually(reached)


async def test_retry_cancel_and_rollback_under_chats_rules(app: App, tmp_path: Path) -> None:
    async with Client(app.url) as http:
        await http.command("/workflow run flaky", user="alice")
        run_id = (await eventually(lambda: app.runtime.store.list_runs(limit=1)))[0].id
        await status_of(app, run_id, "failed")
        alice, alice_csrf = await http.sign_in("alice")
        erin, erin_csrf = await http.sign_in("erin")
        carol, carol_csrf = await http.sign_in("carol")

        async with alice.get(f"/dashboard/runs/{run_id}") as res:
            page = await res.text()
        assert 'data-steer="retry"' in page and 'data-steer="rollback"' in page  # the starter may
        assert 'data-steer="cancel"' not in page  # it has finished
        assert '<meta name="csrf-token" content="' + alice_csrf + '">' in page
        async with erin.get(f"/dashboard/runs/{run_id}") as res:
            page = await res.text()
        assert "data-steer" not in page and "Nothing you may do to this run now." in page

        # No token, a wrong one, or a form post: refused before anything happens.
        async with alice.post(f"/dashboard/runs/{run_id}/retry", json={}) as res:
            assert res.status == 403 and "X-CSRF-Token" in (await res.json())["error"]
        async with alice.post(
            f"/dashboard/runs/{run_id}/retry", json={}, headers={"X-CSRF-Token": erin_csrf}
        ) as res:
            assert res.status == 403
        async with alice.post(
            f"/dashboard/runs/{run_id}/retry", data="a=1", headers={"X-CSRF-Token": alice_csrf}
        ) as res:
            assert res.status == 400 and "JSON" in (await res.json())["error"]

        # erin is no release manager: refused, naming who may, as in chat.
        async with erin.post(
            f"/dashboard/runs/{run_id}/retry", json={}, headers={"X-CSRF-Token": erin_csrf}
        ) as res:
            assert res.status == 403
            assert (await res.json())["error"] == (
                "You may not run runs of flaky. Allowed: its starter, admins, group:release-managers."
            )
        async with alice.post(
            f"/dashboard/runs/{run_id}/launch", json={}, headers={"X-CSRF-Token": alice_csrf}
        ) as res:
            assert res.status == 404

        (tmp_path / "flag").write_text("go")
        async with alice.post(
            f"/dashboard/runs/{run_id[:8]}/retry", json={}, headers={"X-CSRF-Token": alice_csrf}
        ) as res:
            assert res.status == 200, await res.text()
            assert (await res.json())["message"] == f"Retrying the failed steps of run {run_id}."
        await status_of(app, run_id, "succeeded")

        async with alice.post(
            f"/dashboard/runs/{run_id}/cancel", json={}, headers={"X-CSRF-Token": alice_csrf}
        ) as res:
            assert res.status == 409 and "nothing to cancel" in (await res.json())["error"]
        async with carol.post(
            f"/dashboard/runs/{run_id}/rollback", json={}, headers={"X-CSRF-Token": carol_csrf}
        ) as res:
            assert res.status == 200 and "Rolling back" in (await res.json())["message"]
        await status_of(app, run_id, "compensated")

        # A long run the starter cancels from the page.
        await http.command("/workflow run migrate", user="bob")
        slow = (await eventually(lambda: app.runtime.store.list_runs(limit=1)))[0].id
        await status_of(app, slow, "running")
        bob, bob_csrf = await http.sign_in("bob")
        async with bob.get(f"/dashboard/runs/{slow}/state") as res:
            assert 'data-steer="cancel"' in (await res.json())["actions"]
        async with bob.post(
            f"/dashboard/runs/{slow}/cancel", json={}, headers={"X-CSRF-Token": bob_csrf}
        ) as res:
            assert res.status == 200
        await status_of(app, slow, "cancelled")

    async with app.engine.connect() as conn:
        logged = (
            await conn.execute(
                sa.select(action_log.c.actor, action_log.c.detail, action_log.c.outcome)
                .where(action_log.c.kind == "dashboard")
                .order_by(action_log.c.id)
            )
        ).all()
    assert [(a, o) for a, _, o in logged] == [
        ("console:alice", "BadInput"),
        ("console:erin", "NotPermitted"),
        ("console:alice", "NotFound"),
        ("console:alice", "ok"),
        ("console:alice", "Conflict"),
        ("console:carol", "ok"),
        ("console:bob", "ok"),
    ]
    assert logged[3].detail == {"retry": run_id[:8]}


@pytest.mark.parametrize("width", [1440, 390])
async def test_a_failed_step_retried_from_the_page_goes_green(
    app: App, browser: Browser, tmp_path: Path, width: int
) -> None:
    async with Client(app.url) as http:
        await http.command("/workflow run flaky", user="alice")
    run_id = (await eventually(lambda: app.runtime.store.list_runs(limit=1)))[0].id
    await status_of(app, run_id, "failed")

    context = await browser.new_context(viewport={"width": width, "height": 900})
    page = await context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on(
        "console", lambda m: problems.append(m.text) if m.type == "error" and "401" not in m.text else None
    )
    try:
        await page.goto(f"{app.url}/dashboard")  # signs in as alice, the first console user
        await expect(page.locator(f'tr[data-run="{run_id}"] .badge')).to_have_text("failed")
        await page.locator(f'tr[data-run="{run_id}"] a').click()
        check = page.locator('.dag__node[data-step="check"]')
        await expect(check).to_have_class("dag__node dag__node--failed")
        await expect(page.locator("#step-check pre.stderr")).to_have_text("not yet: no flag")
        await expect(page.locator("[data-steer]")).to_have_text(["Retry failed steps", "Roll back"])
        assert await serious_violations(page) == []

        (tmp_path / "flag").write_text("go")
        await page.get_by_role("button", name="Retry failed steps").click()
        await expect(page.locator("#action-result")).to_have_text(
            f"Retrying the failed steps of run {run_id}."
        )
        await expect(check).to_have_class("dag__node dag__node--succeeded")
        await expect(page.locator("#run-status")).to_have_text("succeeded")
        await expect(page.locator("#steps tr[data-key=check] .badge")).to_have_text("succeeded")
        await expect(page.locator("[data-steer]")).to_have_text(["Roll back"])

        page.once("dialog", lambda dialog: dialog.accept())  # "Roll back: are you sure?"
        await page.get_by_role("button", name="Roll back").click()
        await expect(page.locator("#run-status")).to_have_text("compensated")
        await expect(page.locator("#actions")).to_contain_text("Nothing you may do to this run now.")
    finally:
        await context.close()
    assert problems == []
