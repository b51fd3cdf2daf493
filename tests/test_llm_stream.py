"""Streamed completions put back together: the real openai client against the fake server's SSE."""

from __future__ import annotations

import json

import openai
import pytest

from engine.activities import llm
from engine.activities.base import ActivityContext, LlmSettings, StepCall, StepFailure
from engine.activities.llm_stream import BrokenAnswer, complete
from tests.fakes.openai_server import FakeOpenAI, Text, ToolCall, ToolCalls

ASK = {"model": "m", "messages": [{"role": "user", "content": "why"}], "max_tokens": 50}


async def test_text_arrives_piece_by_piece_and_whole_at_the_end() -> None:
    seen: list[str] = []

    async def on_text(so_far: str) -> None:
        seen.append(so_far)

    async with FakeOpenAI(chunk_words=2) as fake:
        fake.script(Text("the disk is full again today"))
        client = openai.AsyncOpenAI(api_key="k", base_url=fake.base_url)
        answer = await complete(client, on_text, **ASK)
        await client.close()
    assert seen == ["the disk", "the disk is full", "the disk is full again today"]
    assert (answer.content, answer.finish_reason, answer.streamed) == (seen[-1], "stop", True)
    assert answer.usage is not None and answer.usage["completion_tokens"] == 6
    sent = fake.completions[0]
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}


async def test_tool_calls_split_across_chunks_are_joined_per_index() -> None:
    calls = (ToolCall("remember", {"key": "service", "value": "api-gateway"}), ToolCall("finish", {}))
    async with FakeOpenAI(chunk_chars=3) as fake:
        fake.script(ToolCalls(calls))
        client = openai.AsyncOpenAI(api_key="k", base_url=fake.base_url)
        answer = await complete(client, **ASK)
        await client.close()
    assert [(c.id, c.name) for c in answer.tool_calls] == [(calls[0].id, "remember"), (calls[1].id, "finish")]
    assert json.loads(answer.tool_calls[0].arguments) == {"key": "service", "value": "api-gateway"}
    assert answer.finish_reason == "tool_calls"
    message = answer.as_message()
    assert message["content"] == "" and message["tool_calls"][0]["function"]["name"] == "remember"


@pytest.mark.parametrize("streams", [False, "ignored"])
async def test_a_server_that_cannot_stream_is_asked_plainly_once_and_then_always(streams: bool | str) -> None:
    async with FakeOpenAI(streams=streams) as fake:
        fake.script(Text("first"), Text("second"))
        client = openai.AsyncOpenAI(api_key="k", base_url=fake.base_url, max_retries=0)
        first = await complete(client, **ASK)
        second = await complete(client, **ASK)
        await client.close()
    assert (first.content, second.content) == ("first", "second")
    assert not first.streamed
    # A 400 to streaming is asked again plainly and remembered; plain JSON to a stream is read as it is.
    asked = [True, False, False] if streams is False else [True, True]
    assert [bool(c.get("stream")) for c in fake.completions] == asked


async def test_a_refusal_that_is_not_about_streaming_is_reported_as_it_came() -> None:
    async with FakeOpenAI(flavour="vllm") as fake:
        client = openai.AsyncOpenAI(api_key="k", base_url=fake.base_url, max_retries=0)
        with pytest.raises(openai.BadRequestError, match="max_tokens"):
            await complete(client, model="m", messages=[{"role": "user", "content": "x"}])
        await client.close()


async def test_a_stream_cut_mid_answer_keeps_the_text_so_far() -> None:
    async with FakeOpenAI() as fake:
        fake.script(Text("one two three four five", cut_after=3))
        client = openai.AsyncOpenAI(api_key="k", base_url=fake.base_url, max_retries=0)
        with pytest.raises(BrokenAnswer) as broken:
            await complete(client, **ASK)
        await client.close()
    assert broken.value.partial == "one two"
    assert "broke off its answer after 7 characters" in broken.value.reason


async def test_an_llm_step_streams_and_a_cut_fails_it_with_the_partial_text() -> None:
    step = StepCall("run-1", "t", "t", 1, "run-1:t", "llm", {"prompt": "go"})
    async with FakeOpenAI() as fake:
        ctx = ActivityContext(llm=LlmSettings(api_key="k", base_url=fake.base_url, max_retries=0))
        fake.script(Text("all is well"), Text("half of it", cut_after=2))
        result = await llm.execute(step, ctx)
        with pytest.raises(StepFailure) as failed:
            await llm.execute(step, ctx)
        await llm.close_clients()
    assert result["text"] == "all is well" and result["usage"]["completion_tokens"] == 3
    assert fake.completions[0]["stream"] is True
    assert failed.value.kind == "llm" and failed.value.result == {"text": "half"}
    assert "broke off its answer" in failed.value.message


async def test_a_stream_still_writing_past_the_bound_is_cut_with_what_it_sent() -> None:
    async with FakeOpenAI(chunk_delay=0.2) as fake:
        fake.script(Text("one two three four five six seven eight nine ten"))
        client = openai.AsyncOpenAI(api_key="k", base_url=fake.base_url, max_retries=0)
        with pytest.raises(BrokenAnswer) as broken:
            await complete(client, within=0.5, **ASK)
        await client.close()
    assert "still writing after 0.5s" in broken.value.reason
    assert broken.value.partial and "ten" not in broken.value.partial
