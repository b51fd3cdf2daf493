"""Slack end to end: the real Bolt app on the real server, signed requests over HTTP, the real slack_sdk
client against a fake Slack Web API (tests/fakes/slack_api.py)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
import sqlalchemy as sa
from pydantic import SecretStr

from bot.config import Settings
from bot.delivery.contract import DeliveryError, Sent
from bot.platforms.slack.adapter import SlackAdapter
from bot.process import App, start_app, stop_app
from bot.storage.tables import chat_cards, chat_posts
from cards.model import Card
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_sender import SlackSender
from tests.helpers import eventually, finished, outbox_settled, status_is, workflow

T = TypeVar("T")
FORM = "application/x-www-form-urlencoded"

SLOW = """
name: slow
steps:
  prepare: {run: ["python3", "-c", "print('ready')"]}
  wait: {run: ["sleep", "5"], needs: [prepare]}
  announce: {notify: {text: "slow is done"}, needs: [wait]}
"""
QUICK = """
name: quick
steps:
  one: {run: ["python3", "-c", "print(1)"]}
  two: {run: ["sleep", "1"], needs: [one]}
"""
TINY = """
name: tiny
steps:
  hello: {notify: {text: "hello from tiny"}}
"""
LONG = """
name: long
steps:
  wait: {run: ["sleep", "30"]}
"""
RELEASE = """
name: release
inputs:
  service: {type: string, required: true}
  count: {type: integer, required: true}
  env: {type: string, enum: [staging, prod], default: staging}
permissions: {run: ["group:release-managers"]}
steps:
  ship: {run: ["python3", "-c", "print('shipped')"]}
