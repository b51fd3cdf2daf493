"""The assistant's ``rewind`` tool: it acts with the user's permissions, and the run goes on from there."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conversation_env import Env, make_env, person, said
from tests.fakes.openai_server import FakeOpenAI, Text, ToolCalls
from tests.helpers import eventually, finished, status_is, workflow

ALICE = person("alice")
ERIN = person("erin")

CHAIN = """
name: chain
permissions: {rollback: ["group:ops"]}
steps:
  build: {run: ["true"], checkpoint: built}
  deploy: {needs: [build], run: ["true"], compensate: {run: ["true"]}}
  verify: {needs: [deploy], run: ["test", "-e", "GATE"]}
"""


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as server:
        yield server


@pytest.fixture
async def env(make_runtime: Callable[..., Any], fake: FakeOpenAI, workflows_dir: Path) -> AsyncIterator[Env]:
    runtime = await make_runtime(openai_api_key="k", openai_base_url=fake.base_url, debounce=0.0)
    made = await make_env(runtime)
    yield made
    await made.service.stop()


def tool_results(body: dict[str, Any]) -> list[str]:
    return [m["content"] for m in body["messages"] if m["role"] == "tool"]


async def test_the_assistant_rewinds_under_the_users_permissions(
    env: Env, fake: FakeOpenAI, workflows_dir: Path, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    text = CHAIN.replace("GATE", str(gate))
    started = await env.runtime.submit(workflow(text, workflows_dir), {}, "console:alice")
    assert (await finished(env.runtime, started.run_id)).status == "failed"
    run = started.run_id

    fake.script(ToolCalls.one("rewind", {"run_id": run, "to": "built"}), Text("I may not."))
    await env.service.user_said(said(ERIN, f"rewind run {run} to built"))
    await eventually(lambda: env.texts("@erin"))
    (refused,) = tool_results(fake.completions[-1])
    assert refused.startswith("Error: You may not rewind runs of chain (the 'rollback' permission)")
    assert (await env.runtime.store.run_row(run)).status == "failed"

    gate.write_text("open")
    fake.script(
        ToolCalls.one("rewind", {"run_id": run, "to": "the build"}),
        ToolCalls.one("rewind", {"run_id": run, "to": "built"}),
        Text("Rewound; it is running again."),
    )
    await env.service.user_said(said(ALICE, f"take run {run} back to the build and go on"))
    await eventually(lambda: env.texts("@alice"))
    wrong, rewound = tool_results(fake.completions[-1])
    assert "no checkpoint or step is called 'the build' (checkpoints: built)" in wrong  # the model can retry
    assert rewound.startswith(f"Rewinding run {run} to built")
    await status_is(env.runtime, run, "succeeded")
