"""The dashboard's approvals, conversations and workflows pages: over HTTP, then in a real browser at a
desktop's and a phone's width, where a decision is made from the page."""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from playwright.async_api import Browser, BrowserContext, Page, expect

from bot.dashboard.workflows_page import percentile
from bot.process import App, start_app, stop_app
from bot.storage.tables import approval_audit
from tests.accessibility import serious_violations
from tests.helpers import eventually
from tests.test_console import browser
from tests.test_console_api import Client, write_workflows
from tests.test_console_conversations import settings
from tests.test_dashboard_browser import LOW_CONTRAST

__all__ = ["browser"]  # the console harness's fixture, used by name below

# Two release managers must approve, and the starter may not be one of them.
SHIP = """
name: ship
description: Ship with two sign-offs
inputs:
  version: {type: string, required: true, description: What to ship}
permissions: {run: ["group:release-managers"]}
steps:
  sign_off:
    approval:
      title: "Ship ${{ inputs.version }}?"
      approvers: ["group:release-managers", "user:carol"]
      required: 2
      allow_self_approval: false
      timeout: 4h
  go:
    needs: [sign_off]
    run: ["python3", "-c", "print('shipped')"]
"""


# A form approval that can also send the work back: the page shows its fields and "Request changes".
CHANGE = """
name: change
permissions: {run: ["group:release-managers"]}
steps:
  plan:
    run: ["python3", "-c", "print('planned')"]
  ask:
    needs: [plan]
    approval:
      title: "Run the change?"
      approvers: ["group:release-managers"]
      revise: plan
      kind: form
      form:
        window: {type: string, required: true, description: "When to run it"}
        level: {type: enum, enum: [low, high], required: true}
  after:
    needs: [ask]
    run: ["python3", "-c", "print('changed')"]
"""


@pytest.fixture
async def app(tmp_path: Path, workflows_dir: Path) -> AsyncIterator[App]:
    write_workflows(workflows_dir)
    (workflows_dir / "ship.yaml").write_text(SHIP)
    (workflows_dir / "change.yaml").write_text(CHANGE)
    started = await start_app(settings(tmp_path, workflows_dir, None))  # no LLM: DMs go to the queue
    yield started
    await stop_app(started, grace=1.0, flush=1.0)


async def waiting_run(app: App, http: Client, user: str = "alice") -> str:
    await http.command("/workflow run ship version=v1.2", user=user)

    async def waiting() -> str | None:
        found = await app.runtime.store.list_runs(limit=1)
        return found[0].id if found and found[0].status == "waiting" else None

    return await eventually(waiting)


def approval_ids(page: str, section: str) -> list[str]:
    """The request ids listed under one heading (``mine`` or ``others``)."""
    part = page.split(f'id="{section}-heading"', 1)[1].split("</section>", 1)[0]
    return re.findall(r'data-approval="([^"]+)"', part)


async def test_approvals_for_me_and_for_others_decided_under_chats_rules(app: App) -> None:
    async with Client(app.url) as http:
        run_id = await waiting_run(app, http)
        (request,) = await app.runtime.approvals.pending(run_id)
        pages = {}
        for user in ("alice", "bob", "erin", "carol"):
            session = await http.session(user)
            async with session.get("/dashboard/approvals") as res:
                assert res.status == 200
                pages[user] = await res.text()
        assert approval_ids(pages["alice"], "mine") == [] and approval_ids(pages["alice"], "others") == [
            request.id
        ]  # she started the run: no self-approval
        assert approval_ids(pages["bob"], "mine") == [request.id]
        assert approval_ids(pages["erin"], "mine") == []  # not an approver
        assert "0 of 2 needed" in pages["bob"] and "Ship v1.2?" in pages["bob"]
        assert re.search(r"<dt>Deadline</dt><dd><time>[^<]+</time>, in 3 h 59 min", pages["bob"])
        assert 'data-decide="' + request.id + '"' in pages["bob"]
        assert "data-decide" not in pages["alice"]

        bob, bob_csrf = await http.sign_in("bob")
        alice, alice_csrf = await http.sign_in("alice")
        url = f"/dashboard/approvals/{request.id}/decide"
        async with bob.post(url, json={"decision": "approve"}) as res:
            assert res.status == 403  # no CSRF token
        async with alice.post(url, json={"decision": "approve"}, headers={"X-CSRF-Token": alice_csrf}) as res:
            assert res.status == 403
            assert "started" in (await res.json())["error"]  # self-approval refused, as in chat
        async with bob.post(url, json={"decision": "maybe"}, headers={"X-CSRF-Token": bob_csrf}) as res:
            assert res.status == 400 and "approve, reject" in (await res.json())["error"]
        body = {"decision": "approve", "comment": "looks good"}
        async with bob.post(url, json=body, headers={"X-CSRF-Token": bob_csrf}) as res:
            assert res.status == 200, await res.text()
            first = (await res.json())["message"]
        assert "1 of 2" in first
        async with bob.post(url, json=body, headers={"X-CSRF-Token": bob_csrf}) as res:
            repeated = await res.json()
        assert res.status in (200, 409) and "already" in (repeated.get("message") or repeated["error"])
        async with bob.get("/dashboard/approvals") as res:
            page = await res.text()
        assert approval_ids(page, "others") == [request.id] and "1 of 2 needed" in page

        carol, carol_csrf = await http.sign_in("carol")
        async with carol.post(url, json={"decision": "approve"}, headers={"X-CSRF-Token": carol_csrf}) as res:
            assert res.status == 200, await res.text()

        async def done() -> bool:
            row = await app.runtime.store.run_row(run_id)
            return row is not None and row.status == "succeeded"

        await eventually(done)

    async with app.engine.connect() as conn:
        audit = (
            await conn.execute(
                sa.select(approval_audit.c.actor, approval_audit.c.action, approval_audit.c.source)
                .where(approval_audit.c.approval_id == request.id)
                .order_by(approval_audit.c.id)
            )
        ).all()
    actions = [(a.actor, a.action, a.source) for a in audit]
    assert ("console:bob", "approve", "dashboard") in actions
    assert ("console:carol", "approve", "dashboard") in actions
    assert any(a[0] == "console:alice" and a[1] == "denied" for a in actions)


