"""The assistant against the fake OpenAI server behaving like llama.cpp's server, vLLM and Ollama."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from bot.conversations.tools import tool_specs
from bot.storage.conversations.states import State
from tests.conversation_env import Env, make_env, person, said
from tests.fakes.openai_server import FakeOpenAI, Text, ToolCalls
from tests.helpers import eventually

ALICE = person("alice", groups=("release-managers",))
FLAVOURS = ("llamacpp", "vllm", "ollama")


@pytest.fixture(params=FLAVOURS)
async def fake(request: pytest.FixtureRequest) -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI(flavour=request.param) as server:
        yield server


@pytest.fixture
async def env(make_runtime: Callable[..., Any], fake: FakeOpenAI, workflows_dir: Path) -> AsyncIterator[Env]:
    runtime = await make_runtime(
        openai_api_key="k", openai_base_url=fake.base_url, debounce=0.0, llm_max_tokens=300
    )
    made = await make_env(runtime)
    yield made
    await made.service.stop()


def tool_results(body: dict[str, Any]) -> list[str]:
    return [m["content"] for m in body["messages"] if m["role"] == "tool"]


async def test_a_tool_round_and_an_answer_work_on_each_server(env: Env, fake: FakeOpenAI) -> None:
    fake.script(ToolCalls.one("remember", {"key": "service", "value": "payments"}), Text("Noted."))
    conv = await env.service.user_said(said(ALICE, "it's about payments"))
    assert conv is not None
    texts = await eventually(lambda: env.texts("@alice"))
    assert any("Noted." in t for t in texts)
    first, second = fake.completions
    for body in (first, second):
        assert body["max_tokens"] == 300 and body["tool_choice"] == "auto"
    (call_message,) = [m for m in second["messages"] if m.get("tool_calls")]
    assert call_message["content"] == ""
    assert tool_results(second) == ["Remembered service."]


async def test_the_limits_left_out_of_the_schema_are_enforced_after_parsing(
    env: Env, fake: FakeOpenAI
) -> None:
    fake.script(ToolCalls.one("remember", {"key": "k" * 81, "value": "v"}), Text("Sorry."))
    conv = await env.service.user_said(said(ALICE, "remember this"))
    assert conv is not None
    await eventually(lambda: env.texts("@alice"))
    (result,) = tool_results(fake.completions[-1])
    assert result.startswith("Error: invalid call") and "80 characters" in result
    assert (await env.get(conv.id)).state == State.AI_PROCESSING


def test_the_tool_schemas_carry_no_keyword_a_grammar_builder_rejects() -> None:
    text = repr(tool_specs())
    for keyword in ("maxLength", "minLength", "pattern", "format", "title"):
        assert f"'{keyword}'" not in text
    remember = next(s for s in tool_specs() if s["function"]["name"] == "remember")
    assert set(remember["function"]["parameters"]["properties"]) == {"key", "value"}
    assert remember["function"]["parameters"]["required"] == ["key", "value"]


@pytest.mark.parametrize("flavour", FLAVOURS)
async def test_the_flavours_refuse_what_the_real_servers_refuse(flavour: str) -> None:
    import httpx

    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    schema = {"type": "object", "properties": {"s": {"type": "string", "maxLength": 3, "pattern": "a"}}}
    async with FakeOpenAI(flavour=flavour) as server, httpx.AsyncClient() as http:
        url = f"{server.base_url}/chat/completions"
        base = {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
        assert (
            await http.post(url, json={k: v for k, v in base.items() if k != "max_tokens"})
        ).status_code == 400
        history = [*base["messages"], {"role": "assistant", "tool_calls": [call]}]
        status = (await http.post(url, json={**base, "messages": history})).status_code
        assert status == (500 if flavour == "llamacpp" else 200)
        tools = [{"type": "function", "function": {"name": "f", "parameters": schema}}]
        status = (await http.post(url, json={**base, "tools": tools, "tool_choice": "auto"})).status_code
        assert status == {"llamacpp": 500, "vllm": 400, "ollama": 200}[flavour]
        no_choice = {**base, "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]}
        status = (await http.post(url, json=no_choice)).status_code
        assert status == (400 if flavour == "vllm" else 200)
