"""An approval e-mail's link followed in a real browser (Playwright driving headless Chromium): the page
shows the request, nothing is decided until the approver confirms, and the run continues after."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from playwright.async_api import Browser, expect

from bot.process import App, start_app, stop_app
from bot.storage.tables import approval_votes
from tests.email_env import Mailbox, email_settings, link, serve_smtp
from tests.helpers import eventually, finished
from tests.test_console import browser
from tests.test_email_approvals import release, rows

__all__ = ["browser"]  # the console harness's fixture, used by name below


@pytest.fixture
async def mailbox() -> AsyncIterator[tuple[Mailbox, int]]:
    box = Mailbox()
    server, port = await serve_smtp(box)
    yield box, port
    server.close()
    await server.wait_closed()


@pytest.fixture
async def app(tmp_path: Path, workflows_dir: Path, mailbox: tuple[Mailbox, int]) -> AsyncIterator[App]:
    started = await start_app(email_settings(tmp_path, workflows_dir, mailbox[1]))
    yield started
    await stop_app(started, grace=1.0, flush=1.0)


async def test_the_link_is_confirmed_in_a_browser(
    app: App, mailbox: tuple[Mailbox, int], browser: Browser
) -> None:
    box, _ = mailbox
    run_id, _ = await release(app)
    [mail] = await eventually(lambda: box.to("bob@example.com"))
    page = await browser.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    # CSP violations show up as console errors; the used link's 410 is the one expected.
    page.on(
        "console", lambda m: problems.append(m.text) if m.type == "error" and "410" not in m.text else None
    )
    await page.goto(link(mail, "approve"))
    await expect(page.locator("h1")).to_have_text("Approve: Release api to prod?")
    await expect(page.locator("body")).to_contain_text("Version 2.4 with the new billing")
    await expect(page.locator("body")).to_contain_text("Deciding as console:bob (bob@example.com)")
    assert await rows(app, sa.select(approval_votes)) == []  # opening the page decided nothing
    await page.locator("textarea[name=comment]").fill("ship it")
    await page.locator("#confirm").click()
    await expect(page.locator("#outcome")).to_have_text("Approved by @bob; the run continues")
    assert (await finished(app.runtime, run_id)).status == "succeeded"
    await page.goto(link(mail, "approve"))
    await expect(page.locator("h1")).to_have_text("Link already used")
    await page.close()
    assert problems == []