async def test_the_queue_and_its_figures_are_for_agents(app: App) -> None:
    async with Client(app.url) as http:
        await http.command("/agent on billing", user="dave")
        await http.post("/api/message", {"channel": "@erin", "text": "my invoice is wrong"}, user="erin")

        async def queued() -> bool:
            return bool(await app.conversations.store.pending()) if app.conversations else False

        await eventually(queued)
        dave = await http.session("dave")
        async with dave.get("/dashboard/conversations") as res:
            assert res.status == 200
            page = await res.text()
        assert len(re.findall(r"<tr data-conversation=", page)) == 1 and ">erin<" in page
        assert re.search(
            r'data-agent="dave"><strong>dave</strong> \(console\): <span[^>]*>on duty</span> holding 0', page
        )
        assert re.search(r'data-figure="conversations">1 \(0 closed\)', page)
        assert re.search(r'data-figure="handover_rate">100%', page)
        assert 'href="/dashboard/conversations"' in page  # in dave's menu

        bob = await http.session("bob")
        async with bob.get("/dashboard/conversations") as res:
            assert res.status == 403
            assert (
                "Only agents see the queue and the conversation figures. Agents: group:agents."
                in await res.text()
            )
        async with bob.get("/dashboard") as res:
            assert 'href="/dashboard/conversations"' not in await res.text()


async def test_workflows_with_who_may_run_them_and_their_figures(app: App) -> None:
    async with Client(app.url) as http:
        await http.command("/workflow run deploy service=api", user="erin")

        async def finished() -> bool:
            found = await app.runtime.store.list_runs(limit=1)
            return bool(found) and found[0].status == "succeeded"

        await eventually(finished)
        erin = await http.session("erin")
        async with erin.get("/dashboard/workflows") as res:
            page = await res.text()
        names = re.findall(r'data-workflow="([^"]+)"', page)
        assert names == ["deploy", "migrate"]  # ship is for release managers only, as /workflow list
        deploy = page.split('data-workflow="deploy"', 1)[1].split("</section>", 1)[0]
        assert "<dt>Who may run it</dt><dd>everyone</dd>" in deploy
        assert "<code>service</code>: string, required — Service to deploy" in deploy
        assert re.search(r'data-figure="success">100 % of 1<', deploy)
        assert re.search(r'data-figure="durations">[\d.]+ s / [\d.]+ s / [\d.]+ s<', deploy)
        assert deploy.count('<span class="badge badge--succeeded">') == 1

        bob = await http.session("bob")
        async with bob.get("/dashboard/workflows") as res:
            page = await res.text()
        assert re.findall(r'data-workflow="([^"]+)"', page) == ["change", "deploy", "migrate", "ship"]
        assert "<dt>Who may run it</dt><dd>group:release-managers</dd>" in page


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 50), percentile(values, 90), percentile(values, 99)) == (50.0, 90.0, 99.0)
    assert percentile([3.0], 90) == 3.0 and percentile([], 50) is None


