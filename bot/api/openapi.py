"""The OpenAPI 3.1 document, built from the route table and the pydantic models the handlers use."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from bot.api.problems import CONTENT_TYPE, Problem
from bot.api.routing import JSON, Route
from bot.tokens import SCOPES

REF = "#/components/schemas/{model}"
REASONS = {
    400: "Bad input",
    401: "No valid token or session",
    403: "Not permitted, or the token lacks the scope",
    404: "Not found",
    405: "Method not allowed",
    409: "The thing is in a state that does not allow this",
    422: "The request does not fit the schema",
    500: "Something went wrong (the detail has a ref to the log)",
    503: "A service Switchboard needs did not answer",
}


def document(routes: list[Route], version: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``routes``."""
    models = _models(routes)
    keyed, top = models_json_schema(
        [(m, "validation" if _is_request(m, routes) else "serialization") for m in models], ref_template=REF
    )
    schemas = dict(top.get("$defs", {}))
    refs = {m: keyed[(m, "validation" if _is_request(m, routes) else "serialization")] for m in models}
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route, refs)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Switchboard API",
            "version": version,
            "description": (
                "Start and follow workflow runs and decide approvals, under the same rules as chat. "
                "Authenticate with `Authorization: Bearer <token>` (`switchboard tokens create`) or a "
                "console session cookie. Errors are application/problem+json (RFC 9457)."
            ),
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "token": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A machine token; its scopes: "
                    + "; ".join(f"`{k}` {v}" for k, v in SCOPES.items()),
                },
                "session": {"type": "apiKey", "in": "cookie", "name": "sb_session"},
            },
        },
    }


def _operation(route: Route, refs: dict[type[BaseModel], dict[str, Any]]) -> dict[str, Any]:
    op: dict[str, Any] = {"operationId": route.name, "summary": route.summary, "tags": [route.tag]}
    if route.description:
        op["description"] = route.description
    if route.scope is not None:
        op["security"] = [{"token": []}, {"session": []}]
        op["description"] = (op.get("description", "") + f"\n\nNeeds the `{route.scope}` scope.").strip()
    else:
        op["security"] = []
    params: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string", "pattern": "^[^/]+$"}}
        for name in route.pattern().groupindex
    ]
    if route.query is not None:
        schema = route.query.model_json_schema(ref_template=REF)
        required = set(schema.get("required", ()))
        for name, prop in schema.get("properties", {}).items():
            params.append({"name": name, "in": "query", "required": name in required, "schema": prop})
    for header in route.headers:
        params.append(
            {
                "name": header.name,
                "in": "header",
                "required": False,
                "description": header.description,
                "schema": {"type": "string", "minLength": 1, "maxLength": header.max_length},
            }
        )
    if params:
        op["parameters"] = params
    if route.body is not None:
        # A route that also takes the raw YAML file says so in its description: as a media type here, any
        # text is valid, so a schema would promise nothing.
        op["requestBody"] = {"required": True, "content": {JSON: {"schema": refs[route.body]}}}
    responses: dict[str, Any] = {}
    for status in (route.status, *route.also):
        ok: dict[str, Any] = {"description": "OK" if status < 300 else "See the Location header"}
        if route.returns is not None:
            ok["content"] = {route.media: {"schema": refs[route.returns]}}
        elif route.media != JSON:
            ok["content"] = {route.media: {"schema": {"type": "string"}}}
        responses[str(status)] = ok
    for status in route.statuses():
        responses[str(status)] = {
            "description": REASONS.get(status, "Error"),
            "content": {CONTENT_TYPE: {"schema": refs[Problem]}},
        }
    op["responses"] = responses
    return op


def _models(routes: list[Route]) -> list[type[BaseModel]]:
    found: list[type[BaseModel]] = [Problem]
    for route in routes:
        for model in (route.body, route.returns):
            if model is not None and model not in found:
                found.append(model)
    return found


def _is_request(model: type[BaseModel], routes: list[Route]) -> bool:
    return any(route.body is model for route in routes)
