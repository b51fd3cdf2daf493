"""The runner's side of the runner API: JSON over HTTP(S), with back-off while the server is away."""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any

import aiohttp

log = logging.getLogger(__name__)

BACKOFF_FIRST, BACKOFF_MAX = 0.25, 5.0  # seconds between attempts while the server is unreachable
SAY_EVERY = 30.0  # seconds between "still unreachable" lines
REQUEST_TIMEOUT = 15.0  # seconds for a call that does not long-poll


class Refused(Exception):
    """The server refused the runner for good (bad token, labels the token lacks): stop and say why."""


class Api:
    """Calls ``/api/v1/runner/...`` on one server with one token."""

    def __init__(self, url: str, token: str, session: aiohttp.ClientSession) -> None:
        self.base = url.rstrip("/") + "/api/v1/runner"
        self.headers = {"Authorization": f"Bearer {token}"}
        self.session = session
        self.away_since: float | None = None  # loop time the server became unreachable, while it is
        self.said_at = 0.0  # loop time of the last "still unreachable" line
        # At most this long between attempts: the agent lowers it to a third of the lease, so that a
        # server that comes back hears from this runner within the one lease it gives its jobs.
        self.backoff_max = BACKOFF_MAX

    async def call(self, path: str, body: dict[str, Any], wait: float = 0.0) -> tuple[int, dict[str, Any]]:
        """POST until the server answers; a 401 or 403 raises ``Refused``; other statuses are returned."""
        delay = BACKOFF_FIRST
        while True:
            try:
                timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT + wait)
                async with self.session.post(
                    self.base + path, json=body, headers=self.headers, timeout=timeout
                ) as reply:
                    data = await _json(reply)
                    if reply.status < 500:
                        self._back()
                        if reply.status in (401, 403):
                            raise Refused(f"the server refused this runner ({reply.status}): {_detail(data)}")
                        return reply.status, data
                    problem = f"it answered {reply.status}: {_detail(data)}"
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                problem = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            self._away(problem, delay)
            await asyncio.sleep(delay * (0.5 + random.random() / 2))
            delay = min(delay * 2, self.backoff_max)

    def _away(self, problem: str, delay: float) -> None:
        loop = asyncio.get_running_loop()
        if self.away_since is None:
            self.away_since = self.said_at = loop.time()
            log.warning("server %s is unreachable (%s); retrying with back-off", self.base, problem)
        elif loop.time() - self.said_at >= SAY_EVERY:
            self.said_at = loop.time()
            gone = loop.time() - self.away_since
            log.warning(
                "server still unreachable after %.0fs (%s); retrying every ~%.0fs", gone, problem, delay
            )

    def _back(self) -> None:
        if self.away_since is not None:
            log.warning("server %s is reachable again", self.base)
            self.away_since = None


async def _json(reply: aiohttp.ClientResponse) -> dict[str, Any]:
    try:
        data = await reply.json(content_type=None)
    except (ValueError, aiohttp.ContentTypeError):
        return {"detail": (await reply.text())[:300]}
    return data if isinstance(data, dict) else {"value": data}


def _detail(data: dict[str, Any]) -> str:
    return str(data.get("detail") or data.get("title") or data)[:500]
