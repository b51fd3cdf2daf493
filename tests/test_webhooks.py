"""Outbound webhooks end to end: events queued with the run's and the approval's commits, delivered by
the outbox to a real local receiver that fails (a 500, then no answer) and recovers, signed to the
Standard Webhooks spec; each subscription hears only the events its filter names. The CLI manages them.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from bot.delivery.outbox import Outbox
from bot.delivery.webhook_signing import signature, verify
from bot.delivery.webhooks import WebhookSender, backoff
from bot.errors import BadInput
from bot.runtime.presence import install
from bot.runtime.runtime import Runtime
from bot.storage.webhook_queue import WebhookRows
from bot.storage.webhooks import Subscriptions, like_patterns
from engine.activities.http_guard import HttpGuard, parse_rule
from tests.conversation_env import make_env, person, said
from tests.helpers import eventually, finished, workflow
from tests.test_cli import _line_with, cli, environment, migrated, run_id, start
from tests.webhook_receiver import Receiver

GATED = """
name: gated
steps:
  build: {run: ["python3", "-c", "print('built')"]}
  gate:
    needs: [build]
    approval: {title: Ship it?, approvers: ["user:alice"]}
  ship: {needs: [gate], run: ["python3", "-c", "print('shipped')"]}
"""
ONE = """
name: one
steps:
  a: {run: ["true"]}
