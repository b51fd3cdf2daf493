"""Sending one http step's request through the guard: every address dialled and every redirect checked.

aiohttp follows redirects itself and never resolves an address literal, so redirects are followed
here, one hop at a time, each url checked before it is sent; names are checked by ``GuardedResolver``
on the addresses the connection then uses.
"""

from __future__ import annotations

import asyncio
import codecs
import json
import socket
from dataclasses import dataclass, replace
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from yarl import URL

from engine.activities.base import StepFailure
from engine.activities.http_guard import HttpGuard
from engine.spec import MAX_OUTPUT_BYTES

MAX_REDIRECTS = 10  # aiohttp's own default
REDIRECTS = (301, 302, 303, 307, 308)
CREDENTIALS = ("authorization", "cookie", "proxy-authorization")


class GuardedResolver(AbstractResolver):
    """The default resolver, refusing a name when any address it resolves to is denied."""

    def __init__(self, guard: HttpGuard, inner: AbstractResolver | None = None) -> None:
        self.guard = guard
        self.inner = inner or DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self.inner.resolve(host, port, family)
        for entry in found:
            self.guard.check(host, entry["host"], port)
        return found

    async def close(self) -> None:
        await self.inner.close()


@dataclass(frozen=True)
class Request:
    """One request as the step asked for it; ``resolve_first`` when the session's resolver is not ours."""

    method: str
    url: URL
    options: dict[str, Any]
    cap: int
    guard: HttpGuard
    resolve_first: bool = False


async def send(session: aiohttp.ClientSession, request: Request) -> dict[str, Any]:
    """Send ``request``, following at most MAX_REDIRECTS redirects, each checked by the guard."""
    for _ in range(MAX_REDIRECTS + 1):
        await _check(request)
        async with session.request(
            request.method, request.url, allow_redirects=False, **request.options
        ) as response:
            location = response.headers.get("Location")
            if response.status in REDIRECTS and location:
                request = _redirected(request, response.status, request.url.join(URL(location)))
                continue
            return await _read(response, request.cap)
    raise StepFailure("http", f"{request.method} {request.url} redirected more than {MAX_REDIRECTS} times")


async def _check(request: Request) -> None:
    url = request.url
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError(f"{url} is not an http:// or https:// URL")
    request.guard.check_url(url)
    if request.resolve_first:
        port = url.port or (443 if url.scheme == "https" else 80)
        infos = await asyncio.get_running_loop().getaddrinfo(url.host, port, type=socket.SOCK_STREAM)
        for info in infos:
            request.guard.check(url.host, str(info[4][0]), port)


def _redirected(request: Request, status: int, target: URL) -> Request:
    """The next hop: 303 (and 301/302 after a POST) become a GET without a body, as browsers do;
    credentials are not carried to another origin."""
    options = dict(request.options)
    method = request.method
    if (status == 303 and method != "HEAD") or (status in (301, 302) and method == "POST"):
        method = "GET"
        options.pop("json", None)
        options.pop("data", None)
    if target.origin() != request.url.origin():
        headers = {k: v for k, v in options.get("headers", {}).items() if k.lower() not in CREDENTIALS}
        options["headers"] = headers
    return replace(request, method=method, url=target, options=options)


async def _read(response: aiohttp.ClientResponse, cap: int) -> dict[str, Any]:
    # Read a bounded head: enough to parse a JSON answer the run history can hold, never unbounded.
    limit = max(cap, MAX_OUTPUT_BYTES)
    body = bytearray()
    while len(body) <= limit and (chunk := await response.content.read(limit + 1 - len(body))):
        body += chunk
    truncated = len(body) > limit
    # Lower-case names, so a workflow can write headers["content-type"] whatever the server sent;
    # repeated headers are joined as RFC 9110 allows.
    headers: dict[str, str] = {}
    for raw_name, value in response.headers.items():
        name = raw_name.lower()
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return {
        "status": response.status,
        "headers": headers,
        "json": None if truncated else _json(bytes(body), response.content_type),
        "text": _decode(bytes(body[:cap]), response.charset),
        "truncated": truncated or len(body) > cap,
    }


def _json(body: bytes, content_type: str) -> Any:
    looks_like_json = body.lstrip()[:1] in (b"{", b"[")
    if "json" not in content_type and not (content_type.startswith("text/") and looks_like_json):
        return None
    try:
        return json.loads(body)
    except ValueError:
        return None


def _decode(head: bytes, charset: str | None) -> str:
    try:
        decoder = codecs.getincrementaldecoder(charset or "utf-8")(errors="replace")
    except LookupError:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    # final=False leaves out a character cut in half by the cap instead of showing a broken one.
    return decoder.decode(head, final=False)
