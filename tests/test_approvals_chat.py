"""Approvals in chat through the real router, runtime and database (SQLite and PostgreSQL).

Runs are started with ``/workflow run`` from a console place, so they have a chat origin; the approval's
card and thread replies are checked in the outbox tables (``chat_cards``, ``chat_posts``), where they are
written in the same transaction as the change. A fake clock drives reminders, escalation and deadlines.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from bot.config import Settings
from bot.identity import Identity, Place
from bot.process import start_app, stop_app
from bot.runtime.presence import install
from bot.runtime.runtime import Runtime
from bot.storage.database import create_engine, migrate
from bot.storage.runs import RunStore
from bot.storage.tables import (
    approval_audit,
    approval_votes,
    approvals,
    chat_cards,
    chat_posts,
    console_messages,
)
from cards.mentions import plain, resolve
from cards.model import Card, action_id
from handlers.router import Router
from handlers.services import Services
from handlers.types import Click, Command, FieldErrors, Say, ShowForm, Submission
from tests.conftest import FakeClock
from tests.helpers import event_types, eventually, finished, status_is, workflow

OPS = Place("console", "ops", channel_name="#ops")


def person(name: str, *groups: str) -> Identity:
    return Identity("console", "console", name, name, frozenset(groups))


ALICE, BOB, FRANK, GRACE = (person(n, "release-managers") for n in ("alice", "bob", "frank", "grace"))
DAVE, CAROL, MALLORY = person("dave", "agents"), person("carol", "eng-directors"), person("mallory")
ERIN = person("erin", "release-managers")  # starts the runs: an approver by group, but not of her own run

DEPLOY = """
name: deploy
inputs:
  service: {type: string, default: api}
steps:
  build:
    run: ["echo", "built", "${{ approval.feedback }}"]
  approve_prod:
    needs: [build]
    approval:
      title: "Deploy ${{ inputs.service }} to prod?"
      description: "Requested by ${{ run.started_by }}"
      context: {Service: "${{ inputs.service }}"}
      approvers: ["group:release-managers", "user:dave"]
      required: 2
      channel: "#approvals"
      timeout: 4h
      escalation:
        - {after: 30m, remind: true}
        - {after: 2h, add_approvers: ["user:carol"]}
      revise: build
      max_revisions: 2
  ship:
    needs: [approve_prod]
    notify: "shipped after ${{ join(steps.approve_prod.outputs.approvers, ', ') }}"
"""
WINDOW = """
name: window
steps:
  ask:
    approval:
      title: "Pick a maintenance window"
      kind: form
      approvers: ["group:release-managers"]
      form:
        window: {type: string, required: true, description: "When to run it"}
        replicas: {type: integer, default: 2}
        dry_run: {type: boolean, default: false}
        level: {type: enum, enum: [low, high], required: true}
        notes: {type: text}
  after:
    needs: [ask]
    notify: "window ${{ steps.ask.outputs.form.window }} x${{ steps.ask.outputs.form.replicas }}"
"""
SOLO = """
name: solo
steps:
  ask: {approval: {title: "Rotate keys?", approvers: ["user:dave"]}}
"""
PAGE = """
name: page
steps:
  ask:
    approval:
      title: "Page the on-call?"
      approvers: ["user:U0ALICE", "user:bob", "group:sre"]
      required: 2
      notify: dm
      escalation: [{after: 10m, remind: true}]
"""
BUDGET = """
name: purchase
inputs: {amount: {type: number, required: true}}
steps:
  ask:
    approval:
      title: "Buy it?"
      kind: budget
      context: {Vendor: Acme}
      budget:
        amount: "${{ inputs.amount }}"
        tiers: [{up_to: 500, auto: true}, {approvers: ["group:finance"], required: 2}]
