"""The ``http`` kind against a real aiohttp server on localhost."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from engine.activities import http
from engine.activities.base import ActivityContext, StepCall, StepFailure

CTX = ActivityContext()


def call(url: str, **params: Any) -> StepCall:
    full: dict[str, Any] = {"method": "GET", "url": url, "headers": {}, "json": None, "body": None}
    full.update(expect_status=None, timeout=None)
    full.update(params)
    return StepCall("run-3", "notify_ci", "notify_ci", 2, "run-3:notify_ci", "http", full)


@pytest.fixture
async def server() -> AsyncIterator[str]:
    stop = asyncio.Event()

    async def echo(request: web.Request) -> web.Response:
        body = await request.text()
        return web.json_response(
            {"method": request.method, "body": body, "headers": dict(request.headers)},
            status=201,
            headers={"X-Request-Id": "abc"},
        )

    async def status(request: web.Request) -> web.Response:
        return web.Response(status=int(request.match_info["code"]), text="nope, not today")

    async def slow(request: web.Request) -> web.Response:
        await asyncio.wait({asyncio.create_task(stop.wait())}, timeout=5)
        return web.Response(text="late")

    async def big(request: web.Request) -> web.Response:
        return web.Response(text="0123456789" * 1000)

    app = web.Application()
    app.router.add_route("*", "/echo", echo)
    app.router.add_get("/status/{code}", status)
    app.router.add_get("/slow", slow)
    app.router.add_get("/big", big)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    stop.set()
    await runner.cleanup()


async def test_json_in_and_out_with_an_idempotency_key(server: str) -> None:
    result = await http.execute(call(f"{server}/echo", method="POST", json={"tag": "v1.2"}), CTX)
    assert result["status"] == 201
    assert result["headers"]["x-request-id"] == "abc"
    sent = result["json"]
    assert sent["method"] == "POST"
    assert sent["body"] == '{"tag": "v1.2"}'
    assert sent["headers"]["Content-Type"] == "application/json"
    assert sent["headers"]["Idempotency-Key"] == "run-3:notify_ci"
    assert result["text"].startswith("{") and result["truncated"] is False
    assert result["duration"] >= 0


async def test_a_users_idempotency_key_and_text_body_are_kept(server: str) -> None:
    step = call(f"{server}/echo", method="PUT", body="plain", headers={"idempotency-key": "mine"})
    sent = (await http.execute(step, CTX))["json"]
    assert sent["body"] == "plain"
    keys = {k: v for k, v in sent["headers"].items() if k.lower() == "idempotency-key"}
    assert list(keys.values()) == ["mine"]


async def test_an_unexpected_status_fails_with_the_body_excerpt(server: str) -> None:
    with pytest.raises(StepFailure) as failure:
        await http.execute(call(f"{server}/status/503"), CTX)
    assert failure.value.kind == "http"
    assert failure.value.message == f"GET {server}/status/503 answered 503, expected 2xx: nope, not today"
    assert failure.value.result["status"] == 503
    assert failure.value.result["json"] is None


async def test_expect_status(server: str) -> None:
    result = await http.execute(call(f"{server}/status/404", expect_status=[404, 410]), CTX)
    assert result["status"] == 404 and result["text"] == "nope, not today"
    with pytest.raises(StepFailure, match="answered 201, expected 200"):
        await http.execute(call(f"{server}/echo", expect_status=[200]), CTX)


async def test_connection_refused() -> None:
    with socket.socket() as probe:  # a port that was just free, so nothing listens on it
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(StepFailure) as failure:
        await http.execute(call(f"http://127.0.0.1:{port}/"), CTX)
    assert failure.value.kind == "connection"
    assert f"cannot connect to 127.0.0.1:{port}" in failure.value.message


async def test_a_timeout_from_the_step_params(server: str) -> None:
    with pytest.raises(StepFailure) as failure:
        await http.execute(call(f"{server}/slow", timeout=0.2), CTX)
    assert failure.value.kind == "timeout"
    assert "no answer within 0.2s" in failure.value.message


async def test_the_runtimes_session_is_used_and_left_open(server: str) -> None:
    async with aiohttp.ClientSession(headers={"X-Runtime": "yes"}) as session:
        result = await http.execute(call(f"{server}/echo"), ActivityContext(http_session=session))
        assert result["json"]["headers"]["X-Runtime"] == "yes"
        assert not session.closed


async def test_the_body_text_keeps_its_head(server: str) -> None:
    result = await http.execute(call(f"{server}/big"), ActivityContext(output_cap=25))
    assert result["text"] == "0123456789012345678901234"
    assert result["truncated"] is True


async def test_an_invalid_url_is_an_http_failure() -> None:
    with pytest.raises(StepFailure) as failure:
        await http.execute(call("ftp://example.com/file"), CTX)
    assert failure.value.kind == "http"
    assert failure.value.message == "GET ftp://example.com/file failed: not a valid http:// or https:// URL"
