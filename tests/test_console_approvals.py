"""Approvals in the console, in a real browser: Playwright clicks on the cards in headless Chromium, against
the real app (the harness of tests/test_console.py).

The console's users: alice and bob are release managers (the approvers), erin starts the runs, and dave
(agents) and carol (eng-directors) are no approvers. Cards go to the step's ``#approvals`` channel.
"""

from __future__ import annotations

import re
from pathlib import Path

import sqlalchemy as sa
from playwright.async_api import Browser, Locator, Page, expect

from bot.process import App, start_app, stop_app
from bot.storage.tables import approval_votes
from tests.helpers import finished, status_is
from tests.test_console import app, browser, page, send
from tests.test_console_api import console_settings, write_workflows

__all__ = ["app", "browser", "page"]  # the harness's fixtures, used by name below

RELEASE = """
name: release
steps:
  build:
    run: ["echo", "built", "${{ approval.feedback }}"]
  approve_prod:
    needs: [build]
    approval:
      title: "Release api to prod?"
      context: {Service: api}
      approvers: ["group:release-managers"]
      required: 2
      channel: "#approvals"
      revise: build
  ship:
    needs: [approve_prod]
    notify: "shipped after ${{ join(steps.approve_prod.outputs.approvers, ', ') }}"
"""
ACK = 20_000  # ms to wait for a click's answer (a generous bound for a loaded machine, not a measurement)


async def act_as(page: Page, user: str) -> None:
    await page.locator("#user-picker").select_option(user)
    await expect(page.locator("#me-name")).to_have_text(user)
    await expect(page.locator("#conn-text")).to_have_text("Live")


async def open_channel(page: Page, channel: str) -> None:
    await page.locator(f"#channel-list [data-channel={channel}]").click()
    await expect(page.locator("#channel-name")).to_have_text(channel)


def reply(page: Page, text: str) -> Locator:
    """An ephemeral answer (only visible to whoever acted) containing ``text``."""
    return page.locator("#messages .msg--ephemeral", has_text=text)


async def start_release(page: Page, workflows_dir: Path) -> tuple[str, Locator, str]:
    """erin types ``/workflow run release`` in #ops: the run id, its approval card and the request id."""
    (workflows_dir / "release.yaml").write_text(RELEASE)
    await act_as(page, "erin")
    await send(page, "/workflow run release")
    started = reply(page, "Started release (run")
    await expect(started).to_have_count(1)
    run_id = re.search(r"run ([0-9a-f]{12})", await started.inner_text()).group(1)  # type: ignore[union-attr]
    await open_channel(page, "approvals")
    card = page.locator("#messages .msg", has=page.locator(".card__title", has_text="Release api to prod?"))
    await expect(card).to_have_count(1)
    note = card.locator(".card__note", has_text=re.compile(r"^approval "))
    approval = (await note.inner_text()).split()[-1]
    return run_id, card.filter(has=page.locator(".card__note", has_text=f"approval {approval}")), approval


async def votes(app: App, approval: str) -> int:
    query = sa.select(sa.func.count()).where(approval_votes.c.approval_id == approval)
    async with app.engine.connect() as conn:
        return int((await conn.execute(query)).scalar_one())


