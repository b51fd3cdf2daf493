"""Webhook triggers over real HTTP: GitHub-style and Standard Webhooks signatures, replays, and refusals."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa

from bot.config import Settings
from bot.process import App, start_app, stop_app
from bot.storage.tables import action_log, chat_cards
from bot.triggers.hooks import MAX_BODY
from bot.triggers.signatures import sign_github, sign_standard
from tests.conftest import FakeClock
from tests.helpers import finished, workflow

GITHUB_SECRET = "it's a secret to everybody"
STANDARD_SECRET = "whsec_" + base64.b64encode(b"sixteen byte key").decode()

DEPLOY = """
name: deploy_on_push
inputs:
  service: {type: string, required: true}
  ref: {type: string, default: main}
on:
  webhook:
    name: github-push
    secret_env: TEST_GITHUB_HOOK_SECRET
    signature: github
    inputs: {service: "${{ event.repository.name }}", ref: "${{ event.ref }}"}
steps:
  ship: {notify: "deploying ${{ inputs.service }} at ${{ inputs.ref }}"}
outputs:
  service: ${{ inputs.service }}
"""

INCIDENT = """
name: alert_incident
inputs:
  service: {type: string, required: true}
  severity: {type: enum, enum: [critical, warning], required: true}
on:
  webhook:
    name: alertmanager
    secret_env: TEST_ALERT_HOOK_SECRET
    channel: console:ops
    inputs:
      service: "${{ event.commonLabels.service }}"
      severity: "${{ event.commonLabels.severity }}"
steps:
  open: {notify: "${{ inputs.severity }} on ${{ inputs.service }}"}
