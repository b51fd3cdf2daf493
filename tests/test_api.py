"""The REST API over real HTTP against the started app: each endpoint's rules, its refusals as
problem+json, Idempotency-Key, cursor pagination, Server-Sent Events and the served OpenAPI document."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.config import Settings
from bot.process import App, start_app, stop_app
from bot.storage import approvals as approval_rows
from tests.api_client import Answer, call, token
from tests.helpers import eventually, finished, status_is

DEPLOY = """
name: deploy
description: Ship a service
inputs:
  service: {type: string, required: true, description: "What to ship"}
  env: {type: enum, enum: [staging, prod], default: staging}
permissions:
  run: ["group:deployers"]
steps:
  ship:
    run: ["echo", "shipping ${{ inputs.service }}"]
"""
GATED = """
name: gated
steps:
  build:
    run: ["echo", "built"]
  ship:
    needs: [build]
    approval:
      title: "Ship it?"
      approvers: ["user:carol", "user:ci"]
      timeout: 1h
"""
WINDOW = """
name: window
steps:
  ask:
    approval:
      title: "Pick a window"
      kind: form
      approvers: ["user:carol"]
      form:
        window: {type: string, required: true}
        replicas: {type: integer, default: 2}
  after:
    needs: [ask]
    run: ["echo", "window ${{ steps.ask.outputs.form.window }}"]
"""
SLOW = """
name: slow
permissions:
  cancel: ["group:ops"]
  rollback: ["group:ops"]
steps:
  nap:
    run: ["sleep", "30"]
"""
BROKEN = """
name: broken
steps:
  boom:
    run: ["sh", "-c", "exit 3"]
