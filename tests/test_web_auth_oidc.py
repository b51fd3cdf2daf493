"""Sign-in with an OpenID provider, end to end over real HTTP: the real app and authlib against the local
provider of tests/fakes/oidc_provider.py (real RS256 keys), and Slack's fake Web API for the groups."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr

from bot.config import Settings
from bot.errors import BadInput
from bot.process import App, start_app, stop_app
from bot.web_auth.guard import check_binding
from bot.web_auth.sessions import SESSION_COOKIE
from tests.fakes.oidc_provider import FakeOidc
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_sender import SlackSender
from tests.helpers import eventually
from tests.test_console_api import console_settings, write_workflows
from tests.test_web_auth import stored

LOCKED = """
name: release
permissions: {run: ['group:release-managers']}
steps:
  hi: {run: ['python3', '-c', 'print(1)']}
"""


def oidc_settings(tmp_path: Path, workflows_dir: Path, idp: FakeOidc, **more: Any) -> Settings:
    return console_settings(tmp_path, workflows_dir).model_copy(
        update={
            "auth": "oidc",
            "oidc_issuer": idp.issuer,
            "oidc_client_id": idp.client_id,
            "oidc_client_secret": SecretStr(idp.client_secret),
            "oidc_users": {"ann@example.com": "console:alice"},
            **more,
        }
    )


@pytest.fixture
async def idp() -> AsyncIterator[FakeOidc]:
    async with FakeOidc() as provider:
        yield provider


@pytest.fixture
async def app(tmp_path: Path, workflows_dir: Path, idp: FakeOidc) -> AsyncIterator[App]:
    write_workflows(workflows_dir)
    started = await start_app(oidc_settings(tmp_path, workflows_dir, idp))
    yield started
    await stop_app(started, grace=1.0, flush=1.0)


@dataclass
class SignIn:
    """One browser's trip: app → provider → app, each redirect followed by hand."""

    browser: aiohttp.ClientSession
    to_provider: str  # the authorization URL the app sent us to
    status: int  # the callback's answer: 302 to the console when signed in
    page: str  # the callback's page (an error message), when not signed in

    async def state(self, app: App, status: int = 200) -> dict[str, Any]:
        async with self.browser.get(f"{app.url}/api/state") as res:
            data: dict[str, Any] = await res.json()
            assert res.status == status, data
            return data


async def sign_in(app: App, browser: aiohttp.ClientSession, tamper: Any = None) -> SignIn:
    async with browser.get(f"{app.url}/auth/login", allow_redirects=False) as res:
        assert res.status == 302, await res.text()
        to_provider = res.headers["Location"]
    async with browser.get(to_provider, allow_redirects=False) as res:
        assert res.status == 302, await res.text()
        back = res.headers["Location"]
    if tamper is not None:
        back = tamper(back)
    async with browser.get(back, allow_redirects=False) as res:
        return SignIn(browser, to_provider, res.status, await res.text())


@pytest.fixture
async def browser() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        yield session


async def test_sign_in_with_a_provider_is_the_identity_it_maps_to(
    app: App, idp: FakeOidc, browser: aiohttp.ClientSession
) -> None:
    done = await sign_in(app, browser)
    assert done.status == 302, done.page
    # The authorization code flow as the spec has it: PKCE S256, state and nonce; the code traded once,
    # with the verifier, the client authenticated.
    asked = idp.authorize_requests[-1]
    assert asked["code_challenge_method"] == "S256" and asked["state"] and asked["nonce"]
    assert asked["redirect_uri"] == f"{app.url}/auth/callback" and "openid" in asked["scope"].split()
    traded = idp.token_requests[-1]
    assert traded["code_verifier"] and traded["authorization"].startswith("Basic ")

    state = await done.state(app)
    assert state["mode"] == "oidc" and state["user"] == "alice" and state["users"] == []  # no picker
    assert state["me"]["ref"] == "console:alice" and state["me"]["groups"] == ["release-managers"]
    cookie = next(c for c in browser.cookie_jar if c.key == SESSION_COOKIE)
    assert cookie["httponly"] and cookie["samesite"] == "Lax"

    # A change without the CSRF token is refused and changes nothing; with it, it acts as alice.
    before = await stored(app)
    body = {"channel": "ops", "text": "/workflow run deploy service=api"}
    async with browser.post(f"{app.url}/api/command", json=body) as res:
        assert res.status == 403
    assert await stored(app) == before
    headers = {"X-CSRF-Token": state["csrf"]}
    async with browser.post(f"{app.url}/api/command", json=body, headers=headers) as res:
        reply = await res.json()
    run_id = re.search(r"run ([0-9a-f]{12})", reply["message"]["text"]).group(1)  # type: ignore[union-attr]
    row = await app.runtime.store.run_row(run_id)
    assert row is not None and row.started_by == "console:alice"

    # The picker is gone in oidc mode: nobody can make themselves carol.
    async with browser.post(f"{app.url}/auth/dev", json={"user": "carol"}) as res:
        assert res.status == 404 and "SWITCHBOARD_AUTH=oidc" in (await res.json())["error"]
    async with browser.post(f"{app.url}/auth/logout", json={}, headers=headers) as res:
        assert res.status == 200
    await done.state(app, 401)


def _swap_state(url: str) -> str:
    return url.replace("state=", "state=forged", 1)


