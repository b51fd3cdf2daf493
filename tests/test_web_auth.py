"""Sign-in for the web console in dev mode: sessions, CSRF tokens, Host and Origin checks, and what each
person may see. The real app over real HTTP; every refused attempt checks that nothing was stored."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa
from pydantic import SecretStr

from bot.errors import BadInput
from bot.platforms.console.feed import BOT
from bot.process import App, start_app, stop_app
from bot.storage.database import create_engine, migrate
from bot.storage.tables import console_messages, web_secrets
from bot.storage.web_secrets import stored_secret
from bot.web_auth.guard import is_loopback
from bot.web_auth.sessions import SESSION_COOKIE, Signer
from tests.test_console_api import Client, console_settings, write_workflows


@pytest.fixture
async def app(tmp_path: Path, workflows_dir: Path) -> AsyncIterator[App]:
    write_workflows(workflows_dir)
    started = await start_app(console_settings(tmp_path, workflows_dir))
    yield started
    await stop_app(started, grace=1.0, flush=1.0)


@pytest.fixture
async def http(app: App) -> AsyncIterator[Client]:
    async with Client(app.url) as client:
        yield client


async def stored(app: App) -> tuple[int, int]:
    """How many console messages people wrote and how many runs there are: a refused request changes
    neither. (The bot's own messages are left out: a conversation's replies arrive in their own time.)"""
    query = sa.select(sa.func.count()).select_from(console_messages).where(console_messages.c.author != BOT)
    async with app.engine.connect() as conn:
        messages = (await conn.execute(query)).scalar_one()
    return int(messages), len(await app.runtime.store.list_runs(limit=1000))


async def raw(
    app: App, method: str, path: str, status: int, session: aiohttp.ClientSession | None = None, **kw: Any
) -> dict[str, Any]:
    """One request (anonymous unless ``session``), its status checked, its JSON returned."""
    own = session is None
    session = session or aiohttp.ClientSession(app.url)
    try:
        async with session.request(method, path, **kw) as res:
            data: dict[str, Any] = await res.json(content_type=None)
            assert res.status == status, data
            return data
    finally:
        if own:
            await session.close()


async def until(ws: aiohttp.ClientWebSocketResponse, text: str) -> list[dict[str, Any]]:
    """The messages a socket receives, up to and including the first one saying ``text``."""
    seen: list[dict[str, Any]] = []
    while not seen or seen[-1]["text"] != text:
        seen.append((await asyncio.wait_for(ws.receive_json(), 20))["message"])
    return seen


async def test_dev_mode_refuses_to_listen_beyond_loopback(tmp_path: Path, workflows_dir: Path) -> None:
    settings = console_settings(tmp_path, workflows_dir).model_copy(update={"host": "0.0.0.0"})
    with pytest.raises(BadInput) as refused:
        await start_app(settings)
    message = str(refused.value)
    assert "SWITCHBOARD_HOST=0.0.0.0 is not a loopback address" in message
    assert "SWITCHBOARD_AUTH=oidc" in message and "SWITCHBOARD_CONSOLE=false" in message
    assert not (tmp_path / "console.db").exists()  # refused before anything was created
    # Without the console there is nothing that trusts its caller, so any address is fine.
    quiet = await start_app(settings.model_copy(update={"console": False, "port": 0}))
    await stop_app(quiet, grace=1.0, flush=1.0)
    assert [is_loopback(h) for h in ("127.0.0.1", "::1", "[::1]", "localhost", "10.0.0.1", "evil.com")] == [
        True,
        True,
        True,
        True,
        False,
        False,
    ]


async def test_without_a_session_nothing_is_served_or_done(app: App) -> None:
    before = await stored(app)
    state = await raw(app, "GET", "/api/state", 401)
    assert state["mode"] == "dev" and state["users"][:3] == ["alice", "bob", "carol"]
    body = {"channel": "ops", "text": "/workflow run deploy service=api"}
    assert "Not signed in" in (await raw(app, "POST", "/api/command", 401, json=body))["error"]
    await raw(app, "POST", "/api/message", 401, json={"channel": "ops", "text": "hi"})
    async with aiohttp.ClientSession(app.url) as anonymous:
        with pytest.raises(aiohttp.WSServerHandshakeError) as ws:
            await anonymous.ws_connect("/ws")
        assert ws.value.status == 401
    assert (await raw(app, "GET", "/auth/session", 200))["signed_in"] is False
    assert await stored(app) == before


async def test_the_user_comes_from_the_session_never_from_the_request(app: App, http: Client) -> None:
    before = await stored(app)
    # The old way of acting as someone else: naming them in the body or the query string.
    body = {"user": "carol", "channel": "ops", "text": "/workflow run deploy service=api"}
    refused = await http.post("/api/command", body, status=400)
    assert refused["error"] == "Who acts comes from your sign-in, not from the request: remove 'user'."
    session = await http.session("alice")
    async with session.get("/api/state", params={"user": "carol"}) as res:
        assert res.status == 400
    assert await stored(app) == before
    reply = await http.command("/workflow run deploy service=api")
    row = await app.runtime.store.run_row(reply["message"]["text"].split("run ")[1][:12])
    assert row is not None and row.started_by == "console:alice"


async def test_a_change_needs_the_sessions_csrf_token(app: App, http: Client) -> None:
    alice, _ = await http.sign_in("alice")
    _, bobs_token = await http.sign_in("bob")
    before = await stored(app)
    body = {"channel": "ops", "text": "/workflow run deploy service=api"}
    for headers in ({}, {"X-CSRF-Token": "guessed"}, {"X-CSRF-Token": bobs_token}):
        async with alice.post("/api/command", json=body, headers=headers) as res:
            assert res.status == 403
            assert "X-CSRF-Token" in (await res.json())["error"]
    async with alice.post("/auth/logout", json={}) as res:
        assert res.status == 403  # signing out is a change too
    async with await http.ws("bob") as bobs_page:
        assert (await bobs_page.receive_json())["type"] == "hello"
        bob, _ = await http.sign_in("bob")
        async with bob.post("/auth/logout", json={}, headers={"X-CSRF-Token": bobs_token}) as res:
            assert res.status == 200
        closing = await asyncio.wait_for(bobs_page.receive(), 20)  # signing out closes the open page's socket
        assert closing.type == aiohttp.WSMsgType.CLOSE and closing.data == 4401
    async with bob.get("/api/state") as res:
        assert res.status == 401
    # The websocket needs the token as well: a page on another site has the cookie but not the token.
    with pytest.raises(aiohttp.WSServerHandshakeError) as ws:
        await alice.ws_connect("/ws", params={"csrf": bobs_token})
    assert ws.value.status == 403
    assert await stored(app) == before


async def test_a_forged_or_altered_cookie_is_no_session(app: App, http: Client) -> None:
    alice, csrf = await http.sign_in("alice")
    cookie = next(c for c in alice.cookie_jar if c.key == SESSION_COOKIE)
    assert cookie["httponly"] and cookie["samesite"] == "Lax" and not cookie["secure"]
    # Signed with a key of our own (not the server's), claiming to be carol, the admin.
    forged = Signer(b"not the server's secret").sign(
        "session",
        {
            "who": {"platform": "console", "workspace": "console", "user_id": "carol", "name": "carol"},
            "csrf": csrf,
            "exp": 2e9,
            "mode": "dev",
        },
    )
    tampered = cookie.value[:-2] + ("AA" if not cookie.value.endswith("AA") else "BB")
    before = await stored(app)
    for value in (forged, tampered, "garbage"):
        await raw(
            app,
            "POST",
            "/api/command",
            401,
            json={"channel": "ops", "text": "/workflow run deploy service=api"},
            headers={"X-CSRF-Token": csrf, "Cookie": f"{SESSION_COOKIE}={value}"},
        )
    assert await stored(app) == before


async def test_other_host_names_and_other_sites_are_refused(app: App, http: Client) -> None:
    alice, csrf = await http.sign_in("alice")
    before = await stored(app)
    rebound = {"Host": f"evil.example:{app.port}"}  # DNS rebinding: our port under the attacker's name
    async with alice.get("/", headers=rebound) as res:
        assert res.status == 403
        assert "DNS rebinding" in await res.text()
    for method, path, body in (
        ("GET", "/api/state", None),
        ("POST", "/api/command", {"channel": "ops", "text": "/workflow run deploy service=api"}),
        ("POST", "/auth/dev", {"user": "carol"}),
    ):
        answer = await raw(
            app, method, path, 403, alice, json=body, headers={**rebound, "X-CSRF-Token": csrf}
        )
        assert "loopback" in answer["error"], answer
    # The right host, but a page from another site: its Origin gives it away.
    other = {"Origin": "http://evil.example", "X-CSRF-Token": csrf}
    body = {"channel": "ops", "text": "hi"}
    assert (
        "evil.example was refused"
        in (await raw(app, "POST", "/api/message", 403, alice, json=body, headers=other))["error"]
    )
    await raw(app, "POST", "/auth/dev", 403, json={"user": "carol"}, headers=other)
    with pytest.raises(aiohttp.WSServerHandshakeError):
        await alice.ws_connect("/ws", params={"csrf": csrf}, headers=rebound)
    assert await stored(app) == before
    # The page's own origin is fine.
    mine = {"Origin": app.url, "X-CSRF-Token": csrf}
    await raw(app, "POST", "/api/message", 200, alice, json=body, headers=mine)


async def test_the_agents_channel_is_for_agents_and_a_dm_for_its_owner(app: App, http: Client) -> None:
    said = await http.post("/api/message", {"channel": "agents", "text": "handover notes"}, user="dave")
    assert said["message"]["channel"] == "agents"
    await http.post("/api/message", {"channel": "@alice", "text": "my secret question"})
    async with await http.ws("alice") as alice_ws, await http.ws("dave") as dave_ws:
        for ws in (alice_ws, dave_ws):
            assert (await ws.receive_json())["type"] == "hello"
        await http.post("/api/message", {"channel": "agents", "text": "second note"}, user="dave")
        await http.post("/api/message", {"channel": "@alice", "text": "another question"})
        await http.post("/api/message", {"channel": "ops", "text": "for everyone"}, user="dave")
        heard_by_dave = await until(dave_ws, "for everyone")
        heard_by_alice = await until(alice_ws, "for everyone")
    assert "second note" in {m["text"] for m in heard_by_dave}
    assert not [m for m in heard_by_dave if m["channel"] == "@alice"]
    assert "another question" in {m["text"] for m in heard_by_alice}
    assert not [m for m in heard_by_alice if m["channel"] == "agents"]

    alice = await http.get("/api/state", {}, user="alice")
    assert "agents" not in alice["channels"]
    assert {m["channel"] for m in alice["messages"]} == {"ops", "@alice"}
    dave = await http.get("/api/state", {}, user="dave")
    assert "agents" in dave["channels"] and "@alice" not in {m["channel"] for m in dave["messages"]}
    carol = await http.get("/api/state", {}, user="carol")  # an admin sees the agents' channel too
    assert "agents" in carol["channels"]

    before = await stored(app)
    refused = await http.post("/api/message", {"channel": "agents", "text": "let me read"}, 403)
    assert refused["error"] == "Only agents see #agents. Agents: group:agents."
    click = {"channel": "agents", "message_id": said["message"]["id"], "action_id": "x"}
    await http.post("/api/click", click, 403)
    await http.post("/api/message", {"channel": "@alice", "text": "peek"}, 404, user="bob")
    assert await stored(app) == before


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)  # SQLite serves one bot process only
async def test_the_session_key_is_made_once_and_shared(
    tmp_path: Path, workflows_dir: Path, db_url: str
) -> None:
    write_workflows(workflows_dir)
    settings = console_settings(tmp_path, workflows_dir).model_copy(update={"database_url": db_url})
    first = await start_app(settings)
    try:
        async with Client(first.url) as http:
            session, csrf = await http.sign_in("bob")
            second = await start_app(settings)  # another process on the same database
            try:
                cookie = next(c for c in session.cookie_jar if c.key == SESSION_COOKIE)
                state = await raw(
                    second, "GET", "/api/state", 200, headers={"Cookie": f"{SESSION_COOKIE}={cookie.value}"}
                )
                assert state["user"] == "bob" and state["csrf"] == csrf
            finally:
                await stop_app(second, grace=1.0, flush=1.0)
        async with first.engine.connect() as conn:
            assert (await conn.execute(sa.select(sa.func.count()).select_from(web_secrets))).scalar_one() == 1
    finally:
        await stop_app(first, grace=1.0, flush=1.0)
    # A configured key replaces the stored one, so old cookies stop working and https sets Secure.
    configured = settings.model_copy(
        update={"session_secret": SecretStr("k" * 40), "public_url": "https://switchboard.example"}
    )
    third = await start_app(configured)
    try:
        async with aiohttp.ClientSession(third.url) as s, s.post("/auth/dev", json={"user": "bob"}) as res:
            assert res.status == 200
            assert "Secure" in res.headers["Set-Cookie"] and "HttpOnly" in res.headers["Set-Cookie"]
    finally:
        await stop_app(third, grace=1.0, flush=1.0)


async def test_two_processes_asking_at_once_get_one_session_key(db_url: str) -> None:
    # The first start makes the key; a second process starting at the same moment must not make another.
    engine = create_engine(db_url)
    try:
        await migrate(engine)
        keys = await asyncio.gather(*(stored_secret(engine, "session", 1.0) for _ in range(4)))
        assert len(set(keys)) == 1 and len(keys[0]) >= 48
        assert await stored_secret(engine, "session", 2.0) == keys[0]
    finally:
        await engine.dispose()


async def test_a_session_ends_after_its_hours(tmp_path: Path, workflows_dir: Path) -> None:
    now = [1_000_000.0]
    settings = console_settings(tmp_path, workflows_dir).model_copy(update={"session_hours": 1.0})
    app = await start_app(settings, clock=lambda: now[0])
    try:
        async with Client(app.url) as http:
            await http.state("bob")
            ws = await http.ws("bob")
            assert (await ws.receive_json())["type"] == "hello"
            now[0] += 3599
            await http.state("bob")
            now[0] += 2
            session = await http.session("bob")
            async with session.get("/api/state") as res:
                assert res.status == 401 and (await res.json())["mode"] == "dev"
            # bob's open page hears nothing more: its socket closes at the next message.
            await http.post("/api/message", {"channel": "ops", "text": "after bob's session"}, user="erin")
            closing = await asyncio.wait_for(ws.receive(), 20)
            assert closing.type == aiohttp.WSMsgType.CLOSE and closing.data == 4401
            await ws.close()
    finally:
        await stop_app(app, grace=1.0, flush=1.0)
