"""The alarm clock: APScheduler 3 in memory wakes the runtime when a stored timer falls due.

Deadlines live in the ``timers`` table. APScheduler only holds the wake-ups of the next
``horizon`` seconds, rebuilt from the table at start and topped up periodically, so 10,000 waiting
runs cost rows rather than jobs, and a deadline that passed while the process was down fires at start.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    from bot.runtime.runtime import Runtime

log = logging.getLogger(__name__)


class AlarmClock:
    """Schedules a call to ``runtime.fire_due()`` at each timer's due time."""

    def __init__(self, runtime: Runtime, horizon: float) -> None:
        self.runtime = runtime
        self.horizon = horizon
        self.scheduler: AsyncIOScheduler | None = None

    async def start(self) -> None:
        """Start APScheduler, arm what is due soon, and refresh the window every half horizon."""
        from apscheduler.schedulers.asyncio import AsyncIOScheduler

        self.scheduler = AsyncIOScheduler(timezone=UTC)
        self.scheduler.start()
        self.scheduler.add_job(
            self._refresh, "interval", seconds=self.horizon / 2, id="refresh", coalesce=True, max_instances=1
        )
        await self._refresh()

    def stop(self) -> None:
        """Stop ringing (stored timers stay stored)."""
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.shutdown(wait=False)

    def arm(self, due_at: float) -> None:
        """Ring at ``due_at`` (epoch seconds) if that falls within the horizon."""
        if self.scheduler is None or not self.scheduler.running:
            return
        now = time.time()
        if due_at > now + self.horizon:
            return  # the periodic refresh will arm it when it comes closer
        moment = datetime.fromtimestamp(max(due_at, now), tz=UTC)
        self.scheduler.add_job(
            self._ring,
            "date",
            run_date=moment,
            id=f"due-{due_at:.3f}",
            replace_existing=True,
            misfire_grace_time=None,
            coalesce=True,
        )

    async def _refresh(self) -> None:
        try:
            for _timer_id, due, _kind, _ref in await self.runtime.store.timers_due_before(
                time.time() + self.horizon
            ):
                self.arm(due)
        except Exception:
            log.exception("could not read timers; will retry at the next refresh")

    async def _ring(self) -> None:
        try:
            await self.runtime.fire_due()
        except asyncio.CancelledError:
            return  # the process is stopping; the timer stays stored and fires at the next start
        except Exception:
            log.exception("firing due timers failed; will retry at the next refresh")
