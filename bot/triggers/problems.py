"""Refusals as ``application/problem+json`` (RFC 9457): a type, a title, the status and the detail to read."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from bot.errors import PROBLEM_MEDIA_TYPE, problem_body


def problem(status: int, kind: str, detail: str, **extra: Any) -> web.Response:
    """A problem response; ``kind`` becomes the type ``urn:switchboard:problem:<kind>``."""
    body = problem_body(status, f"urn:switchboard:problem:{kind}", detail, **extra)
    return web.Response(status=status, text=body, content_type=PROBLEM_MEDIA_TYPE)
