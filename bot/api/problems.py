"""Errors as ``application/problem+json`` (RFC 9457): one table maps each exception type to its status.

The ``detail`` is the exception's own message, the one chat shows; anything unplanned is logged under a
ref and answered "Something went wrong (ref ...)", as on every other surface.
"""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa
from aiohttp import web
from pydantic import BaseModel, Field

from bot.errors import (
    PROBLEM_MEDIA_TYPE,
    BadInput,
    Conflict,
    NotFound,
    NotPermitted,
    SwitchboardError,
    UpstreamUnavailable,
    problem_body,
)
from bot.errors import log_unexpected as _log_unexpected
from bot.web_auth.auth import SignInRequired

log = logging.getLogger(__name__)
CONTENT_TYPE = PROBLEM_MEDIA_TYPE


class Unauthenticated(SwitchboardError):
    """No credentials, or credentials that are not a live token or session."""


class MissingScope(NotPermitted):
    """A live token without the scope an endpoint needs."""


class RequestInvalid(SwitchboardError):
    """A body, query or header that does not fit the endpoint's model; ``errors`` says where."""

    def __init__(self, message: str, errors: list[dict[str, Any]]) -> None:
        super().__init__(message)
        self.errors = errors


class MethodNotAllowed(SwitchboardError):
    """A known path asked with a method it does not answer."""

    def __init__(self, message: str, allow: list[str]) -> None:
        super().__init__(message)
        self.allow = allow


class FieldProblem(BaseModel):
    """One field that was refused: where it is and why."""

    field: str = Field(description="The field, e.g. `inputs.env` or `body.decision`")
    message: str


class Problem(BaseModel):
    """An RFC 9457 problem: ``detail`` is the message chat would show."""

    type: str = Field(description="A URI naming the kind of problem; its docs are at that anchor")
    title: str
    status: int
    detail: str
    errors: list[FieldProblem] | None = None


# exception type -> (status, slug, title); the first entry an exception is an instance of wins
TABLE: list[tuple[type[BaseException], int, str, str]] = [
    (Unauthenticated, 401, "unauthenticated", "Not signed in"),
    (SignInRequired, 401, "unauthenticated", "Not signed in"),
    (MissingScope, 403, "missing-scope", "Token lacks a scope"),
    (NotPermitted, 403, "not-permitted", "Not permitted"),
    (NotFound, 404, "not-found", "Not found"),
    (MethodNotAllowed, 405, "method-not-allowed", "Method not allowed"),
    (Conflict, 409, "conflict", "Conflict"),
    (RequestInvalid, 422, "request-invalid", "Request does not fit the schema"),
    (BadInput, 400, "bad-input", "Bad input"),
    (UpstreamUnavailable, 503, "upstream-unavailable", "A service Switchboard needs did not answer"),
]
UNEXPECTED = (500, "unexpected", "Something went wrong")


def type_uri(slug: str) -> str:
    """The problem's type: an anchor of the docs page, which says what it means."""
    return f"/api/v1/docs#problem-{slug}"


def problem_of(exc: BaseException) -> tuple[Problem, dict[str, str]]:
    """The problem for an exception, and the headers that go with it."""
    for kind, status, slug, title in TABLE:
        if isinstance(exc, kind):
            errors = None
            if isinstance(exc, RequestInvalid):
                errors = [FieldProblem.model_validate(e) for e in exc.errors]
            headers: dict[str, str] = {}
            if status == 401:
                headers["WWW-Authenticate"] = 'Bearer realm="switchboard"'
            if isinstance(exc, MethodNotAllowed):
                headers["Allow"] = ", ".join(exc.allow)
            return Problem(type=type_uri(slug), title=title, status=status, detail=str(exc), errors=errors), (
                headers
            )
    if database_unavailable(exc):
        log.warning("API request answered 503: the database did not answer (%s)", type(exc).__name__)
        status, slug, title = 503, "upstream-unavailable", "A service Switchboard needs did not answer"
        detail = "The database did not answer (busy or out of connections); send the request again shortly."
        problem = Problem(type=type_uri(slug), title=title, status=status, detail=detail)
        return problem, {"Retry-After": "1"}
    found = _log_unexpected(log, "API request failed")
    status, slug, title = UNEXPECTED
    return Problem(type=type_uri(slug), title=title, status=status, detail=found.message), {}


def database_unavailable(exc: BaseException) -> bool:
    """A database that could not be reached or was too busy: no connection (the pool's or the server's
    limit), or an operational error (SQLite still locked after its busy timeout). Not a bug of ours."""
    if isinstance(exc, sa.exc.TimeoutError | sa.exc.OperationalError | sa.exc.InterfaceError):
        return True
    return isinstance(exc, sa.exc.DBAPIError) and exc.statement is None  # failed while connecting


def problem_response(exc: BaseException) -> web.Response:
    """The problem+json response for an exception."""
    problem, headers = problem_of(exc)
    errors = [error.model_dump() for error in problem.errors] if problem.errors is not None else None
    body = problem_body(problem.status, problem.type, problem.detail, title=problem.title, errors=errors)
    return web.Response(status=problem.status, text=body, content_type=CONTENT_TYPE, headers=headers)


def kinds() -> list[tuple[int, str, str]]:
    """Every problem kind (status, slug, title), for the docs page."""
    unique = {slug: (status, slug, title) for _, status, slug, title in TABLE}
    return [*unique.values(), UNEXPECTED]