@pytest.mark.parametrize("width", [1440, 390])
async def test_deciding_from_the_approvals_page(
    app: App, browser: Browser, tmp_path: Path, width: int
) -> None:
    async with Client(app.url) as http:
        run_id = await waiting_run(app, http)
        (request,) = await app.runtime.approvals.pending(run_id)
        await http.command("/agent on", user="dave")

    problems: list[str] = []
    folder = Path(os.environ.get("DASHBOARD_SCREENSHOTS", tmp_path))
    context, page = await signed_in(browser, f"{app.url}/dashboard/approvals", "bob", width, problems)
    try:
        card = page.locator(f'#mine-heading ~ ul [data-approval="{request.id}"]')
        await expect(card).to_contain_text("0 of 2 needed")
        await page.screenshot(path=str(folder / f"approvals-{width}.png"), full_page=True)
        assert await serious_violations(page) == []
        assert await page.evaluate(LOW_CONTRAST) == []
        await card.get_by_label("Comment (optional)").fill("ok by me")
        await card.get_by_role("button", name="Approve").click()
        await expect(page.locator("#decide-result")).to_contain_text("1 of 2")
        others = page.locator(f'#others-heading ~ ul [data-approval="{request.id}"]')
        await expect(others).to_contain_text("1 of 2 needed")  # the list refreshed itself
        assert await page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0

        await page.locator("nav a", has_text="Workflows").click()
        await expect(page.locator('[data-workflow="ship"]')).to_contain_text("group:release-managers")
        await page.screenshot(path=str(folder / f"workflows-{width}.png"), full_page=True)
        assert await serious_violations(page) == []
        assert await page.evaluate(LOW_CONTRAST) == []
        assert await page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0
    finally:
        await context.close()

    context, page = await signed_in(browser, f"{app.url}/dashboard/conversations", "dave", width, problems)
    try:
        await expect(page.locator('[data-agent="dave"]')).to_contain_text("on duty")
        await page.screenshot(path=str(folder / f"conversations-{width}.png"), full_page=True)
        assert await serious_violations(page) == []
        assert await page.evaluate(LOW_CONTRAST) == []
        assert await page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0
    finally:
        await context.close()
    assert problems == []


async def test_a_form_approval_and_a_request_for_changes_from_the_page(app: App, browser: Browser) -> None:
    async with Client(app.url) as http:
        await http.command("/workflow run change", user="alice")
    first = await eventually(lambda: app.runtime.approvals.pending(), 30, "the change to ask")
    run_id = first[0].run_id

    problems: list[str] = []
    context, page = await signed_in(browser, f"{app.url}/dashboard/approvals", "bob", 390, problems)
    try:
        card = page.locator(f'#mine-heading ~ ul [data-approval="{first[0].id}"]')
        await expect(card.get_by_label("Window (required)")).to_be_visible()
        assert await serious_violations(page) == []
        await card.get_by_role("button", name="Request changes").click()  # without saying what
        await expect(page.locator("#decide-result")).to_contain_text("Say what should change")
        await card.get_by_label(re.compile("^Comment")).fill("a smaller window, please")
        await card.get_by_role("button", name="Request changes").click()
        await expect(page.locator("#decide-result")).to_contain_text("Changes requested by @bob")

        async def asked_again() -> list[Any] | None:
            pending = await app.runtime.approvals.pending(run_id)
            return [a for a in pending if a.id != first[0].id] or None

        (second,) = await eventually(asked_again, 30, "revision 2 to be asked")
        again = page.locator(f'#mine-heading ~ ul [data-approval="{second.id}"]')
        await again.get_by_label("Window (required)").fill("22:00-23:00")  # the list refreshed itself
        await again.get_by_role("button", name="Approve").click()  # level left empty
        await expect(page.locator("#decide-result")).to_contain_text("level: Required")
        await again.get_by_label("Level (required)").select_option("high")
        await again.get_by_role("button", name="Approve").click()
        await expect(page.locator("#decide-result")).to_contain_text("Approved by")
        assert await page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0
    finally:
        await context.close()
    assert [p for p in problems if "status of 400" not in p] == []  # the two refusals above are 400s

    async def finished() -> Any:
        row = await app.runtime.store.run_row(run_id)
        return row if row is not None and row.status == "succeeded" else None

    await eventually(finished, 30, "the change to finish")
    steps = {s.key: s for s in await app.runtime.store.step_rows(run_id)}
    assert steps["ask"].outputs["form"] == {"window": "22:00-23:00", "level": "high"}
    async with app.engine.connect() as conn:
        sources = (
            await conn.execute(sa.select(approval_audit.c.source).where(approval_audit.c.run_id == run_id))
        ).scalars()
        assert "dashboard" in set(sources)


async def signed_in(
    browser: Browser, url: str, user: str, width: int, problems: list[str]
) -> tuple[BrowserContext, Page]:
    """A page at ``url`` signed in through dev mode's picker as ``user`` (the remembered user)."""
    context = await browser.new_context(viewport={"width": width, "height": 900})
    await context.add_init_script(f"localStorage.setItem('switchboard.user', {user!r})")
    page = await context.new_page()
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on(
        "console", lambda m: problems.append(m.text) if m.type == "error" and "401" not in m.text else None
    )
    await page.goto(url)
    await expect(page.locator(".me")).to_contain_text(user)
    return context, page
