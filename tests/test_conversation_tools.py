"""The assistant's tools acting as the user (permissions apply), the workflow-failure rule, memory, stats."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from bot.conversations.transcripts import stats
from bot.storage.conversations.states import State
from tests.conversation_env import Env, make_env, person, said
from tests.fakes.openai_server import FakeOpenAI, Text, ToolCalls
from tests.helpers import eventually

ALICE = person("alice", groups=("release-managers",))
ERIN = person("erin")

HELLO = """
name: hello
description: Say hello
permissions:
  run: ["group:release-managers"]
inputs:
  who: {type: string, required: true}
steps:
  greet:
    run: ["python3", "-c", "print('hello')"]
"""

BROKEN = """
name: broken
description: Always fails
steps:
  fail:
    run: ["python3", "-c", "import sys; sys.exit(3)"]
"""


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as server:
        yield server


@pytest.fixture
async def env(make_runtime: Callable[..., Any], fake: FakeOpenAI, workflows_dir: Path) -> AsyncIterator[Env]:
    (workflows_dir / "hello.yaml").write_text(HELLO)
    (workflows_dir / "broken.yaml").write_text(BROKEN)
    runtime = await make_runtime(openai_api_key="k", openai_base_url=fake.base_url, debounce=0.0)
    made = await make_env(runtime)
    yield made
    await made.service.stop()


def tool_results(body: dict[str, Any]) -> list[str]:
    return [m["content"] for m in body["messages"] if m["role"] == "tool"]


async def test_run_workflow_starts_a_run_as_the_user(env: Env, fake: FakeOpenAI) -> None:
    fake.script(
        ToolCalls.one("list_workflows"),
        ToolCalls.one("run_workflow", {"name": "hello", "inputs": {"who": "world"}}),
        Text("Started it for you."),
    )
    await env.service.user_said(said(ALICE, "say hello to the world"))
    await eventually(lambda: env.texts("@alice"))
    listed, started = tool_results(fake.completions[-1])
    assert "hello: Say hello" in listed and "broken" in listed
    assert started.startswith("Started hello as run ")
    run_id = started.split()[4].rstrip(".")
    row = await env.runtime.store.run_row(run_id)
    assert row is not None and row.started_by == "console:alice"


async def test_the_workflow_permissions_apply(env: Env, fake: FakeOpenAI) -> None:
    fake.script(ToolCalls.one("run_workflow", {"name": "hello", "inputs": {"who": "x"}}), Text("Sorry."))
    await env.service.user_said(said(ERIN, "say hello"))
    await eventually(lambda: env.texts("@erin"))
    (result,) = tool_results(fake.completions[-1])
    assert result.startswith("Error: You may not run hello.")
    assert await env.runtime.store.list_runs() == []


async def test_a_failed_workflow_hands_the_conversation_over(env: Env, fake: FakeOpenAI) -> None:
    fake.script(ToolCalls.one("run_workflow", {"name": "broken"}), Text("Running it now."))
    conv = await env.service.user_said(said(ALICE, "run broken"))
    assert conv is not None

    async def handed() -> Any:
        found = await env.get(conv.id)
        return found if found.state == State.PENDING_HUMAN else None

    queued = await eventually(handed, timeout=20)
    assert queued.reason == "workflow_failed" and "broken" in (queued.summary or "")


async def test_memory_is_kept_and_shown_to_the_model(env: Env, fake: FakeOpenAI) -> None:
    fake.script(ToolCalls.one("remember", {"key": "service", "value": "payments"}), Text("Noted."))
    conv = await env.service.user_said(said(ALICE, "it's about payments"))
    assert conv is not None
    await eventually(lambda: env.texts("@alice"))
    fake.script(Text("Payments it is."))
    await env.service.user_said(said(ALICE, "what was it again?"))
    await eventually(lambda: _count(env, 2))
    assert "service: payments" in fake.completions[-1]["messages"][0]["content"]


async def test_invalid_tool_arguments_go_back_to_the_model(env: Env, fake: FakeOpenAI) -> None:
    fake.script(ToolCalls.one("handover_to_human", {"reason": "bored"}), Text("Let me try again."))
    conv = await env.service.user_said(said(ALICE, "hm"))
    assert conv is not None
    await eventually(lambda: env.texts("@alice"))
    (result,) = tool_results(fake.completions[-1])
    assert result.startswith("Error: invalid call")
    assert (await env.get(conv.id)).state == State.AI_PROCESSING


async def test_stats_count_ai_resolutions_handovers_and_waits(env: Env, fake: FakeOpenAI) -> None:
    fake.script(ToolCalls.one("finish", {"resolution": "done"}))
    first = await env.service.user_said(said(ALICE, "thanks"))
    assert first is not None
    await eventually(lambda: _state(env, first.id, State.FINISHED))
    fake.script(ToolCalls.one("handover_to_human", {"reason": "user_request", "summary": "x"}))
    second = await env.service.user_said(said(ERIN, "a person"))
    assert second is not None
    await eventually(lambda: _state(env, second.id, State.PENDING_HUMAN))
    dave = person("dave")
    await env.service.desk.claim(second.id, dave)
    await env.service.desk.agent_said(await env.get(second.id), dave, "hi", "e1")
    await env.service.desk.resolve(second.id, dave)
    figures = (await stats(env.engine)).report()
    assert figures["conversations"] == 2 and figures["closed"] == 2
    assert figures["resolved_by_ai"] == 0.5 and figures["handover_rate"] == 0.5
    assert figures["wait_p50_s"] is not None and figures["first_response_p50_s"] is not None
    assert figures["agents"] == {"dave": {"holding": 0, "handled": 1}}
    json.dumps(figures)


async def _count(env: Env, n: int) -> bool:
    return len(await env.texts("@alice")) >= n


async def _state(env: Env, conv_id: str, state: State) -> bool:
    return (await env.get(conv_id)).state == state


async def _started_run(env: Env, fake: FakeOpenAI) -> str:
    fake.script(
        ToolCalls.one("run_workflow", {"name": "hello", "inputs": {"who": "world"}}), Text("Started.")
    )
    await env.service.user_said(said(ALICE, "say hello to the world"))
    await eventually(lambda: env.texts("@alice"))
    (started,) = tool_results(fake.completions[-1])
    return started.split()[4].rstrip(".")


async def test_run_status_tells_its_starter_how_their_run_is_going(env: Env, fake: FakeOpenAI) -> None:
    run_id = await _started_run(env, fake)
    assert not ALICE.admin
    fake.script(ToolCalls.one("run_status", {"run_id": run_id}), Text("It is going fine."))
    await env.service.user_said(said(ALICE, "how is my run?"))
    await eventually(lambda: _count(env, 2))
    (result,) = tool_results(fake.completions[-1])
    assert result.startswith(f"Run {run_id} of hello is "), result
    assert "greet:" in result and "someone else" not in result


async def test_run_status_refuses_someone_elses_run(env: Env, fake: FakeOpenAI) -> None:
    run_id = await _started_run(env, fake)
    fake.script(ToolCalls.one("run_status", {"run_id": run_id}), Text("I cannot tell you."))
    await env.service.user_said(said(ERIN, "how is alice's run?"))
    await eventually(lambda: env.texts("@erin"))
    (result,) = tool_results(fake.completions[-1])
    assert result == f"Error: run {run_id} was started by someone else."
