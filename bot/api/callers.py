"""Who is calling the API: a machine token (``Authorization: Bearer sbt_...``) or a console web session.

A token acts as its identity within its scopes. A session acts as its person with every scope (they may
do in the API what they may do in chat), and a state-changing request must carry the session's CSRF
token, as the console's own requests do, so another site's page cannot act through the cookie.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.api.problems import MissingScope, Unauthenticated
from bot.config import Settings
from bot.identity import Identity, Place
from bot.storage.tokens import TokenStore
from bot.tokens import PLATFORM, SCOPES
from bot.web_auth.auth import WebAuth
from bot.web_auth.people import Directory
from bot.web_auth.sessions import SESSION_COOKIE

PLACE = Place("api", "api", channel_name="api")  # where an API call happens, for permissions and audits


@dataclass(frozen=True)
class Caller:
    """An authenticated caller: who, how (``token:NAME`` or ``session``), and what it may do."""

    who: Identity
    via: str
    scopes: frozenset[str]
    token_id: str = ""  # empty for a console session
    runner_labels: frozenset[str] = frozenset()

    def need(self, scope: str) -> None:
        """Refuse, naming the scope and the token, when the caller lacks ``scope``."""
        if scope not in SCOPES:
            raise ValueError(f"unknown scope {scope!r}")
        if scope not in self.scopes:
            raise MissingScope(
                f"This {self.via} lacks the {scope} scope ({SCOPES[scope]}); create a token with "
                f"`switchboard tokens create --scope {scope} ...`."
            )


class Callers:
    """Resolves a request to its caller, or raises ``Unauthenticated`` saying how to authenticate."""

    def __init__(
        self,
        settings: Settings,
        engine: AsyncEngine,
        clock: Callable[[], float],
        directories: Mapping[str, Directory],
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.tokens = TokenStore(engine)
        self.sessions = WebAuth(settings, engine, clock, directories)

    async def caller(self, request: web.Request, write: bool) -> Caller:
        """The caller of ``request``; ``write`` asks a session for its CSRF token too."""
        scheme, _, text = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and text.strip():
            found = await self.tokens.verify(text.strip(), self.clock())
            if found is None:
                raise Unauthenticated(
                    "That bearer token is not a live Switchboard token (unknown, revoked or mistyped); "
                    "`switchboard tokens list` shows them."
                )
            who = found.identity
            if f"{PLATFORM}:{who.user_id}" in self.settings.admins:
                who = replace(who, admin=True)
            return Caller(who, f"token {found.name!r}", found.scopes, found.token_id, found.runner_labels)
        if request.headers.get("Authorization"):
            raise Unauthenticated("Send the token as 'Authorization: Bearer sbt_...'.")
        if SESSION_COOKIE in request.cookies:
            session = await self.sessions.require(request, write=write)  # SignInRequired: 401 too
            return Caller(session.who, "session", frozenset(SCOPES))
        raise Unauthenticated(
            "This endpoint needs 'Authorization: Bearer <token>' (make one with `switchboard tokens create`) "
            "or a signed-in console session."
        )
