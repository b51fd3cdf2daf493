"""Sign-in for the web console: who is signed in, the routes that sign people in and out, and the checks
every request passes (Host and Origin, a valid session, the CSRF token on every state-changing request).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web
from markupsafe import escape
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.config import Settings
from bot.errors import BadInput, NotFound, NotPermitted, SwitchboardError, log_unexpected
from bot.identity import Identity
from bot.storage.web_secrets import stored_secret
from bot.web_auth.guard import check_request
from bot.web_auth.oidc import OidcClient
from bot.web_auth.people import Directory, console_user, from_claims
from bot.web_auth.sessions import CSRF_HEADER, FLOW_COOKIE, SESSION_COOKIE, Session, Signer

log = logging.getLogger(__name__)
FLOW_SECONDS = 600  # a sign-in at the provider must come back within this


class SignInRequired(SwitchboardError):
    """No valid session: the page signs in (dev: the picker; oidc: the provider) and tries again."""


class WebAuth:
    """Sessions for one server; ``directories`` map a platform's user id to its identity and groups."""

    def __init__(
        self,
        settings: Settings,
        engine: AsyncEngine,
        clock: Callable[[], float],
        directories: Mapping[str, Directory],
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.clock = clock
        self.directories = directories
        self.mode = settings.auth
        self.oidc = OidcClient(settings) if self.mode == "oidc" else None
        self._signer: Signer | None = None
        self._lock = asyncio.Lock()

    def attach(self, app: web.Application) -> None:
        app.router.add_get("/auth/session", self._json(self.describe))
        app.router.add_post("/auth/dev", self._json(self.dev_sign_in))
        app.router.add_post("/auth/logout", self._json(self.sign_out))
        app.router.add_get("/auth/login", self.oidc_begin)
        app.router.add_get("/auth/callback", self.oidc_callback)

    # -- every request -------------------------------------------------------------------------------

    def check_origin(self, request: web.Request) -> None:
        """Host and Origin must name this console (``NotPermitted`` otherwise)."""
        check_request(self.settings, request.host, request.headers.get("Origin"))

    async def require(self, request: web.Request, write: bool = False) -> Session:
        """The signed-in session; with ``write``, the request must carry the session's CSRF token too."""
        self.check_origin(request)
        session = await self.session(request)
        if session is None:
            raise SignInRequired(self.sign_in_hint())
        if write and not session.csrf_ok(request.headers.get(CSRF_HEADER)):
            raise NotPermitted(
                f"This request has no valid {CSRF_HEADER} header for your session; reload the page."
            )
        return session

    async def session(self, request: web.Request) -> Session | None:
        data = (await self.signer()).unsign("session", request.cookies.get(SESSION_COOKIE))
        if data is None:
            return None
        try:
            session = Session.from_dict(data)
        except (KeyError, TypeError, ValueError):
            return None
        if session.expires < self.clock() or session.mode != self.mode:
            return None
        if session.who.platform == "console":
            # Groups and admin come from the settings as they are now, not as they were at sign-in.
            try:
                who = console_user(self.settings, session.who.user_id)
            except BadInput:
                return None
            session = Session(who, session.csrf, session.expires, session.mode)
        return session

    def sign_in_hint(self) -> str:
        if self.mode == "dev":
            return "Not signed in: pick a user (POST /auth/dev)."
        return "Not signed in: sign in at /auth/login."

    async def signer(self) -> Signer:
        if self._signer is None:
            async with self._lock:
                if self._signer is None:
                    secret = self.settings.session_secret
                    value = (
                        secret.get_secret_value()
                        if secret
                        else await stored_secret(self.engine, "session", self.clock())
                    )
                    self._signer = Signer(value.encode())
        return self._signer

    # -- signing in and out --------------------------------------------------------------------------

    async def describe(self, request: web.Request) -> web.Response:
        """Whether this browser is signed in, and how to sign in (a page asks before anything else)."""
        self.check_origin(request)
        session = await self.session(request)
        return web.json_response({"signed_in": session is not None, **self.how_to_sign_in()})

    def how_to_sign_in(self) -> dict[str, Any]:
        """Dev mode: the user names to pick from; oidc mode: where the provider's sign-in starts."""
        if self.mode == "dev":
            return {"mode": "dev", "users": list(self.settings.console_users)}
        return {"mode": "oidc", "sign_in": "/auth/login"}

    async def dev_sign_in(self, request: web.Request) -> web.Response:
        """Dev mode's user picker: become any configured console user (loopback only)."""
        if self.mode != "dev":
            raise NotFound(
                "The user picker is off: this console signs in with SWITCHBOARD_AUTH=oidc (/auth/login)."
            )
        self.check_origin(request)
        body = await json_body(request)
        name = body.get("user")
        if not isinstance(name, str) or not name:
            raise BadInput("'user' is required (a console user's name).")
        who = console_user(self.settings, name)
        return await self._signed_in(request, who, web.json_response({"user": who.name}))

    async def sign_out(self, request: web.Request) -> web.Response:
        await self.require(request, write=True)
        response = web.json_response({"signed_out": True})
        response.del_cookie(SESSION_COOKIE, path="/")
        return response

    async def oidc_begin(self, request: web.Request) -> web.StreamResponse:
        if self.oidc is None:
            return _page(404, "Sign-in with a provider is off: this console runs with SWITCHBOARD_AUTH=dev.")
        try:
            self.check_origin(request)
            url, flow = await self.oidc.begin(self.base_url(request) + "/auth/callback")
        except SwitchboardError as exc:
            return _page(_status(exc), str(exc))
        flow["exp"] = str(self.clock() + FLOW_SECONDS)
        response = _redirect(url)
        response.set_cookie(
            FLOW_COOKIE,
            (await self.signer()).sign("signin", flow),
            max_age=FLOW_SECONDS,
            path="/auth/",
            httponly=True,
            samesite="Lax",
            secure=self.secure(request),
        )
        return response

    async def oidc_callback(self, request: web.Request) -> web.StreamResponse:
        if self.oidc is None:
            return _page(404, "Sign-in with a provider is off: this console runs with SWITCHBOARD_AUTH=dev.")
        try:
            flow = (await self.signer()).unsign("signin", request.cookies.get(FLOW_COOKIE))
            if flow is None or float(flow.get("exp", 0)) < self.clock():
                raise NotPermitted(
                    "This sign-in was not started here, or it took too long. Start again at /auth/login."
                )
            if "error" in request.query:
                raise NotPermitted(
                    "The provider refused the sign-in: "
                    f"{request.query.get('error_description') or request.query['error']}."
                )
            if request.query.get("state") != flow["state"]:
                raise NotPermitted(
                    "The sign-in's state does not match (a forged or replayed callback). "
                    "Start again at /auth/login."
                )
            code = request.query.get("code")
            if not code:
                raise BadInput("The provider sent no authorization code.")
            claims = await self.oidc.finish(flow, code)
            who = await from_claims(self.settings, claims, self.directories)
        except SwitchboardError as exc:
            return _page(_status(exc), str(exc))
        except Exception:
            found = log_unexpected(log, "web sign-in failed")
            return _page(500, found.message)
        log.info("web sign-in: %s (%s)", who.ref, who.name)
        response = await self._signed_in(request, who, _redirect("/"))
        response.del_cookie(FLOW_COOKIE, path="/auth/")
        return response

    # -- helpers -------------------------------------------------------------------------------------

    def base_url(self, request: web.Request) -> str:
        if self.settings.public_url:
            return self.settings.public_url.rstrip("/")
        return f"{request.scheme}://{request.host}"

    def secure(self, request: web.Request) -> bool:
        return request.secure or (self.settings.public_url or "").startswith("https://")

    async def _signed_in(self, request: web.Request, who: Identity, response: web.Response) -> web.Response:
        session = Session.new(who, self.clock(), self.settings.session_hours, self.mode)
        value = (await self.signer()).sign("session", session.to_dict())
        response.set_cookie(
            SESSION_COOKIE,
            value,
            max_age=int(self.settings.session_hours * 3600),
            path="/",
            httponly=True,
            samesite="Lax",
            secure=self.secure(request),
        )
        return response

    def _json(self, call: Callable[[web.Request], Any]) -> Callable[[web.Request], Any]:
        async def handle(request: web.Request) -> web.StreamResponse:
            try:
                response: web.StreamResponse = await call(request)
                return response
            except SwitchboardError as exc:
                return web.json_response({"error": str(exc)}, status=_status(exc))

        return handle


def _status(exc: SwitchboardError) -> int:
    for kind, status in STATUS.items():
        if isinstance(exc, kind):
            return status
    return 400


STATUS: dict[type[SwitchboardError], int] = {SignInRequired: 401, NotPermitted: 403, NotFound: 404}


def _redirect(url: str) -> web.Response:
    return web.Response(status=302, headers={"Location": url})


def _page(status: int, message: str) -> web.Response:
    # The callback is a browser navigation, so it answers with a page, not JSON.
    back = '<p><a href="/">Back to Switchboard</a></p>'
    html = f"<!doctype html><title>Sign-in</title><p>{escape(message)}</p>{back}"
    return web.Response(status=status, text=html, content_type="text/html")


async def json_body(request: web.Request) -> dict[str, Any]:
    """A request's JSON object; other content types are refused (a cross-site form cannot send JSON)."""
    if request.content_type != "application/json":
        raise BadInput("Send the request as JSON (Content-Type: application/json).")
    try:
        body = await request.json()
    except ValueError as exc:
        raise BadInput(f"The request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BadInput("The request body must be a JSON object.")
    return body
