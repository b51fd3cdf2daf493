"""Hand-over rules per channel and per workflow from the hand-over file, through the conversation service
with the real openai client against the fake server; and the file's error messages."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from bot.conversations.handover_file import parse_handover
from bot.errors import BadInput
from bot.storage.conversations.rows import Inbound
from bot.storage.conversations.states import State
from tests.conversation_env import Env, make_env, person, said
from tests.fakes.openai_server import FakeOpenAI, Text, ToolCalls
from tests.helpers import eventually

ALICE = person("alice", groups=("release-managers",))
RULES = """
defaults:
  routes:
    - {keywords: [invoice], skills: [billing], priority: urgent}
    - {reasons: [complaint], skills: [care]}
channels:
  console:help:
    triggers:
      keywords: [refund]
      confidence_below: 0.5
  console:#quiet:
    triggers: {explicit_request: false}
workflows:
  hello:
    triggers: {keywords: [rollback]}
"""
HELLO = """
name: hello
permissions: {run: ["group:release-managers"]}
steps:
  greet: {run: ["python3", "-c", "print('hello')"]}
"""


def in_channel(channel: str, text: str, thread: str = "m1") -> Inbound:
    return Inbound(ALICE, "console", channel, text, thread=thread)


def handover(**extra: Any) -> ToolCalls:
    return ToolCalls.one(
        "handover_to_human", {"reason": "cannot_help", "summary": "Needs a person.", **extra}
    )


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as server:
        yield server


@pytest.fixture
async def env(
    make_runtime: Callable[..., Any], fake: FakeOpenAI, tmp_path: Path, workflows_dir: Path
) -> AsyncIterator[Env]:
    (workflows_dir / "hello.yaml").write_text(HELLO)
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


async def _state(env: Env, conv_id: str, state: State) -> bool:
    return (await env.get(conv_id)).state == state


async def test_a_channels_keyword_hands_over_there_and_nowhere_else(env: Env, fake: FakeOpenAI) -> None:
    conv = await env.service.user_said(in_channel("help", "I want a refund"))
    assert conv is not None
    await eventually(lambda: _state(env, conv.id, State.PENDING_HUMAN))
    assert (await env.get(conv.id)).reason == "keyword" and fake.completions == []

    fake.script(Text("Refunds are in the billing portal."))
    elsewhere = await env.service.user_said(said(ALICE, "I want a refund"))
    assert elsewhere is not None
    await eventually(lambda: env.texts("@alice"))
    assert (await env.get(elsewhere.id)).state == State.AI_PROCESSING


async def test_the_channels_confidence_threshold_keeps_a_sure_assistant_on_it(
    env: Env, fake: FakeOpenAI
) -> None:
    fake.script(handover(confidence=0.8), Text("Let me look at it myself."))
    conv = await env.service.user_said(in_channel("help", "my build is red"))
    assert conv is not None
    await eventually(lambda: env.texts("help"))
    (result,) = [m["content"] for m in fake.completions[-1]["messages"] if m["role"] == "tool"]
    assert result.startswith(
        "Not handed over: here a person takes over only when your confidence is below 0.5"
    )
    assert (await env.get(conv.id)).state == State.AI_PROCESSING

    fake.script(handover(confidence=0.2))  # unsure: it goes to a person
    await env.service.user_said(in_channel("help", "still red"))
    await eventually(lambda: _state(env, conv.id, State.PENDING_HUMAN))

    fake.script(handover(confidence=0.8))  # no threshold in the DM: the model's call stands
    dm = await env.service.user_said(said(ALICE, "my build is red"))
    assert dm is not None
    await eventually(lambda: _state(env, dm.id, State.PENDING_HUMAN))


async def test_routes_add_skills_and_raise_the_priority(env: Env, fake: FakeOpenAI) -> None:
    fake.script(handover(reason="complaint", summary="Charged twice on the March invoice."))
    conv = await env.service.user_said(said(ALICE, "you charged me twice"))
    assert conv is not None
    await eventually(lambda: _state(env, conv.id, State.PENDING_HUMAN))
    queued = await env.get(conv.id)
    assert queued.skills == ("billing", "care") and queued.priority_name == "urgent"


async def test_explicit_requests_off_refuses_the_button_and_hides_it(env: Env, fake: FakeOpenAI) -> None:
    fake.script(Text("Try restarting it."))
    conv = await env.service.user_said(in_channel("quiet", "it is broken"))
    assert conv is not None
    [reply] = await eventually(lambda: env.posts("quiet"))
    assert reply.text == "Try restarting it." and reply.buttons == ()
    told = await env.service.ask_for_human(conv.id, ALICE.ref)
    assert told.startswith("Here the assistant hands a conversation to a person when it cannot help")
    assert (await env.get(conv.id)).state == State.AI_PROCESSING


async def test_the_workflows_rules_apply_once_the_assistant_ran_it(env: Env, fake: FakeOpenAI) -> None:
    fake.script(Text("Hi."))
    before = await env.service.user_said(said(ALICE, "rollback", channel="@alice"))
    assert before is not None
    await eventually(lambda: env.texts("@alice"))
    assert (await env.get(before.id)).state == State.AI_PROCESSING  # no workflow yet: no such keyword

    fake.script(ToolCalls.one("run_workflow", {"name": "hello"}), Text("Started hello."))
    await env.service.user_said(said(ALICE, "run hello"))
    await eventually(lambda: _said(env, "Started hello."))
    assert (await env.get(before.id)).workflow == "hello"
    await env.service.user_said(said(ALICE, "rollback please"))
    await eventually(lambda: _state(env, before.id, State.PENDING_HUMAN))
    assert (await env.get(before.id)).reason == "keyword"


async def _said(env: Env, text: str) -> bool:
    return text in await env.texts("@alice")


def test_a_bad_file_names_each_problem_with_its_line_and_a_fix() -> None:
    text = """defaults:
  triggers: {confidence_below: 1.5, keywordz: [x]}
channels:
  slak:C01: {}
  C02:
    routes:
      - {skills: billing, priority: hgh}
"""
    with pytest.raises(BadInput) as caught:
        parse_handover(text, "handover.yaml")
    message = str(caught.value)
    assert (
        "handover.yaml:2:37: unknown key 'keywordz' in defaults.triggers; did you mean 'keywords'?" in message
    )
    assert "handover.yaml:2:32: 'defaults.triggers.confidence_below' must be at most 1.0, got 1.5" in message
    assert "must be a list" in message and "did you mean 'high'?" in message
    with pytest.raises(BadInput, match=r"handover.yaml:2:3: channel 'slak:C01' names the platform 'slak'"):
        parse_handover("channels:\n  slak:C01: {}\n", "handover.yaml")
    with pytest.raises(BadInput, match=r"handover\.yaml:1:1: the hand-over file must be a mapping"):
        parse_handover("- a\n", "handover.yaml")
    assert parse_handover("", "handover.yaml").channels == {}


async def test_a_missing_file_stops_the_start_with_its_name(
    make_runtime: Callable[..., Any], tmp_path: Path
) -> None:
    runtime = await make_runtime(handover_file=tmp_path / "nope.yaml")
    with pytest.raises(BadInput, match=r"nope\.yaml: no such hand-over file"):
        await make_env(runtime)
