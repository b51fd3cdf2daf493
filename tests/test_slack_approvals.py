"""Approvals on Slack end to end: the real Bolt app, signed ``block_actions`` and ``view_submission``
requests, and the real slack_sdk client against the fake Web API (the harness of tests/test_slack.py).

alice is in @release-managers and carol is named by user id, so they are the two approvers; erin starts
the runs and bob is no approver at all.
"""

from __future__ import annotations

import json
import re
from typing import Any

import sqlalchemy as sa

from bot.process import start_app, stop_app
from bot.storage.tables import approval_votes
from tests.fakes.slack_api import FakeSlack
from tests.helpers import eventually, finished, status_is, workflow
from tests.test_slack import Harness, button, ephemeral_texts, slack, started_run

__all__ = ["slack"]  # the harness's fixture, used by name below

DEPLOY = """
name: deploy
steps:
  build:
    run: ["echo", "built", "${{ approval.feedback }}"]
  approve_prod:
    needs: [build]
    approval:
      title: "Deploy api to prod?"
      context: {Service: api}
      approvers: ["group:release-managers", "user:U0CAROL"]
      required: 2
      channel: C0APPROVALS
      revise: build
  ship:
    needs: [approve_prod]
    notify: "shipped after ${{ join(steps.approve_prod.outputs.approvers, ', ') }}"
"""
APPROVALS = "C0APPROVALS"
ALICE, CAROL = "@alice", "@carol"  # as chat names them


def keyed(fake: FakeSlack, prefix: str) -> list[tuple[str, str]]:
    """(channel, ts) of each message posted with an outbox key starting with ``prefix``, oldest first."""
    return [
        (c.answer["channel"], c.answer["ts"])
        for c in fake.delivered("chat.postMessage")
        if str(c.params.get("metadata", {}).get("event_payload", {}).get("key", "")).startswith(prefix)
    ]


def blocks_text(message: dict[str, Any]) -> str:
    return json.dumps(message["blocks"], ensure_ascii=False)


def said_to(fake: FakeSlack, user: str, text: str) -> list[str]:
    """Ephemeral texts shown to ``user`` that contain ``text``."""
    return [str(e["text"]) for e in fake.ephemerals if e["user"] == user and text in str(e["text"])]


async def votes(slack: Harness, approval: str) -> int:
    query = sa.select(sa.func.count()).where(approval_votes.c.approval_id == approval)
    async with slack.app.engine.connect() as conn:
        return int((await conn.execute(query)).scalar_one())


async def start_deploy(slack: Harness) -> tuple[str, str, str]:
    """``/workflow run deploy`` by erin; the run id and its approval card's ts and request id."""
    workflow(DEPLOY, slack.workflows)
    slack.fake.add_user("U0CAROL", "carol")
    slack.fake.add_user("U0ERIN", "erin")
    await slack.send.command("run deploy", user="U0ERIN")
    run_id = await eventually(lambda: started_run(ephemeral_texts(slack.fake)))
    [(channel, ts)] = await eventually(lambda: keyed(slack.fake, "sb-card-approval:"))
    assert channel == APPROVALS  # the step's channel, not the one the run was started in
    approve = button(slack.fake.message(APPROVALS, ts), "approve")
    assert approve is not None
    return run_id, ts, approve.split(":")[2]


async def test_two_approvers_approve_a_non_approver_is_refused_and_a_late_click_is_told(
    slack: Harness,
) -> None:
    fake = slack.fake
    run_id, ts, approval = await start_deploy(slack)
    post = next(c for c in fake.delivered("chat.postMessage") if c.answer.get("ts") == ts)
    assert post.params["text"] == "Approval needed: Deploy api to prod?"  # the notification fallback
    assert post.params["blocks"][0]["text"]["text"] == "Deploy api to prod?"
    actions = [b for b in post.params["blocks"] if b["type"] == "actions"]
    assert [(e["text"]["text"], e["action_id"]) for e in actions[0]["elements"]] == [
        ("Approve", f"sb:approval:{approval}:approve"),
        ("Reject", f"sb:approval:{approval}:reject"),
        ("Request changes…", f"sb:approval:{approval}:changes"),
    ]
    assert actions[0]["elements"][1]["confirm"]["title"]["text"] == "Reject this request?"
    # Approvers and people are Slack mentions on a Slack card (the entries as written elsewhere).
    assert "2 of group:release-managers, <@U0CAROL>" in blocks_text(post.params)
    assert "Asked by*\\n<@U0ERIN>" in blocks_text(post.params)  # who started the run
    assert "U0ERIN" not in post.params["text"] and "&lt;@" not in blocks_text(post.params)
    [(_, run_ts)] = await eventually(lambda: keyed(fake, f"sb-card-run:{run_id}"))
    await eventually(
        lambda: "Waiting for approval at step approve_prod" in fake.message("C0OPS", run_ts)["text"]
    )

    first = await slack.send.click(f"sb:approval:{approval}:approve", APPROVALS, ts, user="U0ALICE")
    assert first.status == 200  # Slack wants the 200 within 3 s: bench/lifecycle.py measures it
    await eventually(lambda: said_to(fake, "U0ALICE", "Approved by @alice, 1 of 2"))
    await eventually(lambda: "Approved by <@U0ALICE>, 1 of 2" in blocks_text(fake.message(APPROVALS, ts)))
    edit = [c for c in fake.delivered("chat.update") if c.params["ts"] == ts][-1]
    assert edit.params["channel"] == APPROVALS  # edited in place: the same message
    assert button(fake.message(APPROVALS, ts), "approve") is not None  # still open

    refused = await slack.send.click(f"sb:approval:{approval}:approve", APPROVALS, ts, user="U0BOB")
    assert refused.status == 200
    [text] = await eventually(lambda: said_to(fake, "U0BOB", "You are not an approver"))
    assert text == (
        "You are not an approver for this request (approvers: group:release-managers, user:U0CAROL)"
    )
    assert await votes(slack, approval) == 1  # not counted

    await slack.send.click(f"sb:approval:{approval}:approve", APPROVALS, ts, user="U0CAROL")
    await eventually(lambda: said_to(fake, "U0CAROL", "the run continues"))
    assert (await finished(slack.app.runtime, run_id)).status == "succeeded"
    await eventually(
        lambda: "Approved by <@U0ALICE> and <@U0CAROL> at" in blocks_text(fake.message(APPROVALS, ts))
    )
    final = fake.message(APPROVALS, ts)
    assert not [b for b in final["blocks"] if b["type"] == "actions"]  # no buttons left to click
    assert final["text"].startswith("Deploy api to prod?: Approved by @alice and @carol at ")
    await eventually(lambda: "succeeded" in fake.message("C0OPS", run_ts)["text"], timeout=10)

    # A click from a stale copy of the card (a client that has not redrawn it yet).
    late = await slack.send.click(f"sb:approval:{approval}:approve", APPROVALS, ts, user="U0ALICE")
    assert late.status == 200
    [told] = await eventually(lambda: said_to(fake, "U0ALICE", "Already approved"))
    assert re.fullmatch(rf"Already approved by {ALICE}, {CAROL} at \d\d:\d\d UTC", told), told
    assert await votes(slack, approval) == 2


