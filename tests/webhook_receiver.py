"""A local webhook receiver (a real aiohttp server on 127.0.0.1) that answers as each path is told to."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from aiohttp import web


@dataclass(frozen=True)
class Received:
    """One request as it arrived, and how it was answered ("ok", "500" or "hang")."""

    path: str
    headers: dict[str, str]
    body: str
    answer: str


@dataclass
class Receiver:
    """Answers each path by its script, one entry per request (the last one repeats); default "ok"."""

    scripts: dict[str, list[str]] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    port: int = 0
    _release: asyncio.Event = field(default_factory=asyncio.Event)
    _runner: web.AppRunner | None = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def at(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path == path]

    async def _handle(self, request: web.Request) -> web.Response:
        script = self.scripts.get(request.path, ["ok"])
        seen = len(self.at(request.path))
        answer = script[min(seen, len(script) - 1)]
        body = await request.text()
        self.received.append(
            Received(request.path, {k.lower(): v for k, v in request.headers.items()}, body, answer)
        )
        if answer == "hang":
            await self._release.wait()  # past the sender's timeout; released when the test ends
        if answer == "500":
            return web.Response(status=500, text="receiver is down for maintenance")
        return web.Response(status=200, text="thanks")

    async def __aenter__(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._release.set()
        if self._runner is not None:
            await self._runner.cleanup()
