"""Signing in to the console in a real browser (Playwright driving headless Chromium) through the local
OpenID provider, then the CSRF checks as a browser meets them, and a page on another origin trying it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from playwright.async_api import Browser, expect

from bot.process import App, start_app, stop_app
from tests.fakes.oidc_provider import FakeOidc
from tests.helpers import eventually
from tests.test_console import browser, send, started_card
from tests.test_console_api import write_workflows
from tests.test_web_auth import stored
from tests.test_web_auth_oidc import oidc_settings

__all__ = ["browser"]  # the console harness's fixture, used by name below

ANN = {
    "sub": "U0ANN",
    "name": "Ann Example",
    "email": "ann@acme.example",
    "https://slack.com/user_id": "U0ANN",
    "https://slack.com/team_id": "T0TEAM",
}
# A page on another origin posting the JSON-in-a-text/plain-form trick at the console.
EVIL = """<!doctype html><html><body>
<form id="f" method="POST" enctype="text/plain" action="{url}/api/command">
<input name='{{"channel":"ops","text":"/workflow run deploy service=evil","x":"' value='"}}'>
</form><script>document.getElementById("f").submit()</script></body></html>"""


@pytest.fixture
async def idp() -> AsyncIterator[FakeOidc]:
    async with FakeOidc() as provider:
        provider.user = dict(ANN)
        yield provider


@pytest.fixture
async def app(tmp_path: Path, workflows_dir: Path, idp: FakeOidc) -> AsyncIterator[App]:
    write_workflows(workflows_dir)
    started = await start_app(oidc_settings(tmp_path, workflows_dir, idp, admins=[]))
    yield started
    await stop_app(started, grace=1.0, flush=1.0)


@pytest.fixture
async def evil_site(app: App) -> AsyncIterator[str]:
    async def page(request: web.Request) -> web.Response:
        return web.Response(text=EVIL.format(url=app.url), content_type="text/html")

    server = web.Application()
    server.router.add_get("/", page)
    runner = web.AppRunner(server, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/"  # type: ignore[union-attr]
    await runner.cleanup()


async def test_sign_in_in_a_browser_then_csrf_and_another_site(
    app: App, idp: FakeOidc, browser: Browser, evil_site: str
) -> None:
    context = await browser.new_context(viewport={"width": 1440, "height": 900})
    page = await context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    try:
        # Not signed in: the console sends the browser to the provider, which sends it back signed in.
        await page.goto(f"{app.url}/#ops")
        await expect(page.locator("#conn-text")).to_have_text("Live")
        assert page.url == f"{app.url}/"
        assert idp.token_requests, "the code was traded at the provider's token endpoint"
        await expect(page.locator("#me-name")).to_have_text("Ann Example")
        await expect(page.locator("#user-picker")).to_be_hidden()  # no picker: nobody else to be
        await expect(page.locator("#mode")).to_be_hidden()
        await expect(page.locator("#sign-out")).to_be_visible()
        cookies = {c["name"]: c for c in await context.cookies()}
        assert cookies["sb_session"]["httpOnly"] and cookies["sb_session"]["sameSite"] == "Lax"
        assert await page.evaluate("document.cookie") == ""  # the page's scripts cannot read it

        # The console works as the provider's identity.
        await send(page, "/workflow run deploy service=api")
        card = await started_card(page, "deploy")
        await expect(card.locator(".badge")).to_have_text("succeeded")
        await expect(card.locator(".card__field", has_text="Started by")).to_contain_text("Ann Example")
        runs = await app.runtime.store.list_runs(limit=10)
        assert [r.started_by for r in runs] == ["slack:U0ANN"]

        # From the console's own page, a post without the session's CSRF token is refused.
        before = await stored(app)
        status = await page.evaluate(
            """async () => (await fetch("/api/command", {method: "POST",
                 headers: {"Content-Type": "application/json"},
                 body: JSON.stringify({channel: "ops", text: "/workflow run deploy service=nocsrf"})})).status"""
        )
        assert status == 403
        # A page on another origin (same site: 127.0.0.1, so the Lax cookie goes along) posts a form.
        evil = await context.new_page()
        async with evil.expect_response(f"{app.url}/api/command") as answer:
            await evil.goto(evil_site)
        refused = await answer.value
        assert refused.status == 403 and "was refused" in await refused.text()
        await evil.close()
        assert await stored(app) == before
        assert len(await app.runtime.store.list_runs(limit=10)) == 1

        # Signing out ends the session: the next visit goes to the provider again.
        await page.locator("#sign-out").click()
        await eventually(lambda: len(idp.token_requests) == 2 or None)
        await expect(page.locator("#me-name")).to_have_text("Ann Example")
    finally:
        await context.close()
    assert problems == []
