"""The fake OpenAI server's streamed answers, read by the real ``openai`` client."""

from __future__ import annotations

import openai
import pytest

from tests.fakes.openai_server import FakeOpenAI, Text, ToolCalls


async def test_a_text_reply_streams_in_chunks_with_usage_last() -> None:
    async with FakeOpenAI(chunk_words=2) as fake:
        fake.script(Text("the disk is full again today"))
        client = openai.AsyncOpenAI(api_key="k", base_url=fake.base_url)
        stream = await client.chat.completions.create(
            model="m",
            messages=[{"role": "user", "content": "why"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [chunk async for chunk in stream]
        await client.close()
    pieces = [c.choices[0].delta.content for c in chunks if c.choices]
    assert pieces == ["", "the disk", " is full", " again today"]
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 6


async def test_tool_calls_stream_as_deltas() -> None:
    async with FakeOpenAI() as fake:
        fake.script(ToolCalls.one("remember", {"key": "a", "value": "b"}))
        client = openai.AsyncOpenAI(api_key="k", base_url=fake.base_url)
        stream = await client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "x"}], stream=True
        )
        chunks = [chunk async for chunk in stream]
        await client.close()
    first, *rest = [t for c in chunks for t in (c.choices[0].delta.tool_calls or [])]
    assert first.function is not None and first.function.name == "remember" and first.id
    assert len(rest) > 1 and all(t.id is None and t.index == 0 for t in rest)  # the arguments in pieces
    assert "".join(t.function.arguments or "" for t in rest if t.function) == '{"key": "a", "value": "b"}'
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


async def test_a_server_that_does_not_stream_refuses_with_400() -> None:
    async with FakeOpenAI(streams=False) as fake:
        client = openai.AsyncOpenAI(api_key="k", base_url=fake.base_url, max_retries=0)
        with pytest.raises(openai.BadRequestError):
            await client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": "x"}], stream=True
            )
        await client.close()
