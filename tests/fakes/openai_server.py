"""A fake OpenAI-compatible server on localhost, for driving the real ``openai`` client in tests.

    async with FakeOpenAI() as fake:
        fake.script(Error(429, retry_after=0.01), Text("hello"))
        client = openai.AsyncOpenAI(api_key="k", base_url=fake.base_url)
        ...
        assert len(fake.completions) == 2

It serves POST /v1/chat/completions and GET /v1/models, records every request, and answers chat
completions from a queue of scripted replies: ``Text``, ``ToolCalls``, ``Error`` (any status, with
Retry-After), each optionally delayed, or a callable that builds a reply from the request body. When
the queue is empty it answers ``fake.default``, which by default echoes the last user message.
A request with ``stream: true`` is answered with server-sent events: the reply cut into
``chat.completion.chunk`` deltas of ``chunk_words`` words each (a tool call as a first delta with its
id and name, then its JSON arguments in pieces of ``chunk_chars`` characters, as OpenAI sends them),
then a usage chunk when ``stream_options.include_usage`` is set, then ``data: [DONE]``; each chunk
``chunk_delay`` seconds after the last. ``Text(..., cut_after=N)`` drops the connection after N
chunks, like a server that dies mid-answer. ``FakeOpenAI(streams=False)`` is a server that does not
stream: it answers such a request with a 400; ``streams="ignored"`` answers it with plain JSON.

``FakeOpenAI(flavour=...)`` makes it check requests the way a self-hosted server does:

- ``"llamacpp"`` (llama.cpp's ``llama-server``): an assistant message with ``tool_calls`` and no
  ``content`` fails in the chat template with a 500; ``maxLength``, ``minLength``, ``pattern`` or
  ``format`` in a tool schema fail its grammar builder with a 500; tools sent without
  ``tool_choice`` are left out of the prompt, so the scripted tool calls come back as plain text.
- ``"vllm"``: tool calls are only parsed with ``tool_choice`` set (``"auto"`` needs the server's
  ``--enable-auto-tool-choice``); without it a 400; a schema its guided-decoding backend does not
  support (``pattern``, ``format``) is a 400.
- ``"ollama"``: ignores ``tool_choice``; a null ``content`` on any message is a 400 (it decodes
  content as a string); ``maxLength``/``minLength`` are accepted but not enforced.

Each flavour refuses a request without ``max_tokens`` (``max_tokens`` here stands in for the
server's own generation limit, which without it runs until the context ends).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from aiohttp import web


@dataclass(frozen=True)
class Text:
    """An assistant message with text content."""

    content: str
    finish_reason: str = "stop"
    delay: float = 0.0  # seconds to wait before answering, for timeout tests
    cut_after: int | None = None  # streamed: drop the connection after this many chunks


@dataclass(frozen=True)
class ToolCall:
    """One function call the model asks for; ``arguments`` are sent JSON-encoded, like OpenAI does."""

    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=lambda: f"call_{uuid.uuid4().hex[:24]}")


@dataclass(frozen=True)
class ToolCalls:
    """An assistant message that calls tools instead of answering (content null, finish_reason tool_calls)."""

    calls: tuple[ToolCall, ...]
    delay: float = 0.0

    @classmethod
    def one(cls, name: str, arguments: dict[str, Any] | None = None) -> ToolCalls:
        """A reply with a single tool call."""
        return cls((ToolCall(name, arguments or {}),))


@dataclass(frozen=True)
class Error:
    """An HTTP error with OpenAI's error body; ``retry_after`` (seconds, may be 0.01) sets Retry-After."""

    status: int
    message: str = "scripted error"
    retry_after: float | None = None
    delay: float = 0.0


Reply = Text | ToolCalls | Error
Script = Reply | Callable[[dict[str, Any]], Reply]

# (type, code) as the real API sends them.
_ERRORS = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    404: ("invalid_request_error", "unknown_url"),
    429: ("requests", "rate_limit_exceeded"),
}


