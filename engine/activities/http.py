"""The ``http`` step kind: one HTTP request with an idempotency key, checked against the expected status."""

from __future__ import annotations

import time
from typing import Any

import aiohttp
from yarl import URL

from engine.activities.base import ActivityContext, StepCall, StepFailure
from engine.activities.http_guard import Refused
from engine.activities.http_send import GuardedResolver, Request, send


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
    guard = ctx.http_guard
    try:
        if ctx.http_session is not None:
            # A caller's session dials with its own resolver: check what the name resolves to now.
            sent = Request(method, URL(url), request, ctx.output_cap, guard, resolve_first=True)
            result = await send(ctx.http_session, sent)
        else:
            connector = aiohttp.TCPConnector(resolver=GuardedResolver(guard))
            async with aiohttp.ClientSession(connector=connector) as session:
                result = await send(session, Request(method, URL(url), request, ctx.output_cap, guard))
    except Refused as exc:
        raise StepFailure("http", f"{method} {url} was not sent: {exc}") from None
    # TimeoutError first: aiohttp's timeout errors are also connection errors. The runtime's own
    # step timeout arrives here as CancelledError, which is not caught.
    except TimeoutError:
        limit = f" within {float(params['timeout']):g}s" if params.get("timeout") else " in time"
        raise StepFailure("timeout", f"{method} {url} got no answer{limit}") from None
    except (aiohttp.InvalidURL, aiohttp.NonHttpUrlClientError, ValueError) as exc:
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


def _describe(exc: aiohttp.ClientError | ValueError) -> str:
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return f"cannot resolve host '{exc.host}'"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"cannot connect to {exc.host}:{exc.port} ({exc.os_error.strerror or exc.os_error})"
    if isinstance(exc, aiohttp.InvalidURL | aiohttp.NonHttpUrlClientError | ValueError):
        return "not a valid http:// or https:// URL"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
