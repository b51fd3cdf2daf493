"""http steps cannot reach Switchboard's own listener or link-local and metadata addresses (issue 18, item 8).

Real aiohttp servers on loopback stand for Switchboard's listener and for an internal service; each
counts the requests it got, so a refusal is shown to have sent nothing.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from bot.config import Settings, load_settings
from bot.errors import BadInput
from bot.runtime.runtime import Runtime
from engine.activities import http
from engine.activities.base import ActivityContext, StepCall, StepFailure
from engine.activities.http_guard import Refused
from engine.activities.http_send import GuardedResolver, Request, send
from tests.helpers import finished, workflow
from tests.test_cli import environment, finish_now, start


@dataclass
class Server:
    """A loopback server that records every path it was asked for."""

    port: int
    seen: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


async def serve(redirect_to: Callable[[], str] | None = None) -> tuple[Server, web.AppRunner]:
    server = Server(0)

    async def any_path(request: web.Request) -> web.StreamResponse:
        server.seen.append(request.path_qs)
        if redirect_to is not None and request.path.startswith("/hop"):
            raise web.HTTPFound(redirect_to() + "/api/state?user=alice")
        return web.json_response({"ok": True, "path": request.path})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", any_path)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    server.port = runner.addresses[0][1]
    return server, runner


@pytest.fixture
async def listener() -> AsyncIterator[Server]:
    """Stands for Switchboard's own listener (the console and its API)."""
    server, runner = await serve()
    yield server
    await runner.cleanup()


@pytest.fixture
async def service(listener: Server) -> AsyncIterator[Server]:
    """An internal service on another port; /hop redirects to the listener."""
    server, runner = await serve(redirect_to=lambda: listener.url)
    yield server
    await runner.cleanup()


def context(listener: Server, **settings: Any) -> ActivityContext:
    chosen = Settings(host="127.0.0.1", port=listener.port, **settings)
    return ActivityContext(http_guard=chosen.http_guard())


def call(url: str) -> StepCall:
    params = {"method": "GET", "url": url, "headers": {}, "json": None, "body": None}
    return StepCall("run-1", "fetch", "fetch", 1, "run-1:fetch", "http", params)


async def refused(url: str, ctx: ActivityContext) -> str:
    with pytest.raises(StepFailure) as caught:
        await http.execute(call(url), ctx)
    assert caught.value.kind == "http"
    return caught.value.message


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "localhost", "127.0.0.2", "[::1]", "[::ffff:127.0.0.1]", "0.0.0.0"],
)
async def test_the_own_listener_is_refused_under_every_loopback_name(listener: Server, host: str) -> None:
    message = await refused(f"http://{host}:{listener.port}/api/state?user=alice", context(listener))
    assert "was not sent" in message and "Switchboard's own listener" in message, message
    assert "SWITCHBOARD_HTTP_ALLOW=" in message and f":{listener.port}" in message
    assert listener.seen == []


@pytest.mark.parametrize("host", ["2130706433", "127.1", "0x7f.1"])
async def test_legacy_numeric_forms_of_loopback_are_not_sent(listener: Server, host: str) -> None:
    message = await refused(f"http://{host}:{listener.port}/api/state", context(listener))
    assert "was not sent" in message or "not a valid http:// or https:// URL" in message, message
    assert listener.seen == []


async def test_other_ports_on_loopback_and_private_services_stay_reachable(
    listener: Server, service: Server
) -> None:
    result = await http.execute(call(f"{service.url}/health"), context(listener))
    assert result["status"] == 200 and result["json"] == {"ok": True, "path": "/health"}
    result = await http.execute(call(f"http://localhost:{service.port}/again"), context(listener))
    assert result["status"] == 200
    assert service.seen == ["/health", "/again"] and listener.seen == []


async def test_a_redirect_to_the_own_listener_is_refused(listener: Server, service: Server) -> None:
    message = await refused(f"{service.url}/hop", context(listener))
    assert f"refused to send to 127.0.0.1:{listener.port}" in message
    assert service.seen == ["/hop"] and listener.seen == []


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://169.254.169.254/latest/meta-data/iam/", "169.254.169.254:80"),
        ("http://[fd00:ec2::254]/latest/meta-data/", "[fd00:ec2::254]:80"),
        ("http://[fe80::1]:8080/", "[fe80::1]:8080"),
        ("http://[::ffff:169.254.169.254]/", "[::ffff:a9fe:a9fe]:80 (169.254.169.254)"),
    ],
)
async def test_link_local_and_metadata_addresses_are_refused(listener: Server, url: str, shown: str) -> None:
    message = await refused(url, context(listener))
    assert f"refused to send to {shown}" in message
    assert "a link-local or cloud-metadata address" in message and "SWITCHBOARD_HTTP_ALLOW=" in message


async def test_http_allow_lifts_a_refusal_and_http_deny_adds_one(listener: Server, service: Server) -> None:
    allowed = context(listener, http_allow=[f"127.0.0.1:{listener.port}"])
    result = await http.execute(call(f"{listener.url}/api/health"), allowed)
    assert result["status"] == 200 and listener.seen == ["/api/health"]

    for entry in (f"127.0.0.1:{service.port}", "127.0.0.0/8", "localhost"):
        denied = context(listener, http_deny=[entry])
        message = await refused(f"http://localhost:{service.port}/x", denied)
        assert f"SWITCHBOARD_HTTP_DENY names {entry}" in message, message
    assert service.seen == []


