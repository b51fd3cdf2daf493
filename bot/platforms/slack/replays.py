"""A signed Slack request is executed once: a replay of the same signature and timestamp is acked and ignored.

Bolt checks a signature and that its timestamp is within 5 minutes, but nothing stops the same signed
bytes arriving again inside that window (a proxy resending, or someone who captured one): each copy
would start a run. This global middleware runs after Bolt's own verification, so only genuine requests
are marked, and marks the pair on receipt (``SET NX`` in Redis, or an insert that only one process can
win), so of five copies arriving at once one goes on. Event deliveries are deduplicated by ``event_id``
as well (``messages.py``), which catches Slack's own retries whatever their headers. Socket Mode
payloads carry no signature and pass untouched.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from slack_bolt.middleware.async_middleware import AsyncMiddleware
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse

from bot.storage.dedupe import Dedupe

log = logging.getLogger(__name__)


class OnceOnly(AsyncMiddleware):
    """Lets a signed request through the first time its signature and timestamp are seen."""

    def __init__(self, seen: Dedupe, clock: Callable[[], float]) -> None:
        self.seen = seen
        self.clock = clock

    async def async_process(
        self,
        *,
        req: AsyncBoltRequest,
        resp: BoltResponse,
        next: Callable[[], Awaitable[BoltResponse]],  # Bolt passes it by this name
    ) -> BoltResponse | None:
        signature = _header(req, "x-slack-signature")
        stamp = _header(req, "x-slack-request-timestamp")
        if signature and stamp and not await self.seen.first(f"slack:{stamp}:{signature}", self.clock()):
            log.warning(
                "Slack: a request already handled arrived again (timestamp %s, same signature); "
                "acknowledged and ignored",
                stamp,
            )
            return BoltResponse(status=200, body="")  # a 200, so that Slack does not send it again
        return await next()


def _header(req: AsyncBoltRequest, name: str) -> str:
    values = req.headers.get(name) or ()
    return str(values[0]) if values else ""
