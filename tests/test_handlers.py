"""The platform-neutral handlers through the real router and runtime: what any chat user sees."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from bot.identity import Identity, Place
from bot.runtime.runtime import Runtime
from bot.storage.tables import action_log
from cards.model import action_id
from handlers.router import Router
from handlers.services import Services
from handlers.types import Click, Command, FieldErrors, Say, ShowForm, Submission
from tests.helpers import finished, status_is, workflow

OPS = Place("console", "ops", channel_name="#ops")
ALICE = Identity("console", "console", "alice", "alice", frozenset({"release-managers"}))
ERIN = Identity("console", "console", "erin", "erin")
ROOT = Identity("console", "console", "root", "root", admin=True)

DEPLOY = """
name: deploy
description: Deploy a service
inputs:
  service: {type: string, required: true, description: Service to deploy}
  env: {type: string, enum: [staging, prod], default: staging}
permissions: {run: ["group:release-managers", "channel:#ops"]}
steps:
  go: {run: ["sleep", "${{ inputs.service == 'slow' && '10' || '0' }}"]}
"""
LOCKED = """
name: locked
permissions: {run: ["group:release-managers"]}
steps:
  go: {run: ["true"]}
"""


@pytest.fixture
async def router(make_runtime: Callable[..., Any], workflows_dir: Path) -> AsyncIterator[Router]:
    workflow(DEPLOY, workflows_dir)
    workflow(LOCKED, workflows_dir)
    runtime: Runtime = await make_runtime()
    yield Router(Services(runtime, runtime.settings))


def cmd(text: str, who: Identity = ALICE, where: Place = OPS) -> Command:
    return Command(who, where, "workflow", text)


def text_of(reply: Any) -> str:
    assert isinstance(reply, Say), reply
    return reply.plain_text()


async def test_run_starts_a_run_with_its_origin_and_identity(router: Router) -> None:
    reply = await router.command(cmd("run deploy service=api env=prod"))
    assert "Started deploy" in text_of(reply)
    [row] = await router.services.runtime.store.list_runs()
    assert row.started_by == "console:alice"
    assert row.meta["origin"]["channel"] == "ops"
    assert row.inputs == {"service": "api", "env": "prod"}
    assert (await finished(router.services.runtime, row.id)).status == "succeeded"


async def test_a_misspelt_workflow_gets_a_suggestion_and_nothing_starts(router: Router) -> None:
    reply = await router.command(cmd("run depoly service=api"))
    assert text_of(reply) == "No workflow named depoly. Did you mean deploy?"
    assert reply.ephemeral
    assert await router.services.runtime.store.list_runs() == []


async def test_missing_required_input_opens_a_form_from_the_typed_inputs(router: Router) -> None:
    reply = await router.command(cmd("run deploy env=prod"))
    assert isinstance(reply, ShowForm)
    fields = {f.name: f for f in reply.form.fields}
    assert fields["service"].required and fields["service"].kind == "text"
    assert fields["env"].kind == "select" and fields["env"].options == ("staging", "prod")
    assert fields["env"].default == "prod"  # what was already typed is kept
    bad = await router.submit(Submission(ALICE, OPS, reply.form.form_id, {"service": "api", "env": "qa"}))
    assert isinstance(bad, FieldErrors) and "env" in bad.errors
    good = await router.submit(Submission(ALICE, OPS, reply.form.form_id, {"service": "api", "env": "prod"}))
    assert "Started deploy" in text_of(good)


async def test_a_text_input_is_asked_for_in_a_multiline_field(router: Router, workflows_dir: Path) -> None:
    workflow(
        """
name: note
inputs: {body: {type: text, required: true, description: What to say}}
steps:
  say: {notify: "${{ inputs.body }}"}
""",
        workflows_dir,
    )
    reply = await router.command(cmd("run note"))
    assert isinstance(reply, ShowForm)
    [field] = reply.form.fields
    assert (field.name, field.kind, field.required) == ("body", "multiline", True)


async def test_permissions_refuse_and_say_who_may(router: Router) -> None:
    elsewhere = Place("console", "random", channel_name="#random")
    reply = await router.command(cmd("run locked", who=ERIN, where=elsewhere))
    assert text_of(reply) == "You may not run locked. Allowed: group:release-managers."
    assert "Started" in text_of(await router.command(cmd("run locked", who=ROOT, where=elsewhere)))
    # a channel entry lets anyone in #ops run deploy
    assert "Started" in text_of(await router.command(cmd("run deploy service=api", who=ERIN)))


async def test_bad_arguments_are_explained(router: Router) -> None:
    assert "name=value" in text_of(await router.command(cmd("run deploy service")))
    assert "check the quotes" in text_of(await router.command(cmd('run deploy service="api')))
    assert "Did you mean `/workflow run`" in text_of(await router.command(cmd("rnu deploy")))
    assert "one of: staging, prod" in text_of(await router.command(cmd("run deploy service=api env=qa")))


async def test_list_and_help_show_what_the_user_may_run(router: Router) -> None:
    listed = await router.command(cmd("list", who=ERIN, where=Place("console", "random")))
    assert isinstance(listed, Say) and listed.card is None  # erin may run nothing outside #ops
    helped = await router.command(cmd("help deploy"))
    assert isinstance(helped, Say) and helped.card is not None
    assert "service" in [f.label for f in helped.card.fields]


async def test_cancel_button_and_stale_button(router: Router) -> None:
    runtime = router.services.runtime
    await router.command(cmd("run deploy service=slow"))
    [row] = await runtime.store.list_runs()
    await status_is(runtime, row.id, "running")
    intruder = await router.click(Click(ERIN, Place("console", "random"), action_id("run", row.id, "cancel")))
    assert "You may not cancel" in text_of(intruder)
    reply = await router.click(Click(ALICE, OPS, action_id("run", row.id, "cancel")))
    assert f"Cancelling run {row.id}" in text_of(reply)
    assert (await finished(runtime, row.id)).status == "cancelled"
    stale = await router.click(Click(ALICE, OPS, action_id("run", row.id, "cancel")))
    assert text_of(stale) == f"Run {row.id} already cancelled; there is nothing to cancel."


async def test_status_shows_the_run_card(router: Router) -> None:
    await router.command(cmd("run deploy service=api"))
    [row] = await router.services.runtime.store.list_runs()
    await finished(router.services.runtime, row.id)
    reply = await router.command(cmd(f"status {row.id}"))
    assert isinstance(reply, Say) and reply.card is not None
    assert reply.card.status == "succeeded"
    mine = await router.command(cmd("status"))
    assert row.id in text_of(mine)


async def test_every_action_is_logged_with_its_identity(router: Router) -> None:
    await router.command(cmd("run depoly", who=ERIN))
    async with router.services.runtime.store.engine.connect() as conn:
        rows = (await conn.execute(sa.select(action_log))).all()
    assert [(r.actor, r.kind, r.outcome) for r in rows] == [("console:erin", "command", "NotFound")]


async def test_an_unexpected_error_shows_a_reference(router: Router) -> None:
    await router.command(cmd("run deploy service=api"))
    [row] = await router.services.runtime.store.list_runs()
    await finished(router.services.runtime, row.id)
    async with router.services.runtime.store.engine.begin() as conn:
        await conn.execute(sa.text("DROP TABLE step_runs"))  # the database lost a table: not the user's fault
    reply = await router.command(cmd(f"status {row.id}"))
    assert text_of(reply).startswith("Something went wrong (ref ")
