"""The console over HTTP and its websocket: the real app on port 0, no browser."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest

from bot.config import Settings
from bot.delivery.contract import DeliveryError, Sent
from bot.identity import Identity, Place
from bot.platforms.console.adapter import ConsoleAdapter
from bot.process import App, start_app, stop_app
from bot.storage.console import Message
from cards.model import Card
from tests.helpers import eventually

T = TypeVar("T")

DEPLOY = """
name: deploy
description: Build, test and ship a service
inputs:
  service: {type: string, required: true, description: Service to deploy}
  env: {type: string, enum: [staging, prod], default: staging}
  replicas: {type: integer, default: 2}
steps:
  build:
    run: ["python3", "-c", "import time; time.sleep(0.3); print('built')"]
  test:
    needs: [build]
    run: ["python3", "-c", "import time; time.sleep(0.3); print('tested')"]
  ship:
    needs: [test]
    run: ["python3", "-c", "import time; time.sleep(0.3); print('shipped')"]
  announce:
    needs: [ship]
    notify: {text: "Shipped ${{ inputs.service }} to ${{ inputs.env }}"}
"""

SLOW = """
name: migrate
description: A long migration
steps:
  migrate:
    run: ["python3", "-c", "import time; time.sleep(30)"]
"""


def write_workflows(folder: Path) -> None:
    (folder / "deploy.yaml").write_text(DEPLOY)
    (folder / "migrate.yaml").write_text(SLOW)


def console_settings(tmp_path: Path, workflows_dir: Path) -> Settings:
    return Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'console.db'}",
        workflows_dir=workflows_dir,
        port=0,
        poll_interval=0.05,
        kill_grace=0.5,
        card_update_interval=0.2,
        admins=["console:carol"],
    )


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


class Client:
    """Calls the console's API as the page does: each user signs in through dev mode's picker once and
    keeps that session's cookie and CSRF token; no request names a user."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.signed_in: dict[str, tuple[aiohttp.ClientSession, str]] = {}

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        for session, _ in self.signed_in.values():
            await session.close()

    async def sign_in(self, user: str) -> tuple[aiohttp.ClientSession, str]:
        """A cookie session signed in as ``user``, and its CSRF token."""
        if user not in self.signed_in:
            # unsafe=True: aiohttp's jar otherwise keeps no cookies for an IP address such as 127.0.0.1.
            session = aiohttp.ClientSession(self.url, cookie_jar=aiohttp.CookieJar(unsafe=True))
            async with session.post("/auth/dev", json={"user": user}) as res:
                assert res.status == 200, await res.text()
            async with session.get("/api/state") as res:
                assert res.status == 200, await res.text()
                csrf = (await res.json())["csrf"]
            self.signed_in[user] = (session, csrf)
        return self.signed_in[user]

    async def session(self, user: str = "alice") -> aiohttp.ClientSession:
        return (await self.sign_in(user))[0]

    async def post(
        self, path: str, body: dict[str, Any], status: int = 200, user: str = "alice"
    ) -> dict[str, Any]:
        session, csrf = await self.sign_in(user)
        async with session.post(path, json=body, headers={"X-CSRF-Token": csrf}) as res:
            data: dict[str, Any] = await res.json()
            assert res.status == status, data
            return data

    async def get(self, path: str, params: dict[str, str], user: str = "alice") -> dict[str, Any]:
        session, _ = await self.sign_in(user)
        async with session.get(path, params=params) as res:
            data: dict[str, Any] = await res.json()
            assert res.status == 200, data
            return data

    async def command(self, text: str, user: str = "alice", channel: str = "ops") -> dict[str, Any]:
        return await self.post("/api/command", {"channel": channel, "text": text}, user=user)

    async def state(self, user: str = "alice") -> list[dict[str, Any]]:
        return list((await self.get("/api/state", {}, user))["messages"])

    async def ws(self, user: str = "alice") -> aiohttp.ClientWebSocketResponse:
        session, csrf = await self.sign_in(user)
        return await session.ws_connect("/ws", params={"csrf": csrf})


