"""What a console user reads, in a real browser (issue 12, the console's items): agents' ``// notes``
are messages, "Only visible to you" replies are gone after a reload, every time is the viewer's local
time on a 24-hour clock with UTC on hover, an empty channel suggests a run its viewer can finish alone,
and the ``/approvals`` list shows each title as written, one line per fact.

The real app on port 0 (the harness of tests/test_console.py), headless Chromium in a time zone
five and a half hours from UTC, so a time left in UTC would show.
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, expect

from bot.process import App, start_app, stop_app
from tests.accessibility import serious_violations
from tests.test_console import browser, send
from tests.test_console_api import write_workflows
from tests.test_console_conversations import settings as no_llm_settings

__all__ = ["browser"]

# Sorted first, yet never suggested: nobody finishes it alone (it waits for a finance approval).
BUDGET = """
name: budget
inputs:
  amount: {type: number, required: true}
steps:
  approve:
    approval:
      title: "Order for ${{ inputs.amount }} EUR"
      approvers: ["group:finance"]
"""
# Only release managers may run it: suggested to alice, not to erin.
HOTFIX = """
name: hotfix
permissions: {run: ["group:release-managers"]}
steps:
  patch:
    run: ["echo", "patched"]
"""
# Two requests whose titles a stylesheet must not upper-case ("v1.23.0", not "V1.23.0").
SHIP = """
name: ship
inputs:
  version: {type: string, required: true}
steps:
  approve:
    approval:
      title: "Deploy api ${{ inputs.version }} to prod"
      approvers: ["group:release-managers"]
      channel: "#approvals"
