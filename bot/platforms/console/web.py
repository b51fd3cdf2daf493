"""The console's HTTP routes and websocket, on the shared aiohttp server.

Each request names the console user it acts as (the page's "act as" picker) and is parsed here, once,
into plain values; ``ConsoleAdapter`` does the rest. User errors map to JSON ``{"error": ...}`` with a
status from ``STATUS``; anything unexpected is logged under a ref that the page shows.

The console has no login: it is meant for 127.0.0.1. Two checks keep other web pages out of it: API
posts must be ``application/json`` (a cross-site form or a "simple" fetch cannot send that without a
CORS preflight, which is never granted), and the websocket only accepts pages served from this host.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from bot.errors import (
    BadInput,
    Conflict,
    NotFound,
    NotPermitted,
    SwitchboardError,
    UpstreamUnavailable,
    log_unexpected,
)
from bot.platforms.console.feed import message_json
from bot.platforms.console.hints import hints
from cards.model import Form
from handlers.chat_text import invalid_unicode, refusal

if TYPE_CHECKING:
    from bot.platforms.console.adapter import ConsoleAdapter

log = logging.getLogger(__name__)
STATIC = Path(__file__).resolve().parent / "static"
STATUS: dict[type[SwitchboardError], int] = {
    BadInput: 400,
    NotPermitted: 403,
    NotFound: 404,
    Conflict: 409,
    UpstreamUnavailable: 503,
}
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _csp(request: web.Request) -> str:
    # No inline scripts or styles anywhere: the page's code and look come from /static only.
    return (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        f"connect-src 'self' ws://{request.host} wss://{request.host}; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    )


class ConsoleRoutes:
    """Request handlers bound to one ``ConsoleAdapter``."""

    def __init__(self, console: ConsoleAdapter) -> None:
        self.console = console

    def attach(self, app: web.Application) -> None:
        app.router.add_get("/", self.page)
        app.router.add_static("/static/", STATIC, append_version=False)
        app.router.add_get("/api/state", self._api(self.state))
        app.router.add_get("/api/hints", self._api(self.hints))
        app.router.add_post("/api/command", self._api(self.command))
        app.router.add_post("/api/message", self._api(self.message))
        app.router.add_post("/api/click", self._api(self.click))
        app.router.add_post("/api/submit", self._api(self.submit))
        app.router.add_get("/ws", self.websocket)

    async def page(self, request: web.Request) -> web.StreamResponse:
        response = web.FileResponse(STATIC / "index.html")
        response.headers["Content-Security-Policy"] = _csp(request)
        response.headers["Cache-Control"] = "no-cache"
        return response

    async def state(self, request: web.Request) -> dict[str, Any]:
        """Channels, users with their groups, and the messages this user may see."""
        settings = self.console.settings
        # No user yet (a first visit): act as the first configured one.
        name = request.query.get("user") or next(iter(settings.console_users), "")
        who = self.console.identity(name)
        users = [
            {"name": n, "groups": sorted(g), "admin": f"console:{n}" in settings.admins}
            for n, g in settings.console_users.items()
        ]
        messages = await self.console.store.visible(who.name)
        return {
            "user": who.name,
            "channels": list(settings.console_channels),
            "dm": f"@{who.name}",  # their direct message with the bot
            "users": users,
            "workflows": [
                {"name": w.spec.name, "description": w.spec.description or ""}
                for w in self.console.ctx.router.services.workflows()
            ],
            "messages": [message_json(m) for m in messages],
        }

    async def hints(self, request: web.Request) -> dict[str, Any]:
        q = request.query
        who = self.console.identity(q.get("user", ""))
        where = await self.console.place(who, q.get("channel", ""))
        return {"hints": await hints(self.console.ctx.router, who, where, q.get("text", ""))}

    async def command(self, request: web.Request) -> dict[str, Any]:
        body = await _body(request)
        who = self.console.identity(_str(body, "user"))
        where = await self.console.place(who, _str(body, "channel"), _int(body, "thread", optional=True))
        text = _str(body, "text")
        if not text.lstrip().startswith("/"):
            return await self.console.say(who, where, text)  # not a command: nothing typed is lost
        return await self.console.command(who, where, text)

    async def message(self, request: web.Request) -> dict[str, Any]:
        body = await _body(request)
        who = self.console.identity(_str(body, "user"))
        where = await self.console.place(who, _str(body, "channel"), _int(body, "thread", optional=True))
        return await self.console.say(who, where, _str(body, "text"))

    async def click(self, request: web.Request) -> dict[str, Any]:
        body = await _body(request)
        who = self.console.identity(_str(body, "user"))
        message_id = _int(body, "message_id")
        assert message_id is not None
        return await self.console.click(who, _str(body, "channel"), message_id, _str(body, "action_id"))

    async def submit(self, request: web.Request) -> dict[str, Any]:
        body = await _body(request)
        who = self.console.identity(_str(body, "user"))
        where = await self.console.place(who, _str(body, "channel"), _int(body, "thread", optional=True))
        values = body.get("values", {})
        if not isinstance(values, dict):
            raise BadInput("'values' must be an object of field name to text")
        form = _form(body.get("form"))
        texts = {str(k): "" if v is None else str(v) for k, v in values.items()}
        state = str(body.get("state") or "")
        return await self.console.submit(who, where, _str(body, "form_id"), state, texts, form)

    async def websocket(self, request: web.Request) -> web.StreamResponse:
        """Live updates for one page, acting as ``?user=``; the page reconnects when this closes."""
        origin = request.headers.get("Origin")
        if origin is not None and origin not in (f"http://{request.host}", f"https://{request.host}"):
            return _error(403, f"This console only accepts pages served from {request.host}.")
        try:
            who = self.console.identity(request.query.get("user", ""))
        except BadInput as exc:
            return _error(400, str(exc))
        ws = web.WebSocketResponse(heartbeat=25.0)
        await ws.prepare(request)
        self.console.hub.join(ws, who.name)
        try:
            await ws.send_json({"type": "hello", "user": who.name})
            async for msg in ws:
                if msg.type == WSMsgType.TEXT and msg.data == "ping":
                    await ws.send_str("pong")
        finally:
            self.console.hub.leave(ws)
        return ws

    def _api(self, call: Callable[[web.Request], Awaitable[dict[str, Any]]]) -> Handler:
        """JSON in, JSON out, user errors as ``{"error": ...}`` with a fitting status."""

        async def handle(request: web.Request) -> web.StreamResponse:
            try:
                return web.json_response(await call(request))
            except SwitchboardError as exc:
                return _error(STATUS.get(type(exc), 400), str(exc))
            except Exception:
                found = log_unexpected(log, "console: %s %s failed", request.method, request.path)
                return _error(500, found.message)

        return handle


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def _body(request: web.Request) -> dict[str, Any]:
    if request.content_type != "application/json":
        raise BadInput("Send the request as JSON (Content-Type: application/json).")
    try:
        body = await request.json()
    except json.JSONDecodeError as exc:
        raise BadInput(f"The request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BadInput("The request body must be a JSON object.")
    return body


def _str(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value.strip():
        raise BadInput(f"'{name}' is required (text).")
    problem = invalid_unicode(value)
    if problem is not None:  # plain messages too, which go to the assistant and not through the router
        raise BadInput(refusal(problem))
    return value


def _int(body: dict[str, Any], name: str, optional: bool = False) -> int | None:
    value = body.get(name)
    if value is None and optional:
        return None
    try:
        return int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise BadInput(f"'{name}' must be a message id (a number).") from None


def _form(data: Any) -> Form | None:
    # The form as the page received it, sent back so field errors can be drawn on it; optional.
    if not isinstance(data, dict):
        return None
    try:
        return Form.from_dict(data)
    except (KeyError, TypeError, ValueError):
        return None