"""


@dataclass
class Chat:
    runtime: Runtime
    router: Router
    clock: FakeClock

    async def run(self, name: str, text: str = "", who: Identity = ERIN) -> str:
        reply = await self.router.command(Command(who, OPS, "workflow", f"run {name} {text}".strip()))
        assert isinstance(reply, Say) and "Started" in reply.plain_text(), reply
        return reply.plain_text().split("(run ")[1].split(")")[0]

    async def click(self, who: Identity, approval: str, choice: str) -> Any:
        return await self.router.click(Click(who, OPS, action_id("approval", approval, choice)))

    async def submit(self, who: Identity, form_id: str, values: dict[str, str]) -> Any:
        return await self.router.submit(Submission(who, OPS, form_id, values))


def connect(
    runtime: Runtime, clock: FakeClock, settings: Settings | None = None
) -> Chat:  # the bot's wiring, without the web server
    install(runtime)
    return Chat(runtime, Router(Services(runtime, settings or runtime.settings)), clock)


@pytest.fixture
async def chat(make_runtime: Callable[..., Any], workflows_dir: Path) -> Chat:
    for text in (DEPLOY, WINDOW, SOLO, PAGE, BUDGET):
        workflow(text, workflows_dir)
    clock = FakeClock()
    return connect(await make_runtime(clock=clock), clock)


async def query(runtime: Runtime, stmt: Any) -> list[Any]:
    async with runtime.store.engine.connect() as conn:
        return list((await conn.execute(stmt)).all())


async def request_of(runtime: Runtime, run_id: str, revision: int = 1) -> Any:
    """Wait for the run's pending request of that revision; return its row."""
    stmt = sa.select(approvals).where(
        approvals.c.run_id == run_id, approvals.c.revision == revision, approvals.c.status == "pending"
    )
    found = await eventually(lambda: query(runtime, stmt), message=f"a pending request of run {run_id}")
    return found[0]


async def card_of(runtime: Runtime, approval: str) -> tuple[Card, Any]:
    [row] = await query(runtime, sa.select(chat_cards).where(chat_cards.c.key == f"approval:{approval}"))
    return Card.from_dict(row.card), row


def said(reply: Any) -> str:
    assert isinstance(reply, Say), reply
    assert reply.ephemeral
    return reply.plain_text()


async def test_the_card_is_written_in_the_same_commit_as_the_request(chat: Chat) -> None:
    run_id = await chat.run("deploy")
    # One statement reads both tables from one snapshot: the request is never seen without its card.
    both = sa.select(approvals.c.id, chat_cards.c.key).outerjoin(
        chat_cards, chat_cards.c.key == sa.literal("approval:") + approvals.c.id
    )
    seen = await eventually(lambda: query(chat.runtime, both), interval=0.005, message="the request")
    [(approval, key)] = seen
    assert key == f"approval:{approval}"
    card, row = await card_of(chat.runtime, approval)
    assert (row.platform, row.channel, row.version) == ("console", "#approvals", 1)
    assert card.title == "Deploy api to prod?" and card.status == "waiting for approval"
    assert card.context[0] == f"deploy · run {run_id[:6]} · step approve_prod"
    assert "2 of group:release-managers, user:dave" in card.context[1] and "(in 4h)" in card.context[1]
    assert ("Asked by", "@erin") in [(f.label, f.value) for f in card.fields]
    assert [b.action_id for b in card.buttons] == [
        action_id("approval", approval, c) for c in ("approve", "reject", "changes")
    ]
    posts = await query(chat.runtime, sa.select(chat_posts).where(chat_posts.c.parent_key == f"run:{run_id}"))
    assert [p.card["text"] for p in posts] == [
        "⏸ *approve_prod* is waiting for approval: Deploy api to prod?"
    ]