"""


@dataclass
class Harness:
    fake: FakeSlack
    app: App
    send: SlackSender
    workflows: Path


def settings_with(fake: FakeSlack, tmp_path: Path, workflows_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": f"sqlite+aiosqlite:///{tmp_path / 'switchboard.db'}",
        "workflows_dir": workflows_dir,
        "port": 0,
        "console": False,
        "slack_bot_token": SecretStr(fake.token),
        "slack_signing_secret": SecretStr(fake.signing_secret),
        "slack_api_url": fake.base_url,
        "poll_interval": 0.05,
        "kill_grace": 0.5,
    }
    return Settings(**{**values, **overrides})


@pytest.fixture
async def slack(tmp_path: Path, workflows_dir: Path) -> AsyncIterator[Harness]:
    async with FakeSlack() as fake:
        fake.add_user("U0ALICE", "alice", groups=("release-managers",))
        fake.add_user("U0BOB", "bob")
        app = await start_app(settings_with(fake, tmp_path, workflows_dir))
        harness = Harness(fake, app, SlackSender(fake, f"{app.url}/slack/events"), workflows_dir)
        try:
            yield harness
        finally:  # the harness's app and sender: a test may have restarted them
            await harness.send.close()
            await stop_app(harness.app, grace=0.5, flush=0.5)


def started_run(texts: list[str]) -> str | None:
    for text in texts:
        if match := re.search(r"\(run ([0-9a-f]+)\)", text):
            return match.group(1)
    return None


def ephemeral_texts(fake: FakeSlack) -> list[str]:
    return [str(e.get("text", "")) for e in fake.ephemerals]


def button(message: dict[str, Any], choice: str) -> str | None:
    for block in message["blocks"]:
        for element in block.get("elements", []) if block["type"] == "actions" else []:
            if element["action_id"].endswith(f":{choice}"):
                return str(element["action_id"])
    return None


async def test_a_command_acks_at_once_and_the_card_is_posted_then_edited_until_the_run_ends(
    slack: Harness,
) -> None:
    fake = slack.fake
    workflow(SLOW, slack.workflows)
    answer = await slack.send.command("run slow")
    assert answer.status == 200  # Slack wants it within 3 s: bench/lifecycle.py measures how long it takes

    run_id = await eventually(lambda: started_run(ephemeral_texts(fake)))
    assert fake.ephemerals[0]["user"] == "U0ALICE" and fake.ephemerals[0]["channel"] == "C0OPS"
    post = (await eventually(lambda: fake.delivered("chat.postMessage")))[0]
    assert post.params["channel"] == "C0OPS"
    assert post.params["blocks"][0]["type"] == "header" and post.params["text"]
    assert post.params["metadata"] == {
        "event_type": "switchboard",
        "event_payload": {"key": f"sb-card-run:{run_id}"},
    }
    ts = post.answer["ts"]

    assert (await finished(slack.app.runtime, run_id)).status == "succeeded"
    await eventually(lambda: "succeeded" in fake.message("C0OPS", ts)["text"])
    edits = [c for c in fake.delivered("chat.update") if c.params["ts"] == ts]
    assert len(edits) >= 2
    gaps = [b.at - a.at for a, b in zip([post, *edits], edits, strict=False)]
    assert min(gaps) >= 0.9, f"more than one edit per second: {gaps}"
    assert button(fake.message("C0OPS", ts), "cancel") is None  # a finished run loses Cancel

    def thread_texts() -> str:
        return " ".join(
            m["text"] for m in fake.channel_messages("C0OPS") if m.get("thread_ts") == ts and m["ts"] != ts
        )

    await eventually(lambda: "slow is done" in thread_texts() and "Run succeeded" in thread_texts())
    threaded = [c for c in fake.delivered("chat.postMessage") if c.params.get("thread_ts") == ts]
    assert threaded and all(c.params["metadata"]["event_type"] == "switchboard" for c in threaded)


async def test_forged_and_stale_signatures_get_401(slack: Harness) -> None:
    body = slack.send.command_body("help")
    forged = await slack.send.send(body, FORM, headers={"X-Slack-Signature": "v0=" + "0" * 64})
    stale = await slack.send.send(body, FORM, timestamp=int(time.time()) - 600)
    assert (forged.status, stale.status) == (401, 401)
    good = await slack.send.send(body, FORM)
    assert good.status == 200
    challenge = json.dumps({"token": "t", "challenge": "c4llenge", "type": "url_verification"}).encode()
    verified = await slack.send.send(challenge, "application/json")  # Slack checking the Request URL
    assert verified.status == 200 and verified.json() == {"challenge": "c4llenge"}
    await eventually(lambda: slack.fake.ephemerals)
    # A later signed command as the marker: once it is answered, anything the forged ones set off would be too.
    assert (await slack.send.send(slack.send.command_body("help", user="U0BOB"), FORM)).status == 200
    await eventually(lambda: [e for e in slack.fake.ephemerals if e["user"] == "U0BOB"], message="the marker")
    assert [e["user"] for e in slack.fake.ephemerals] == ["U0ALICE", "U0BOB"]  # only the signed requests
    assert "Usage" in slack.fake.ephemerals[0]["text"]


async def test_an_event_is_handled_once_but_a_retry_whose_first_delivery_was_lost_is_handled(
    slack: Harness,
) -> None:
    fake = slack.fake
    first = {
        "type": "app_mention",
        "user": "U0ALICE",
        "text": "<@U0BOT> hello",
        "ts": "1700000000.000100",
        "channel": "C0OPS",
    }
    lost = {**first, "text": "<@U0BOT> anyone?", "ts": "1700000000.000200"}
    dm = {
        "type": "message",
        "channel_type": "im",
        "user": "U0ALICE",
        "text": "hi",
        "ts": "1700000000.000300",
        "channel": "D0ALICE",
    }
    assert (await slack.send.event(first, "Ev0001")).status == 200
    assert (await slack.send.event(first, "Ev0001", retry_num=1)).status == 200  # Slack retried a slow ack
    assert (await slack.send.event(lost, "Ev0002", retry_num=1)).status == 200  # the first try never arrived
    assert (await slack.send.event(dm, "Ev0003")).status == 200

    def answered(thread: str | None, channel: str = "C0OPS") -> list[Any]:
        return [
            c
            for c in fake.delivered("chat.postMessage")
            if c.params["channel"] == channel and c.params.get("thread_ts") == thread
        ]

    await eventually(lambda: answered(lost["ts"]) and answered(None, "D0ALICE"))
    await eventually(lambda: answered(first["ts"]))
    # A later event as the marker: once it is answered and the outbox is idle, a duplicate would be out too.
    marker = {**first, "text": "<@U0BOT> last one", "ts": "1700000000.000400"}
    assert (await slack.send.event(marker, "Ev0004")).status == 200
    await eventually(lambda: answered(marker["ts"]), message="the answer to the marker event")
    await eventually(lambda: outbox_settled(slack.app.engine), message="the outbox to be idle")
    assert len(answered(first["ts"])) == 1
    assert len(answered(lost["ts"])) == 1
    assert "/workflow list" in answered(first["ts"])[0].params["text"]


async def test_a_429_with_retry_after_on_chat_update_is_retried_and_delivered(slack: Harness) -> None:
    fake = slack.fake
    workflow(QUICK, slack.workflows)
    fake.fail("chat.update", times=1, status=429, retry_after=1)
    await slack.send.command("run quick")
    run_id = await eventually(lambda: started_run(ephemeral_texts(fake)))
    assert (await finished(slack.app.runtime, run_id)).status == "succeeded"
    ts = (await eventually(lambda: fake.delivered("chat.postMessage")))[0].answer["ts"]
    await eventually(lambda: "succeeded" in fake.message("C0OPS", ts)["text"], timeout=15)
    updates = fake.calls_to("chat.update")
    assert updates[0].status == 429 and updates[0].answer["error"] == "ratelimited"
    assert updates[1].status == 200 and updates[1].at - updates[0].at >= 1.0  # it waited Retry-After


async def test_channel_not_found_does_not_stop_the_run_and_is_recorded_with_a_hint(slack: Harness) -> None:
    fake = slack.fake
    fake.channels["C0GONE"] = "gone"
    fake.break_channel("C0GONE", "channel_not_found")
    workflow(QUICK, slack.workflows)
    assert (await slack.send.command("run quick", channel="C0GONE")).status == 200
    # chat.postEphemeral cannot reach that channel; the command's response_url still can.
    run_id = await eventually(lambda: started_run([str(r.get("text", "")) for r in fake.responses]))
    assert (await finished(slack.app.runtime, run_id)).status == "succeeded"

    async def card_error() -> str | None:
        async with slack.app.engine.connect() as conn:
            row = (
                await conn.execute(sa.select(chat_cards).where(chat_cards.c.key == f"run:{run_id}"))
            ).first()
        return row.error if row is not None else None

    error = await eventually(card_error)
    assert "channel_not_found" in error and "/invite @Switchboard" in error


async def test_the_cancel_button_cancels_a_running_run_and_the_card_ends_cancelled(slack: Harness) -> None:
    fake = slack.fake
    workflow(LONG, slack.workflows)
    await slack.send.command("run long")
    run_id = await eventually(lambda: started_run(ephemeral_texts(fake)))
    ts = (await eventually(lambda: fake.delivered("chat.postMessage")))[0].answer["ts"]
    cancel = button(fake.message("C0OPS", ts), "cancel")
    assert cancel == f"sb:run:{run_id}:cancel"

    answer = await slack.send.click(cancel, "C0OPS", ts, user="U0ALICE")
    assert answer.status == 200
    await status_is(slack.app.runtime, run_id, "cancelled")
    await eventually(lambda: "cancelled" in fake.message("C0OPS", ts)["text"], timeout=10)
    assert button(fake.message("C0OPS", ts), "cancel") is None
    assert any(t.startswith(f"Cancelling run {run_id}") for t in ephemeral_texts(fake))


async def test_missing_inputs_open_a_modal_whose_bad_values_come_back_as_field_errors(slack: Harness) -> None:
    fake = slack.fake
    workflow(RELEASE, slack.workflows)
    assert (await slack.send.command("run release service=api")).status == 200
    view = (await eventually(lambda: fake.views))[0]
    opened = fake.delivered("views.open")[0]
    assert opened.params["view"]["callback_id"] == "sb:form:run:release"
    assert json.loads(view["private_metadata"])["channel"] == "C0OPS"
    assert {b["block_id"] for b in view["blocks"] if b["type"] == "input"} == {"service", "count", "env"}

    bad = await slack.send.submit(view, {"service": "api", "count": "many", "env": "prod"})
    assert bad.status == 200
    assert bad.json()["response_action"] == "errors" and set(bad.json()["errors"]) == {"count"}

    good = await slack.send.submit(view, {"service": "api", "count": "3", "env": "prod"})
    assert good.status == 200 and not good.text
    run_id = await eventually(lambda: started_run(ephemeral_texts(fake)))
    assert (await finished(slack.app.runtime, run_id)).status == "succeeded"
    row = await slack.app.runtime.store.run_row(run_id)
    assert row is not None and row.started_by == "slack:U0ALICE"
    card = (await eventually(lambda: fake.delivered("chat.postMessage")))[0]
    assert card.params["channel"] == "C0OPS"


async def test_a_submission_without_its_channel_is_answered_in_a_dm_not_channel_nothing(
    slack: Harness,
) -> None:
    fake = slack.fake
    workflow(RELEASE, slack.workflows)
    assert (await slack.send.command("run release service=api")).status == 200
    view = {**(await eventually(lambda: fake.views))[0], "private_metadata": ""}  # lost on the way
    answer = await slack.send.submit(view, {"service": "api", "count": "3", "env": "prod"})
    assert answer.status == 200

    def to_alice() -> list[Any]:
        return [c for c in fake.delivered("chat.postMessage") if c.params["channel"] == "D0ALICE"]

    [reply] = await eventually(to_alice)
    assert started_run([reply.params["text"]]) or "release" in reply.params["text"]
    assert all(e.get("channel") for e in fake.ephemerals)  # nothing went to channel ""


async def test_an_event_type_nobody_handles_is_acknowledged(slack: Harness) -> None:
    joined = {"type": "reaction_added", "user": "U0BOB", "channel": "C0OPS", "ts": "1700000001.000100"}
    assert (await slack.send.event(joined, "Ev0900")).status == 200  # a 404 would be retried by Slack


async def test_identity_comes_from_users_info_and_user_groups_and_is_cached(slack: Harness) -> None:
    fake = slack.fake
    workflow(RELEASE, slack.workflows)
    await slack.send.command("run release service=api count=1", user="U0BOB")
    refusal = await eventually(lambda: [t for t in ephemeral_texts(fake) if "may not run" in t])
    assert "group:release-managers" in refusal[0]
    for _ in range(3):
        await slack.send.command("help", user="U0BOB")
    await eventually(lambda: len(fake.ephemerals) == 4)
    assert len([c for c in fake.calls_to("users.info") if c.params["user"] == "U0BOB"]) == 1
    assert len(fake.calls_to("usergroups.list")) == 1  # warmed at start, then cached


async def test_socket_mode_runs_the_same_listeners_over_the_websocket(
    tmp_path: Path, workflows_dir: Path
) -> None:
    async with FakeSlack() as fake:
        fake.add_user("U0ALICE", "alice")
        workflow(TINY, workflows_dir)
        settings = settings_with(
            fake,
            tmp_path,
            workflows_dir,
            slack_signing_secret=None,
            slack_app_token=SecretStr(fake.app_token),
        )
        app = await start_app(settings)
        sender = SlackSender(fake, f"{app.url}/slack/events")
        try:
            assert "Socket Mode" in app.platforms["slack"].describe()
            assert (await sender.command("help")).status == 404  # no HTTP route in Socket Mode
            await eventually(lambda: fake.sockets)
            envelope = await fake.push(
                "slash_commands", sender.command_fields("run tiny", "U0ALICE", "C0OPS")
            )
            await eventually(lambda: envelope in fake.socket_acks)
            run_id = await eventually(lambda: started_run(ephemeral_texts(fake)))
            assert (await finished(app.runtime, run_id)).status == "succeeded"
            post = (await eventually(lambda: fake.delivered("chat.postMessage")))[0]
            assert post.params["metadata"]["event_payload"]["key"] == f"sb-card-run:{run_id}"
        finally:
            await sender.close()
            await stop_app(app, grace=0.5, flush=0.5)


async def test_find_recovers_a_card_or_a_thread_reply_posted_before_a_crash(slack: Harness) -> None:
    fake, adapter = slack.fake, slack.app.platforms["slack"]
    workflow(TINY, slack.workflows)
    await slack.send.command("run tiny")
    run_id = await eventually(lambda: started_run(ephemeral_texts(fake)))
    await finished(slack.app.runtime, run_id)
    ts = (await eventually(lambda: fake.delivered("chat.postMessage")))[0].answer["ts"]
    assert await adapter.find("C0OPS", f"sb-card-run:{run_id}") == Sent(f"C0OPS:{ts}")

    async def sent_posts() -> list[Any]:
        async with slack.app.engine.connect() as conn:
            return list(
                (await conn.execute(sa.select(chat_posts).where(chat_posts.c.status == "sent"))).all()
            )

    posts = await eventually(sent_posts)
    assert await adapter.find("C0OPS", f"sb-post-{posts[0].id}") == Sent(posts[0].message_ref)
    assert await adapter.find("C0OPS", "sb-post-never-sent") is None


async def test_slack_refusals_become_delivery_errors_that_say_what_to_fix(slack: Harness) -> None:
    fake, adapter = slack.fake, slack.app.platforms["slack"]
    assert isinstance(adapter, SlackAdapter)
    card = Card(title="Hello", text="world")
    fake.channels.update(C0SCOPE="scope", C0OUT="out")
    fake.break_channel("C0SCOPE", "missing_scope", needed="chat:write", provided="commands")
    fake.break_channel("C0OUT", "not_in_channel")
    with pytest.raises(DeliveryError) as scope:
        await adapter.post("C0SCOPE", card, "k1")
    assert scope.value.permanent and "add the chat:write scope" in scope.value.hint
    with pytest.raises(DeliveryError) as out:
        await adapter.post("C0OUT", card, "k2")
    assert out.value.permanent and "/invite @Switchboard" in out.value.hint
    fake.fail("chat.postMessage", times=3, status=500, error="internal_error")
    with pytest.raises(DeliveryError) as down:
        await adapter.post("C0OPS", card, "k3")  # slack_sdk retried twice, then gave up
    assert not down.value.permanent
    assert [c.status for c in fake.calls_to("chat.postMessage") if c.params["channel"] == "C0OPS"] == [
        500
    ] * 3
    sent = await adapter.post("C0OPS", card, "k4")
    assert sent.ref.startswith("C0OPS:")
