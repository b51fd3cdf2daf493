"""``ApiRoutes``: serves the route table on the process's web app, with the health, document and docs
endpoints, and a problem for every other path under ``/api/v1``."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from bot.api import docs_page, openapi
from bot.api.callers import Callers
from bot.api.context import ApiContext
from bot.api.models import Health
from bot.api.routing import Call, Route, fallback, serve
from bot.api.table import PREFIX, routes

VERSION = "1.0.0"


class SystemEndpoints:
    def __init__(self, ctx: ApiContext) -> None:
        self.ctx = ctx
        self.table: list[Route] = []
        self._doc: dict[str, Any] | None = None

    def document(self) -> dict[str, Any]:
        if self._doc is None:
            self._doc = openapi.document(self.table, VERSION)
        return self._doc

    async def health(self, call: Call) -> Health:
        return Health.model_validate(self.ctx.health())

    async def openapi(self, call: Call) -> web.StreamResponse:
        return web.json_response(self.document())

    async def docs(self, call: Call) -> web.StreamResponse:
        return web.Response(text=docs_page.render(self.document()), content_type="text/html")


class ApiRoutes:
    """The REST API of one process."""

    def __init__(self, ctx: ApiContext, callers: Callers) -> None:
        self.system = SystemEndpoints(ctx)
        self.table = self.system.table = routes(ctx, self.system)
        self.callers = callers

    def attach(self, app: web.Application) -> None:
        for route in self.table:
            app.router.add_route(route.method, route.path, serve(route, self.callers))
        app.router.add_route("*", f"{PREFIX}/{{tail:.*}}", fallback(self.table))