"""


@pytest.fixture
async def wired(runtime: Runtime) -> AsyncIterator[tuple[Runtime, Outbox, Receiver]]:
    """A runtime whose commits queue webhook events, an outbox delivering them fast, and a receiver."""
    install(runtime)
    engine = runtime.store.engine
    sender = WebhookSender(
        WebhookRows(engine), runtime.owner, time.time, HttpGuard(), timeout=0.5, base_delay=0.05
    )
    outbox = Outbox(engine, {}, runtime.owner, time.time, poll=0.1, webhooks=sender)
    runtime.after_commit.append(outbox.wake)
    async with Receiver() as receiver:
        outbox.start()
        try:
            yield runtime, outbox, receiver
        finally:
            await outbox.stop(deadline=1.0)


async def deliveries_of(subs: Subscriptions, sub_id: str) -> list[Any]:
    return sorted(await subs.deliveries(sub_id, limit=500), key=lambda d: d.id)


async def test_a_failing_receiver_gets_the_event_once_it_recovers(
    wired: tuple[Runtime, Outbox, Receiver],
) -> None:
    runtime, _outbox, receiver = wired
    subs = Subscriptions(runtime.store.engine)
    receiver.scripts["/flaky"] = ["500", "hang", "ok"]
    flaky = await subs.add(receiver.url("/flaky"), ["run.finished"], "dana", time.time())
    steps = await subs.add(receiver.url("/steps"), ["step.*"], "dana", time.time())
    approvals = await subs.add(receiver.url("/approvals"), ["approval.*"], "dana", time.time())

    started = await runtime.submit(workflow(GATED), {}, started_by="dana")
    [request] = await eventually(lambda: runtime.approvals.pending(started.run_id))
    outcome = await runtime.decide(request.id, "alice", "approve", "lgtm", background=False)
    assert outcome.resolved
    row = await finished(runtime, started.run_id)
    assert row.status == "succeeded"

    async def delivered() -> list[Any]:
        found = await deliveries_of(subs, flaky.id)
        return found if found and found[0].status == "delivered" else []

    [delivery] = await eventually(delivered, message="the run.finished delivery to succeed")
    assert delivery.event_type == "run.finished" and delivery.attempts == 3
    got = receiver.at("/flaky")
    assert [r.answer for r in got] == ["500", "hang", "ok"]  # delivered once, after two failures
    assert len({r.headers["webhook-id"] for r in got}) == 1 == len({r.body for r in got})
    ok = got[-1]
    assert ok.headers["webhook-id"] == delivery.message_id and ok.headers["webhook-id"].startswith("msg_")
    assert verify(flaky.secret, ok.headers, ok.body, time.time())
    assert not verify(steps.secret, ok.headers, ok.body, time.time())  # another subscription's secret
    expected = signature(
        flaky.secret, ok.headers["webhook-id"], int(ok.headers["webhook-timestamp"]), ok.body
    )
    assert ok.headers["webhook-signature"] == expected
    body = json.loads(ok.body)
    assert body["type"] == "run.finished"
    assert body["data"]["run_id"] == started.run_id and body["data"]["workflow"] == "gated"
    assert body["data"]["detail"]["status"] == "succeeded"

    [log] = [await subs.attempts([delivery.id])]
    assert [(a.attempt, a.status_code) for a in log] == [(1, 500), (2, None), (3, 200)]
    assert (
        log[0].response == "receiver is down for maintenance" and log[0].error == "the receiver answered 500"
    )
    assert log[1].error == "no answer within 0.5 s" and log[2].error is None and log[2].response == "thanks"

    # Each subscription heard only what its filter names.
    async def all_sent(sub_id: str) -> list[Any]:
        found = await deliveries_of(subs, sub_id)
        return found if found and all(d.status == "delivered" for d in found) else []

    step_types = [d.event_type for d in await eventually(lambda: all_sent(steps.id))]
    assert step_types == ["step.started", "step.succeeded"] * 3, step_types  # build, gate, ship
    approval_types = [d.event_type for d in await eventually(lambda: all_sent(approvals.id))]
    assert approval_types == ["approval.requested", "approval.decided"], approval_types
    decided = json.loads(receiver.at("/approvals")[-1].body)["data"]
    assert decided["id"] == request.id and decided["status"] == "approved"
    assert decided["detail"] == {"actor": "alice", "status": "approved"}
    assert len(receiver.at("/steps")) == len(step_types)  # each sent once


async def test_the_ssrf_guard_refuses_for_good(wired: tuple[Runtime, Outbox, Receiver]) -> None:
    runtime, outbox, receiver = wired
    assert outbox.webhooks is not None
    outbox.webhooks.guard = HttpGuard(deny=(parse_rule(f"127.0.0.1:{receiver.port}", "a test's own port"),))
    subs = Subscriptions(runtime.store.engine)
    sub = await subs.add(receiver.url("/own"), ["run.*"], "dana", time.time())
    started = await runtime.submit(workflow(ONE), {}, started_by="dana")
    await finished(runtime, started.run_id)

    async def failed() -> list[Any]:
        found = await deliveries_of(subs, sub.id)
        return found if len(found) == 2 and all(d.status == "failed" for d in found) else []

    for delivery in await eventually(failed):
        assert delivery.attempts == 1 and "refused to send to 127.0.0.1" in delivery.error
    assert receiver.at("/own") == []


def test_patterns_and_backoff() -> None:
    assert like_patterns(["run.*", "approval.decided", "run.*"]) == ["approval.decided", "run.%"]
    assert like_patterns(["*"]) == ["%"]
    for bad in (["deploy.*"], ["run"], ["run.%"], []):
        with pytest.raises(BadInput):
            like_patterns(bad)
    assert [backoff(n, 1.0) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 8.0]
    assert backoff(30, 1.0) == 3600.0 and backoff(1, 1.0, retry_after=30) == 30.0


async def test_the_cli_manages_subscriptions(db_url: str, workflows_dir: Path) -> None:
    store = await migrated(db_url)
    env = environment(db_url, workflows_dir)
    try:
        bad = await cli(env, "webhooks", "add", "https://ci.example.com/h", "--events", "deploy.*")
        assert bad.code == 2 and "'deploy.*' is not an event pattern" in bad.out, bad.out
        ftp = await cli(env, "webhooks", "add", "ftp://ci.example.com/h", "--events", "run.*")
        assert ftp.code == 2 and "is not an http(s) URL" in ftp.out, ftp.out
        added = await cli(
            env,
            "webhooks",
            "add",
            "https://ci.example.com/h",
            "--events",
            "run.finished,approval.*",
            "--json",
        )
        assert added.code == 0, added.out
        sub = json.loads(added.out)
        assert sub["secret"].startswith("whsec_") and sub["events"] == ["run.finished", "approval.*"]
        listed = await cli(env, "webhooks", "list")
        assert f"{sub['id']}  https://ci.example.com/h  run.finished,approval.*" in listed.out, listed.out
        assert "whsec_" not in listed.out
        log = await cli(env, "webhooks", "deliveries", sub["id"][:6])
        assert log.code == 0 and "no deliveries yet" in log.out, log.out
        removed = await cli(env, "webhooks", "remove", sub["id"])
        assert removed.code == 0 and f"removed webhook {sub['id']}" in removed.out
        gone = await cli(env, "webhooks", "remove", sub["id"])
        assert gone.code == 1 and "No webhook" in gone.out, gone.out
    finally:
        await store.engine.dispose()


async def test_conversation_changes_are_queued_with_them(make_runtime: Callable[..., Any]) -> None:
    env = await make_env(await make_runtime())
    try:
        subs = Subscriptions(env.service.runtime.store.engine)
        sub = await subs.add("https://hooks.example.com/desk", ["conversation.*"], "dana", time.time())
        other = await subs.add("https://hooks.example.com/runs", ["run.*"], "dana", time.time())
        conv = await env.service.user_said(said(person("alice"), "my deploy is stuck"))
        assert conv is not None
        queued = await deliveries_of(subs, sub.id)
        assert [d.event_type for d in queued] == ["conversation.handover", "conversation.pending_human"]
        data = json.loads(queued[-1].body)["data"]
        assert data["conversation_id"] == conv.id and (data["from"], data["to"]) == (
            "HANDOVER",
            "PENDING_HUMAN",
        )
        assert await deliveries_of(subs, other.id) == []
    finally:
        await env.service.stop()


async def test_the_bot_process_delivers_what_a_cli_run_queued(db_url: str, workflows_dir: Path) -> None:
    workflow(ONE, workflows_dir)
    store = await migrated(db_url)
    env = environment(db_url, workflows_dir, SWITCHBOARD_PORT="0")
    bot = start(env, "run")
    try:
        async with Receiver() as receiver:
            added = await cli(
                env, "webhooks", "add", receiver.url("/ci"), "--events", "run.finished", "--json"
            )
            assert added.code == 0, added.out
            sub = json.loads(added.out)
            line = await asyncio.wait_for(asyncio.to_thread(_line_with, bot, "Switchboard is running"), 30)
            assert "Press Ctrl-C" in line
            ran = await cli(env, "workflow", "run", "one")  # this process queues; the bot's outbox sends
            assert ran.code == 0, ran.out
            [got] = await eventually(lambda: receiver.at("/ci"), message="the bot to deliver run.finished")
            assert verify(sub["secret"], got.headers, got.body, time.time())
            assert json.loads(got.body)["data"]["run_id"] == run_id(ran.out)

            async def logged() -> list[Any]:
                shown = json.loads((await cli(env, "webhooks", "deliveries", sub["id"], "--json")).out)
                return shown if shown and shown[0]["status"] == "delivered" else []

            [delivery] = await eventually(logged)
            assert (
                delivery["event_type"] == "run.finished"
                and delivery["message_id"] == got.headers["webhook-id"]
            )
            assert [(a["attempt"], a["status_code"], a["response"]) for a in delivery["attempt_log"]] == [
                (1, 200, "thanks")
            ]
            text = await cli(env, "webhooks", "deliveries")
            assert f"{sub['id']}  run.finished" in text.out and "#1 " in text.out and "HTTP 200" in text.out
    finally:
        bot.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(bot.wait, 30)
        finally:
            if bot.poll() is None:
                bot.kill()
        await store.engine.dispose()
