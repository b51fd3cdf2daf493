"""The ``llm`` step kind: one chat completion from an OpenAI-compatible server, optionally structured JSON.

It is read as a stream (``engine.activities.llm_stream``), so a long answer does not sit on one silent
request, and a server that breaks off mid-answer fails the step with the text it had sent.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import openai
from openai.types.chat import ChatCompletionMessageParam

from engine.activities.base import ActivityContext, LlmSettings, StepCall, StepFailure
from engine.activities.llm_stream import BrokenAnswer, Completion, OnText, complete

NO_LLM = (
    "No LLM is configured: set OPENAI_API_KEY (and OPENAI_BASE_URL for an OpenAI-compatible server) "
    "to run llm steps; this step was skipped"
)

# One client per settings, reused for its connection pool. The pool belongs to the event loop that
# opened it, and every asyncio.run() (a CLI command, a test) brings a new loop, so the loop is kept too.
_clients: dict[LlmSettings, tuple[asyncio.AbstractEventLoop, openai.AsyncOpenAI]] = {}


async def execute(call: StepCall, ctx: ActivityContext) -> dict[str, Any]:
    """Ask the configured LLM and return its reply text, parsed JSON when a schema is given, and usage."""
    if ctx.llm is None:
        raise StepFailure("unavailable", NO_LLM)  # the core skips the step with this message
    params = call.params
    schema: dict[str, Any] | None = params.get("json_schema")
    messages: list[ChatCompletionMessageParam] = []
    if params.get("system"):
        messages.append({"role": "system", "content": str(params["system"])})
    messages.append({"role": "user", "content": str(params["prompt"])})
    temperature, max_tokens = params.get("temperature"), params.get("max_tokens")
    try:
        response = await complete(
            _client(ctx.llm),
            _relay(call, ctx),
            model=str(params.get("model") or ctx.llm.model),
            messages=messages,
            temperature=openai.omit if temperature is None else float(temperature),
            max_tokens=ctx.llm.max_tokens if max_tokens is None else int(max_tokens),
            response_format=(
                {"type": "json_schema", "json_schema": {"name": "output", "schema": schema, "strict": True}}
                if schema
                else openai.omit
            ),
        )
    # Subclasses before their bases: APITimeoutError is an APIConnectionError, and
    # AuthenticationError is an APIStatusError.
    except BrokenAnswer as exc:
        raise StepFailure("llm", exc.reason, {"text": exc.partial} if exc.partial else None) from None
    except openai.APITimeoutError:
        raise StepFailure("timeout", f"the LLM server did not answer within {ctx.llm.timeout:g}s") from None
    except openai.APIConnectionError as exc:
        reason = f"cannot reach the LLM server at {_where(ctx.llm)}: {exc.__cause__ or exc}"
        raise StepFailure("connection", reason) from None
    except openai.AuthenticationError as exc:
        raise StepFailure("llm", f"the LLM server refused the API key (401): {_reason(exc)}") from None
    except openai.APIStatusError as exc:
        status = exc.status_code
        what = "is rate limiting requests" if status == 429 else f"answered {status}"
        message = f"the LLM server {what}: {_reason(exc)}"
        raise StepFailure("llm", message, {"status": status, "error": exc.body}) from None
    return _result(response, schema is not None)


def _relay(call: StepCall, ctx: ActivityContext) -> OnText | None:
    listener = ctx.on_text
    if listener is None:
        return None

    async def on_text(text: str) -> None:
        listener(call, text)

    return on_text


async def close_clients() -> None:
    """Close the cached clients of the running event loop (call at shutdown)."""
    loop = asyncio.get_running_loop()
    for settings, (owner, client) in list(_clients.items()):
        if owner is loop:
            del _clients[settings]
            await client.close()


def _client(settings: LlmSettings) -> openai.AsyncOpenAI:
    loop = asyncio.get_running_loop()
    cached = _clients.get(settings)
    if cached is not None and cached[0] is loop:
        return cached[1]
    client = openai.AsyncOpenAI(
        api_key=settings.api_key,
        base_url=settings.base_url,
        timeout=settings.timeout,
        max_retries=settings.max_retries,  # the client retries 408/409/429/5xx, honouring Retry-After
    )
    _clients[settings] = (loop, client)
    return client


def _result(answer: Completion, structured: bool) -> dict[str, Any]:
    if answer.refusal:
        raise StepFailure("llm", f"the model refused: {answer.refusal}")
    nothing = dict.fromkeys(("prompt_tokens", "completion_tokens", "total_tokens"))
    result: dict[str, Any] = {
        "text": answer.content,
        "json": None,
        "model": answer.model,
        "usage": answer.usage or nothing,
        "finish_reason": answer.finish_reason,
    }
    if structured:
        try:
            result["json"] = json.loads(result["text"])
        except ValueError as exc:
            hint = " (the reply was cut off: raise max_tokens)" if answer.finish_reason == "length" else ""
            raise StepFailure("llm", f"the model's reply is not valid JSON{hint}: {exc}", result) from None
    return result


def _reason(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return str(body["message"])
    return exc.message


def _where(settings: LlmSettings) -> str:
    return settings.base_url or "the default OpenAI address"
