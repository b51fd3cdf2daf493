"""The AI assistant: one turn of chat completions with tool calls, ending in a reply, a handover or a finish.

It talks to any OpenAI-compatible server through the ``openai`` client, whose own retries (429 and
5xx, with backoff and Retry-After) and timeout are used as they are. When they are exhausted the turn
raises ``AssistantUnavailable`` and the service hands the conversation over. Answers are streamed
(``engine.activities.llm_stream``): ``on_text`` is told the text so far, for a live preview in chat.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any, Protocol

import openai
from pydantic import ValidationError

from bot.conversations.tools import TOOLS, Finish, HandoverToHuman, tool_specs
from bot.metrics import Metrics
from engine.activities.base import LlmSettings
from engine.activities.llm_stream import BrokenAnswer, Completion, OnText, complete

log = logging.getLogger(__name__)
MAX_ROUNDS = 6  # tool-call rounds in one turn before the assistant must answer


class AssistantUnavailable(Exception):
    """The LLM could not be reached or kept failing after the client's retries."""


@dataclass(frozen=True)
class Said:
    text: str


@dataclass(frozen=True)
class HandedOver:
    request: HandoverToHuman


@dataclass(frozen=True)
class Finished:
    request: Finish
    text: str = ""


Outcome = Said | HandedOver | Finished


@dataclass
class Turn:
    """What one turn did: its outcome, the tools it used, and whether any of them failed."""

    outcome: Outcome
    tools_used: list[str] = field(default_factory=list)
    failed: bool = False
    usage: Usage = field(default_factory=lambda: Usage())


@dataclass
class Usage:
    """The tokens a turn's completions used, as the server reported them (for the cost figures)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0

    def add(self, reported: Any) -> None:
        """Add what one completion reported (a mapping, as a streamed answer's usage is, or an object)."""
        for name in ("prompt_tokens", "completion_tokens"):
            value = reported.get(name) if isinstance(reported, dict) else getattr(reported, name, None)
            if isinstance(value, int) and value > 0:
                setattr(self, name, getattr(self, name) + value)


class Toolbox(Protocol):
    """What the assistant's tools act on (the service supplies it, bound to the conversation)."""

    async def call(self, name: str, args: Any) -> tuple[str, bool]:
        """Run a tool; returns the text for the model and whether it succeeded."""
        ...

    def refuse_handover(self, request: HandoverToHuman) -> str | None:
        """Why the hand-over the model asked for does not happen here (for the model), or None."""
        ...


class Assistant:
    def __init__(self, llm: LlmSettings, metrics: Metrics | None = None) -> None:
        self.llm = llm
        self.metrics = metrics or Metrics()
        self.client = openai.AsyncOpenAI(
            api_key=llm.api_key, base_url=llm.base_url, timeout=llm.timeout, max_retries=llm.max_retries
        )
        self.tools = tool_specs()

    async def turn(
        self, messages: list[dict[str, Any]], toolbox: Toolbox, on_text: OnText | None = None
    ) -> Turn:
        """Ask the model until it answers, hands over or finishes; tools run in between."""
        used: list[str] = []
        failed = False
        usage = Usage()
        for _ in range(MAX_ROUNDS):
            reply = await self._complete(messages, on_text=on_text, usage=usage)
            calls = reply.tool_calls
            if not calls:
                return Turn(Said(reply.content.strip()), used, failed, usage)
            messages.append(reply.as_message())  # with content "": llama.cpp's templates fail without it
            for call in calls:
                name = call.name
                model = TOOLS.get(name)
                try:
                    if model is None:
                        raise ValueError(f"there is no tool named {name}")
                    args = model.model_validate(json.loads(call.arguments or "{}"))
                except (ValueError, ValidationError) as exc:
                    failed = True
                    messages.append(_tool_result(call.id, f"Error: invalid call: {exc}"))
                    continue
                used.append(name)
                if isinstance(args, HandoverToHuman):
                    refused = toolbox.refuse_handover(args)
                    if refused is None:
                        return Turn(HandedOver(args), used, failed, usage)
                    messages.append(_tool_result(call.id, refused))  # this place's rules keep it here
                    continue
                if isinstance(args, Finish):
                    return Turn(Finished(args, reply.content.strip()), used, failed, usage)
                text, ok = await toolbox.call(name, args)
                failed = failed or not ok
                messages.append(_tool_result(call.id, text))
        stuck = Said("I could not finish that in one go; could you tell me a bit more?")
        return Turn(stuck, used, True, usage)

    async def summarize(self, text: str) -> str:
        """A short summary of older messages, for the context of later turns."""
        reply = await self._complete(
            [
                {
                    "role": "system",
                    "content": "Summarize this support conversation in at most 120 words: who wants what, "
                    "facts learned, what was tried, what is still open.",
                },
                {"role": "user", "content": text},
            ],
            tools=False,
        )
        return reply.content.strip()

    async def _complete(
        self,
        messages: list[dict[str, Any]],
        tools: bool = True,
        on_text: OnText | None = None,
        usage: Usage | None = None,
    ) -> Completion:
        try:
            response = await self._ask(messages, tools, on_text)
        except AssistantUnavailable:
            self.metrics.llm_errors.labels("assistant").inc()
            raise
        self.metrics.llm_used("assistant", response.usage)
        if usage is not None:
            usage.add(response.usage)
        return response

    async def _ask(self, messages: list[dict[str, Any]], tools: bool, on_text: OnText | None) -> Completion:
        try:
            response = await complete(
                self.client,
                on_text,
                within=self.llm.timeout,  # a turn's claim on the conversation lasts about that long
                model=self.llm.model,
                messages=messages,
                max_tokens=self.llm.max_tokens,
                tools=self.tools if tools else openai.omit,
                # Without it llama.cpp's server leaves the tools out of the prompt.
                tool_choice="auto" if tools else openai.omit,
            )
        except BrokenAnswer as exc:
            raise AssistantUnavailable(exc.reason) from None
        except openai.APITimeoutError:
            raise AssistantUnavailable(f"the LLM did not answer within {self.llm.timeout:g}s") from None
        except openai.APIConnectionError as exc:
            raise AssistantUnavailable(f"cannot reach the LLM server: {exc.__cause__ or exc}") from None
        except openai.APIStatusError as exc:
            raise AssistantUnavailable(f"the LLM server answered {exc.status_code}") from None
        return response

    async def close(self) -> None:
        await self.client.close()


def _tool_result(call_id: str, text: str) -> dict[str, Any]:
    return {"role": "tool", "tool_call_id": call_id, "content": text}
