"""The runners page: every runner heard from in the last hour (as ``switchboard runners list`` shows them),
its labels, version and host, busy or idle, the jobs it runs now (each linked to its run) and when it was
last heard from; and the jobs waiting for a runner, running and lost."""

from __future__ import annotations

from dataclasses import dataclass

from bot.storage.runner_jobs import LEASED, LOST, QUEUED, Job
from handlers.services import Services

RECENT = 3600.0  # seconds: runners not heard from in this long are left out, as `runners list` does


@dataclass(frozen=True)
class RunnerLine:
    name: str
    labels: tuple[str, ...]
    version: str
    host: str
    state: str  # "offline", "busy 2/4" or "idle"
    connected: bool
    jobs: list[Job]  # leased to it now, oldest first
    last_seen: float


@dataclass(frozen=True)
class RunnersView:
    lines: list[RunnerLine]
    waiting: int
    running: int
    lost: int


async def load_runners(svc: Services, now: float) -> RunnersView:
    """The runners heard from in the last hour, most recent first, with the jobs they hold."""
    rt = svc.runtime
    rows = await rt.runners.list(now - RECENT)
    held: dict[str, list[Job]] = {}
    for job in await rt.jobs.leased():
        held.setdefault(job.runner_id or "", []).append(job)
    alive = now - rt.settings.runner_lease
    lines = [
        RunnerLine(
            r.name,
            r.labels,
            r.version,
            r.host,
            r.state(alive, len(held.get(r.id, []))),
            r.last_seen >= alive,
            held.get(r.id, []),
            r.last_seen,
        )
        for r in rows
    ]
    counts = await rt.jobs.counts()
    return RunnersView(lines, counts.get(QUEUED, 0), counts.get(LEASED, 0), counts.get(LOST, 0))
