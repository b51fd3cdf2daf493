"""Who is signed in at the web console, and the checks every request passes: Host and Origin, a valid
session, and the CSRF token on every state-changing request. The ``/auth/*`` routes are in ``routes``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.config import Settings
from bot.errors import BadInput, NotPermitted, SwitchboardError
from bot.identity import Identity
from bot.storage.web_secrets import stored_secret
from bot.web_auth.guard import check_request
from bot.web_auth.oidc import OidcClient
from bot.web_auth.people import Directory, console_user
from bot.web_auth.sessions import CSRF_HEADER, SESSION_COOKIE, Session, Signer

CHECKED_COOKIES = 4096  # decoded session cookies kept; then forgotten all at once


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
        self._checked: dict[str, Session] = {}  # session cookies whose signature was good, decoded
        self._lock = asyncio.Lock()
        # Called with a session as it signs out (the console closes that session's websockets).
        self.on_sign_out: list[Callable[[Session], Awaitable[None]]] = []

    def attach(self, app: web.Application) -> None:
        from bot.web_auth.routes import SignInRoutes  # it imports this module

        SignInRoutes(self).attach(app)

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
        cookie = request.cookies.get(SESSION_COOKIE)
        # A cookie checked once is the same bytes next time: its HMAC, base64 and JSON (most of a
        # console request's own work) are not done again. Expiry and groups are still read per request.
        session = self._checked.get(cookie) if cookie else None
        if session is None:
            data = (await self.signer()).unsign("session", cookie)
            if data is None:
                return None
            try:
                session = Session.from_dict(data)
            except (KeyError, TypeError, ValueError):
                return None
            if len(self._checked) >= CHECKED_COOKIES:
                self._checked.clear()
            assert cookie is not None
            self._checked[cookie] = session
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

    def how_to_sign_in(self) -> dict[str, Any]:
        """Dev mode: the user names to pick from; oidc mode: where the provider's sign-in starts."""
        if self.mode == "dev":
            return {"mode": "dev", "users": list(self.settings.console_users)}
        return {"mode": "oidc", "sign_in": "/auth/login"}

    # -- helpers -------------------------------------------------------------------------------------

    def base_url(self, request: web.Request) -> str:
        if self.settings.public_url:
            return self.settings.public_url.rstrip("/")
        return f"{request.scheme}://{request.host}"

    def secure(self, request: web.Request) -> bool:
        return request.secure or (self.settings.public_url or "").startswith("https://")

    async def start_session(
        self, request: web.Request, who: Identity, response: web.Response
    ) -> web.Response:
        """Sign ``who`` in: the session cookie goes on ``response``."""
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