async def test_two_approvers_approve_a_non_approver_is_refused_and_a_late_click_is_told(
    app: App, page: Page, workflows_dir: Path
) -> None:
    run_id, card, approval = await start_release(page, workflows_dir)
    await expect(card.locator(".badge")).to_have_text("waiting for approval")
    await expect(card.locator(".card__actions button")).to_have_text(
        ["Approve", "Reject", "Request changes…"]
    )
    await expect(card.locator(".card__note").nth(1)).to_contain_text("2 of group:release-managers")

    await act_as(page, "alice")
    await card.locator("button", has_text="Approve").click()
    await expect(reply(page, "Approved by @alice, 1 of 2")).to_be_visible(timeout=ACK)
    await expect(card.locator(".card__text")).to_contain_text("Approved by @alice, 1 of 2")
    await expect(card.locator(".card__actions button")).to_have_count(3)  # still open

    await act_as(page, "dave")
    await card.locator("button", has_text="Approve").click()
    refused = reply(page, "You are not an approver")
    await expect(refused.locator(".msg__text")).to_have_text(
        "You are not an approver for this request (approvers: group:release-managers)"
    )
    assert await votes(app, approval) == 1  # not counted

    # bob lists what waits for him first: that ephemeral list is not redrawn, so its buttons go stale.
    await act_as(page, "bob")
    await send(page, "/approvals")
    listing = page.locator("#messages .msg--ephemeral", has=page.locator(".card__title"))
    await expect(listing.locator(".card__title")).to_have_text("1 approval request waiting for you")
    await card.locator("button", has_text="Approve").click()
    await expect(reply(page, "Approved by @bob; the run continues")).to_be_visible(timeout=ACK)
    await expect(card.locator(".badge")).to_have_text("approved")
    await expect(card.locator(".card__actions button")).to_have_count(0)  # no buttons left
    await expect(card.locator(".card__text")).to_contain_text(re.compile(r"Approved by @alice and @bob at "))
    assert (await finished(app.runtime, run_id)).status == "succeeded"

    await listing.locator("button", has_text="Approve #1").click()  # the late click
    late = reply(page, "Already approved")
    await expect(late.locator(".msg__text")).to_have_text(
        re.compile(r"Already approved by @alice, @bob at \d\d:\d\d")  # the viewer's local time
    )
    assert await votes(app, approval) == 2

    await open_channel(page, "ops")
    status = page.locator("#messages .msg", has=page.locator(".card__note", has_text=f"run {run_id}"))
    await expect(status.locator(".badge")).to_have_text("succeeded")


async def test_request_changes_opens_a_dialog_and_its_feedback_brings_revision_two(
    app: App, page: Page, workflows_dir: Path
) -> None:
    run_id, card, _ = await start_release(page, workflows_dir)
    await act_as(page, "alice")
    await card.locator("button", has_text="Request changes").click()
    dialog = page.locator("#form-dialog")
    await expect(dialog.locator(".form__title")).to_have_text("Request changes")
    await dialog.locator("textarea[name=feedback]").fill("bump the version")
    await dialog.locator("button[type=submit]").click()
    await expect(dialog).to_be_hidden()
    await expect(reply(page, "Changes requested by @alice; the run continues")).to_be_visible()

    await expect(card.locator(".badge")).to_have_text("changes requested")
    await expect(card.locator(".card__actions button")).to_have_count(0)
    cards = page.locator("#messages .msg", has=page.locator(".card__title", has_text="Release api to prod?"))
    await expect(cards).to_have_count(2)
    revised = cards.last
    await expect(revised.locator(".card__note").nth(1)).to_contain_text("revision 2 of 3")
    await expect(revised.locator(".card__text")).to_contain_text(
        "Revised after @alice asked for changes: “bump the version”"
    )
    await expect(revised.locator(".card__actions button")).to_have_count(3)
    build = {s.key: s for s in await app.runtime.store.step_rows(run_id)}["build"]
    assert build.attempt == 2 and build.outputs["stdout"].strip() == "built bump the version"


async def test_an_old_card_still_works_after_a_restart(
    browser: Browser, tmp_path: Path, workflows_dir: Path
) -> None:
    write_workflows(workflows_dir)
    settings = console_settings(tmp_path, workflows_dir)
    first = await start_app(settings)
    page = await browser.new_page(viewport={"width": 1440, "height": 900})
    try:
        await page.goto(f"{first.url}/#ops")
        await expect(page.locator("#conn-text")).to_have_text("Live")
        run_id, card, _ = await start_release(page, workflows_dir)
        await status_is(first.runtime, run_id, "waiting")
        await stop_app(first, grace=1.0, flush=1.0)
        await expect(page.locator("#conn-text")).to_have_text("Reconnecting…")

        second = await start_app(settings.model_copy(update={"port": first.port}))  # same port and database
        try:
            await expect(page.locator("#conn-text")).to_have_text("Live")
            await act_as(page, "alice")
            await card.locator("button", has_text="Approve").click()  # the card the first process posted
            await expect(card.locator(".card__text")).to_contain_text("Approved by @alice, 1 of 2")
            await act_as(page, "bob")
            await card.locator("button", has_text="Approve").click()
            await expect(card.locator(".badge")).to_have_text("approved")
            assert (await finished(second.runtime, run_id)).status == "succeeded"
        finally:
            await stop_app(second, grace=1.0, flush=1.0)
    finally:
        await page.close()
