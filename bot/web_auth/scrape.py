"""``GET /metrics``: the Prometheus exposition of this process, for a scraper with a token or an allowed
address.

A scraper shows a Bearer token (``SWITCHBOARD_METRICS_TOKEN``, or a machine token with ``runs:read``) or
connects from an address in ``SWITCHBOARD_METRICS_ALLOW``. The address is the TCP peer's: a proxy in front
is that peer, so behind one use a token. The database's figures are read at each scrape.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.config import Settings
from bot.metrics import Metrics
from bot.storage.gauges import read_figures
from bot.storage.tokens import TokenStore

SCOPE = "runs:read"


class MetricsEndpoint:
    """The ``/metrics`` handler of one process."""

    def __init__(
        self, settings: Settings, engine: AsyncEngine, metrics: Metrics, clock: Callable[[], float]
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.metrics = metrics
        self.clock = clock
        self.tokens = TokenStore(engine)
        self.allowed = [ipaddress.ip_network(entry, strict=False) for entry in settings.metrics_allow]

    def attach(self, app: web.Application) -> None:
        app.router.add_get("/metrics", self.scrape)

    async def scrape(self, request: web.Request) -> web.Response:
        refusal = await self.refusal(request)
        if refusal is not None:
            return refusal
        self.metrics.snapshot.figures = await read_figures(self.engine, self.clock())
        body = generate_latest(self.metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def refusal(self, request: web.Request) -> web.Response | None:
        """None when the scraper may read; else the 401 or 403 saying why and what would do."""
        scheme, _, text = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and text.strip():
            return await self._token(text.strip())
        if self._from_allowed(request.remote):
            return None
        return _refuse(
            403,
            f"/metrics does not answer {request.remote or 'this address'}: send "
            "'Authorization: Bearer <token>' (SWITCHBOARD_METRICS_TOKEN, or a machine token with "
            f"{SCOPE}), or add the address to SWITCHBOARD_METRICS_ALLOW.",
        )

    async def _token(self, text: str) -> web.Response | None:
        own = self.settings.metrics_token
        if own is not None and hmac.compare_digest(text.encode(), own.get_secret_value().encode()):
            return None
        found = await self.tokens.verify(text, self.clock())
        if found is None:
            return _refuse(401, "That token is not SWITCHBOARD_METRICS_TOKEN nor a live machine token.")
        if not found.allows(SCOPE):
            return _refuse(403, f"Token {found.name!r} lacks the {SCOPE} scope that /metrics needs.")
        return None

    def _from_allowed(self, remote: str | None) -> bool:
        if remote is None:
            return False
        try:
            address = ipaddress.ip_address(remote)
        except ValueError:
            return False
        return any(address in network for network in self.allowed)


def _refuse(status: int, message: str) -> web.Response:
    headers = {"WWW-Authenticate": 'Bearer realm="switchboard-metrics"'} if status == 401 else {}
    return web.Response(status=status, text=message + "\n", headers=headers)
