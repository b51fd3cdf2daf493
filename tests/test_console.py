"""The console in a real browser: Playwright driving Debian's headless Chromium against the real app."""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Locator, Page, async_playwright, expect

from bot.platforms.console.adapter import ConsoleAdapter
from bot.process import App, start_app, stop_app
from tests.test_console_api import console_settings, write_workflows

CHROMIUM = Path("/usr/bin/chromium")
# Without the background-networking flags Chromium keeps trying hosts it cannot reach.
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
expect.set_options(timeout=15_000)


@pytest.fixture
async def app(tmp_path: Path, workflows_dir: Path) -> AsyncIterator[App]:
    write_workflows(workflows_dir)
    started = await start_app(console_settings(tmp_path, workflows_dir))
    yield started
    await stop_app(started, grace=1.0, flush=1.0)


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install it with `apt-get update && apt-get install -y chromium`")
    async with async_playwright() as p:
        launched = await p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield launched
        await launched.close()


@pytest.fixture
async def page(app: App, browser: Browser) -> AsyncIterator[Page]:
    opened = await browser.new_page(viewport={"width": 1440, "height": 900})
    problems: list[str] = []
    opened.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    # CSP violations and failed loads show up as console errors.
    opened.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    await opened.goto(f"{app.url}/#ops")
    await expect(opened.locator("#conn-text")).to_have_text("Live")
    yield opened
    await opened.close()
    assert problems == []


async def send(page: Page, text: str) -> None:
    box = page.locator("#box")
    await box.fill(text)
    await box.press("Enter")
    await expect(box).to_have_value("")


async def started_card(page: Page, workflow: str) -> Locator:
    """The status card of the run the last "Started ..." reply names."""
    started = page.locator("#messages .msg--ephemeral", has_text=f"Started {workflow} (run").last
    await expect(started).to_contain_text("Only visible to you")
    match = re.search(r"run ([0-9a-f]{12})", await started.inner_text())
    assert match
    return page.locator("#messages .msg", has=page.locator(".card__note", has_text=f"run {match.group(1)}"))


async def test_run_watch_cancel_and_fill_in_a_form(page: Page, tmp_path: Path) -> None:
    # A run typed in the box: its card appears and is edited in place until it succeeds.
    await send(page, "/workflow run deploy service=api env=prod")
    card = await started_card(page, "deploy")
    await expect(card.locator(".badge")).to_have_text("succeeded")
    await expect(card).to_have_count(1)
    await expect(card.locator(".step")).to_have_count(4)
    await expect(card.locator("button", has_text="Rollback")).to_be_visible()

    # Its thread holds the notify step's message and the outcome.
    await card.locator(".msg__replies").click()
    thread = page.locator("#thread-messages")
    await expect(thread).to_contain_text("Shipped api to prod")
    await expect(thread).to_contain_text("Run succeeded")
    await page.locator("#thread-close").click()

    # A typo is answered to its author only; another user does not see it.
    await send(page, "/workflow run depoly")
    typo = page.locator("#messages .msg--ephemeral", has_text="No workflow named depoly")
    await expect(typo.locator(".msg__text")).to_have_text("No workflow named depoly. Did you mean deploy?")
    await page.locator("#user-picker").select_option("bob")
    await expect(page.locator("#me-name")).to_have_text("bob")
    await expect(typo).to_have_count(0)
    await expect(card.locator(".badge")).to_have_text("succeeded")  # public messages stay

    # Cancel on a slow run asks first, then the card turns cancelled.
    await send(page, "/workflow run migrate")
    slow = await started_card(page, "migrate")
    await expect(slow.locator(".badge")).to_have_text("running")
    await slow.locator("button", has_text="Cancel").click()
    confirm = page.locator("#confirm-dialog")
    await expect(confirm).to_contain_text("Cancel this run?")
    await confirm.locator("#confirm-yes").click()
    await expect(slow.locator(".badge")).to_have_text("cancelled")
    await expect(page.locator("#messages .msg--ephemeral", has_text="Cancelling run")).to_have_count(1)

    # A required input missing: the form opens; a bad value comes back as a field error.
    await send(page, "/workflow run deploy")
    dialog = page.locator("#form-dialog")
    await expect(dialog.locator(".form__title")).to_have_text("Run deploy")
    await expect(dialog.locator("select[name=env]")).to_have_value("staging")  # the default, filled in
    await dialog.locator("select[name=env]").select_option("prod")
    await dialog.locator("input[name=service]").fill("web")
    await dialog.locator("input[name=replicas]").fill("2.5")
    await dialog.locator("button[type=submit]").click()
    await expect(dialog.locator(".form__error")).to_have_text("expected a integer, got '2.5'")
    await expect(dialog.locator("input[name=service]")).to_have_value("web")
    await dialog.locator("input[name=replicas]").fill("3")
    await dialog.locator("button[type=submit]").click()
    await expect(dialog).to_be_hidden()
    web = await started_card(page, "deploy")
    await expect(web.locator(".badge")).to_have_text("succeeded")
    await expect(web.locator(".card__field", has_text="service")).to_contain_text("web")
    await expect(web.locator(".card__field", has_text="env")).to_contain_text("prod")

    await page.screenshot(path=str(tmp_path / "console.png"))
    if os.environ.get("CONSOLE_SCREENSHOT"):
        await page.screenshot(path=os.environ["CONSOLE_SCREENSHOT"])