@dataclass
class RecordedRequest:
    """One request the fake received."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any  # parsed JSON, or None


def echo(body: dict[str, Any]) -> Reply:
    """The default reply: the content of the last user message."""
    users = [m for m in body.get("messages", []) if m.get("role") == "user"]
    content = users[-1].get("content", "") if users else ""
    return Text(content if isinstance(content, str) else json.dumps(content))


class FakeOpenAI:
    """An OpenAI-compatible server on 127.0.0.1 and a free port; use it as an async context manager."""

    def __init__(
        self,
        *,
        api_key: str | None = None,
        models: tuple[str, ...] = ("gpt-4o-mini", "gpt-4o"),
        flavour: str = "openai",
        streams: bool | str = True,
        chunk_words: int = 1,
        chunk_chars: int = 7,
        chunk_delay: float = 0.0,
    ) -> None:
        self.streams = streams
        self.chunk_words = chunk_words
        self.chunk_chars = chunk_chars
        self.chunk_delay = chunk_delay
        if flavour not in FLAVOURS:
            raise ValueError(f"unknown flavour {flavour!r}; one of {', '.join(FLAVOURS)}")
        self.api_key = api_key  # when set, other keys get a 401 like the real API's
        self.flavour = flavour
        self.models = models
        self.requests: list[RecordedRequest] = []
        self.default: Script = echo
        self._queue: deque[Script] = deque()
        self._closing = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        """The value for ``base_url`` / ``OPENAI_BASE_URL``."""
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def completions(self) -> list[dict[str, Any]]:
        """The JSON bodies of every chat completion request, oldest first."""
        return [r.body for r in self.requests if r.path == "/v1/chat/completions" and r.method == "POST"]

    def script(self, *replies: Script) -> None:
        """Queue replies for the next chat completion requests, in order."""
        self._queue.extend(replies)

    async def __aenter__(self) -> FakeOpenAI:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        app.router.add_route("*", "/{tail:.*}", self._not_found)
        app.middlewares.append(self._record)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._closing.set()  # wakes delayed answers, so shutdown does not wait for them
        if self._runner is not None:
            await self._runner.cleanup()

    @web.middleware
    async def _record(self, request: web.Request, handler: Any) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        self.requests.append(RecordedRequest(request.method, request.path, dict(request.headers), body))
        if self.api_key is not None and request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return _error(401, "Incorrect API key provided.")
        response: web.StreamResponse = await handler(request)
        return response

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = self.requests[-1].body
        if not isinstance(body, dict) or "messages" not in body or "model" not in body:
            return _error(400, "'model' and 'messages' are required")
        if body.get("stream") and not self.streams:
            return _error(400, "this server does not stream")
        refusal = _flavour_refusal(self.flavour, body)
        if refusal is not None:
            return _error(*refusal)
        entry = self._queue.popleft() if self._queue else self.default
        reply = entry(body) if callable(entry) else entry
        if (
            self.flavour == "llamacpp"
            and isinstance(reply, ToolCalls)
            and body.get("tools")
            and "tool_choice" not in body
        ):
            # The tools never reached the prompt: the model writes its call out as text.
            reply = Text(json.dumps([{"name": c.name, "arguments": c.arguments} for c in reply.calls]))
        if reply.delay:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), reply.delay)
        if isinstance(reply, Error):
            headers = {} if reply.retry_after is None else {"Retry-After": f"{reply.retry_after:g}"}
            return _error(reply.status, reply.message, headers)
        if body.get("stream") and self.streams != "ignored":
            return await self._stream(request, body, reply)
        return _json(_completion(body, reply))

    async def _stream(
        self, request: web.Request, body: dict[str, Any], reply: Text | ToolCalls
    ) -> web.StreamResponse:
        whole = _completion(body, reply)
        head = {k: whole[k] for k in ("id", "created", "model", "system_fingerprint")}
        head["object"] = "chat.completion.chunk"
        deltas: list[dict[str, Any]] = [{"role": "assistant", "content": ""}]
        if isinstance(reply, Text):
            words = reply.content.split(" ")
            for at in range(0, len(words), self.chunk_words):
                piece = " ".join(words[at : at + self.chunk_words])
                deltas.append({"content": piece if at == 0 else " " + piece})
        else:
            for index, c in enumerate(whole["choices"][0]["message"]["tool_calls"]):
                name = {"name": c["function"]["name"], "arguments": ""}
                deltas.append({"tool_calls": [{"index": index, **c, "function": name}]})
                args, size = c["function"]["arguments"], self.chunk_chars
                for at in range(0, len(args), size):
                    piece = {"index": index, "function": {"arguments": args[at : at + size]}}
                    deltas.append({"tool_calls": [piece]})
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        finish = whole["choices"][0]["finish_reason"]
        for n, delta in enumerate(deltas):
            if isinstance(reply, Text) and reply.cut_after is not None and n >= reply.cut_after:
                assert request.transport is not None
                request.transport.close()  # mid-answer, no [DONE]: the client sees a broken stream
                return response
            last = n == len(deltas) - 1
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish if last else None}
            await self._event(response, {**head, "choices": [choice]})
        if (body.get("stream_options") or {}).get("include_usage"):
            await self._event(response, {**head, "choices": [], "usage": whole["usage"]})
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    async def _event(self, response: web.StreamResponse, chunk: dict[str, Any]) -> None:
        if self.chunk_delay:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), self.chunk_delay)
        await response.write(f"data: {json.dumps(chunk)}\n\n".encode())

    async def _models(self, request: web.Request) -> web.StreamResponse:
        data = [{"id": m, "object": "model", "created": 1700000000, "owned_by": "fake"} for m in self.models]
        return _json({"object": "list", "data": data})

    async def _not_found(self, request: web.Request) -> web.StreamResponse:
        return _error(404, f"Unknown request URL: {request.method} {request.path}")


FLAVOURS = ("openai", "llamacpp", "vllm", "ollama")
_GRAMMAR_UNSUPPORTED = {
    "llamacpp": {"maxLength", "minLength", "pattern", "format"},
    "vllm": {"pattern", "format"},
    "ollama": set(),
}


def _keywords(node: Any) -> set[str]:
    """Every schema keyword used in ``node`` (property names are not keywords)."""
    found: set[str] = set()
    if isinstance(node, list):
        for item in node:
            found |= _keywords(item)
    elif isinstance(node, dict):
        for key, value in node.items():
            if key == "properties" and isinstance(value, dict):
                for sub in value.values():
                    found |= _keywords(sub)
            else:
                found.add(key)
                found |= _keywords(value)
    return found


def _flavour_refusal(flavour: str, body: dict[str, Any]) -> tuple[int, str] | None:
    """(status, message) when a server of this flavour would refuse or fail on the request."""
    if flavour == "openai":
        return None
    if "max_tokens" not in body and "max_completion_tokens" not in body:
        return (
            400,
            f"{flavour}: this fake requires max_tokens (the server would generate until the context ends)",
        )
    for message in body["messages"]:
        if flavour == "llamacpp" and message.get("tool_calls") and "content" not in message:
            return 500, "Value is not callable: null at row 1, column 1 (chat template)"
        if flavour == "ollama" and "content" in message and message["content"] is None:
            return 400, "json: cannot unmarshal null into Go struct field Message.messages.content"
    tools = body.get("tools") or []
    if flavour == "vllm" and tools and "tool_choice" not in body:
        return 400, '"auto" tool choice requires --enable-auto-tool-choice and tool_choice'
    bad = (
        set().union(*(_keywords(t.get("function", {}).get("parameters", {})) for t in tools))
        if tools
        else set()
    )
    bad &= _GRAMMAR_UNSUPPORTED[flavour]
    if bad:
        status = 500 if flavour == "llamacpp" else 400
        return status, f"unsupported JSON schema keywords for the grammar: {', '.join(sorted(bad))}"
    return None


def _completion(body: dict[str, Any], reply: Text | ToolCalls) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": None, "refusal": None}
    if isinstance(reply, Text):
        message["content"], finish, produced = reply.content, reply.finish_reason, reply.content
    else:
        message["tool_calls"] = [
            {
                "id": c.id,
                "type": "function",
                "function": {"name": c.name, "arguments": json.dumps(c.arguments)},
            }
            for c in reply.calls
        ]
        finish, produced = "tool_calls", json.dumps(message["tool_calls"])
    # Words stand in for tokens: deterministic, and growing with the text like real usage does.
    prompt_tokens = sum(len(str(m.get("content") or "").split()) for m in body["messages"])
    completion_tokens = len(produced.split())
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body["model"],
        "system_fingerprint": "fp_fake",
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def _json(payload: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(payload, status=status, headers=headers)


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    kind, code = _ERRORS.get(status, ("server_error" if status >= 500 else "invalid_request_error", None))
    error = {"message": message, "type": kind, "param": None, "code": code}
    return _json({"error": error}, status, headers)