"""
OFFSET = timedelta(hours=5, minutes=30)  # Asia/Kolkata, no daylight saving time


@pytest.fixture
async def app(tmp_path: Path, workflows_dir: Path) -> AsyncIterator[App]:
    write_workflows(workflows_dir)
    for name, text in (("budget", BUDGET), ("hotfix", HOTFIX), ("ship", SHIP)):
        (workflows_dir / f"{name}.yaml").write_text(text)
    started = await start_app(no_llm_settings(tmp_path, workflows_dir, None))
    yield started
    await stop_app(started, grace=1.0, flush=1.0)


@pytest.fixture
async def page(app: App, browser: Browser) -> AsyncIterator[Page]:
    context = await browser.new_context(
        viewport={"width": 1440, "height": 900}, timezone_id="Asia/Kolkata", locale="en-US"
    )
    opened = await context.new_page()
    problems: list[str] = []
    opened.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    opened.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    await opened.goto(f"{app.url}/#ops")
    await expect(opened.locator("#conn-text")).to_have_text("Live")
    yield opened
    await context.close()
    assert problems == []


async def act_as(page: Page, user: str, channel: str = "ops") -> None:
    await page.locator("#user-picker").select_option(user)
    await expect(page.locator("#me-name")).to_have_text(user)
    await expect(page.locator("#conn-text")).to_have_text("Live")
    await page.locator(f'[data-channel="{channel}"]').click()


def shots(tmp_path: Path) -> Path:
    """Where screenshots go: $CONSOLE_SCREENSHOTS when set (to review them), else the test's tmp_path."""
    folder = Path(os.environ.get("CONSOLE_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def local(utc_text: str) -> str:
    """ "14:02" UTC as the page's clock shows it."""
    moment = datetime.strptime(utc_text, "%H:%M").replace(tzinfo=UTC) + OFFSET
    return moment.strftime("%H:%M")


async def test_an_empty_channel_suggests_a_run_its_viewer_can_finish(page: Page, tmp_path: Path) -> None:
    tries = page.locator("#messages .empty .try")
    await act_as(page, "alice", "approvals")
    await expect(tries).to_have_text(["/workflow list", "/workflow help", "/workflow run hotfix"])
    await page.screenshot(path=str(shots(tmp_path) / "console-empty-channel.png"))
    await act_as(page, "erin", "approvals")  # no release manager: the first one she may run without help
    await expect(tries).to_have_text(["/workflow list", "/workflow help", "/workflow run migrate"])
    # A chip fills the box with the command, required inputs named, and it runs to its end.
    await act_as(page, "alice", "approvals")
    await tries.last.click()
    await expect(page.locator("#box")).to_have_value("/workflow run hotfix ")
    await page.locator("#box").press("Enter")
    await expect(page.locator("#messages .msg", has_text="hotfix · run").locator(".badge")).to_have_text(
        "succeeded"
    )


async def test_notes_ephemeral_replies_and_times(page: Page, tmp_path: Path) -> None:
    messages = page.locator("#messages")
    # A "// note" is a message like any other: no "Switchboard does not know //", no hints for it.
    await page.locator("#box").press_sequentially("// looking at the logs")
    await expect(page.locator("#hints")).to_be_hidden()
    await page.locator("#box").press("Enter")
    note = messages.locator(".msg", has_text="// looking at the logs")
    await expect(note.locator(".msg__author")).to_have_text("alice")
    await expect(note).not_to_have_class(re.compile("msg--ephemeral"))

    # An answer only alice sees, then a run's card: after a reload the answer is gone, the card stays.
    await send(page, "/workflow run depoly")
    typo = messages.locator(".msg--ephemeral", has_text="No workflow named depoly")
    await expect(typo).to_contain_text("Only visible to you")
    await send(page, "/workflow run deploy service=api")
    card = messages.locator(".msg", has=page.locator(".card__title", has_text="deploy · run"))
    await expect(card.locator(".badge")).to_have_text("succeeded")
    await expect(messages.locator(".msg--ephemeral")).to_have_count(2)  # the typo and "Started deploy"
    await page.reload()
    await expect(page.locator("#conn-text")).to_have_text("Live")
    await expect(card.locator(".badge")).to_have_text("succeeded")
    await expect(note).to_have_count(1)
    await expect(messages.locator(".msg--ephemeral")).to_have_count(0)
    await expect(typo).to_have_count(0)

    # Times: the card's "Started 14:02 UTC" and the message's own time are both local, 24-hour, with
    # the UTC time on hover.
    started = card.locator(".card__field", has_text="Started").locator("time")
    hover = await started.get_attribute("title")
    assert hover is not None
    found = re.match(r"(\d\d:\d\d) UTC, \d+ \w+ \d{4}$", hover)
    assert found, hover
    await expect(started).to_have_text(local(found[1]))
    stamp = card.locator(".msg__meta .msg__time")
    hover = await stamp.get_attribute("title") or ""
    found = re.match(r"(\d\d:\d\d) UTC, ", hover)
    assert found, hover
    await expect(stamp).to_have_text(local(found[1]))
    assert not re.search(r"AM|PM", await messages.inner_text())  # en-US, and still a 24-hour clock
    await page.screenshot(path=str(shots(tmp_path) / "console-times.png"))


async def test_an_agents_note_in_a_handover_stays_with_the_agents(page: Page, tmp_path: Path) -> None:
    # Without an LLM a DM goes to the queue; dave claims it and writes a note, then an answer.
    await act_as(page, "alice", "@alice")
    await send(page, "my deploy is stuck")
    await expect(page.locator("#messages")).to_contain_text("number 1 in the queue")
    await act_as(page, "dave", "agents")
    card = page.locator("#messages .msg", has_text="Handover: alice")
    await card.locator("button", has_text="Claim").click()
    await expect(card.locator(".badge")).to_have_text("claimed by @dave")
    await card.locator(".msg__replies").click()
    thread = page.locator("#thread-messages")
    for text in ("// she is on the old runner", "Looking at it now"):
        await page.locator("#thread-box").fill(text)
        await page.locator("#thread-box").press("Enter")
        await expect(thread).to_contain_text(text)
    await expect(thread).not_to_contain_text("does not know")
    await page.screenshot(path=str(shots(tmp_path) / "console-handover-note.png"))
    await act_as(page, "alice", "@alice")
    await expect(page.locator("#messages")).to_contain_text("Looking at it now")
    await expect(page.locator("#messages")).not_to_contain_text("old runner")


async def test_the_approvals_list_shows_titles_as_written_one_fact_a_line(page: Page, tmp_path: Path) -> None:
    await act_as(page, "erin")
    for version in ("v1.23.0", "v1.24.0"):
        await send(page, f"/workflow run ship version={version}")
        await expect(page.locator("#messages .msg--ephemeral", has_text="Started ship")).to_have_count(
            1 if version.endswith("23.0") else 2
        )
    await act_as(page, "bob")
    await send(page, "/approvals")
    listing = page.locator("#messages .msg--ephemeral", has=page.locator(".card__title"))
    await expect(listing.locator(".card__title")).to_have_text("2 approval requests waiting for you")
    labels = listing.locator(".card__field dt")
    await expect(labels).to_have_text(["#1 Deploy api v1.23.0 to prod", "#2 Deploy api v1.24.0 to prod"])
    assert await labels.first.inner_text() == "#1 Deploy api v1.23.0 to prod"  # as drawn, not upper-cased
    lines = (await listing.locator(".card__field dd").first.inner_text()).splitlines()
    assert lines[0].startswith("ship · run ") and "asked by" in lines[0], lines
    assert lines[1].startswith("1 of group:release-managers"), lines
    assert lines[2] == "No decisions yet.", lines
    await page.screenshot(path=str(shots(tmp_path) / "console-approvals.png"))


@pytest.mark.parametrize("width", [1440, 390])
async def test_the_console_has_no_serious_accessibility_violations(
    app: App, browser: Browser, width: int
) -> None:
    context = await browser.new_context(viewport={"width": width, "height": 900}, locale="en-US")
    page = await context.new_page()
    try:
        await page.goto(f"{app.url}/#approvals")
        await expect(page.locator("#conn-text")).to_have_text("Live")
        await act_as(page, "alice", "approvals")
        await page.locator("#box").fill("/workflow run ship version=v1.23.0")  # a card with buttons
        await page.locator("#box").press("Enter")
        await expect(page.locator("#messages .msg", has_text="Deploy api v1.23.0")).to_be_visible()
        assert await serious_violations(page) == []
        await act_as(page, "bob", "approvals")  # an approver who did not start it
        await page.locator("#box").fill("/approvals")  # a reply only bob sees, with its own buttons
        await page.locator("#box").press("Enter")
        only_bob = page.locator("#messages .msg", has_text="Only visible to you")
        await expect(only_bob.last).to_contain_text("v1.23.0")
        assert await serious_violations(page) == []
    finally:
        await context.close()
