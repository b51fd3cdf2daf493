"""One watcher per process for the remote jobs its runs wait on: one query a tick for all of them.

Each waiting step asks for the next change of its job (its status moved on, or its lease ran out);
the watcher reads every awaited job in one query per tick, so a hundred remote steps in flight cost
what one does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from bot.storage.runner_jobs import LEASED, Job, RunnerJobs

log = logging.getLogger(__name__)

TICK = 0.02  # seconds between reads while any job is awaited


class JobWatch:
    """Wakes each waiter when its job's status differs from the one it saw, or its lease lapsed."""

    def __init__(self, jobs: RunnerJobs, clock: Callable[[], float]) -> None:
        self.jobs = jobs
        self.clock = clock
        self._waiting: dict[str, list[tuple[str, asyncio.Future[Job]]]] = {}
        self._task: asyncio.Task[None] | None = None

    async def change(self, job: Job, timeout: float) -> Job | None:
        """The job once it changed, or None after ``timeout`` seconds without a change."""
        future: asyncio.Future[Job] = asyncio.get_running_loop().create_future()
        entry = (job.status, future)
        self._waiting.setdefault(job.id, []).append(entry)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._watch(), name="runner-job-watch")
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout)
        except TimeoutError:
            return None
        finally:
            waiters = self._waiting.get(job.id, [])
            with contextlib.suppress(ValueError):
                waiters.remove(entry)
            if not waiters:
                self._waiting.pop(job.id, None)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _watch(self) -> None:
        while self._waiting:
            try:
                found = {j.id: j for j in await self.jobs.get_many(list(self._waiting))}
            except Exception:
                log.warning("could not read runner jobs; trying again", exc_info=True)
                await asyncio.sleep(1.0)
                continue
            now = self.clock()
            for job_id, waiters in list(self._waiting.items()):
                job = found.get(job_id)
                if job is None:
                    continue
                lapsed = job.status == LEASED and (job.lease_until or 0) < now
                for seen, future in waiters:
                    if (job.status != seen or lapsed) and not future.done():
                        future.set_result(job)
            await asyncio.sleep(TICK)