async def test_quorum_of_two_then_the_run_resumes_and_late_clicks_are_told(chat: Chat) -> None:
    runtime = chat.runtime
    run_id = await chat.run("deploy")
    request = await request_of(runtime, run_id)
    refused = said(await chat.click(MALLORY, request.id, "approve"))
    assert refused == (
        "You are not an approver for this request (approvers: group:release-managers, user:dave)"
    )
    assert "You started this run" in said(await chat.click(ERIN, request.id, "approve"))
    assert said(await chat.click(ALICE, request.id, "approve")) == "Approved by @alice, 1 of 2"
    card, row = await card_of(runtime, request.id)
    assert "Approved by @alice, 1 of 2" in card.text and row.version == 2 and len(card.buttons) == 3
    assert "You already decided" in said(await chat.click(ALICE, request.id, "approve"))
    assert (await runtime.store.run_row(run_id)).status == "waiting"

    assert "the run continues" in said(await chat.click(DAVE, request.id, "approve"))
    row = await finished(runtime, run_id)
    assert row.status == "succeeded" and row.outputs["ship"] == {
        "text": "shipped after console:alice, console:dave"
    }
    card, _ = await card_of(runtime, request.id)
    assert card.status == "approved" and card.buttons == ()
    assert card.text.splitlines()[-1].startswith("Approved by @alice and @dave at ")
    late = said(await chat.click(BOB, request.id, "approve"))
    assert late.startswith("Already approved by @alice, @dave at ") and late.endswith(" UTC")
    audit = await query(
        runtime, sa.select(approval_audit.c.actor, approval_audit.c.action, approval_audit.c.source)
    )
    assert ("console:mallory", "denied", "console") in audit and (
        "console:erin",
        "denied",
        "console",
    ) in audit
    assert ("console:bob", "late", "console") in audit


async def test_fifty_concurrent_clicks_count_two_votes_and_resume_the_run_once(chat: Chat) -> None:
    runtime = chat.runtime
    run_id = await chat.run("deploy")
    request = await request_of(runtime, run_id)
    clickers = [ALICE, BOB, DAVE, FRANK, GRACE] * 10
    replies = await asyncio.gather(*(chat.click(who, request.id, "approve") for who in clickers))
    texts = [said(r) for r in replies]
    assert sum(t.startswith("Approved by") for t in texts) == 2, texts
    assert all(t.startswith(("Approved by", "Already approved by", "You already decided")) for t in texts)
    votes = await query(runtime, sa.select(approval_votes).where(approval_votes.c.approval_id == request.id))
    assert [v.decision for v in votes] == ["approve", "approve"]
    assert (await finished(runtime, run_id)).status == "succeeded"
    events = await event_types(runtime, run_id)
    assert events.count(("approval_decided", "approve_prod")) == 1
    assert events.count(("step_started", "ship")) == 1
    card, _ = await card_of(runtime, request.id)
    assert card.status == "approved" and card.buttons == ()
    first, second = sorted(f"@{v.actor.partition(':')[2]}" for v in votes)  # same time: by name
    assert card.text.splitlines()[-1].startswith(f"Approved by {first} and {second} at ")


async def test_request_changes_sends_the_work_back_until_the_last_revision(chat: Chat) -> None:
    runtime = chat.runtime
    run_id = await chat.run("deploy")
    first = await request_of(runtime, run_id)
    form = await chat.click(ALICE, first.id, "changes")
    assert isinstance(form, ShowForm)
    [field] = form.form.fields
    assert (field.name, field.kind, field.required) == ("feedback", "multiline", True)
    assert await chat.submit(ALICE, form.form.form_id, {"feedback": "  "}) == FieldErrors(
        {"feedback": "Say what should change: the revised step gets this text."}
    )
    chat.clock.advance(60)  # a revision is a new request, stored with its own time
    sent = said(await chat.submit(ALICE, form.form.form_id, {"feedback": "bump the version"}))
    assert sent == "Changes requested by @alice; the run continues"

    second = await request_of(runtime, run_id, revision=2)
    build = {s.key: s for s in await runtime.store.step_rows(run_id)}["build"]
    assert build.attempt == 2 and build.outputs["stdout"].strip() == "built bump the version"
    old, _ = await card_of(runtime, first.id)
    assert old.status == "changes requested" and old.buttons == ()
    assert "The work goes back for revision 2." in old.text
    new, _ = await card_of(runtime, second.id)
    assert "Revised after @alice asked for changes: “bump the version”" in new.text
    assert "revision 2 of 2" in new.context[1] and "last revision" in new.text

    again = await chat.click(BOB, second.id, "changes")
    assert isinstance(again, ShowForm)
    await chat.submit(BOB, again.form.form_id, {"feedback": "still wrong"})
    row = await finished(runtime, run_id)
    assert row.status == "failed" and "after the last allowed revision (2)" in row.error
    last, _ = await card_of(runtime, second.id)
    assert "This was the last revision (2), so it counts as a reject." in last.text


