"""The route table's types and how one route is served: authenticate, parse, call, answer or problem.

A ``Route`` says everything the OpenAPI document shows (method, path, scope, models, statuses) and
everything the server does with a request; the two cannot drift, because both are read from it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ValidationError

from bot.api.callers import Caller, Callers
from bot.api.problems import MethodNotAllowed, RequestInvalid, problem_response
from bot.errors import BadInput, NotFound
from handlers.chat_text import invalid_unicode, refusal

JSON = "application/json"
YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/plain")
MAX_BODY = 2 * 1024 * 1024


@dataclass(frozen=True)
class Header:
    """A request header a route reads (documented as a parameter)."""

    name: str
    description: str
    max_length: int = 200


@dataclass
class Call:
    """One request as a handler sees it: who, the parsed body and query, the path's values."""

    request: web.Request
    caller: Caller | None
    path: dict[str, str]
    body: Any = None
    query: Any = None

    @property
    def who(self) -> Caller:
        assert self.caller is not None, "a public route has no caller"
        return self.caller


@dataclass(frozen=True)
class Reply:
    """A model answered with a status other than the route's, or with headers."""

    model: BaseModel
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


Result = BaseModel | Reply | web.StreamResponse
Handler = Callable[[Call], Awaitable[Result]]


@dataclass(frozen=True)
class Route:
    """One endpoint."""

    method: str
    path: str  # /api/v1/runs/{run_id}: aiohttp's and OpenAPI's templates are the same
    name: str  # the operationId
    summary: str
    handler: Handler
    tag: str
    scope: str | None = None  # None: public, no credentials
    body: type[BaseModel] | None = None
    yaml_body: bool = False  # the body may also be sent as the raw text of a YAML file (field "source")
    query: type[BaseModel] | None = None
    returns: type[BaseModel] | None = None
    status: int = 200
    also: tuple[int, ...] = ()  # other success statuses
    media: str = JSON  # the success response's media type
    errors: tuple[int, ...] = ()
    headers: tuple[Header, ...] = ()
    description: str = ""

    @property
    def writes(self) -> bool:
        return self.method not in ("GET", "HEAD")

    def statuses(self) -> tuple[int, ...]:
        """Every error status this route can answer."""
        auth = (401, 403) if self.scope else ()
        parsed = (422,) if self.body or self.query else ()
        busy = (503,) if self.scope else ()  # the database was out of reach
        return tuple(sorted({*auth, *parsed, *busy, *self.errors, 500}))

    def pattern(self) -> re.Pattern[str]:
        return re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", self.path) + "$")


def serve(route: Route, callers: Callers) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """The aiohttp handler of one route."""

    async def handle(request: web.Request) -> web.StreamResponse:
        try:
            caller = None
            if route.scope is not None:
                caller = await callers.caller(request, write=route.writes)
                caller.need(route.scope)
            call = Call(request, caller, dict(request.match_info))
            if route.body is not None:
                call.body = await _body(request, route)
            if route.query is not None:
                call.query = _parse(route.query, _query(request), "query")
            result = await route.handler(call)
        except Exception as exc:  # every refusal and every surprise becomes a problem+json answer
            return problem_response(exc)
        if isinstance(result, web.StreamResponse):
            return result
        reply = result if isinstance(result, Reply) else Reply(result, route.status)
        text = reply.model.model_dump_json()
        return web.Response(status=reply.status, text=text, content_type=JSON, headers=reply.headers)

    return handle


def fallback(routes: list[Route]) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """Any other request under /api/v1: 405 on a known path, else 404, both as problems."""
    compiled = [(r.pattern(), r.method) for r in routes]

    async def handle(request: web.Request) -> web.StreamResponse:
        allow = sorted({method for pattern, method in compiled if pattern.match(request.path)})
        if allow:
            exc: Exception = MethodNotAllowed(
                f"{request.path} answers {', '.join(allow)}, not {request.method}.", allow
            )
        else:
            exc = NotFound(f"There is no {request.path}; /api/v1/docs lists every endpoint.")
        return problem_response(exc)

    return handle


async def _body(request: web.Request, route: Route) -> Any:
    assert route.body is not None
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise RequestInvalid(
            f"The body is {request.content_length} bytes; the limit is {MAX_BODY}.",
            [_where("body", "too large")],
        )
    raw = await request.content.read(MAX_BODY + 1)
    if len(raw) > MAX_BODY:
        raise RequestInvalid(
            f"The body is over the limit of {MAX_BODY} bytes.", [_where("body", "too large")]
        )
    text = raw.decode("utf-8", errors="replace")
    if route.yaml_body and request.content_type in YAML_TYPES:
        return _parse(route.body, {"source": text}, "body")
    if request.content_type != JSON and raw:
        raise RequestInvalid(
            f"Send the body as JSON (Content-Type: {JSON})"
            + (" or as the YAML file itself (Content-Type: application/yaml)." if route.yaml_body else "."),
            [_where("body", f"content type {request.content_type!r}")],
        )
    if not raw.strip():
        data: Any = {}
    else:
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise RequestInvalid(f"The body is not valid JSON: {exc}", [_where("body", str(exc))]) from None
    if not isinstance(data, dict):
        raise RequestInvalid("The body must be a JSON object.", [_where("body", "not an object")])
    problem = invalid_unicode(data)  # a lone surrogate could be stored nowhere
    if problem is not None:
        raise BadInput(refusal(problem))
    return _parse(route.body, data, "body")


def _query(request: web.Request) -> dict[str, str]:
    """The query's parameters; one given twice is refused (which would count is anyone's guess)."""
    twice = sorted({k for k in request.query if len(request.query.getall(k)) > 1})
    if twice:
        raise RequestInvalid(
            f"Give each query parameter once; repeated: {', '.join(twice)}.",
            [_where(f"query.{k}", "given more than once") for k in twice],
        )
    return dict(request.query)


def _parse(model: type[BaseModel], data: dict[str, Any], part: str) -> BaseModel:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = [
            _where(".".join([part, *(str(p) for p in e["loc"])]), e["msg"])
            for e in exc.errors(include_url=False)
        ]
        listed = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5])
        raise RequestInvalid(f"The request does not fit: {listed}", errors) from None


def _where(name: str, message: str) -> dict[str, str]:
    return {"field": name, "message": message}
