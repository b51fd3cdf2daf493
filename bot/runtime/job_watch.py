"""One watcher per process for the remote jobs its runs wait on: one query a look for all of them.

Each waiting step asks for the next change of its job (its status moved on, or its lease ran out). The
watcher looks when told to: a job ended (the job bell rings, in this process or by NOTIFY from another),
a step started waiting on a job that may have changed since it was read, or the earliest lease it
watches runs out; else every ``job_bell.FALLBACK`` seconds, should a wake-up be lost. Each look reads
every awaited job in one query, so a hundred remote steps in flight cost what one does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable

from bot.storage.job_bell import FALLBACK
from bot.storage.runner_jobs import LEASED, Job, RunnerJobs

log = logging.getLogger(__name__)

LAPSE_MARGIN = 0.005  # seconds past a lease's end before looking: it has then surely run out


class JobWatch:
    """Wakes each waiter when its job's status differs from the one it saw, or its lease lapsed."""

    def __init__(self, jobs: RunnerJobs, clock: Callable[[], float]) -> None:
        self.jobs = jobs
        self.clock = clock
        self.looks = 0  # reads of the table (for tests and the bench)
        self._waiting: dict[str, list[tuple[str, asyncio.Future[Job]]]] = {}
        self._wake = asyncio.Event()
        # job -> (rung() when the last look that read it began, the status it read)
        self._read_at: dict[str, tuple[int, str]] = {}
        self._task: asyncio.Task[None] | None = None
        self._next_at = 0.0  # when the watch looks next without being told (clock time)

    def rung(self) -> int:
        """How often the bell rang for jobs that ended: read it before reading a job for ``change``."""
        return self.jobs.bell.ended.rung

    async def change(self, job: Job, timeout: float, since: int | None = None) -> Job | None:
        """The job once it changed, or None after ``timeout`` seconds without a change.

        ``since``: ``rung()`` before the caller read ``job`` (a job this watch handed out needs none).
        Should a job have ended since, or that is unknown, the watch looks once now.
        """
        future: asyncio.Future[Job] = asyncio.get_running_loop().create_future()
        entry = (job.status, future)
        self._waiting.setdefault(job.id, []).append(entry)
        read_at, status = (since, job.status) if since is not None else self._read_at.get(job.id, (None, ""))
        lapses_first = job.status == LEASED and (job.lease_until or 0) < self._next_at
        if read_at != self.rung() or status != job.status or lapses_first:
            self._wake.set()
        if self._task is None or self._task.done():
            # Its first look waits like the others: the caller's reading is fresh unless told otherwise.
            self._next_at = self._due([job], self.clock())
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
        with self.jobs.bell.ended.listen(self._wake):
            while self._waiting:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(max(self._next_at - self.clock(), 0.0)):
                        await self._wake.wait()
                self._wake.clear()  # before the read: a ring during it makes the next look come at once
                rung = self.rung()
                try:
                    found = {j.id: j for j in await self.jobs.get_many(list(self._waiting))}
                except Exception:
                    log.warning("could not read runner jobs; trying again", exc_info=True)
                    self._next_at = self.clock() + 1.0
                    continue
                self.looks += 1
                self._read_at = {job_id: (rung, job.status) for job_id, job in found.items()}
                now = self.clock()
                self._resolve(found, now)
                self._next_at = self._due(found.values(), now)

    def _resolve(self, found: dict[str, Job], now: float) -> None:
        """Wake the waiters whose job changed."""
        for job_id, waiters in list(self._waiting.items()):
            job = found.get(job_id)
            if job is None:
                continue
            lapsed = _lapsed(job, now)
            for seen, future in waiters:
                if (job.status != seen or lapsed) and not future.done():
                    future.set_result(job)

    @staticmethod
    def _due(jobs: Iterable[Job], now: float) -> float:
        """When to look without being told: the earliest lease to run out, at most ``FALLBACK`` away."""
        due = now + FALLBACK
        for job in jobs:
            if job.status == LEASED and not _lapsed(job, now):
                due = min(due, (job.lease_until or now) + LAPSE_MARGIN)
        return due


def _lapsed(job: Job, now: float) -> bool:
    return job.status == LEASED and (job.lease_until or 0) < now