async def test_request_changes_opens_a_modal_and_its_feedback_brings_revision_two(slack: Harness) -> None:
    fake = slack.fake
    run_id, ts, approval = await start_deploy(slack)
    clicked = await slack.send.click(f"sb:approval:{approval}:changes", APPROVALS, ts, user="U0ALICE")
    assert clicked.status == 200
    [view] = await eventually(lambda: fake.views)
    assert view["callback_id"] == f"sb:form:approval:{approval}.changes"
    assert json.loads(view["private_metadata"])["channel"] == APPROVALS
    assert [b["block_id"] for b in view["blocks"] if b["type"] == "input"] == ["feedback"]

    blank = await slack.send.submit(view, {"feedback": " "}, user="U0ALICE")
    assert blank.json() == {
        "response_action": "errors",
        "errors": {"feedback": "Say what should change: the revised step gets this text."},
    }
    sent = await slack.send.submit(view, {"feedback": "bump the version"}, user="U0ALICE")
    assert sent.status == 200 and not sent.text  # the modal closes
    await eventually(lambda: said_to(fake, "U0ALICE", "Changes requested by @alice; the run continues"))

    # The build runs again with the feedback, and a new request is posted: revision 2 of 3.
    [_, (channel, new_ts)] = await eventually(
        lambda: keyed(fake, "sb-card-approval:")[1:] and keyed(fake, "sb-card-approval:")
    )
    assert channel == APPROVALS and new_ts != ts
    revised = blocks_text(fake.message(APPROVALS, new_ts))
    assert "revision 2 of 3" in revised
    # The new card is drawn in the run's commit, where only the ref of who asked is known (see the report).
    assert re.search(r"Revised after <@U0ALICE> asked for changes: “bump the version”", revised)
    build = {s.key: s for s in await slack.app.runtime.store.step_rows(run_id)}["build"]
    assert build.attempt == 2 and build.outputs["stdout"].strip() == "built bump the version"
    await eventually(lambda: "The work goes back for revision 2." in blocks_text(fake.message(APPROVALS, ts)))
    assert button(fake.message(APPROVALS, ts), "approve") is None  # the old card is closed
    assert button(fake.message(APPROVALS, new_ts), "approve") is not None


async def test_an_old_card_still_works_after_a_restart(slack: Harness) -> None:
    fake = slack.fake
    run_id, ts, approval = await start_deploy(slack)
    await status_is(slack.app.runtime, run_id, "waiting")
    settings = slack.app.settings
    await stop_app(slack.app, grace=0.5, flush=0.5)

    slack.app = await start_app(settings)  # the same database; a new server on a new port
    slack.send.url = f"{slack.app.url}/slack/events"
    await slack.send.click(f"sb:approval:{approval}:approve", APPROVALS, ts, user="U0ALICE")
    await eventually(lambda: "Approved by <@U0ALICE>, 1 of 2" in blocks_text(fake.message(APPROVALS, ts)))
    await slack.send.click(f"sb:approval:{approval}:approve", APPROVALS, ts, user="U0CAROL")
    assert (await finished(slack.app.runtime, run_id)).status == "succeeded"
    await eventually(lambda: button(fake.message(APPROVALS, ts), "approve") is None)
    assert len(keyed(fake, "sb-card-approval:")) == 1  # edited in place, never posted again
