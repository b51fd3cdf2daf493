"""Firing a batch of claimed timers: each kind goes to whoever owns its deadline.

Run timers (waits, retry back-offs, run timeouts, approval timeouts) are marked fired and posted to their
runs' inboxes in one transaction, then their runs are woken. Escalation rungs are the approval store's,
and other kinds (a conversation's deadlines) go to the handler registered in ``Runtime.timer_kinds``; each
of those is marked fired in the transaction that acts on it. A timer whose firing fails stays claimed, and
is tried again when its claim lapses.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from bot.storage.timers import DueTimer, Kinds

if TYPE_CHECKING:
    from bot.runtime.runtime import Runtime

log = logging.getLogger(__name__)

TIMER_BATCH = 100
ESCALATE = "approval_escalate:"
# The engine's timers (SetTimer: wait, retry, run_timeout) and an approval's timeout, which its run applies.
RUN_KINDS = ("wait", "retry", "run_timeout", "approval_timeout", "approval_auto")


def kinds(rt: Runtime) -> Kinds:
    """What this process can fire: run timers, escalation rungs, and the kinds registered with it (of its
    own runs only, for a CLI client without --worker)."""
    scope = None if rt.scope is None else tuple(rt.scope)
    return Kinds((*RUN_KINDS, *rt.timer_kinds), (ESCALATE,), scope)


def run_kinds(rt: Runtime) -> Kinds:
    """The run timers among ``kinds``: fired at once, without a claim first (``fire_due_run_timers``)."""
    scope = None if rt.scope is None else tuple(rt.scope)
    return Kinds(RUN_KINDS, (), scope)


def other_kinds(rt: Runtime) -> Kinds:
    """The rest of ``kinds``: claimed in a batch, then fired each by its handler."""
    scope = None if rt.scope is None else tuple(rt.scope)
    return Kinds(tuple(k for k in rt.timer_kinds if k not in RUN_KINDS), (ESCALATE,), scope)


async def fire_run_timers_now(rt: Runtime, now: float) -> list[DueTimer]:
    """Fire a batch of due run timers (one transaction on the alarm's connection) and wake their runs."""
    won = await rt.store.fire_due_run_timers(rt.owner, now, TIMER_BATCH, run_kinds(rt), rt.alarm.engine)
    _woken(rt, won)
    return won


def _woken(rt: Runtime, won: list[DueTimer]) -> None:
    now = rt.clock()
    for timer in won:
        rt.metrics.timer_fired(timer.kind, timer.due_at, now)  # lateness: fired now, due at due_at
    for run_id in dict.fromkeys(t.run_id for t in won):
        rt.spawn(_wake(rt, run_id))


async def fire(rt: Runtime, due: list[DueTimer]) -> int:
    """Fire claimed timers; returns how many this process fired (a timer fired elsewhere first is skipped)."""
    fired = 0
    for_runs: list[DueTimer] = []
    for timer in due:
        handler = rt.timer_kinds.get(timer.kind)
        if timer.kind in RUN_KINDS or timer.ref is None:
            for_runs.append(timer)
            continue
        try:
            if handler is not None:
                won = await handler(timer.id, timer.ref)
            else:  # an escalation rung
                rung = int(timer.kind.rpartition(":")[2])
                won = await rt.approvals.escalate(timer.ref, rung, timer_id=timer.id) is not None
        except Exception:
            log.exception("timer %s (%s) failed; tried again when its claim lapses", timer.id, timer.kind)
            continue
        fired += won
        if won:
            rt.metrics.timer_fired(timer.kind, timer.due_at, rt.clock())
    if for_runs:
        won_here = await rt.store.fire_run_timers(for_runs, rt.clock(), rt.alarm.engine)
        fired += len(won_here)
        _woken(rt, won_here)
    return fired


async def _wake(rt: Runtime, run_id: str) -> None:
    # A burst of timers would otherwise load hundreds of runs at once and take every pooled connection,
    # the alarm's own next claim included.
    async with rt.alarm.loads:
        await rt.wake(run_id)
