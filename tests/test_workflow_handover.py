"""A workflow's own ``handover:`` key: checked as the workflow is loaded (and by the JSON Schema), and
applied to the conversations about that workflow over the hand-over file and the environment, through
the conversation service with the real openai client against the fake server."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from bot.storage.conversations.rows import Inbound
from bot.storage.conversations.states import State
from engine.loader import WorkflowInvalid, load_text
from engine.schema import json_schema
from engine.source_map import parse_yaml, plain
from tests.conversation_env import Env, make_env, person, said
from tests.fakes.openai_server import FakeOpenAI, Text, ToolCalls
from tests.helpers import eventually, finished

ROOT = Path(__file__).resolve().parent.parent
ALICE = person("alice", groups=("release-managers",))
DEPLOY = """
name: deploy
permissions: {run: ["group:release-managers"]}
handover:
  triggers:
    keywords: [outage]
  routes:
    - {keywords: [database], skills: [dba], priority: high}
  channels:
    console:ops:
      triggers: {keywords: [page me]}
steps:
  go: {run: ["python3", "-c", "print('deployed')"]}
"""
# The file's layers: its entry for deploy is under the workflow's own key; its channel and defaults below.
RULES = """
defaults:
  routes:
    - {skills: [ops]}
channels:
  console:ops:
    triggers: {keywords: [refund], explicit_request: false}
workflows:
  deploy:
    triggers: {keywords: [rollback], after_failures: 7}
"""


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as server:
        yield server


@pytest.fixture
async def env(
    make_runtime: Callable[..., Any], fake: FakeOpenAI, tmp_path: Path, workflows_dir: Path
) -> AsyncIterator[Env]:
    (workflows_dir / "deploy.yaml").write_text(DEPLOY)
    (tmp_path / "handover.yaml").write_text(RULES)
    runtime = await make_runtime(
        openai_api_key="k",
        openai_base_url=fake.base_url,
        debounce=0.0,
        handover_file=tmp_path / "handover.yaml",
    )
    made = await make_env(runtime)
    yield made
    await made.service.stop()


def in_ops(text: str) -> Inbound:
    return Inbound(ALICE, "console", "ops", text, thread="t1")


async def _state(env: Env, conv_id: str, state: State) -> bool:
    return (await env.get(conv_id)).state == state


async def _said(env: Env, channel: str, text: str) -> bool:
    return text in await env.texts(channel)


async def test_the_workflows_key_applies_once_the_assistant_ran_it_over_the_file(
    env: Env, fake: FakeOpenAI
) -> None:
    fake.script(Text("Hello."))
    conv = await env.service.user_said(said(ALICE, "is there an outage?"))
    assert conv is not None
    await eventually(lambda: _said(env, "@alice", "Hello."))
    assert (await env.get(conv.id)).state == State.AI_PROCESSING  # not about deploy yet: no such keyword

    fake.script(ToolCalls.one("run_workflow", {"name": "deploy"}), Text("Started deploy."))
    await env.service.user_said(said(ALICE, "deploy please"))
    await eventually(lambda: _said(env, "@alice", "Started deploy."))
    about = await env.get(conv.id)
    assert about.workflow == "deploy"
    rules = env.service.rules(about)
    assert rules.scopes == ("workflow deploy", "file's workflow deploy", "defaults")
    assert rules.keywords == ("outage",) and rules.after_failures == 7  # field by field

    fake.script(Text("Nothing to roll back."))
    await env.service.user_said(said(ALICE, "rollback?"))  # the file's keyword for deploy, overridden
    await eventually(lambda: _said(env, "@alice", "Nothing to roll back."))
    assert (await env.get(conv.id)).state == State.AI_PROCESSING

    await env.service.user_said(said(ALICE, "an outage in the database"))
    await eventually(lambda: _state(env, conv.id, State.PENDING_HUMAN))
    queued = await env.get(conv.id)
    assert queued.reason == "keyword"
    assert queued.skills == ("dba", "ops") and queued.priority_name == "high"  # routes add up


async def test_the_workflows_channel_entry_and_the_files_channel_both_apply(
    env: Env, fake: FakeOpenAI
) -> None:
    fake.script(ToolCalls.one("run_workflow", {"name": "deploy"}), Text("Started deploy."))
    conv = await env.service.user_said(in_ops("deploy please"))
    assert conv is not None
    await eventually(lambda: _said(env, "ops", "Started deploy."))
    about = await env.get(conv.id)
    assert env.service.rules(about).scopes == (
        "workflow deploy in console:ops",
        "workflow deploy",
        "file's workflow deploy",
        "channel console:ops",
        "defaults",
    )
    # The file's channel turns explicit requests off; the workflow says nothing of them, so that holds.
    told = await env.service.ask_for_human(conv.id, ALICE.ref)
    assert told.startswith("Here the assistant hands a conversation to a person when it cannot help")
    await env.service.user_said(in_ops("please page me"))  # the workflow's keyword for this channel
    await eventually(lambda: _state(env, conv.id, State.PENDING_HUMAN))
    assert (await env.get(conv.id)).reason == "keyword"


async def test_asking_about_a_run_makes_the_conversation_about_its_workflow(
    env: Env, fake: FakeOpenAI
) -> None:
    loaded = env.service.catalog.workflow("deploy")
    started = await env.runtime.submit(loaded, {}, started_by=ALICE.ref)
    await finished(env.runtime, started.run_id)
    fake.script(ToolCalls.one("run_status", {"run_id": started.run_id}), Text("It succeeded."))
    conv = await env.service.user_said(said(ALICE, "how did my deploy go?"))
    assert conv is not None
    await eventually(lambda: _said(env, "@alice", "It succeeded."))
    assert (await env.get(conv.id)).workflow == "deploy"
    await env.service.user_said(said(ALICE, "there is an outage now"))
    await eventually(lambda: _state(env, conv.id, State.PENDING_HUMAN))


def test_a_bad_handover_key_is_reported_with_its_line_and_a_fix() -> None:
    text = """name: w
steps:
  a: {run: [x]}
handover:
  triggers: {keywordz: [x], confidence_below: 2}
  channels:
    slak:C01: {}
  routes:
    - {priority: hgh}
"""
    with pytest.raises(WorkflowInvalid) as caught:
        load_text(text, "w.yaml")
    message = str(caught.value)
    assert "w.yaml:5:14: unknown key 'keywordz' in 'handover.triggers'; did you mean 'keywords'?" in message
    assert "'handover.triggers.confidence_below' must be at most 1.0, got 2" in message
    assert "channel 'slak:C01' is not slack:ID, discord:ID, console:NAME or a bare channel id" in message
    assert "did you mean 'high'?" in message


def test_the_schema_file_is_the_models_and_checks_the_handover_key() -> None:
    assert json.loads((ROOT / "workflow.schema.json").read_text()) == json_schema(), (
        "workflow.schema.json is stale: run `switchboard workflow schema -o workflow.schema.json`"
    )
    validator = jsonschema.Draft7Validator(json_schema())  # what editors apply
    assert list(validator.iter_errors(plain(parse_yaml(DEPLOY)[0]))) == []
    for bad in (
        "handover: {triggers: {keywordz: [x]}}",
        "handover: {channels: {'slak:C01': {}}}",
        "handover: {routes: [{priority: hgh}]}",
        "handover: {triggers: {confidence_below: 2}}",
    ):
        data = plain(parse_yaml(f"name: w\nsteps:\n  a: {{run: [x]}}\n{bad}\n")[0])
        assert not validator.is_valid(data), bad