"""


def settings(db_url: str, workflows_dir: Path, **overrides: Any) -> Settings:
    return Settings(
        database_url=db_url,
        workflows_dir=workflows_dir,
        port=0,
        poll_interval=0.05,
        kill_grace=0.5,
        card_update_interval=0.0,
        agent_groups=["group:agents"],
        **overrides,
    )


@pytest.fixture
async def app(db_url: str, workflows_dir: Path) -> AsyncIterator[App]:
    for name, text in {
        "deploy": DEPLOY,
        "gated": GATED,
        "window": WINDOW,
        "slow": SLOW,
        "broken": BROKEN,
    }.items():
        (workflows_dir / f"{name}.yaml").write_text(text)
    started = await start_app(settings(db_url, workflows_dir))
    try:
        yield started
    finally:
        await stop_app(started, grace=1.0, flush=1.0)


def problem(answer: Answer, status: int, slug: str, *words: str) -> dict[str, Any]:
    """Assert an RFC 9457 problem of this status and kind whose detail says ``words``."""
    assert answer.status == status, answer
    assert answer.content_type == "application/problem+json", answer
    body = answer.body
    assert body["status"] == status and body["type"] == f"/api/v1/docs#problem-{slug}", body
    assert body["title"] and body["detail"], body
    for word in words:
        assert word in body["detail"], body
    return dict(body)


async def test_health_and_the_documents_need_no_token(app: App) -> None:
    health = await call(app, "GET", "/api/v1/health")
    assert health.status == 200 and health.body["ok"] is True
    doc = await call(app, "GET", "/api/v1/openapi.json")
    assert doc.status == 200 and doc.body["openapi"] == "3.1.0"
    assert "/api/v1/runs/{run_id}/events" in doc.body["paths"]
    assert doc.body["paths"]["/api/v1/runs"]["post"]["responses"]["201"]
    page = await call(app, "GET", "/api/v1/docs")
    assert page.status == 200 and page.content_type == "text/html"
    assert "<script" not in page.body and "http" not in page.body.split("<pre>")[0].replace("http-equiv", "")
    assert "startRun" in page.body and "problem-not-permitted" in page.body


async def test_refusals_are_problems_no_token_bad_token_wrong_scope_unknown_path(app: App) -> None:
    problem(await call(app, "GET", "/api/v1/runs"), 401, "unauthenticated", "Authorization: Bearer")
    answer = await call(app, "GET", "/api/v1/runs", token="sbt_000000000000_" + "x" * 43)
    problem(answer, 401, "unauthenticated", "not a live Switchboard token")
    assert answer.headers["WWW-Authenticate"].startswith("Bearer")
    reader = await token(app, "reader", "runs:read", "ci", ("deployers",))
    answer = await call(
        app, "POST", "/api/v1/runs", reader, {"workflow": "deploy", "inputs": {"service": "api"}}
    )
    problem(answer, 403, "missing-scope", "runs:write", "'reader'")
    problem(await call(app, "GET", "/api/v1/nothing-here", reader), 404, "not-found", "/api/v1/docs")
    answer = await call(app, "DELETE", "/api/v1/runs", reader)
    problem(answer, 405, "method-not-allowed")
    assert set(answer.headers["Allow"].split(", ")) == {"GET", "POST"}


async def test_workflows_list_get_and_who_may_run(app: App) -> None:
    outsider = await token(app, "outsider", "runs:read", "erin")
    deployer = await token(app, "deployer", "runs:read", "ci", ("deployers",))
    listed = await call(app, "GET", "/api/v1/workflows", outsider)
    by_name = {w["name"]: w for w in listed.body["workflows"]}
    assert by_name["deploy"]["may_run"] is False and by_name["gated"]["may_run"] is True
    got = await call(app, "GET", "/api/v1/workflows/deploy", deployer)
    assert got.status == 200 and got.body["may_run"] is True
    assert got.body["allowed_to_run"] == "group:deployers"
    inputs = {i["name"]: i for i in got.body["inputs"]}
    assert inputs["service"]["type"] == "string" and inputs["service"]["required"] is True
    assert inputs["env"]["enum"] == ["staging", "prod"] and inputs["env"]["default"] == "staging"
    problem(
        await call(app, "GET", "/api/v1/workflows/depoly", deployer), 404, "not-found", "Did you mean deploy?"
    )


async def test_validate_gives_diagnostics_with_lines_as_the_cli_does(app: App) -> None:
    reader = await token(app, "reader", "runs:read", "ci")
    good = await call(
        app, "POST", "/api/v1/workflows/validate", reader, {"source": DEPLOY, "filename": "d.yaml"}
    )
    assert good.status == 200 and good.body["valid"] is True and good.body["name"] == "deploy"
    bad_text = 'name: bad\nsteps:\n  one:\n    run: ["true"]\n    needs: [missing]\n'
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{app.url}/api/v1/workflows/validate",
            data=bad_text,
            headers={"Authorization": f"Bearer {reader}", "Content-Type": "application/yaml"},
        ) as r,
    ):
        assert r.status == 200
        bad = await r.json()
    assert bad["valid"] is False and bad["errors"], bad
    first = bad["errors"][0]
    assert first["line"] == 5 and first["text"].startswith("workflow.yaml:5:"), first
    assert "missing" in first["message"]


async def test_start_run_follows_chat_permissions_and_input_rules(app: App) -> None:
    outsider = await token(app, "outsider", "runs:write,runs:read", "erin")
    deployer = await token(app, "deployer", "runs:write,runs:read", "ci", ("deployers",))
    body = {"workflow": "deploy", "inputs": {"service": "api"}}
    problem(
        await call(app, "POST", "/api/v1/runs", outsider, body),
        403,
        "not-permitted",
        "Allowed: group:deployers",
    )
    answer = await call(
        app, "POST", "/api/v1/runs", deployer, {"workflow": "deploy", "inputs": {"env": "qa"}}
    )
    refused = problem(answer, 422, "request-invalid", "Nothing started", "service")
    assert {e["field"] for e in refused["errors"]} >= {"body.inputs.env", "body.inputs.service"}
    answer = await call(app, "POST", "/api/v1/runs", deployer, {"workflow": "deploy", "inptus": {}})
    assert problem(answer, 422, "request-invalid")["errors"][0]["field"].startswith("body.")
    started = await call(app, "POST", "/api/v1/runs", deployer, body)
    assert started.status == 201, started
    run_id = started.body["id"]
    assert started.headers["Location"] == f"/api/v1/runs/{run_id}"
    assert started.body["started_by"] == "token:ci" and started.body["inputs"]["env"] == "staging"
    await finished(app.runtime, run_id)
    detail = await call(app, "GET", f"/api/v1/runs/{run_id}", deployer)
    assert detail.body["status"] == "succeeded"
    assert [s["key"] for s in detail.body["steps"]] == ["ship"]
    assert detail.body["steps"][0]["outputs"]["stdout"].strip() == "shipping api"
    types = [e["type"] for e in detail.body["events"]]
    assert types[0] == "run_started" and types[-1] == "run_finished"


async def test_a_retried_post_with_the_same_idempotency_key_starts_one_run(app: App) -> None:
    ci = await token(app, "ci", "runs:write,runs:read", "ci")
    body = {"workflow": "gated", "inputs": {}}
    key = {"Idempotency-Key": "6f1c1a7e-retry-me"}
    answers = await asyncio.gather(
        *(call(app, "POST", "/api/v1/runs", ci, body, headers=key) for _ in range(5))
    )
    statuses = sorted(a.status for a in answers)
    assert statuses.count(201) == 1, answers
    assert set(statuses) <= {200, 201, 409}, answers  # 409: the first was still starting
    again = await call(app, "POST", "/api/v1/runs", ci, body, headers=key)
    assert again.status == 200 and again.headers["Idempotent-Replayed"] == "true"
    [first] = [a for a in answers if a.status == 201]
    assert again.body["id"] == first.body["id"]
    listed = await call(app, "GET", "/api/v1/runs?workflow=gated", ci)
    assert [r["id"] for r in listed.body["runs"]] == [first.body["id"]]
    other = await call(app, "POST", "/api/v1/runs", ci, {"workflow": "slow"}, headers=key)
    problem(other, 422, "request-invalid", "Idempotency-Key", first.body["id"])
    another_caller = await token(app, "ci2", "runs:write", "ci2")
    mine = await call(app, "POST", "/api/v1/runs", another_caller, body, headers=key)
    assert mine.status == 201 and mine.body["id"] != first.body["id"]  # keys are per caller


async def test_list_filters_and_cursor_pagination(app: App) -> None:
    ci = await token(app, "ci", "runs:write,runs:read", "ci")
    ids = []
    for _ in range(5):
        ids.append((await call(app, "POST", "/api/v1/runs", ci, {"workflow": "broken"})).body["id"])
    for run_id in ids:
        await finished(app.runtime, run_id)
    seen: list[str] = []
    cursor = None
    while True:
        query = "?workflow=broken&status=failed&limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = await call(app, "GET", f"/api/v1/runs{query}", ci)
        assert page.status == 200 and len(page.body["runs"]) <= 2
        seen += [r["id"] for r in page.body["runs"]]
        cursor = page.body["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(ids) and len(seen) == 5
    assert (await call(app, "GET", "/api/v1/runs?status=succeeded&workflow=broken", ci)).body["runs"] == []
    problem(await call(app, "GET", "/api/v1/runs?status=bogus", ci), 422, "request-invalid", "status")
    problem(await call(app, "GET", "/api/v1/runs?cursor=nonsense", ci), 400, "bad-input", "cursor")


async def test_cancel_retry_rollback_follow_chat_rules(app: App) -> None:
    alice = await token(app, "alice", "runs:write,runs:read", "alice")
    erin = await token(app, "erin", "runs:write,runs:read", "erin")
    slow = (await call(app, "POST", "/api/v1/runs", alice, {"workflow": "slow"})).body["id"]
    await status_is(app.runtime, slow, "running")
    problem(
        await call(app, "POST", f"/api/v1/runs/{slow}/retry", alice), 409, "conflict", "only a failed run"
    )
    answer = await call(app, "POST", f"/api/v1/runs/{slow}/cancel", erin)
    problem(answer, 403, "not-permitted", "You may not cancel")
    done = await call(app, "POST", f"/api/v1/runs/{slow}/cancel", alice)
    assert done.status == 200 and done.body["message"].startswith("Cancelling run")
    assert (await finished(app.runtime, slow)).status == "cancelled"
    again = await call(app, "POST", f"/api/v1/runs/{slow}/cancel", alice)
    problem(again, 409, "conflict", "already cancelled; there is nothing to cancel")
    broken = (await call(app, "POST", "/api/v1/runs", alice, {"workflow": "broken"})).body["id"]
    await finished(app.runtime, broken)
    retried = await call(app, "POST", f"/api/v1/runs/{broken}/retry", alice)
    assert retried.status == 200 and "Retrying" in retried.body["message"]
    await eventually(lambda: _attempts(app, broken, alice), message="the failed step to run a second time")
    rolled = await call(app, "POST", f"/api/v1/runs/{slow}/rollback", alice, {})
    assert rolled.status == 200 and "Rolling back" in rolled.body["message"]
    problem(await call(app, "POST", "/api/v1/runs/ffffffffffff/cancel", alice), 404, "not-found", "No run")


async def _attempts(app: App, run_id: str, tok: str) -> bool:
    detail = await call(app, "GET", f"/api/v1/runs/{run_id}", tok)
    return detail.body["status"] == "failed" and detail.body["steps"][0]["attempt"] == 2


async def test_events_stream_live_as_server_sent_events(app: App) -> None:
    carol = await token(app, "carol", "runs:read,approvals:write", "carol")
    ci = await token(app, "ci", "runs:write,runs:read", "ci")
    run_id = (await call(app, "POST", "/api/v1/runs", ci, {"workflow": "gated"})).body["id"]
    await status_is(app.runtime, run_id, "waiting")
    received: list[dict[str, Any]] = []
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{app.url}/api/v1/runs/{run_id}/events", headers={"Authorization": f"Bearer {ci}"}) as r,
    ):
        assert r.status == 200 and r.content_type == "text/event-stream"
        decided = False
        event: dict[str, Any] = {}
        async for raw in r.content:
            line = raw.decode().rstrip("\n")
            if line.startswith("id: "):
                event["id"] = int(line[4:])
            elif line.startswith("event: "):
                event["event"] = line[7:]
            elif line.startswith("data: "):
                event["data"] = json.loads(line[6:])
            elif line == "" and event:
                received.append(event)
                event = {}
                if received[-1]["event"] == "approval_requested" and not decided:
                    decided = True  # live: the decision happens while the stream is open
                    [pending] = await approval_rows.pending(app.engine, run_id)
                    answer = await call(
                        app,
                        "POST",
                        f"/api/v1/approvals/{pending.id}/decision",
                        carol,
                        {"decision": "approve"},
                    )
                    assert answer.status == 200, answer
    types = [e["event"] for e in received]
    assert types[0] == "run_started" and types[-1] == "run_finished", types
    assert [e["id"] for e in received] == sorted(e["id"] for e in received)
    assert received[-1]["data"]["data"]["status"] == "succeeded"
    # Reconnecting with Last-Event-ID gets only what came after it.
    middle = received[len(received) // 2]["id"]
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            f"{app.url}/api/v1/runs/{run_id}/events",
            headers={"Authorization": f"Bearer {ci}", "Last-Event-ID": str(middle)},
        ) as r,
    ):
        text = await r.text()
    ids = [int(line[4:]) for line in text.splitlines() if line.startswith("id: ")]
    assert ids and min(ids) == middle + 1


async def test_approvals_mine_for_a_run_and_the_rules(app: App) -> None:
    ci = await token(app, "ci", "runs:write,runs:read,approvals:write", "ci")
    carol = await token(app, "carol", "runs:read,approvals:write", "carol")
    dave = await token(app, "dave", "runs:read,approvals:write", "dave")
    carol_reads = await token(app, "carol-ro", "runs:read", "carol")
    run_id = (await call(app, "POST", "/api/v1/runs", ci, {"workflow": "gated"})).body["id"]
    await status_is(app.runtime, run_id, "waiting")
    mine = await call(app, "GET", "/api/v1/approvals", carol)
    [request] = mine.body["approvals"]
    assert request["run_id"] == run_id and request["title"] == "Ship it?"
    assert (await call(app, "GET", "/api/v1/approvals", dave)).body["approvals"] == []
    assert (await call(app, "GET", "/api/v1/approvals", ci)).body["approvals"] == []  # its own run
    for_run = await call(app, "GET", f"/api/v1/approvals?run={run_id}", dave)
    assert [a["id"] for a in for_run.body["approvals"]] == [request["id"]]
    decide = f"/api/v1/approvals/{request['id']}/decision"
    problem(await call(app, "POST", decide, carol_reads, {"decision": "approve"}), 403, "missing-scope")
    problem(
        await call(app, "POST", decide, dave, {"decision": "approve"}),
        403,
        "not-permitted",
        "not an approver",
    )
    problem(
        await call(app, "POST", decide, ci, {"decision": "approve"}),
        403,
        "not-permitted",
        "You started this run",
    )
    problem(await call(app, "POST", decide, carol, {"decision": "maybe"}), 422, "request-invalid")
    ok = await call(app, "POST", decide, carol, {"decision": "approve", "comment": "looks good"})
    assert ok.status == 200 and ok.body["resolved"] is True and "Approved by @carol" in ok.body["message"]
    problem(
        await call(app, "POST", decide, carol, {"decision": "approve"}), 409, "conflict", "Already approved"
    )
    await finished(app.runtime, run_id)
    audit = [r for r in await approval_rows.audit_rows(app.engine, run_id) if r.action == "approve"]
    assert [(r.actor, r.source) for r in audit] == [("token:carol", "api")]
    denied = [r for r in await approval_rows.audit_rows(app.engine, run_id) if r.action == "denied"]
    assert {r.source for r in denied} == {"api"}


async def test_a_form_approval_needs_its_fields(app: App) -> None:
    ci = await token(app, "ci", "runs:write,runs:read", "ci")
    carol = await token(app, "carol", "runs:read,approvals:write", "carol")
    run_id = (await call(app, "POST", "/api/v1/runs", ci, {"workflow": "window"})).body["id"]
    await status_is(app.runtime, run_id, "waiting")
    [request] = (await call(app, "GET", "/api/v1/approvals", carol)).body["approvals"]
    assert request["kind"] == "form" and set(request["form"]) == {"window", "replicas"}
    decide = f"/api/v1/approvals/{request['id']}/decision"
    missing = problem(
        await call(app, "POST", decide, carol, {"decision": "approve"}), 400, "bad-input", "window"
    )
    assert "Nothing was decided" in missing["detail"]
    bad = await call(
        app, "POST", decide, carol, {"decision": "approve", "fields": {"window": "now", "replicas": "x"}}
    )
    problem(bad, 400, "bad-input", "replicas")
    changes = await call(app, "POST", decide, carol, {"decision": "changes", "feedback": "later"})
    problem(changes, 403, "not-permitted", "revise")
    ok = await call(
        app, "POST", decide, carol, {"decision": "approve", "fields": {"window": "sat 02:00", "replicas": 3}}
    )
    assert ok.status == 200 and ok.body["resolved"] is True
    await finished(app.runtime, run_id)
    detail = await call(app, "GET", f"/api/v1/runs/{run_id}", ci)
    after = next(s for s in detail.body["steps"] if s["key"] == "after")
    assert "window sat 02:00" in after["outputs"]["stdout"]
    assert detail.body["approvals"][0]["status"] == "approved"


async def test_a_console_session_acts_as_its_person_and_needs_its_csrf_token_to_write(app: App) -> None:
    jar = aiohttp.CookieJar(unsafe=True)  # the cookie is for 127.0.0.1
    async with aiohttp.ClientSession(cookie_jar=jar) as session:
        async with session.post(f"{app.url}/auth/dev", json={"user": "alice"}) as r:
            assert r.status == 200
        async with session.get(f"{app.url}/api/state") as r:
            csrf = (await r.json())["csrf"]
        async with session.get(f"{app.url}/api/v1/workflows") as r:
            assert r.status == 200 and (await r.json())["workflows"]
        body = {"workflow": "gated"}
        async with session.post(f"{app.url}/api/v1/runs", json=body) as r:
            refused = await r.json(content_type=None)
            assert r.status == 403 and "X-CSRF-Token" in refused["detail"], refused
        async with session.post(f"{app.url}/api/v1/runs", json=body, headers={"X-CSRF-Token": csrf}) as r:
            started = await r.json()
            assert r.status == 201 and started["started_by"] == "console:alice", started


def test_a_database_out_of_reach_is_a_503_not_a_bug() -> None:
    import sqlalchemy as sa

    from bot.api.problems import problem_of

    busy = sa.exc.OperationalError("BEGIN", {}, Exception("database is locked"))
    found, headers = problem_of(busy)
    assert found.status == 503 and "database did not answer" in found.detail and headers["Retry-After"]
    no_connection = sa.exc.DBAPIError(None, None, Exception("sorry, too many clients already"))
    assert problem_of(no_connection)[0].status == 503


async def test_conversations_on_the_api_platform_queue_resolve_and_transcript(app: App) -> None:
    visitor = await token(app, "widget", "conversations:write", "web-visitor")
    stranger = await token(app, "stranger", "conversations:write", "someone-else")
    agent = await token(app, "dave", "conversations:write", "dave", ("agents",))
    key = {"Idempotency-Key": "msg-1"}
    said = await call(
        app, "POST", "/api/v1/conversations/messages", visitor, {"text": "my deploy is stuck"}, headers=key
    )
    assert said.status == 200, said
    conv_id = said.body["id"]
    assert said.body["user"] == "token:web-visitor"
    again = await call(
        app, "POST", "/api/v1/conversations/messages", visitor, {"text": "my deploy is stuck"}, headers=key
    )
    assert again.body["id"] == conv_id
    users = [m for m in again.body["messages"] if m["role"] == "user"]
    assert [m["text"] for m in users] == ["my deploy is stuck"]  # the resent message was taken once
    theirs = await call(app, "POST", "/api/v1/conversations/messages", stranger, {"text": "hi"}, headers=key)
    assert theirs.status == 200 and theirs.body["id"] != conv_id  # keys are per caller
    # No LLM is configured, so the conversation goes straight to the people's queue.
    await eventually(lambda: _state_is(app, conv_id, visitor, ("PENDING_HUMAN",)), message="the queue")
    problem(
        await call(app, "GET", "/api/v1/conversations/queue", visitor), 403, "not-permitted", "Only agents"
    )
    queue = await call(app, "GET", "/api/v1/conversations/queue", agent)
    assert conv_id in [c["id"] for c in queue.body["conversations"]]
    problem(await call(app, "GET", f"/api/v1/conversations/{conv_id}", stranger), 403, "not-permitted")
    handover = await call(app, "POST", f"/api/v1/conversations/{conv_id}/handover", visitor)
    problem(handover, 409, "conflict", "already in the queue")
    problem(
        await call(app, "POST", f"/api/v1/conversations/{conv_id}/resolve", visitor), 403, "not-permitted"
    )
    resolved = await call(app, "POST", f"/api/v1/conversations/{conv_id}/resolve", agent)
    assert resolved.status == 200 and resolved.body["message"].startswith("Resolved")
    transcript = await call(app, "GET", f"/api/v1/conversations/{conv_id}", visitor)
    assert transcript.body["state"] == "RESOLVED"
    assert any("resolved" in m["text"] for m in transcript.body["messages"] if m["role"] != "user"), (
        transcript
    )


async def _state_is(app: App, conv_id: str, tok: str, states: tuple[str, ...]) -> bool:
    return (await call(app, "GET", f"/api/v1/conversations/{conv_id}", tok)).body["state"] in states


async def test_a_query_parameter_given_twice_is_refused(app: App) -> None:
    reader = await token(app, "reader", "runs:read", "ci")
    answer = await call(app, "GET", "/api/v1/runs?status=failed&status=succeeded", reader)
    assert problem(answer, 422, "request-invalid", "status")["errors"][0]["field"] == "query.status"