"""

PUSH = {"ref": "refs/heads/main", "repository": {"name": "api", "full_name": "acme/api"}}
ALERT = {
    "status": "firing",
    "groupKey": '{}:{alertname="HighErrorRate"}',
    "commonLabels": {"service": "billing", "severity": "critical", "alertname": "HighErrorRate"},
    "alerts": [{"labels": {"service": "billing"}, "annotations": {}, "startsAt": "2027-01-15T10:00:00Z"}],
}


@pytest.fixture
async def app(
    settings_for: Callable[..., Settings], workflows_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[App]:
    monkeypatch.setenv("TEST_GITHUB_HOOK_SECRET", GITHUB_SECRET)
    monkeypatch.setenv("TEST_ALERT_HOOK_SECRET", STANDARD_SECRET)
    workflow(DEPLOY, workflows_dir)
    workflow(INCIDENT, workflows_dir)
    started = await start_app(settings_for(port=0, console=False), clock=FakeClock())
    yield started
    await stop_app(started, grace=1.0, flush=0.5)


async def post(app: App, hook: str, body: bytes, headers: dict[str, str]) -> tuple[int, str, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{app.url}/hooks/{hook}", data=body, headers=headers) as response,
    ):
        return response.status, response.content_type, await response.json(content_type=None)


def github_headers(body: bytes, delivery: str, secret: str = GITHUB_SECRET) -> dict[str, str]:
    return {
        "X-Hub-Signature-256": sign_github(secret, body),
        "X-GitHub-Delivery": delivery,
        "X-GitHub-Event": "push",
        "Content-Type": "application/json",
    }


def standard_headers(body: bytes, delivery: str, at: float, secret: str = STANDARD_SECRET) -> dict[str, str]:
    stamp = int(at)
    return {
        "webhook-id": delivery,
        "webhook-timestamp": str(stamp),
        "webhook-signature": sign_standard(secret, delivery, stamp, body),
        "Content-Type": "application/json",
    }


async def test_a_signed_github_push_starts_one_run_and_its_replay_is_refused(app: App) -> None:
    body = json.dumps(PUSH).encode()
    delivery = str(uuid.uuid4())
    status, kind, answer = await post(app, "github-push", body, github_headers(body, delivery))
    assert status == 202, answer
    assert answer["workflow"] == "deploy_on_push" and answer["delivery"] == delivery
    row = await finished(app.runtime, answer["run_id"])
    assert row.status == "succeeded" and row.outputs == {"service": "api"}
    assert row.inputs == {"service": "api", "ref": "refs/heads/main"}
    assert row.started_by == "webhook:github-push"

    status, kind, problem = await post(app, "github-push", body, github_headers(body, delivery))
    assert (status, kind) == (409, "application/problem+json")
    assert problem["type"] == "urn:switchboard:problem:replay" and problem["run_id"] == answer["run_id"]
    assert (
        f"Delivery {delivery} was already received (it started run {answer['run_id']})" in problem["detail"]
    )

    async with app.engine.connect() as conn:
        audit = (await conn.execute(sa.select(action_log).where(action_log.c.kind == "webhook"))).all()
    assert [(a.actor, a.run_id, a.detail["source"]) for a in audit] == [
        ("webhook:github-push", answer["run_id"], "webhook")
    ]


async def test_github_refusals_are_problems_that_say_why(app: App) -> None:
    body = json.dumps(PUSH).encode()
    wrong = github_headers(body, "d-1", secret="not the secret")
    status, kind, problem = await post(app, "github-push", body, wrong)
    assert (status, kind, problem["status"]) == (401, "application/problem+json", 401)
    assert "does not match" in problem["detail"]

    tampered = json.dumps({**PUSH, "ref": "refs/heads/evil"}).encode()
    status, _, problem = await post(app, "github-push", tampered, github_headers(body, "d-2"))
    assert status == 401 and "body was changed" in problem["detail"]

    status, _, problem = await post(app, "github-push", body, {"Content-Type": "application/json"})
    assert status == 401 and "no X-Hub-Signature-256" in problem["detail"]

    status, _, problem = await post(app, "nope", body, github_headers(body, "d-3"))
    assert status == 404 and problem["detail"] == "No workflow declares the webhook 'nope'."

    no_repo = json.dumps({"ref": "x"}).encode()
    status, _, problem = await post(app, "github-push", no_repo, github_headers(no_repo, "d-4"))
    assert status == 422 and problem["errors"] == {"service": "required"}, problem

    not_json = b"<xml/>"
    status, _, problem = await post(app, "github-push", not_json, github_headers(not_json, "d-5"))
    assert status == 400 and problem["detail"] == "The body is not JSON."

    deep = b"[" * 200_000 + b"]" * 200_000
    status, _, problem = await post(app, "github-push", deep, github_headers(deep, "d-7"))
    assert status == 400 and problem["detail"] == "The body's JSON nests too deeply to read."

    huge = b"[" + b"0," * (MAX_BODY // 2) + b"0]"
    status, _, problem = await post(app, "github-push", huge, github_headers(huge, "d-6"))
    assert status == 413, problem

    # A refused delivery is not remembered: sent again, correctly, it starts its run.
    status, _, answer = await post(app, "github-push", body, github_headers(body, "d-4"))
    assert status == 202, answer
    assert (await finished(app.runtime, answer["run_id"])).status == "succeeded"


async def test_a_standard_webhooks_alert_starts_the_incident_and_old_or_replayed_ones_are_refused(
    app: App,
) -> None:
    clock = app.runtime.clock
    body = json.dumps(ALERT).encode()
    status, _, answer = await post(app, "alertmanager", body, standard_headers(body, "msg_1", clock()))
    assert status == 202, answer
    row = await finished(app.runtime, answer["run_id"])
    assert row.inputs == {"service": "billing", "severity": "critical"}
    async with app.engine.connect() as conn:
        card = (await conn.execute(sa.select(chat_cards).where(chat_cards.c.key == f"run:{row.id}"))).one()
    assert (card.platform, card.channel) == ("console", "ops")  # the hook's channel: its status card

    status, _, problem = await post(app, "alertmanager", body, standard_headers(body, "msg_1", clock()))
    assert status == 409 and problem["type"].endswith(":replay")

    old = standard_headers(body, "msg_2", clock() - 301)
    status, _, problem = await post(app, "alertmanager", body, old)
    assert status == 401 and "at most 300 s are accepted" in problem["detail"], problem

    other_key = "whsec_" + base64.b64encode(b"another key here").decode()
    status, _, problem = await post(
        app, "alertmanager", body, standard_headers(body, "msg_3", clock(), secret=other_key)
    )
    assert status == 401 and "no v1 signature matches" in problem["detail"]

    headers = standard_headers(body, "msg_4", clock())
    headers["webhook-signature"] = (
        "v1,bm9wZQ== " + headers["webhook-signature"]
    )  # rotated keys: any may match
    status, _, answer = await post(app, "alertmanager", body, headers)
    assert status == 202, answer

    unknown = json.dumps({**ALERT, "commonLabels": {"service": "x", "severity": "sev9"}}).encode()
    status, _, problem = await post(app, "alertmanager", unknown, standard_headers(unknown, "msg_5", clock()))
    assert status == 422 and "severity" in problem["errors"], problem


async def test_a_hook_without_its_secret_set_refuses_everything(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TEST_GITHUB_HOOK_SECRET")
    body = json.dumps(PUSH).encode()
    status, _, problem = await post(app, "github-push", body, github_headers(body, "d-9", secret=""))
    assert status == 503 and "has no secret configured" in problem["detail"]


async def test_the_worked_examples_start_from_alertmanager_and_a_github_push(
    settings_for: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALERTMANAGER_WEBHOOK_SECRET", "alert-token")
    monkeypatch.setenv("GITHUB_WEBHOOK_SECRET", GITHUB_SECRET)
    examples = Path(__file__).resolve().parent.parent / "workflows"
    app = await start_app(settings_for(port=0, console=False, workflows_dir=examples))
    try:
        alert = {
            **ALERT,
            "commonLabels": {"service": "api", "severity": "sev2", "alertname": "HighErrorRate"},
            "commonAnnotations": {"summary": "5xx above 2%"},
        }
        body = json.dumps(alert).encode()
        refused = {"Authorization": "Bearer wrong", "Content-Type": "application/json"}
        status, _, problem = await post(app, "alertmanager", body, refused)
        assert status == 401 and problem["detail"] == "the bearer credential is not the hook's secret"
        bearer = {"Authorization": "Bearer alert-token", "Content-Type": "application/json"}
        status, _, answer = await post(app, "alertmanager", body, bearer)
        assert status == 202 and answer["workflow"] == "incident", answer
        status, _, problem = await post(app, "alertmanager", body, bearer)
        assert status == 409, problem  # the same notification again opens no second incident

        push = json.dumps(PUSH).encode()
        status, _, pushed = await post(app, "github-push", push, github_headers(push, str(uuid.uuid4())))
        assert status == 202 and pushed["workflow"] == "deploy", pushed

        incident = await finished(app.runtime, answer["run_id"], timeout=60)
        assert incident.status == "succeeded"
        assert incident.inputs == {"service": "api", "severity": "sev2", "summary": "5xx above 2%"}
        deploy = await finished(app.runtime, pushed["run_id"], timeout=60)
        assert deploy.status == "succeeded" and deploy.inputs == {"service": "api", "env": "staging"}
    finally:
        await stop_app(app, grace=1.0, flush=0.5)


async def test_a_delivery_recorded_whose_run_was_never_stored_is_taken_again_by_a_late_retry(
    app: App,
) -> None:
    from bot.storage.hook_deliveries import record_delivery

    clock = app.runtime.clock
    assert isinstance(clock, FakeClock)
    body = json.dumps(PUSH).encode()
    # A process recorded these deliveries and died before storing their runs.
    await record_delivery(app.engine, "github-push", "lost", "r0", clock() - 60, 86400)
    await record_delivery(app.engine, "github-push", "racing", "r1", clock() - 1, 86400)
    status, _, answer = await post(app, "github-push", body, github_headers(body, "lost"))
    assert status == 202, answer
    assert (await finished(app.runtime, answer["run_id"])).status == "succeeded"
    status, _, problem = await post(app, "github-push", body, github_headers(body, "racing"))
    assert status == 409, problem  # too recent to tell from one still being started
