"""The sign-in routes: ``/auth/session`` (am I signed in, and how to), ``/auth/dev`` (dev mode's picker),
``/auth/login`` and ``/auth/callback`` (an OpenID provider), and ``/auth/logout``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from markupsafe import escape

from bot.errors import BadInput, NotFound, NotPermitted, SwitchboardError, UpstreamUnavailable, log_unexpected
from bot.web_auth.auth import SignInRequired, WebAuth, json_body
from bot.web_auth.people import console_user, from_claims
from bot.web_auth.sessions import FLOW_COOKIE, SESSION_COOKIE

log = logging.getLogger(__name__)
FLOW_SECONDS = 600  # a sign-in at the provider must come back within this
STATUS: dict[type[SwitchboardError], int] = {
    SignInRequired: 401,
    NotPermitted: 403,
    NotFound: 404,
    UpstreamUnavailable: 503,
}
Route = Callable[[web.Request], Awaitable[web.StreamResponse]]


class SignInRoutes:
    """The ``/auth/*`` handlers of one ``WebAuth``."""

    def __init__(self, auth: WebAuth) -> None:
        self.auth = auth
        self.settings = auth.settings
        self.mode = auth.mode
        self.oidc = auth.oidc

    def attach(self, app: web.Application) -> None:
        app.router.add_get("/auth/session", self._json(self.describe))
        app.router.add_post("/auth/dev", self._json(self.dev_sign_in))
        app.router.add_post("/auth/logout", self._json(self.sign_out))
        app.router.add_get("/auth/login", self.oidc_begin)
        app.router.add_get("/auth/callback", self.oidc_callback)

    # -- signing in and out --------------------------------------------------------------------------

    async def describe(self, request: web.Request) -> web.Response:
        """Whether this browser is signed in, and how to sign in (a page asks before anything else)."""
        self.auth.check_origin(request)
        session = await self.auth.session(request)
        return web.json_response({"signed_in": session is not None, **self.auth.how_to_sign_in()})

    async def dev_sign_in(self, request: web.Request) -> web.Response:
        """Dev mode's user picker: become any configured console user (loopback only)."""
        if self.mode != "dev":
            raise NotFound(
                "The user picker is off: this console signs in with SWITCHBOARD_AUTH=oidc (/auth/login)."
            )
        self.auth.check_origin(request)
        body = await json_body(request)
        name = body.get("user")
        if not isinstance(name, str) or not name:
            raise BadInput("'user' is required (a console user's name).")
        who = console_user(self.settings, name)
        return await self.auth.start_session(request, who, web.json_response({"user": who.name}))

    async def sign_out(self, request: web.Request) -> web.Response:
        session = await self.auth.require(request, write=True)
        for listener in self.auth.on_sign_out:
            await listener(session)
        response = web.json_response({"signed_out": True})
        response.del_cookie(SESSION_COOKIE, path="/")
        return response

    async def oidc_begin(self, request: web.Request) -> web.StreamResponse:
        if self.oidc is None:
            return _page(404, "Sign-in with a provider is off: this console runs with SWITCHBOARD_AUTH=dev.")
        try:
            self.auth.check_origin(request)
            url, flow = await self.oidc.begin(self.auth.base_url(request) + "/auth/callback")
        except SwitchboardError as exc:
            return _page(_status(exc), str(exc))
        flow["exp"] = str(self.auth.clock() + FLOW_SECONDS)
        response = _redirect(url)
        response.set_cookie(
            FLOW_COOKIE,
            (await self.auth.signer()).sign("signin", flow),
            max_age=FLOW_SECONDS,
            path="/auth/",
            httponly=True,
            samesite="Lax",
            secure=self.auth.secure(request),
        )
        return response

    async def oidc_callback(self, request: web.Request) -> web.StreamResponse:
        if self.oidc is None:
            return _page(404, "Sign-in with a provider is off: this console runs with SWITCHBOARD_AUTH=dev.")
        try:
            flow = (await self.auth.signer()).unsign("signin", request.cookies.get(FLOW_COOKIE))
            if flow is None or float(flow.get("exp", 0)) < self.auth.clock():
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
            who = await from_claims(self.settings, claims, self.auth.directories)
        except SwitchboardError as exc:
            return _page(_status(exc), str(exc))
        except Exception:
            found = log_unexpected(log, "web sign-in failed")
            return _page(500, found.message)
        log.info("web sign-in: %s (%s)", who.ref, who.name)
        response = await self.auth.start_session(request, who, _redirect("/"))
        response.del_cookie(FLOW_COOKIE, path="/auth/")
        return response

    def _json(self, call: Route) -> Route:
        async def handle(request: web.Request) -> web.StreamResponse:
            try:
                return await call(request)
            except SwitchboardError as exc:
                return web.json_response({"error": str(exc)}, status=_status(exc))

        return handle


def _status(exc: SwitchboardError) -> int:
    for kind, status in STATUS.items():
        if isinstance(exc, kind):
            return status
    return 400


def _redirect(url: str) -> web.Response:
    return web.Response(status=302, headers={"Location": url})


def _page(status: int, message: str) -> web.Response:
    # The callback is a browser navigation, so it answers with a page, not JSON.
    back = '<p><a href="/">Back to Switchboard</a></p>'
    html = f"<!doctype html><title>Sign-in</title><p>{escape(message)}</p>{back}"
    return web.Response(status=status, text=html, content_type="text/html")
