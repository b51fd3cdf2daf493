"""Outbound webhooks managed over the REST API, over real HTTP against the started app: an admin's token
with ``webhooks:manage`` adds one (its secret shown once), lists, reads the delivery log of a run's
events sent to a real local receiver, and removes it; everyone else is refused with a problem."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import sqlalchemy as sa

from bot.delivery.webhook_signing import verify
from bot.process import App, start_app, stop_app
from bot.storage.tables import action_log
from tests.api_client import call, token
from tests.helpers import eventually
from tests.test_api import problem, settings
from tests.webhook_receiver import Receiver

ONE = """
name: one
steps:
  a: {run: ["true"]}
"""
HOOKS = "/api/v1/webhooks"


@pytest.fixture
async def app(db_url: str, workflows_dir: Path) -> AsyncIterator[App]:
    (workflows_dir / "one.yaml").write_text(ONE)
    started = await start_app(settings(db_url, workflows_dir, admins=["token:root", "console:alice"]))
    try:
        yield started
    finally:
        await stop_app(started, grace=1.0, flush=1.0)


async def test_an_admin_adds_lists_reads_the_deliveries_of_and_removes_a_webhook(app: App) -> None:
    root = await token(app, "root", "webhooks:manage,runs:write", "root")
    async with Receiver() as receiver:
        url = receiver.url("/ci")
        added = await call(app, "POST", HOOKS, root, {"url": url, "events": ["run.finished"]})
        assert added.status == 201, added
        hook = added.body
        assert (
            hook["url"] == url and hook["events"] == ["run.finished"] and hook["created_by"] == "token:root"
        )
        assert hook["secret"].startswith("whsec_")
        assert added.headers["Location"] == f"{HOOKS}/{hook['id']}"

        listed = await call(app, "GET", HOOKS, root)
        assert listed.status == 200 and [h["id"] for h in listed.body["webhooks"]] == [hook["id"]]
        assert "secret" not in listed.body["webhooks"][0]
        one = await call(app, "GET", f"{HOOKS}/{hook['id']}", root)
        assert one.status == 200 and "secret" not in one.body and one.body["url"] == url

        run = await call(app, "POST", "/api/v1/runs", root, {"workflow": "one"})
        assert run.status == 201, run
        await eventually(lambda: len(receiver.at("/ci")) == 1)
        sent = receiver.at("/ci")[0]
        assert verify(hook["secret"], sent.headers, sent.body, float(sent.headers["webhook-timestamp"]))

        async def delivered() -> bool:
            log = await call(app, "GET", f"{HOOKS}/{hook['id']}/deliveries", root)
            return bool(log.body["deliveries"]) and log.body["deliveries"][0]["status"] == "delivered"

        await eventually(delivered)
        log = (await call(app, "GET", f"{HOOKS}/{hook['id']}/deliveries?limit=5", root)).body
        [delivery] = log["deliveries"]
        assert (
            delivery["event_type"] == "run.finished" and delivery["message_id"] == sent.headers["webhook-id"]
        )
        [attempt] = delivery["attempt_log"]
        assert attempt["status_code"] == 200 and attempt["response"] == "thanks"

        gone = await call(app, "DELETE", f"{HOOKS}/{hook['id']}", root)
        assert gone.status == 200 and gone.body["id"] == hook["id"] and "secret" not in gone.body
        assert (await call(app, "GET", HOOKS, root)).body["webhooks"] == []
        problem(await call(app, "DELETE", f"{HOOKS}/{hook['id']}", root), 404, "not-found", hook["id"])
        problem(await call(app, "GET", f"{HOOKS}/{hook['id']}/deliveries", root), 404, "not-found")
    async with app.engine.connect() as conn:
        logged = (await conn.execute(sa.select(action_log).where(action_log.c.kind == "api"))).all()
    done = [(a.actor, a.detail.get("webhook"), a.outcome) for a in logged if "webhook" in a.detail]
    assert done == [("token:root", "add", "ok"), ("token:root", "remove", "ok")]


async def test_bad_subscriptions_are_refused_with_the_clis_own_words(app: App) -> None:
    root = await token(app, "root", "webhooks:manage", "root")
    answer = await call(app, "POST", HOOKS, root, {"url": "ftp://example.com/x", "events": ["run.*"]})
    problem(answer, 400, "bad-input", "is not an http(s) URL")
    answer = await call(app, "POST", HOOKS, root, {"url": "https://u:p@example.com/x", "events": ["*"]})
    problem(answer, 400, "bad-input", "no credentials")
    answer = await call(app, "POST", HOOKS, root, {"url": "https://example.com/x", "events": ["runs.done"]})
    problem(answer, 400, "bad-input", "'runs.done' is not an event pattern")
    answer = await call(app, "POST", HOOKS, root, {"url": "https://example.com/x", "events": []})
    problem(answer, 422, "request-invalid")
    answer = await call(app, "POST", HOOKS, root, {"url": "https://example.com/x", "event": ["*"]})
    problem(answer, 422, "request-invalid")
    assert (await call(app, "GET", HOOKS, root)).body["webhooks"] == []


async def test_only_an_admins_token_with_the_scope_manages_webhooks(app: App) -> None:
    problem(await call(app, "GET", HOOKS), 401, "unauthenticated")
    scoped = await token(app, "root-read", "runs:read", "root")  # the admin, without the scope
    problem(await call(app, "GET", HOOKS, scoped), 403, "missing-scope", "webhooks:manage")
    ci = await token(app, "ci", "webhooks:manage", "ci")
    for method, path in (("GET", HOOKS), ("GET", f"{HOOKS}/wh_x"), ("DELETE", f"{HOOKS}/wh_x")):
        problem(await call(app, method, path, ci), 403, "not-permitted", "SWITCHBOARD_ADMINS")
    body = {"url": "https://example.com/x", "events": ["*"]}
    problem(await call(app, "POST", HOOKS, ci, body), 403, "not-permitted", "token:ci is not one")
    problem(await call(app, "POST", HOOKS, scoped, body), 403, "missing-scope", "webhooks:manage")


async def test_a_prefix_is_not_enough_to_remove_one(app: App) -> None:
    root = await token(app, "root", "webhooks:manage", "root")
    hook = (await call(app, "POST", HOOKS, root, {"url": "https://example.com/x", "events": ["*"]})).body
    problem(await call(app, "DELETE", f"{HOOKS}/{hook['id'][:5]}", root), 404, "not-found")
    assert [h["id"] for h in (await call(app, "GET", HOOKS, root)).body["webhooks"]] == [hook["id"]]


async def test_the_webhook_endpoints_are_in_the_openapi_document(app: App) -> None:
    doc = (await call(app, "GET", "/api/v1/openapi.json")).body
    assert set(doc["paths"][HOOKS]) == {"get", "post"}
    assert set(doc["paths"][f"{HOOKS}/{{webhook_id}}"]) == {"get", "delete"}
    assert "webhooks:manage" in doc["paths"][f"{HOOKS}/{{webhook_id}}/deliveries"]["get"]["description"]
    assert "secret" in doc["components"]["schemas"]["WebhookCreated"]["required"]


async def test_a_signed_in_admin_manages_webhooks_with_the_csrf_token_and_others_may_not(app: App) -> None:
    body = {"url": "https://example.com/x", "events": ["approval.*"]}
    for user, allowed in (("alice", True), ("bob", False)):
        jar = aiohttp.CookieJar(unsafe=True)  # the cookie is for 127.0.0.1
        async with aiohttp.ClientSession(cookie_jar=jar) as session:
            async with session.post(f"{app.url}/auth/dev", json={"user": user}) as r:
                assert r.status == 200
            async with session.get(f"{app.url}/api/state") as r:
                csrf = (await r.json())["csrf"]
            async with session.post(f"{app.url}{HOOKS}", json=body) as r:
                refused = await r.json(content_type=None)
                assert r.status == 403 and "X-CSRF-Token" in refused["detail"], refused
            async with session.post(f"{app.url}{HOOKS}", json=body, headers={"X-CSRF-Token": csrf}) as r:
                answer = await r.json(content_type=None)
                if allowed:
                    assert r.status == 201 and answer["created_by"] == "console:alice", answer
                else:
                    assert r.status == 403 and "console:bob is not one" in answer["detail"], answer
