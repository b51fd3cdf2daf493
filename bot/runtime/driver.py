"""The task that drives a loaded run: read its inbox, apply signals in batches, store each, then act on it."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from bot import log_context
from bot.approvals.deadlines import AUTO_APPROVE
from bot.runtime.commit import persist
from bot.runtime.effects import carry_out
from bot.runtime.live import LiveRun, merge
from bot.storage.journal import LeaseLost
from engine.signals import (
    ApprovalDecided,
    Cancel,
    Decision,
    Retry,
    Rewind,
    Rollback,
    Signal,
    StartStep,
    StepCompleted,
    StepFailed,
    TimerFired,
)
from engine.state import RunStatus

if TYPE_CHECKING:
    from bot.approvals.store import ApprovalStore
    from bot.runtime.runtime import Runtime

log = logging.getLogger(__name__)


async def drive(rt: Runtime, live: LiveRun) -> None:
    """Apply the run's signals until it parks, finishes or is lost; then leave the live set."""
    run_id = live.run_id
    log_context.bind(run_id=run_id)  # this task's lines, and its steps' tasks', carry the run's id
    try:
        while not live.lost:
            await live.wake.wait()
            live.wake.clear()
            if live.mail:
                live.mail = False
                await _read_inbox(rt, live)
            signals = live.take()
            if not signals and not live.consumed:
                if live.parked:
                    break
                continue
            decision = Decision()
            for signal in signals:
                merge(decision, live.core.advance(signal, rt.clock()))
            state = live.core.state
            done = state.status.finished
            park = done or (
                not live.tasks
                and not _starts_work(decision)
                and not live.signals
                and state.status == RunStatus.WAITING
            )
            # A step finished here, or the run parked: it is not what crashed a process before.
            progress = park or any(isinstance(s, StepCompleted | StepFailed) for s in signals)
            await persist(rt, live, decision, release=park, progress=progress)
            carry_out(rt, live, decision)
            if park:
                # Mail that arrived while storing is read by a fresh load below, here or in the process
                # that claimed the run meanwhile: that one may have moved it on already, so the state in
                # memory here must not be driven again.
                break
    except LeaseLost:
        # Another process holds the lease now (it may be driving the run): stop here, storing nothing.
        log.warning("run %s: its lease is held elsewhere now; stopping work on it here", run_id)
        rt.metrics.leases_lost.inc()
        live.lost = True
    except Exception as exc:
        # A database that went away is no fault of the run's; anything else counts as a crash of it.
        crashed = not isinstance(exc, sa.exc.DBAPIError | OSError)
        log.exception("run %s stopped unexpectedly; it will be resumed", run_id)
        try:
            await rt.store.release(run_id, rt.owner, crashed=crashed)
        except Exception:
            log.warning("run %s: could not release its lease (it lapses by itself)", run_id)
    finally:
        for task in live.tasks.values():
            task.cancel()
        rt.live.pop(run_id, None)
        if rt.work_waiting:
            rt.nudge.set()  # room again: claim what was waiting
    try:
        if not live.lost and not rt.stopping and await rt.store.inbox_for(run_id):
            await rt.load(run_id)  # a signal slipped in while the lease was being released
    except (sa.exc.DBAPIError, OSError):
        log.warning("run %s: the database is unreachable; it is resumed when it is back", run_id)


async def _read_inbox(rt: Runtime, live: LiveRun) -> None:
    mail, live.mailed = live.mailed, None
    if mail is None:
        mail = await rt.store.inbox_for(live.run_id, live.inbox_seen)
    for inbox_id, kind, payload in mail:
        live.inbox_seen = max(live.inbox_seen, inbox_id)
        live.consumed.append(inbox_id)
        signal = await inbox_signal(rt.approvals, live.run_id, kind, payload)
        if signal is not None:
            live.signals.append(signal)


async def inbox_signal(approvals: ApprovalStore, run_id: str, kind: str, p: dict[str, Any]) -> Signal | None:
    """The engine signal for one inbox row (None, logged, for a kind this version does not know)."""
    if kind == "cancel":
        return Cancel(p.get("by", "?"), p.get("reason", ""))
    if kind == "retry":
        return Retry(p.get("by", "?"))
    if kind == "rollback":
        return Rollback(p.get("by", "?"), p.get("to"))
    if kind == "rewind":
        return Rewind(p.get("by", "?"), str(p.get("to", "")))
    if kind == "approval":
        return ApprovalDecided(p["key"], p["outcome"], p.get("outputs", {}), p.get("reason", ""))
    if kind == "child":
        if p["status"] == "succeeded":
            return StepCompleted(p["key"], p["attempt"], p.get("outputs") or {})
        return StepFailed(p["key"], p["attempt"], "child", p.get("error") or f"sub-workflow {p['status']}")
    if kind == "timer":
        if p["kind"] == "approval_timeout":
            return await approvals.expire(p["ref"])
        if p["kind"] == AUTO_APPROVE:
            return await approvals.auto_approve(p["ref"])
        return TimerFired(p["key"], p["kind"])
    log.warning("run %s: ignoring unknown inbox signal %r", run_id, kind)
    return None


def _starts_work(d: Decision) -> bool:
    return any(isinstance(e, StartStep) for e in d.effects)
