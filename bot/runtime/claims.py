"""Sharing the work: a process with capacity claims runs in batches, when told there is work.

Work is told, not polled for: on PostgreSQL the transaction that makes a run claimable notifies the
"work" topic of the bell (``storage/timer_bell.py``), and each process's poll loop runs a claim pass on
the next turn. Nudges that arrive meanwhile fold into one pass. A process drives at most
``SWITCHBOARD_MAX_RUNS`` runs: at capacity it claims nothing, and claims again when one of its runs parks
or ends, so the work spreads by load. A CLI client (a scope) claims only its own runs, one at a time.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from engine.expressions import render
from engine.inputs import InputError
from engine.spec import Workflow

if TYPE_CHECKING:
    from bot.runtime.runtime import Runtime

log = logging.getLogger(__name__)
CLAIM_BATCH = 8  # runs per claim statement: small, so processes told at once share a burst
PRUNE_AT = 10_000  # driver starts remembered per run: only those since a pass began matter to it


def room(rt: Runtime) -> int:
    """How many more runs this process may drive now (a CLI client has no limit: it drives its own)."""
    if rt.scope is not None:
        return 1 << 30
    return max(0, rt.settings.max_runs - len(rt.live))


def told(rt: Runtime, run_ids: list[str] | None) -> None:
    """The bell says these runs have mail or may be claimed (None or []: look at the table)."""
    rest = False
    for run_id in run_ids or ():
        live = rt.live.get(run_id)
        if live is not None:
            live.poke()
        else:
            rest = True
    if rest or not run_ids:
        want(rt)


def want(rt: Runtime) -> None:
    """Run a claim pass on the poll loop's next turn."""
    rt.work_waiting = True
    rt.nudge.set()


async def claim_pass(rt: Runtime, dead: list[str]) -> list[str]:
    """Claim runs with work nobody is doing, in batches, up to this process's capacity; returns those
    loaded here."""
    rt.work_waiting = False
    if rt.scope is not None and not rt.scope:
        return []
    loaded: list[str] = []
    while not rt.stopping:
        limit = min(CLAIM_BATCH, room(rt))
        if limit == 0:
            rt.work_waiting = True  # claimed again when one of ours parks or ends
            break
        now = rt.clock()
        until = now + rt.settings.lease_seconds
        only = None if rt.scope is None else list(rt.scope)
        since = rt.drivers_started  # a driver started after this may be missing from ``driving``
        if len(rt.driver_starts) > PRUNE_AT:
            rt.driver_starts = {k: v for k, v in rt.driver_starts.items() if v > since - PRUNE_AT}
        driving = list(rt.live)
        batch = await rt.store.claim_batch(rt.owner, now, until, dead, limit, driving, only)
        for claimed in batch:
            if await rt.adopt_claimed(claimed, since):
                loaded.append(claimed.run_id)
        if len(batch) < limit:
            break
    return loaded


def exclusion_group(spec: Workflow, inputs: dict[str, object]) -> str | None:
    """The run's exclusion group: ``exclusive:`` rendered with its inputs (None without one)."""
    if spec.exclusive is None:
        return None
    try:
        group = str(render(spec.exclusive, {"inputs": inputs})).strip()
    except ValueError as exc:
        raise InputError(spec.name, {"exclusive": str(exc)}) from exc
    if not group or len(group) > 200:
        raise InputError(spec.name, {"exclusive": f"must come to 1-200 characters, not {len(group)}"})
    return group
