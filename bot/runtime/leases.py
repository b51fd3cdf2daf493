"""Sharing runs between processes: resuming runs nobody works on, renewing leases, waiting for work.

Work is claimed in batches (``claims.py``) when the bell says there is some, when a run of ours leaves
(capacity freed), and in a full pass every ``FULL_PASS_TICKS`` ticks (lapsed leases of other hosts).
Takeover of a dead process's runs on this host happens at once when its pidfd reports the exit, or at
the next listing of the holders (every ``HOLDER_TICK``) for a holder not watched yet; other hosts wait for
the lease to lapse.
A process that cannot renew its leases for most of a lease stops driving its runs (another process
may take them); when the database is back, the resume pass picks them up again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING

from bot.owners import is_dead
from bot.runtime.claims import claim_pass

if TYPE_CHECKING:
    from bot.runtime.runtime import Runtime

log = logging.getLogger(__name__)
FULL_PASS_TICKS = 10  # a full resume pass (lapsed leases, runs never picked up) every this many ticks
TICK = 1.0  # mail is looked for (without a bell), and the full pass counted, at least this often
# The lease holders are listed, and the local ones checked, this often. A holder the pidfd watch knows is
# taken over at once when it exits; one it does not know yet (it took its first lease since the last
# listing, and died) is found dead by the next listing. So this bounds a same-host takeover (with the
# claim's own time); a listing is one query on the indexed ``lease_owner``.
HOLDER_TICK = 0.2


async def resume_all(rt: Runtime, dead: list[str] | None = None) -> list[str]:
    """Claim every run with work that no live process is doing, batch by batch, up to capacity (a CLI
    client: only its own runs)."""
    if dead is None:
        dead = await _dead_owners(rt)
    return await claim_pass(rt, dead)


async def _dead_owners(rt: Runtime) -> list[str]:
    """Lease holders on this host whose process is gone (so a resume need not wait for expiry)."""
    owners = await rt.store.lease_owners()
    dead = [owner for owner in owners if is_dead(owner, rt.owner)]
    rt.watch.watch([o for o in owners if o not in dead])
    return dead


async def poll_loop(rt: Runtime) -> None:
    """Signals other processes left, dead local holders' runs (every ``HOLDER_TICK``), and a full resume
    pass."""
    ticks = 0
    interval = min(rt.settings.poll_interval, TICK)
    last_tick = time.monotonic()
    while True:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(rt.nudge.wait(), min(interval, HOLDER_TICK))
        rt.nudge.clear()
        try:
            tick = time.monotonic() - last_tick >= interval
            if tick:
                last_tick = time.monotonic()
                ticks += 1
            if tick and not rt.alarm.bell_listening:  # SQLite, or the bell reconnecting: mail is not told
                for run_id in await rt.store.runs_with_mail():
                    if rt.drives(run_id):
                        await rt.wake(run_id)
            full = (tick and ticks % FULL_PASS_TICKS == 0) or rt.reconnected
            if rt.scope is not None:
                if full or rt.work_waiting:
                    await claim_pass(rt, [])
                continue
            dead = await _dead_owners(rt)
            if full or rt.work_waiting or dead:
                rt.reconnected = False
                await claim_pass(rt, dead)
        except Exception as exc:
            log.warning("polling for work failed (%s); retrying", exc)


async def lease_loop(rt: Runtime) -> None:
    """Renew the leases of the runs loaded here; stop working on any another process took."""
    renewed = time.monotonic()
    while True:
        await asyncio.sleep(rt.settings.lease_seconds / 3)
        try:
            taken = await rt.store.renew(list(rt.live), rt.owner, rt.clock() + rt.settings.lease_seconds)
        except Exception as exc:
            if time.monotonic() - renewed > rt.settings.lease_seconds * 2 / 3:
                _let_go(rt, f"could not renew run leases for {time.monotonic() - renewed:.0f} s ({exc})")
            else:
                log.warning("renewing run leases failed (%s); retrying", exc)
            continue
        renewed = time.monotonic()
        for run_id in taken:
            live = rt.live.get(run_id)
            if live is not None:
                log.error("lost the lease on run %s to another process; stopping work on it here", run_id)
                rt.metrics.leases_lost.inc()
                live.lost = True
                live.wake.set()


def _let_go(rt: Runtime, why: str) -> None:
    """Stop driving every loaded run: our leases lapse before we could renew them."""
    if rt.live:
        log.error("%s; stopping work on %d run(s) until the database is back", why, len(rt.live))
    for live in list(rt.live.values()):
        live.lost = True
        live.wake.set()
    rt.reconnected = True  # the next successful poll tick resumes them (our leases are still ours)