def run_id_of(reply: dict[str, Any]) -> str:
    match = re.search(r"run ([0-9a-f]{12})", reply["message"]["text"])
    assert match, reply
    return match.group(1)


def card_of(messages: list[dict[str, Any]], run_id: str) -> dict[str, Any] | None:
    for m in messages:
        if m["card"] and m["thread_id"] is None and f"run {run_id}" in m["card"]["context"]:
            return m
    return None


async def card_with_status(http: Client, run_id: str, status: str) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        card = card_of(await http.state(), run_id)
        return card if card is not None and card["card"]["status"] == status else None

    return await eventually(probe)


async def test_a_run_gets_a_live_status_card_and_a_thread(app: App, http: Client) -> None:
    async with await http.ws("bob") as ws:
        assert (await ws.receive_json())["type"] == "hello"
        reply = await http.command("/workflow run deploy service=api env=prod")
        assert reply["kind"] == "say" and reply["message"]["ephemeral"]
        run_id = run_id_of(reply)

        card = await card_with_status(http, run_id, "succeeded")
        assert 'data-status="succeeded"' in card["html"]
        assert card["channel"] == "ops" and card["bot"]
        # bob's page saw the card arrive and then be edited in place, never the ephemeral reply.
        seen: list[dict[str, Any]] = []
        while not any(e["message"]["card"]["status"] == "succeeded" for e in seen if e["message"]["card"]):
            seen.append(await asyncio.wait_for(ws.receive_json(), 10))
        ids = {e["message"]["id"] for e in seen if e["message"]["thread_id"] is None}
        assert ids == {card["id"]}
        assert next(e["type"] for e in seen if e["message"]["id"] == card["id"]) == "message"
        assert "update" in {e["type"] for e in seen}
        assert not any(e["message"]["ephemeral"] for e in seen)

    async def thread() -> list[str] | None:
        texts = [m["text"] for m in await http.state() if m["thread_id"] == card["id"]]
        return texts if "Run succeeded" in texts else None

    texts = await eventually(thread)
    assert "Shipped api to prod" in texts
    # The "Started" reply was alice's only; as in Slack, a reload (the state) no longer has it.
    assert reply["message"]["id"] not in {m["id"] for m in await http.state("alice")}
    assert reply["message"]["id"] not in {m["id"] for m in await http.state("bob")}


async def test_a_misspelt_workflow_is_explained_to_its_author_only(app: App, http: Client) -> None:
    reply = await http.command("/workflow run depoly")
    assert reply["kind"] == "say"
    assert reply["message"]["text"] == "No workflow named depoly. Did you mean deploy?"
    assert reply["message"]["ephemeral"]
    alice = [m["text"] for m in await http.state("alice")]
    bob = [m["text"] for m in await http.state("bob")]
    assert alice == bob == []  # only in alice's answer: an ephemeral reply is not there after a reload
    assert await app.runtime.store.list_runs(limit=10) == []


async def test_missing_inputs_open_a_form_with_field_errors(app: App, http: Client) -> None:
    reply = await http.command("/workflow run deploy", channel="#approvals")
    assert reply["kind"] == "form"
    form = reply["form"]
    assert form["form_id"] == "sb:form:run:deploy"
    assert re.search(r'<select[^>]*name="env"', form["html"])
    assert '<option value="staging" selected>' in form["html"]

    body = {
        "channel": "approvals",
        "form_id": form["form_id"],
        "state": form["state"],
        "values": {"service": "web", "env": "prod", "replicas": "2.5"},
        "form": form["form"],
    }
    bad = await http.post("/api/submit", body)
    assert bad["kind"] == "errors" and set(bad["errors"]) == {"replicas"}
    assert "expected a integer" in bad["form"]["html"]
    assert 'value="web"' in bad["form"]["html"]  # what was typed stays
    assert 'aria-invalid="true"' in bad["form"]["html"]

    good = await http.post("/api/submit", {**body, "values": {**body["values"], "replicas": "3"}})
    assert good["kind"] == "say"
    card = await card_with_status(http, run_id_of(good), "succeeded")
    assert card["channel"] == "approvals"
    fields = {f["label"]: f["value"] for f in card["card"]["fields"]}
    assert fields["service"] == "web" and fields["env"] == "prod" and fields["replicas"] == "3"