async def test_a_token_or_callback_that_does_not_verify_signs_nobody_in(
    app: App, idp: FakeOidc, tmp_path: Path
) -> None:
    cases: list[tuple[str, Any, str]] = [
        ("foreign key", lambda: setattr(idp, "sign_with_foreign_key", True), "did not verify"),
        ("wrong audience", lambda: idp.overrides.update(aud="someone-else"), "did not verify"),
        ("expired", lambda: idp.overrides.update(exp=1_000_000), "did not verify"),
        ("another sign-in's nonce", lambda: idp.overrides.update(nonce="replayed"), "did not verify"),
        ("another issuer", lambda: idp.overrides.update(iss="https://evil.example"), "did not verify"),
        ("refused at the provider", lambda: setattr(idp, "refuse", True), "The user said no"),
        ("unmapped e-mail", lambda: idp.user.update(email="zed@example.com"), "zed@example.com has no"),
        ("unverified e-mail", lambda: idp.user.update(email_verified=False), "not verified the e-mail"),
    ]
    before = await stored(app)
    original = dict(idp.user)
    for name, arrange, message in cases:
        idp.user, idp.overrides, idp.sign_with_foreign_key, idp.refuse = dict(original), {}, False, False
        arrange()
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser:
            done = await sign_in(app, browser)
            assert done.status == 403, (name, done.page)
            assert message in done.page, (name, done.page)
            assert not [c for c in browser.cookie_jar if c.key == SESSION_COOKIE], name
            await done.state(app, 401)
    idp.user, idp.overrides, idp.refuse = dict(original), {}, False
    # A forged state, and a callback with no sign-in started in this browser (a login CSRF attempt).
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser:
        done = await sign_in(app, browser, tamper=_swap_state)
        assert done.status == 403 and "state does not match" in done.page
        async with aiohttp.ClientSession() as stranger:
            async with browser.get(done.to_provider, allow_redirects=False) as res:
                back = res.headers["Location"]
            async with stranger.get(back, allow_redirects=False) as res:
                assert res.status == 403 and "not started here" in await res.text()
            # The code was never traded, so this browser could still use it; once, though.
            async with browser.get(back, allow_redirects=False) as res:
                assert res.status == 302
            async with browser.get(back, allow_redirects=False) as res:
                assert res.status == 403 and "not started here" in await res.text()  # the sign-in is over
    assert await stored(app) == before


async def test_a_slack_sign_in_is_the_slack_identity_with_its_groups(
    tmp_path: Path, workflows_dir: Path, idp: FakeOidc
) -> None:
    write_workflows(workflows_dir)
    (workflows_dir / "release.yaml").write_text(LOCKED)
    async with FakeSlack() as slack:
        slack.add_user("U0ALICE", "alice", groups=("release-managers",))
        settings = oidc_settings(
            tmp_path,
            workflows_dir,
            idp,
            slack_bot_token=SecretStr(slack.token),
            slack_signing_secret=SecretStr(slack.signing_secret),
            slack_api_url=slack.base_url,
            oidc_users={},
        )
        app = await start_app(settings)
        sender = SlackSender(slack, f"{app.url}/slack/events")
        try:
            # Sign in with Slack: the ID token carries the Slack user and team.
            idp.user = {
                "sub": "U0ALICE",
                "name": "Alice Liddell",
                "email": "alice@acme.example",
                "https://slack.com/user_id": "U0ALICE",
                "https://slack.com/team_id": slack.team_id,
            }
            async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser:
                done = await sign_in(app, browser)
                assert done.status == 302, done.page
                state = await done.state(app)
                assert state["me"]["ref"] == "slack:U0ALICE"
                assert "release-managers" in state["me"]["groups"]  # from Slack's user groups
                assert state["dm"] == "@slack:U0ALICE"
                body = {"channel": "ops", "text": "/workflow run release"}
                async with browser.post(
                    f"{app.url}/api/command", json=body, headers={"X-CSRF-Token": state["csrf"]}
                ) as res:
                    web_reply = (await res.json())["message"]["text"]
            assert web_reply.startswith("Started release"), web_reply  # the group lets her run it
            # The same person in Slack chat starts a run: both runs name one identity.
            await sender.command("run release", user="U0ALICE")
            runs = await eventually(lambda: _two_runs(app))
            assert {r.started_by for r in runs} == {"slack:U0ALICE"}
        finally:
            await sender.close()
            await stop_app(app, grace=1.0, flush=1.0)


async def _two_runs(app: App) -> list[Any] | None:
    found = await app.runtime.store.list_runs(limit=10)
    return found if len(found) == 2 else None


async def test_oidc_mode_needs_its_provider_named(tmp_path: Path, workflows_dir: Path) -> None:
    settings = console_settings(tmp_path, workflows_dir).model_copy(update={"auth": "oidc"})
    with pytest.raises(BadInput) as refused:
        await start_app(settings)
    assert (
        str(refused.value)
        == "SWITCHBOARD_AUTH=oidc needs SWITCHBOARD_OIDC_ISSUER and SWITCHBOARD_OIDC_CLIENT_ID."
    )
    # With a provider, listening beyond loopback is allowed: everyone signs in.
    named = settings.model_copy(
        update={"oidc_issuer": "https://idp.example", "oidc_client_id": "x", "host": "0.0.0.0"}
    )
    check_binding(named)
