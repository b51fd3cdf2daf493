"""The alarm clock: one task per process, asleep until the earliest stored timer falls due.

Deadlines live in the ``timers`` table (``storage/timers.py``). The alarm reads when the next one falls due
(or when a claim on one lapses), sleeps until then, claims what is due in batches and fires it through
``Runtime.claim_and_fire``. A timer stored in this process wakes it at once if it is earlier (``arm``); on
PostgreSQL the transaction that stored it notifies every process's bell (LISTEN/NOTIFY), and on SQLite
``arm`` wakes the other runtimes of this process on the same file. There is no periodic refresh: the alarm
sleeps exactly as long as the table says.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncEngine

from bot.runtime.firing import kinds
from bot.storage.database import companion
from bot.storage.timer_bell import TimerBell
from bot.storage.timers import next_due_at, release_claims

if TYPE_CHECKING:
    from bot.runtime.runtime import Runtime

log = logging.getLogger(__name__)

# The runtimes of this process, by SQLite database: a timer one stores wakes the others (no bell on SQLite).
_NEIGHBOURS: dict[str, set[AlarmClock]] = {}
MAX_BACKOFF = 30.0
BUSY_PAUSE = 0.01  # a due timer another process is claiming right now: look again in a moment
LOADS = 16  # runs loaded at once because their timers fired (leaves pooled connections for the rest)


class AlarmClock:
    """Rings ``runtime.claim_and_fire()`` at the earliest stored timer; ``arm(due_at)`` after storing one."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.next_at: float | None = None  # when it will look next (None: no timer pending)
        self.fired = 0  # timers this alarm has fired
        self.asked = asyncio.Lock()  # held by Runtime.fire_due while it waits for a pass
        self._busy = True  # looking at the table now: every arm() makes it look again
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.loads = asyncio.Semaphore(LOADS)
        self._bell: TimerBell | None = None
        self._key = runtime.store.engine.url.render_as_string(hide_password=False)
        # The alarm's claims, firings and looks at the table go through this engine: on PostgreSQL one
        # connection of its own (from ``start``), so they never queue for the shared pool behind a burst
        # of runs' commits (a pass that waited there made every timer due meanwhile late by as long).
        self.engine: AsyncEngine = runtime.store.engine

    @property
    def running(self) -> bool:
        """Whether the alarm's task runs (started and not stopped)."""
        return self._task is not None and not self._task.done()

    @property
    def _is_postgres(self) -> bool:
        return self.runtime.store.engine.dialect.name == "postgresql"

    async def start(self) -> None:
        """Listen for other processes' timers (PostgreSQL), then start ringing (due timers fire at once)."""
        if self._is_postgres:
            rt = self.runtime
            self._bell = TimerBell(
                rt.store.engine, self._heard, rt.owner, work=rt.work_told, jobs=rt.jobs.bell.heard
            )
            await self._bell.start()
            self.engine = companion(rt.store.engine, 1) or rt.store.engine
        else:
            _NEIGHBOURS.setdefault(self._key, set()).add(self)
        self._task = asyncio.create_task(self._loop(), name="alarm")

    async def stop(self, release: bool = True) -> None:
        """Stop ringing; with ``release``, give up claims on timers not fired yet, so others fire them now."""
        _NEIGHBOURS.get(self._key, set()).discard(self)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._bell is not None:
            await self._bell.stop()
            self._bell = None
        if release:
            try:
                await release_claims(self.engine, self.runtime.owner)
            except Exception:
                log.warning("could not release timer claims; they lapse after the lease", exc_info=True)
        if self.engine is not self.runtime.store.engine:
            await self.engine.dispose()
            self.engine = self.runtime.store.engine

    def arm(self, due_at: float) -> None:
        """A timer due at ``due_at`` was stored (committed): ring by then. Other processes heard of it at
        commit (PostgreSQL); the other runtimes of this process on the same SQLite file hear of it here."""
        self._heard(due_at)
        for other in _NEIGHBOURS.get(self._key, ()):
            if other is not self:
                other._heard(due_at)

    @property
    def bell_listening(self) -> bool:
        """Whether other processes' notifications reach this one (PostgreSQL, connected)."""
        return self._bell is not None and self._bell.listening

    def wake(self) -> None:
        """Look at the table now (for a clock that jumps, as a test's fake clock does)."""
        self._wake.set()

    async def settled(self) -> None:
        """Return once the alarm has looked at the table since the last wake and sleeps again."""
        while self.running and (self._wake.is_set() or not self._idle.is_set()):
            await asyncio.sleep(0.005)

    def _heard(self, due_at: float | None) -> None:
        if due_at is None or self._busy or self.next_at is None or due_at < self.next_at:
            self._wake.set()

    async def _loop(self) -> None:
        failures = 0
        while True:
            self._wake.clear()
            self._idle.clear()
            self._busy = True
            try:
                self.fired += await self.runtime.claim_and_fire()
                now = self.runtime.clock()
                self.next_at = await next_due_at(self.engine, now, kinds(self.runtime))
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception:
                failures += 1
                log.exception("firing due timers failed; trying again")
                self.next_at = self.runtime.clock() + min(MAX_BACKOFF, 0.5 * 2**failures)
            self._busy = False
            delay = None if self.next_at is None else self.next_at - self.runtime.clock()
            if delay is not None and delay <= 0:
                delay = BUSY_PAUSE
            self._idle.set()
            try:
                async with asyncio.timeout(delay):
                    await self._wake.wait()
            except TimeoutError:
                pass
