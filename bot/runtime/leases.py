"""Sharing runs between processes: resuming runs nobody works on, renewing leases, polling for handed work."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from bot.owners import is_dead

if TYPE_CHECKING:
    from bot.runtime.runtime import Runtime

log = logging.getLogger(__name__)


async def resume_all(rt: Runtime) -> list[str]:
    """Load every active run that no live process is working on."""
    dead = await _dead_owners(rt)
    resumed = []
    for run_id in await rt.store.runs_to_resume(rt.owner, rt.clock(), dead):
        if await rt.load(run_id, dead):
            resumed.append(run_id)
    return resumed


async def _dead_owners(rt: Runtime) -> list[str]:
    """Lease holders on this host whose process is gone (so a resume need not wait for expiry)."""
    return [owner for owner in await rt.store.lease_owners() if is_dead(owner, rt.owner)]


async def poll_loop(rt: Runtime) -> None:
    """A safety net for work other processes hand us: signals, and runs a dead process left."""
    ticks = 0
    while True:
        await asyncio.sleep(rt.settings.poll_interval)
        try:
            for run_id in await rt.store.runs_with_mail():
                await rt.wake(run_id)
            ticks += 1
            if ticks % 10 == 0:
                await rt.resume_all()
        except Exception:
            log.exception("polling for work failed; retrying")


async def lease_loop(rt: Runtime) -> None:
    """Renew the leases of the runs loaded here; stop working on any another process took."""
    while True:
        await asyncio.sleep(rt.settings.lease_seconds / 3)
        try:
            lost = await rt.store.renew(list(rt.live), rt.owner, rt.clock() + rt.settings.lease_seconds)
        except Exception:
            log.exception("renewing run leases failed; retrying")
            continue
        for run_id in lost:
            live = rt.live.get(run_id)
            if live is not None:
                log.error("lost the lease on run %s to another process; stopping work on it here", run_id)
                rt.metrics.leases_lost.inc()
                live.lost = True
                live.wake.set()
