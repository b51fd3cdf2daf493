"""The ``http`` step kind: one HTTP request with an idempotency key, checked against the expected status."""

from __future__ import annotations

import codecs
import json
import time
from typing import Any

import aiohttp

from engine.activities.base import ActivityContext, StepCall, StepFailure
from engine.spec import MAX_OUTPUT_BYTES


async def execute(call: StepCall, ctx: ActivityContext) -> dict[str, Any]:
    """Send the step's request and return status, headers, body text and parsed JSON."""
    params = call.params
    method = str(params.get("method") or "GET").upper()
    url = str(params["url"])
    headers = {str(k): str(v) for k, v in (params.get("headers") or {}).items()}
    # The same key on every attempt lets a server that supports it drop a retried duplicate.
    if not any(name.lower() == "idempotency-key" for name in headers):
        headers["Idempotency-Key"] = call.idempotency_key
    request: dict[str, Any] = {"headers": headers}
    if params.get("json") is not None:
        request["json"] = params["json"]
    elif params.get("body") is not None:
        request["data"] = str(params["body"]).encode()
    if params.get("timeout"):
        request["timeout"] = aiohttp.ClientTimeout(total=float(params["timeout"]))

    started = time.monotonic()
    try:
        if ctx.http_session is not None:
            result = await _send(ctx.http_session, method, url, request, ctx.output_cap)
        else:
            async with aiohttp.ClientSession() as session:
                result = await _send(session, method, url, request, ctx.output_cap)
    # TimeoutError first: aiohttp's timeout errors are also connection errors. The runtime's own
    # step timeout arrives here as CancelledError, which is not caught.
    except TimeoutError:
        limit = f" within {float(params['timeout']):g}s" if params.get("timeout") else " in time"
        raise StepFailure("timeout", f"{method} {url} got no answer{limit}") from None
    except (aiohttp.InvalidURL, aiohttp.NonHttpUrlClientError, aiohttp.TooManyRedirects) as exc:
        raise StepFailure("http", f"{method} {url} failed: {_describe(exc)}") from None
    except aiohttp.ClientError as exc:
        raise StepFailure("connection", f"{method} {url} failed: {_describe(exc)}") from None
    result["duration"] = round(time.monotonic() - started, 3)

    status: int = result["status"]
    expected = [int(code) for code in params.get("expect_status") or []]
    if not (status in expected if expected else 200 <= status < 300):
        wanted = ", ".join(str(s) for s in expected) if expected else "2xx"
        message = f"{method} {url} answered {status}, expected {wanted}"
        excerpt = " ".join(result["text"].split())[:200]
        raise StepFailure("http", f"{message}: {excerpt}" if excerpt else message, result)
    return result


async def _send(
    session: aiohttp.ClientSession, method: str, url: str, request: dict[str, Any], cap: int
) -> dict[str, Any]:
    async with session.request(method, url, **request) as response:
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


def _describe(exc: aiohttp.ClientError) -> str:
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return f"cannot resolve host '{exc.host}'"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"cannot connect to {exc.host}:{exc.port} ({exc.os_error.strerror or exc.os_error})"
    if isinstance(exc, aiohttp.InvalidURL | aiohttp.NonHttpUrlClientError):
        return "not a valid http:// or https:// URL"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