async def test_a_form_approval_validates_each_field_and_its_values_become_outputs(chat: Chat) -> None:
    runtime = chat.runtime
    run_id = await chat.run("window")
    request = await request_of(runtime, run_id)
    card, _ = await card_of(runtime, request.id)
    assert "Approving asks for details: window, replicas, dry_run, level, notes." in card.text
    assert "You are not an approver" in said(
        await chat.click(MALLORY, request.id, "approve")
    )  # before any form
    form = await chat.click(ALICE, request.id, "approve")
    assert isinstance(form, ShowForm)
    kinds = {f.name: (f.kind, f.required, f.default) for f in form.form.fields}
    assert kinds == {
        "window": ("text", True, None),
        "replicas": ("number", False, "2"),
        "dry_run": ("boolean", False, "false"),
        "level": ("select", True, None),
        "notes": ("multiline", False, None),
    }
    bad = await chat.submit(ALICE, form.form.form_id, {"window": "", "replicas": "many", "level": "mid"})
    assert isinstance(bad, FieldErrors) and sorted(bad.errors) == ["level", "replicas", "window"]
    assert bad.errors["replicas"] == "Expected a integer, got 'many'"
    assert (await runtime.store.run_row(run_id)).status == "waiting"
    good = {"window": "Sat 02:00", "replicas": "3", "dry_run": "yes", "level": "high", "notes": ""}
    assert "the run continues" in said(await chat.submit(ALICE, form.form.form_id, good))
    row = await finished(runtime, run_id)
    assert row.outputs["after"] == {"text": "window Sat 02:00 x3"}
    ask = {s.key: s for s in await runtime.store.step_rows(run_id)}["ask"]
    assert ask.outputs["form"] == {
        "window": "Sat 02:00",
        "replicas": 3,
        "dry_run": True,
        "level": "high",
        "notes": None,
    }


async def test_reminder_then_added_approvers_on_the_fake_clock(chat: Chat) -> None:
    runtime = chat.runtime
    run_id = await chat.run("deploy")
    request = await request_of(runtime, run_id)
    await chat.click(ALICE, request.id, "approve")
    chat.clock.advance(30 * 60)
    await runtime.fire_due()
    [remind] = await query(
        runtime, sa.select(chat_posts).where(chat_posts.c.parent_key == f"approval:{request.id}")
    )
    assert remind.channel == "#approvals"
    assert remind.card["text"] == (
        "⏰ *Deploy api to prod?* is still waiting on group:release-managers, @dave (1 of 2 approved so far)."
    )
    assert "You are not an approver" in said(await chat.click(CAROL, request.id, "approve"))
    chat.clock.advance(90 * 60)
    await runtime.fire_due()
    posts = await query(
        runtime, sa.select(chat_posts).where(chat_posts.c.parent_key == f"approval:{request.id}")
    )
    assert posts[-1].card["text"].endswith("Added as approvers: user:carol.")
    card, _ = await card_of(runtime, request.id)
    assert "user:carol" in card.context[1] and "(in 2h)" in card.context[1]
    assert "the run continues" in said(await chat.click(CAROL, request.id, "approve"))
    assert (await finished(runtime, run_id)).status == "succeeded"
    actions = [a for (a,) in await query(runtime, sa.select(approval_audit.c.action))]
    assert actions.count("escalated") == 2


