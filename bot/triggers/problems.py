"""Refusals as ``application/problem+json`` (RFC 9457): a type, a title, the status and the detail to read."""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

from aiohttp import web

MEDIA_TYPE = "application/problem+json"


def problem(status: int, kind: str, detail: str, **extra: Any) -> web.Response:
    """A problem response; ``kind`` becomes the type ``urn:switchboard:problem:<kind>``."""
    body = {
        "type": f"urn:switchboard:problem:{kind}",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        **extra,
    }
    return web.Response(status=status, text=json.dumps(body), content_type=MEDIA_TYPE)
