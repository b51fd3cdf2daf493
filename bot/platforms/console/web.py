"""The console's HTTP routes and websocket, on the shared aiohttp server.

Who acts is the signed-in person of the session cookie (``bot.web_auth``), never a field of the request.
Each request is parsed here, once, into plain values; ``ConsoleAdapter`` does the rest. User errors map
to JSON ``{"error": ...}`` with a status from ``STATUS``; anything unexpected is logged under a ref that
the page shows.

Every request must name this console in Host (dev mode: a loopback address) and Origin; every post must
carry the session's CSRF token and be ``application/json``; the websocket needs the session and its
token too. State and the socket carry only what the signed-in person may see (``visibility``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from bot.conversations.desk import NOTE_PREFIX
from bot.errors import (
    BadInput,
    Conflict,
    NotFound,
    NotPermitted,
    SwitchboardError,
    UpstreamUnavailable,
    log_unexpected,
)
from bot.identity import Identity, Place
from bot.platforms.console.feed import Reader, message_json
from bot.platforms.console.hints import first_command, hints
from bot.platforms.console.visibility import channels_for, reader
from bot.web_auth.auth import SignInRequired, json_body
from cards.model import Form
from handlers.chat_text import invalid_unicode, refusal

if TYPE_CHECKING:
    from bot.platforms.console.adapter import ConsoleAdapter

log = logging.getLogger(__name__)
STATIC = Path(__file__).resolve().parent / "static"
STATUS: dict[type[SwitchboardError], int] = {
    SignInRequired: 401,
    BadInput: 400,
    NotPermitted: 403,
    NotFound: 404,
    Conflict: 409,
    UpstreamUnavailable: 503,
}
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Call = Callable[[web.Request, Identity, str], Awaitable[dict[str, Any]]]
USER_FIELD = "Who acts comes from your sign-in, not from the request: remove 'user'."


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
        app.router.add_post("/api/command", self._api(self.command, write=True))
        app.router.add_post("/api/message", self._api(self.message, write=True))
        app.router.add_post("/api/click", self._api(self.click, write=True))
        app.router.add_post("/api/submit", self._api(self.submit, write=True))
        app.router.add_get("/ws", self.websocket)

    async def page(self, request: web.Request) -> web.StreamResponse:
        try:
            self.console.auth.check_origin(request)
        except NotPermitted as exc:
            return web.Response(status=403, text=str(exc))
        response = web.FileResponse(STATIC / "index.html")
        response.headers["Content-Security-Policy"] = _csp(request)
        response.headers["Cache-Control"] = "no-cache"
        return response

    async def state(self, request: web.Request, who: Identity, csrf: str) -> dict[str, Any]:
        """Channels, who is signed in, and the messages they may see."""
        settings = self.console.settings
        # Dev mode's picker lists every console user; signed in through a provider, nobody else is shown.
        users = (
            [
                {"name": n, "groups": sorted(g), "admin": f"console:{n}" in settings.admins}
                for n, g in settings.console_users.items()
            ]
            if self.console.auth.mode == "dev"
            else []
        )
        messages = await self.console.visible(who)
        router = self.console.ctx.router
        return {
            "mode": self.console.auth.mode,
            "csrf": csrf,
            "user": who.name,
            "me": {"name": who.name, "ref": who.ref, "groups": sorted(who.groups), "admin": who.admin},
            "channels": channels_for(settings, who),
            "dm": f"@{reader(who)}",  # their direct message with the bot
            "users": users,
            "workflows": [
                {"name": w.spec.name, "description": w.spec.description or ""}
                for w in router.services.workflows()
            ],
            # What each empty channel suggests: a run this person can see to its end on their own.
            "suggestions": {
                c: first_command(router, who, Place("console", c, None, f"#{c}"))
                for c in channels_for(settings, who)
            },
            "messages": [message_json(m) for m in messages],
        }

    async def hints(self, request: web.Request, who: Identity, csrf: str) -> dict[str, Any]:
        q = request.query
        where = await self.console.place(who, q.get("channel", ""))
        return {"hints": await hints(self.console.ctx.router, who, where, q.get("text", ""))}

    async def command(self, request: web.Request, who: Identity, csrf: str) -> dict[str, Any]:
        body = await _body(request)
        where = await self.console.place(who, _str(body, "channel"), _int(body, "thread", optional=True))
        text = _str(body, "text")
        if is_message(text):
            return await self.console.say(who, where, text)  # not a command: nothing typed is lost
        return await self.console.command(who, where, text)

    async def message(self, request: web.Request, who: Identity, csrf: str) -> dict[str, Any]:
        body = await _body(request)
        where = await self.console.place(who, _str(body, "channel"), _int(body, "thread", optional=True))
        return await self.console.say(who, where, _str(body, "text"))

    async def click(self, request: web.Request, who: Identity, csrf: str) -> dict[str, Any]:
        body = await _body(request)
        message_id = _int(body, "message_id")
        assert message_id is not None
        return await self.console.click(who, _str(body, "channel"), message_id, _str(body, "action_id"))

    async def submit(self, request: web.Request, who: Identity, csrf: str) -> dict[str, Any]:
        body = await _body(request)
        where = await self.console.place(who, _str(body, "channel"), _int(body, "thread", optional=True))
        values = body.get("values", {})
        if not isinstance(values, dict):
            raise BadInput("'values' must be an object of field name to text")
        form = _form(body.get("form"))
        texts = {str(k): "" if v is None else str(v) for k, v in values.items()}
        state = str(body.get("state") or "")
        return await self.console.submit(who, where, _str(body, "form_id"), state, texts, form)

    async def websocket(self, request: web.Request) -> web.StreamResponse:
        """Live updates for the signed-in person (session cookie and ``?csrf=``, so another site's page,
        which cannot read the token, cannot open one); the page reconnects when this closes."""
        try:
            session = await self.console.auth.require(request)
            if not session.csrf_ok(request.query.get("csrf")):
                raise NotPermitted("This websocket needs your session's token (?csrf=); reload the page.")
        except SwitchboardError as exc:
            return _error(STATUS.get(type(exc), 400), str(exc))
        who = session.who
        ws = web.WebSocketResponse(heartbeat=25.0)
        await ws.prepare(request)
        self.console.hub.join(ws, Reader(who, session.csrf, session.expires))
        try:
            await ws.send_json({"type": "hello", "user": who.name})
            async for msg in ws:
                if msg.type == WSMsgType.TEXT and msg.data == "ping":
                    await ws.send_str("pong")
        finally:
            self.console.hub.leave(ws)
        return ws

    def _api(self, call: Call, write: bool = False) -> Handler:
        """Signed in (and, to change anything, the CSRF token); JSON in, JSON out; user errors as
        ``{"error": ...}`` with a fitting status."""

        async def handle(request: web.Request) -> web.StreamResponse:
            try:
                session = await self.console.auth.require(request, write=write)
                if "user" in request.query:
                    raise BadInput(USER_FIELD)
                return web.json_response(await call(request, session.who, session.csrf))
            except SignInRequired as exc:
                body = {"error": str(exc), **self.console.auth.how_to_sign_in()}
                return web.json_response(body, status=401)
            except SwitchboardError as exc:
                return _error(STATUS.get(type(exc), 400), str(exc))
            except Exception:
                found = log_unexpected(log, "console: %s %s failed", request.method, request.path)
                return _error(500, found.message)

        return handle


def is_message(text: str) -> bool:
    """Whether typed text is a plain message: anything but a slash command; a ``// note`` is a message."""
    text = text.lstrip()
    return not text.startswith("/") or text.startswith(NOTE_PREFIX)


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def _body(request: web.Request) -> dict[str, Any]:
    body = await json_body(request)
    if "user" in body:
        raise BadInput(USER_FIELD)  # an old client that still names a user: say so rather than ignore it
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