@pytest.mark.parametrize("entry", ["10.0.0.0/33", "host:99999", "a b", "http://x/"])
def test_a_malformed_allow_or_deny_entry_is_refused_at_start(entry: str) -> None:
    with pytest.raises(BadInput, match="http_deny"):
        load_settings(http_deny=[entry])


async def test_a_run_whose_url_comes_from_an_input_cannot_read_the_console(
    make_runtime: Callable[..., Any], listener: Server
) -> None:
    runtime: Runtime = await make_runtime(host="127.0.0.1", port=listener.port)
    text = """
name: fetch
inputs:
  target: {type: string}
steps:
  fetch:
    http: {url: "${{ inputs.target }}"}
"""
    started = await runtime.submit(workflow(text), {"target": f"{listener.url}/api/state?user=alice"}, "eve")
    row = await finished(runtime, started.run_id)
    assert row.status == "failed"
    [step] = await runtime.store.step_rows(started.run_id)
    assert step.error is not None and "Switchboard's own listener" in step.error
    assert listener.seen == []


def test_validate_warns_when_a_url_host_comes_from_an_input(tmp_path: Path) -> None:
    (tmp_path / "fetch.yaml").write_text(
        """\
name: fetch
inputs:
  base: {type: string}
  path: {type: string}
steps:
  anywhere:
    http: {url: "${{ inputs.base }}/api/state"}
  subdomain:
    http:
      url: "https://${{ inputs.base }}.example.com/x"
  fixed:
    http: {url: "https://api.example.com/${{ inputs.path }}?q=${{ inputs.base }}"}
"""
    )
    env = environment(f"sqlite+aiosqlite:///{tmp_path / 'db'}", tmp_path)
    result = finish_now(start(env, "workflow", "validate", str(tmp_path / "fetch.yaml")))
    assert result.code == 0, result.out  # a warning, not an error
    lines = result.out.splitlines()
    assert f"{tmp_path / 'fetch.yaml'}: valid" in lines
    warned = [ln for ln in lines if "warning:" in ln]
    assert [ln.split(": warning")[0] for ln in warned] == [
        f"{tmp_path / 'fetch.yaml'}:7:17",
        f"{tmp_path / 'fetch.yaml'}:10:12",
    ]
    assert "step 'anywhere' takes its url's host from an input" in warned[0]


def test_a_listener_on_every_interface_is_refused_at_the_machine_s_own_addresses() -> None:
    guard = Settings(host="0.0.0.0", port=8080).http_guard()
    for address in [*own_addresses(), "127.0.0.1", "::1"]:
        with pytest.raises(Refused, match="Switchboard's own listener"):
            guard.check(address, address, 8080)
        guard.check(address, address, 8081)  # another port on this machine is another service


def own_addresses() -> list[str]:
    """This machine's interface addresses, as `ip addr` would list them (read from /proc)."""
    found = {str(info[4][0]) for info in socket.getaddrinfo(socket.gethostname(), None)}
    lines = Path("/proc/net/fib_trie").read_text().splitlines() if Path("/proc/net/fib_trie").exists() else []
    found |= {lines[i - 1].split()[-1] for i, line in enumerate(lines) if "/32 host LOCAL" in line}
    return sorted(found)


class HostileDns(AbstractResolver):
    """A name server (third-party, so faked) answering ``addresses`` for every name."""

    def __init__(self, addresses: list[str]) -> None:
        self.addresses = addresses

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            {"hostname": host, "host": a, "port": port, "family": family, "proto": 0, "flags": 0}
            for a in self.addresses
        ]

    async def close(self) -> None:
        return None


async def test_names_are_checked_on_the_addresses_actually_dialled(listener: Server, service: Server) -> None:
    guard = context(listener).http_guard
    # The name's answer is checked where the connection uses it, so there is no earlier lookup a
    # rebinding server could answer harmlessly: the same name is allowed to the service's port and
    # refused at the listener's, on the address it resolved to just then.
    dns = HostileDns(["127.0.0.1"])
    connector = aiohttp.TCPConnector(resolver=GuardedResolver(guard, dns), use_dns_cache=False)
    async with aiohttp.ClientSession(connector=connector) as session:
        ok = await send(session, Request("GET", URL(f"http://rebind.test:{service.port}/a"), {}, 1000, guard))
        assert ok["status"] == 200
        with pytest.raises(Refused, match="Switchboard's own listener"):
            await send(session, Request("GET", URL(f"http://rebind.test:{listener.port}/b"), {}, 1000, guard))
    assert service.seen == ["/a"] and listener.seen == []


async def test_every_address_a_name_resolves_to_is_checked(listener: Server, service: Server) -> None:
    guard = context(listener).http_guard
    dns = HostileDns(["127.0.0.1", "169.254.169.254"])  # one good address is not enough
    connector = aiohttp.TCPConnector(resolver=GuardedResolver(guard, dns))
    async with aiohttp.ClientSession(connector=connector) as session:
        with pytest.raises(Refused, match=r"rebind.test:\d+ \(169.254.169.254\): a link-local"):
            await send(session, Request("GET", URL(f"http://rebind.test:{service.port}/"), {}, 1000, guard))
    assert service.seen == []