async def test_cancel_button_then_a_stale_button(app: App, http: Client) -> None:
    run_id = run_id_of(await http.command("/workflow run migrate", user="bob"))
    card = await card_with_status(http, run_id, "running")
    cancel = next(b for b in card["card"]["buttons"] if b["label"] == "Cancel")
    assert cancel["confirm"] is not None
    click = {"channel": "ops", "message_id": card["id"], "action_id": cancel["action_id"]}
    reply = await http.post("/api/click", click, user="bob")
    assert reply["message"]["ephemeral"] and reply["message"]["text"].startswith("Cancelling run")
    await card_with_status(http, run_id, "cancelled")

    stale = await http.post(
        "/api/click", click, user="bob"
    )  # the button from the card as it was while running
    assert stale["kind"] == "say" and stale["message"]["ephemeral"]
    assert stale["message"]["text"] == f"Run {run_id} already cancelled; there is nothing to cancel."


async def test_an_other_user_is_refused_by_permissions_and_acts_as_picked(app: App, http: Client) -> None:
    (app.settings.workflows_dir / "locked.yaml").write_text(
        "name: locked\npermissions: {run: ['group:eng-directors']}\n"
        "steps:\n  hi: {run: ['python3', '-c', 'print(1)']}\n"
    )
    refused = await http.command("/workflow run locked", user="alice")
    assert refused["message"]["text"] == "You may not run locked. Allowed: group:eng-directors."
    allowed = await http.command("/workflow run locked", user="carol")
    run_id = run_id_of(allowed)
    card = await card_with_status(http, run_id, "succeeded")
    assert {"label": "Started by", "value": "@carol", "short": True} in card["card"]["fields"]
    row = await app.runtime.store.run_row(run_id)
    assert row is not None and row.started_by == "console:carol"


async def test_unknown_users_channels_and_messages_are_clear_errors(app: App, http: Client) -> None:
    async with (
        aiohttp.ClientSession(app.url) as anonymous,
        anonymous.post("/auth/dev", json={"user": "mallory"}) as res,
    ):
        assert res.status == 400
        assert (await res.json())["error"].startswith(
            "Unknown console user 'mallory'. Users: alice, bob, carol"
        )
    nowhere = await http.post("/api/command", {"channel": "nope", "text": "/x"}, 404)
    assert nowhere["error"].startswith("Unknown channel '#nope'. Channels: #ops, #approvals, #agents")
    missing = await http.post("/api/click", {"channel": "ops", "action_id": "x"}, 400)
    assert missing["error"] == "'message_id' must be a message id (a number)."
    gone = {"channel": "ops", "message_id": 999, "action_id": "sb:run:x:cancel"}
    assert (await http.post("/api/click", gone, 404))["error"] == "There is no message 999 in #ops."
    unknown = await http.command("/deploy now")
    assert unknown["message"]["text"] == "Switchboard does not know /deploy; try /workflow help"
    session, csrf = await http.sign_in("alice")
    form = {"X-CSRF-Token": csrf}
    async with session.post("/api/command", data="channel=ops&text=/workflow+list", headers=form) as res:
        assert res.status == 400  # a cross-site form post is not JSON, so it is refused
        assert "application/json" in (await res.json())["error"]
    with pytest.raises(aiohttp.WSServerHandshakeError):
        await session.ws_connect("/ws", params={"csrf": csrf}, origin="http://evil.example")