async def test_a_deadline_missed_while_down_fires_at_the_next_start(
    make_runtime: Callable[..., Any], settings_for: Callable[..., Settings], workflows_dir: Path
) -> None:
    workflow(DEPLOY, workflows_dir)
    clock = FakeClock()
    settings = settings_for()
    engine = create_engine(settings.database_url)
    await migrate(engine)
    first = Runtime(settings, RunStore(engine), clock=clock)
    await first.start()
    run_id = await connect(first, clock).run("deploy")
    request = await request_of(first, run_id)
    await first.stop(grace=1.0)
    await engine.dispose()

    clock.advance(5 * 3600)  # the 4h deadline passes while no process runs
    second = connect(await make_runtime(clock=clock), clock).runtime
    await second.fire_due()
    row = await finished(second, run_id)
    assert row.status == "failed" and "no decision before the deadline" in row.error
    card, _ = await card_of(second, request.id)
    assert card.status == "expired" and card.buttons == ()
    assert card.text.splitlines()[-1].startswith("Expired at ")
    late = said(await connect(second, clock).click(ALICE, request.id, "approve"))
    assert late.startswith("This request expired at ")


async def test_approvals_lists_what_the_user_may_decide(chat: Chat) -> None:
    runtime = chat.runtime
    theirs = await request_of(runtime, await chat.run("deploy"))
    dave_only = await request_of(runtime, await chat.run("solo"))
    own = await request_of(runtime, await chat.run("deploy", who=ALICE))
    listed = await chat.router.command(Command(ALICE, OPS, "approvals", ""))
    assert isinstance(listed, Say) and listed.card is not None and listed.ephemeral
    card = listed.card
    assert card.title == "1 approval request waiting for you"
    [field] = card.fields
    assert field.label == "#1 Deploy api to prod?" and "asked by @erin" in field.value
    assert [b.label for b in card.buttons] == ["Approve #1", "Reject #1", "Changes #1"]
    assert {b.action_id.split(":")[2] for b in card.buttons} == {theirs.id}
    for_dave = (await chat.router.command(Command(DAVE, OPS, "approvals", ""))).card
    assert len(for_dave.fields) == 3 and {dave_only.id, own.id} <= {
        b.action_id.split(":")[2] for b in for_dave.buttons
    }
    await chat.click(ALICE, card.buttons[0].action_id.split(":")[2], "approve")
    nothing = await chat.router.command(Command(ALICE, OPS, "approvals", ""))
    assert said(nothing) == "Nothing is waiting for your decision."


async def test_approvals_keeps_to_twenty_five_buttons_and_says_how_many_more(chat: Chat) -> None:
    for _ in range(9):
        await request_of(chat.runtime, await chat.run("deploy"))
    card = (await chat.router.command(Command(DAVE, OPS, "approvals", ""))).card
    assert card.title == "9 approval requests waiting for you"
    assert len(card.fields) == 8 and len(card.buttons) == 24  # three buttons each
    assert card.context[-1] == "…and 1 more request: decide these first, then run /approvals again"


async def test_a_cancelled_run_refuses_its_approval_buttons(chat: Chat) -> None:
    run_id = await chat.run("solo")
    request = await request_of(chat.runtime, run_id)
    await chat.router.command(Command(ERIN, OPS, "workflow", f"cancel {run_id}"))
    await status_is(chat.runtime, run_id, "cancelled")
    reply = said(await chat.click(DAVE, request.id, "approve"))
    assert reply == f"Run {run_id} has ended (cancelled); this request no longer applies."


async def test_budget_requests_lead_with_the_amount_and_auto_approvals_post_no_card(chat: Chat) -> None:
    small = await chat.run("purchase", "amount=120")
    assert (await finished(chat.runtime, small)).status == "succeeded"
    large = await request_of(chat.runtime, await chat.run("purchase", "amount=9000"))
    cards = await query(
        chat.runtime, sa.select(chat_cards.c.key).where(chat_cards.c.key.startswith("approval:"))
    )
    assert [k for (k,) in cards] == [f"approval:{large.id}"]
    card, _ = await card_of(chat.runtime, large.id)
    assert [(f.label, f.value) for f in card.fields][:2] == [("Amount", "9,000.00 EUR"), ("Vendor", "Acme")]
    assert "2 of group:finance" in card.context[1]


