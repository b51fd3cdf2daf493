"""The ``llm`` kind: the real openai client against the fake OpenAI-compatible server."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest

from engine.activities import llm
from engine.activities.base import ActivityContext, LlmSettings, StepCall, StepFailure
from tests.fakes.openai_server import Error, FakeOpenAI, Text, ToolCalls

SCHEMA = {
    "type": "object",
    "properties": {"severity": {"type": "string", "enum": ["low", "high"]}},
    "required": ["severity"],
    "additionalProperties": False,
}


def call(prompt: str = "Summarise the incident", **params: Any) -> StepCall:
    full = {"model": None, "system": None, "prompt": prompt, "temperature": None, "max_tokens": None}
    full.update(json_schema=None)
    full.update(params)
    return StepCall("run-5", "triage", "triage", 1, "run-5:triage", "llm", full)


def context(fake: FakeOpenAI, **settings: Any) -> ActivityContext:
    return ActivityContext(llm=LlmSettings(api_key="sk-test", base_url=fake.base_url, **settings))


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as server:
        yield server
    await llm.close_clients()


async def test_a_text_reply_with_usage(fake: FakeOpenAI) -> None:
    fake.script(Text("The database ran out of disk"))
    step = call(system="You are terse.", temperature=0.2, max_tokens=50)
    result = await llm.execute(step, context(fake))
    assert result == {
        "text": "The database ran out of disk",
        "json": None,
        "model": "gpt-4o-mini",
        "usage": {"prompt_tokens": 6, "completion_tokens": 6, "total_tokens": 12},
        "finish_reason": "stop",
    }
    sent = fake.completions[0]
    assert sent["messages"] == [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Summarise the incident"},
    ]
    assert (sent["temperature"], sent["max_tokens"]) == (0.2, 50)
    assert "response_format" not in sent
    assert fake.requests[0].headers["Authorization"] == "Bearer sk-test"


async def test_max_tokens_is_always_sent_from_the_setting_unless_the_step_sets_it(fake: FakeOpenAI) -> None:
    await llm.execute(call("ping"), context(fake, max_tokens=321))
    await llm.execute(call("ping", max_tokens=7), context(fake, max_tokens=321))
    assert [c["max_tokens"] for c in fake.completions] == [321, 7]


async def test_the_step_model_wins_and_the_default_echoes(fake: FakeOpenAI) -> None:
    result = await llm.execute(call("ping", model="gpt-4o"), context(fake, model="other"))
    assert (result["text"], result["model"]) == ("ping", "gpt-4o")
    assert fake.completions[0]["messages"] == [{"role": "user", "content": "ping"}]


async def test_a_json_schema_reply_is_parsed(fake: FakeOpenAI) -> None:
    fake.script(Text('{"severity": "high"}'))
    result = await llm.execute(call(json_schema=SCHEMA), context(fake))
    assert result["json"] == {"severity": "high"}
    assert fake.completions[0]["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "output", "schema": SCHEMA, "strict": True},
    }


async def test_a_reply_that_is_not_json_fails(fake: FakeOpenAI) -> None:
    fake.script(Text('{"severity": "hi', finish_reason="length"))
    with pytest.raises(StepFailure) as failure:
        await llm.execute(call(json_schema=SCHEMA), context(fake))
    assert failure.value.kind == "llm"
    assert "not valid JSON (the reply was cut off: raise max_tokens)" in failure.value.message
    assert failure.value.result["text"] == '{"severity": "hi'


async def test_a_rate_limit_is_retried_by_the_client(fake: FakeOpenAI) -> None:
    fake.script(Error(429, "Rate limit reached", retry_after=0.01), Text("ok"))
    result = await llm.execute(call(), context(fake, max_retries=2))
    assert result["text"] == "ok"
    assert len(fake.completions) == 2


async def test_a_server_error_that_persists_fails_the_step(fake: FakeOpenAI) -> None:
    fake.default = Error(500, "The server had an error", retry_after=0.01)
    with pytest.raises(StepFailure) as failure:
        await llm.execute(call(), context(fake, max_retries=1))
    assert failure.value.kind == "llm"
    assert failure.value.message == "the LLM server answered 500: The server had an error"
    assert failure.value.result["status"] == 500
    assert len(fake.completions) == 2


async def test_a_refused_api_key() -> None:
    async with FakeOpenAI(api_key="sk-right") as fake:
        with pytest.raises(StepFailure) as failure:
            await llm.execute(call(), context(fake, max_retries=0))
    assert failure.value.kind == "llm"
    assert failure.value.message.startswith("the LLM server refused the API key")


async def test_a_slow_server_times_out(fake: FakeOpenAI) -> None:
    fake.script(Text("too late", delay=5))
    with pytest.raises(StepFailure) as failure:
        await llm.execute(call(), context(fake, timeout=0.3, max_retries=0))
    assert failure.value.kind == "timeout"


async def test_an_unreachable_server() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = LlmSettings(api_key="sk-test", base_url=f"http://127.0.0.1:{port}/v1", max_retries=0)
    with pytest.raises(StepFailure) as failure:
        await llm.execute(call(), ActivityContext(llm=settings))
    await llm.close_clients()
    assert failure.value.kind == "connection"
    assert f"cannot reach the LLM server at http://127.0.0.1:{port}/v1" in failure.value.message


async def test_no_llm_configured_asks_to_skip_the_step_saying_what_to_set() -> None:
    with pytest.raises(StepFailure) as failure:
        await llm.execute(call(), ActivityContext())
    assert failure.value.kind == "unavailable"  # the core skips the step instead of failing the run
    assert "set OPENAI_API_KEY" in failure.value.message


async def test_the_fake_serves_tool_calls_and_models(fake: FakeOpenAI) -> None:
    fake.script(ToolCalls.one("hand_over", {"reason": "customer asks for a human"}))
    client = openai.AsyncOpenAI(api_key="sk-test", base_url=fake.base_url)
    reply = await client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "help"}]
    )
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    tool_call = choice.message.tool_calls[0] if choice.message.tool_calls else None
    assert tool_call is not None and tool_call.type == "function"
    assert tool_call.function.name == "hand_over"
    assert json.loads(tool_call.function.arguments) == {"reason": "customer asks for a human"}
    models = [m.id async for m in client.models.list()]
    assert models == ["gpt-4o-mini", "gpt-4o"]
    await client.close()