async def test_plain_messages_are_shown_and_handed_to_listeners(app: App, http: Client) -> None:
    console = app.platforms["console"]
    assert isinstance(console, ConsoleAdapter)
    heard: list[tuple[str, str, str]] = []

    async def listener(who: Identity, where: Place, msg: Message) -> None:
        heard.append((who.name, where.channel, msg.text))

    console.listeners.append(listener)
    reply = await http.post("/api/message", {"channel": "ops", "text": "hi <b>there</b>"}, user="dave")
    assert reply["message"]["author"] == "dave" and not reply["message"]["ephemeral"]
    assert "&lt;b&gt;there&lt;/b&gt;" in reply["message"]["html"]  # escaped, never markup
    assert [m["text"] for m in await http.state("erin")] == ["hi <b>there</b>"]
    await eventually(lambda: _some(heard))
    assert heard == [("dave", "ops", "hi <b>there</b>")]


async def _some(items: list[T]) -> list[T] | None:
    return items or None


async def test_outbox_posts_are_found_by_key_and_never_doubled(
    db_url: str, tmp_path: Path, workflows_dir: Path
) -> None:
    # Storage behaviour (a unique key, ids returned on insert), so on SQLite and PostgreSQL both.
    settings = console_settings(tmp_path, workflows_dir).model_copy(update={"database_url": db_url})
    app = await start_app(settings)
    try:
        await _outbox_contract(app)
    finally:
        await stop_app(app, grace=1.0, flush=1.0)


async def _outbox_contract(app: App) -> None:
    console = app.platforms["console"]
    card = Card(title="Hello", text="from the outbox")
    first = await console.post("#ops", card, "sb-post-1")
    assert await console.post("ops", card, "sb-post-1") == first
    assert await console.find("ops", "sb-post-1") == first
    assert await console.find("ops", "sb-post-2") is None
    reply = await console.reply(await console.thread(first), Card(title="In the thread"), "sb-post-2")
    assert reply != first
    await console.update(first, Card(title="Hello", status="done"))
    with pytest.raises(DeliveryError) as refused:
        await console.post("releases", card, "sb-post-3")
    assert refused.value.permanent and "SWITCHBOARD_CONSOLE_CHANNELS" in refused.value.hint
    assert (await console.find("ops", "sb-post-2")) == reply
    assert console.describe() == f"Console: {app.url}"
    assert isinstance(first, Sent)


async def test_hints_follow_the_typed_command(app: App, http: Client) -> None:
    async def hints(text: str) -> list[str]:
        found = await http.get("/api/hints", {"channel": "ops", "text": text})
        return [h["value"] for h in found["hints"]]

    assert await hints("/wor") == ["/workflow "]
    assert await hints("/workflow r") == ["/workflow run ", "/workflow rewind ", "/workflow rerun "]
    assert await hints("/workflow ru") == ["/workflow run "]
    assert await hints("/workflow run de") == ["/workflow run deploy "]
    assert await hints("/workflow run deploy service=api env=p") == [
        "/workflow run deploy service=api env=prod "
    ]
    assert "/workflow run deploy service=api replicas=" in await hints("/workflow run deploy service=api ")
    assert await hints("hello") == []


async def test_the_page_is_served_with_a_strict_policy_and_nothing_external(app: App, http: Client) -> None:
    async with (await http.session()).get("/") as res:
        assert res.status == 200
        policy = res.headers["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy
        page = await res.text()
    static = Path(__file__).resolve().parent.parent / "bot" / "platforms" / "console" / "static"
    for path in static.iterdir():
        text = path.read_text()
        assert not re.search(r"(src|href)=\"https?:", text), path  # nothing from a CDN
        assert "<script>" not in text, path  # no inline scripts
        async with (await http.session()).get(f"/static/{path.name}") as res:
            assert res.status == 200, path.name
    assert '<script src="/static/console.js" defer></script>' in page