async def test_the_bot_process_delivers_and_edits_the_card_in_the_console(
    settings_for: Callable[..., Settings], workflows_dir: Path
) -> None:
    workflow(DEPLOY, workflows_dir)
    app = await start_app(settings_for(port=0, card_update_interval=0.05))
    try:
        chat = Chat(app.runtime, app.router, FakeClock())
        request = await request_of(app.runtime, await chat.run("deploy"))
        key = f"sb-card-approval:{request.id}"
        stmt = sa.select(console_messages).where(console_messages.c.key == key)
        shown = await eventually(lambda: query(app.runtime, stmt), message="the approval card in the console")
        assert shown[0].channel == "approvals" and shown[0].card["status"] == "waiting for approval"
        await chat.click(ALICE, request.id, "approve")

        async def one_of_two() -> bool:
            return "1 of 2" in (await query(app.runtime, stmt))[0].card["text"]

        await eventually(one_of_two)
    finally:
        await stop_app(app, grace=1.0, flush=1.0)


async def test_dm_cards_on_slack_name_people_and_remind_only_who_has_not_answered(chat: Chat) -> None:
    runtime = chat.runtime
    slack = Place("slack", "C0OPS", channel_name="#ops")
    alice = Identity("slack", "T1", "U0ALICE", "Alice Liddell")
    bob = Identity("slack", "T1", "U0BOB", "bob")
    started = await chat.router.command(
        Command(Identity("slack", "T1", "U0ERIN", "erin"), slack, "workflow", "run page")
    )
    run_id = said(started).split("(run ")[1].split(")")[0]
    request = await request_of(runtime, run_id)
    prefix = f"approval:{request.id}"
    cards = await query(
        runtime, sa.select(chat_cards).where(chat_cards.c.key.startswith(prefix)).order_by(chat_cards.c.key)
    )
    assert [(c.key, c.platform, c.channel) for c in cards] == [
        (prefix, "slack", "C0OPS"),  # user:bob is a name and group:sre a group: no DM for them
        (f"{prefix}:dm:U0ALICE", "slack", "U0ALICE"),  # Slack takes a user id as the channel of a DM
    ]
    assert (
        Card.from_dict(cards[0].card).context[-1]
        == "notify: dm: sent by DM to user:U0ALICE; posted here for the rest"
    )

    await chat.router.click(Click(alice, slack, action_id("approval", request.id, "approve")))
    cards = await query(runtime, sa.select(chat_cards).where(chat_cards.c.key.startswith(prefix)))
    # Stored with a mention marker: Slack draws <@U0ALICE>, the console and fallbacks @Alice Liddell.
    assert all(
        "Approved by @Alice Liddell, 1 of 2" in plain(c.card["text"]) and c.version == 2 for c in cards
    )
    assert all("Approved by <@U0ALICE>, 1 of 2" in resolve(c.card["text"], "slack") for c in cards)
    chat.clock.advance(600)
    await runtime.fire_due()
    [remind] = await query(runtime, sa.select(chat_posts).where(chat_posts.c.parent_key.startswith(prefix)))
    assert remind.parent_key == prefix  # Alice answered: her DM gets no reminder
    assert "still waiting on @bob, group:sre (1 of 2 approved so far)" in remind.card["text"]

    await chat.router.click(Click(bob, slack, action_id("approval", request.id, "approve")))
    card, _ = await card_of(runtime, request.id)
    assert (
        plain(card.text).splitlines()[-1].startswith("Approved by @Alice Liddell and @bob at ")
    )  # names from the log


async def test_dm_requests_on_the_console_go_to_known_users_dms_and_the_channel_for_the_rest(
    chat: Chat,
) -> None:
    request = await request_of(chat.runtime, await chat.run("page"))
    cards = await query(
        chat.runtime,
        sa.select(chat_cards.c.key, chat_cards.c.channel)
        .where(chat_cards.c.key.startswith("approval:"))
        .order_by(chat_cards.c.key),
    )
    assert cards == [(f"approval:{request.id}", "ops"), (f"approval:{request.id}:dm:bob", "@bob")]
    card, _ = await card_of(chat.runtime, request.id)
    assert card.context[-1] == "notify: dm: sent by DM to user:bob; posted here for the rest"
