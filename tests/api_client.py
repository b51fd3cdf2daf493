"""A small HTTP client for the REST API tests: real requests to a started app, answers as JSON."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aiohttp

from bot.process import App
from bot.storage.tokens import TokenStore
from bot.tokens import acting_as, parse_scopes


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: Any
    content_type: str


async def call(
    app: App, method: str, path: str, token: str | None = None, json: Any = None, **kwargs: Any
) -> Answer:
    headers = dict(kwargs.pop("headers", {}))
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, f"{app.url}{path}", json=json, headers=headers, **kwargs) as r,
    ):
        text = await r.text()
        body: Any = text
        if r.content_type in ("application/json", "application/problem+json"):
            body = await r.json(content_type=None)
        return Answer(r.status, dict(r.headers), body, r.content_type)


async def token(app: App, name: str, scopes: str, user: str, groups: tuple[str, ...] = ()) -> str:
    """A machine token acting as ``user:USER`` with ``scopes`` (comma-separated)."""
    _, text = await TokenStore(app.engine).create(
        name, parse_scopes([scopes]), acting_as(f"user:{user}", groups), "tests", 1.0
    )
    return text
