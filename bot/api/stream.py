"""``GET /api/v1/runs/{run_id}/events``: a run's timeline as Server-Sent Events, live until it finishes.

Each event's ``id`` is its seq, so a client that reconnects with ``Last-Event-ID`` (as EventSource does)
gets only what it missed. A comment line is sent every ``KEEPALIVE`` seconds while nothing happens, so
proxies keep the connection open and a client that went away is noticed; the stream also ends when the
process stops.
"""

from __future__ import annotations

import json
import time

from aiohttp import web

from bot.api.context import ApiContext
from bot.api.problems import RequestInvalid
from bot.api.routing import Call
from bot.errors import NotFound
from bot.runtime.events import follow

KEEPALIVE = 15.0
POLL = 0.5  # how soon events committed by another process are seen; this process's come at once


class RunStream:
    def __init__(self, ctx: ApiContext) -> None:
        self.runtime = ctx.services.runtime

    async def events(self, call: Call) -> web.StreamResponse:
        row = await self.runtime.store.run_row(call.path["run_id"])
        if row is None:
            raise NotFound(f"No run {call.path['run_id']}; GET /api/v1/runs lists the recent ones")
        after = _last_id(call.request.headers.get("Last-Event-ID"))
        request = call.request
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",  # nginx would otherwise hold the stream back
            }
        )
        await response.prepare(request)
        last_write = time.monotonic()

        async def idle() -> bool:
            nonlocal last_write
            if self.runtime.stopping or request.transport is None or request.transport.is_closing():
                return True
            if time.monotonic() - last_write >= KEEPALIVE:
                await response.write(b": keep-alive\n\n")
                last_write = time.monotonic()
            return False

        try:
            await response.write(b"retry: 2000\n\n")
            async for event in follow(self.runtime.hub, self.runtime.store, row.id, POLL, after, idle):
                data = {
                    "seq": event.seq,
                    "type": event.type,
                    "step": event.step_key,
                    "data": event.data,
                    "at": event.at,
                }
                line = f"id: {event.seq}\nevent: {event.type}\ndata: {json.dumps(data, default=str)}\n\n"
                await response.write(line.encode())
                last_write = time.monotonic()
            await response.write_eof()
        except (ConnectionResetError, ConnectionError):
            pass  # the client went away
        return response


def _last_id(text: str | None) -> int:
    if text is None or not text.strip():
        return 0
    try:
        seq = int(text.strip())
    except ValueError:
        raise RequestInvalid(
            "Last-Event-ID must be the id of an event this stream sent (an integer).",
            [{"field": "header.Last-Event-ID", "message": "not an integer"}],
        ) from None
    if seq < 0:
        raise RequestInvalid(
            "Last-Event-ID cannot be negative.", [{"field": "header.Last-Event-ID", "message": "negative"}]
        )
    return seq
