"""One chat completion read as a stream: text and tool-call deltas put back together as they come.

``llm`` steps and the assistant both ask through ``complete``. It asks with ``stream=True`` and
``include_usage``, hands the text so far to ``on_text`` after each piece (the caller decides how often
anyone sees it), and returns the whole answer. Tool calls come in pieces keyed by ``index``: the first
piece carries the id and name, later ones more of the JSON arguments, and they are joined in order.

A server that refuses to stream (a 400 to ``stream: true``) is asked again without streaming, and the
client remembers that; one that ignores ``stream`` and sends plain JSON has that JSON read as it is.
A stream that breaks off raises ``BrokenAnswer`` with the text received so far, so the caller can say
how far the answer got instead of losing it; so does an answer with no choices at all.
"""

from __future__ import annotations

import asyncio
import json
import logging
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import openai
from openai.types.chat import ChatCompletion

log = logging.getLogger(__name__)
OnText = Callable[[str], Awaitable[None]]


class BrokenAnswer(Exception):
    """The server stopped in the middle of its answer, or sent none; ``partial`` is the text received."""

    def __init__(self, reason: str, partial: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.partial = partial


@dataclass
class ToolCallPart:
    """One tool call as its deltas add up."""

    id: str = ""
    name: str = ""
    arguments: str = ""

    def as_param(self) -> dict[str, Any]:
        """The call as an assistant message carries it back to the server."""
        function = {"name": self.name, "arguments": self.arguments}
        return {"id": self.id, "type": "function", "function": function}


@dataclass
class Completion:
    """A whole answer: its text, its tool calls in order, and what the server said about it."""

    content: str = ""
    tool_calls: list[ToolCallPart] = field(default_factory=list)
    refusal: str | None = None
    finish_reason: str | None = None
    model: str = ""
    usage: dict[str, int | None] | None = None
    streamed: bool = True

    def as_message(self) -> dict[str, Any]:
        """The assistant message to send back with the tool results; content is "" (llama.cpp needs it)."""
        message: dict[str, Any] = {"role": "assistant", "content": self.content}
        if self.tool_calls:
            message["tool_calls"] = [c.as_param() for c in self.tool_calls]
        return message


# Clients whose server could not stream but answered a plain request.
_plain_only: weakref.WeakSet[openai.AsyncOpenAI] = weakref.WeakSet()


async def complete(
    client: openai.AsyncOpenAI, on_text: OnText | None = None, within: float | None = None, **params: Any
) -> Completion:
    """Ask for one completion, streamed when the server can; ``on_text`` gets the text so far.

    ``within`` bounds the reading of the stream in seconds: the client's timeout is per read, and a
    stream that keeps sending never meets it.
    """
    if client in _plain_only:
        return _plain(await client.chat.completions.create(**params))
    try:
        stream = await client.chat.completions.create(
            **params, stream=True, stream_options={"include_usage": True}
        )
    except openai.BadRequestError as refused:
        try:
            answer = await client.chat.completions.create(**params)
        except openai.APIStatusError:
            raise refused from None  # not about streaming: the first refusal says why
        log.info("the LLM server does not stream (%s); asking it without streaming", refused.message)
        _plain_only.add(client)
        return _plain(answer)
    if "text/event-stream" not in stream.response.headers.get("content-type", ""):
        body = json.loads(await stream.response.aread())
        await stream.close()
        return _plain(ChatCompletion.model_validate(body))
    return await _read(stream, on_text, within)


async def _read(stream: Any, on_text: OnText | None, within: float | None) -> Completion:
    done = Completion()
    parts: dict[int, ToolCallPart] = {}
    try:
        async with asyncio.timeout(within):
            await _chunks(stream, on_text, done, parts)
    except TimeoutError:
        raise BrokenAnswer(
            f"the LLM server was still writing after {within:g}s ({len(done.content)} characters)",
            done.content,
        ) from None
    except (httpx.HTTPError, openai.APIError) as exc:
        got = f"after {len(done.content)} characters" if done.content else "before any text"
        raise BrokenAnswer(f"the LLM server broke off its answer {got}: {exc}", done.content) from None
    finally:
        await stream.close()
    done.tool_calls = [parts[i] for i in sorted(parts)]
    if done.finish_reason is None and not done.content and not done.tool_calls:
        raise BrokenAnswer("the LLM server ended its streamed answer without sending one", "")
    return done


async def _chunks(
    stream: Any, on_text: OnText | None, done: Completion, parts: dict[int, ToolCallPart]
) -> None:
    """Add each chunk's pieces to ``done`` and ``parts``."""
    async for chunk in stream:
        done.model = chunk.model or done.model
        if chunk.usage is not None:
            done.usage = _usage(chunk.usage)
        if not chunk.choices:
            continue
        choice = chunk.choices[0]
        delta = choice.delta
        done.finish_reason = choice.finish_reason or done.finish_reason
        if delta.refusal:
            done.refusal = (done.refusal or "") + delta.refusal
        for piece in delta.tool_calls or []:
            part = parts.setdefault(piece.index, ToolCallPart())
            part.id = piece.id or part.id
            if piece.function is not None:
                part.name += piece.function.name or ""
                part.arguments += piece.function.arguments or ""
        if delta.content:
            done.content += delta.content
            if on_text is not None:
                await on_text(done.content)


def _plain(response: Any) -> Completion:
    if not response.choices:
        raise BrokenAnswer("the LLM server answered with no choices", "")
    choice = response.choices[0]
    message = choice.message
    calls = [
        ToolCallPart(c.id, c.function.name, c.function.arguments or "")
        for c in message.tool_calls or []
        if getattr(c, "function", None) is not None
    ]
    return Completion(
        content=message.content or "",
        tool_calls=calls,
        refusal=message.refusal,
        finish_reason=choice.finish_reason,
        model=response.model or "",
        usage=_usage(response.usage),
        streamed=False,
    )


def _usage(usage: Any) -> dict[str, int | None] | None:
    if usage is None:
        return None
    names = ("prompt_tokens", "completion_tokens", "total_tokens")
    return {name: getattr(usage, name, None) for name in names}