async def test_hints_complete_commands_and_channels_keep_their_messages(page: Page) -> None:
    # No sign-in here, and the page says so.
    await expect(page.locator("#mode")).to_contain_text("Dev mode: no sign-in")
    await expect(page.locator("#user-picker")).to_be_visible()
    box = page.locator("#box")
    await box.press_sequentially("/workflow run de")
    hint = page.locator("#hints .hint").first
    await expect(hint.locator(".hint__label")).to_have_text("deploy")
    await box.press("Tab")
    await expect(box).to_have_value("/workflow run deploy ")
    await box.press_sequentially("service=api env=st")
    await expect(hint.locator(".hint__label")).to_have_text("env=staging")
    await box.press("Tab")
    await expect(box).to_have_value("/workflow run deploy service=api env=staging ")

    await page.locator("#channel-list [data-channel=approvals]").click()
    await expect(page.locator("#channel-name")).to_have_text("approvals")
    await expect(page.locator("#messages .empty")).to_contain_text("This is the very beginning of #approvals")
    await send(page, "hello from the console")
    await expect(page.locator("#messages .msg__text")).to_have_text("hello from the console")
    await page.locator("#channel-list [data-channel=ops]").click()
    await expect(page.locator("#messages .msg__text", has_text="hello from the console")).to_have_count(0)

    # Signed out from elsewhere (another tab): the socket closes, and the page signs in again and is live.
    old = await page.evaluate("window.switchboard.state.csrf")
    status = await page.evaluate(
        """async (csrf) => (await fetch("/auth/logout", {method: "POST", body: "{}",
             headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf}})).status""",
        old,
    )
    assert status == 200
    await page.wait_for_function("(old) => (window.switchboard.state.csrf || old) !== old", arg=old)
    await expect(page.locator("#conn-text")).to_have_text("Live")
    await send(page, "back again")
    await expect(page.locator("#messages .msg__text", has_text="back again")).to_have_count(1)


async def test_the_page_reconnects_after_a_restart(
    browser: Browser, tmp_path: Path, workflows_dir: Path
) -> None:
    write_workflows(workflows_dir)
    settings = console_settings(tmp_path, workflows_dir)
    first = await start_app(settings)
    page = await browser.new_page()
    try:
        await page.goto(f"{first.url}/#ops")
        await expect(page.locator("#conn-text")).to_have_text("Live")
        await send(page, "before the restart")
        await stop_app(first, grace=1.0, flush=1.0)
        await expect(page.locator("#conn-text")).to_have_text("Reconnecting…")

        # Same port, same database: something said while the page was away shows once it is back.
        second = await start_app(settings.model_copy(update={"port": first.port}))
        try:
            console = second.platforms["console"]
            assert isinstance(console, ConsoleAdapter)
            await console.say(
                console.identity("bob"), await console.place(console.identity("bob"), "ops"), "hi again"
            )
            await expect(page.locator("#conn-text")).to_have_text("Live")
            await expect(page.locator("#messages .msg__text")).to_have_text(
                ["before the restart", "hi again"]
            )
        finally:
            await stop_app(second, grace=1.0, flush=1.0)
    finally:
        await page.close()
