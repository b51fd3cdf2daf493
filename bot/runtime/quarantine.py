"""Quarantine: a run that crashed its process too many times in a row fails instead of loading again.

A takeover from a dead or lapsed holder counts one load attempt (storage/leases.py); progress forgives
them. At ``SWITCHBOARD_CRASH_ATTEMPTS`` the run fails here, in one commit with its steps, its timeline,
its chat cards and its parent's inbox, as any other failure would be stored.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from bot.storage.journal import Batch
from engine.state import RunState, RunStatus, StepStatus

if TYPE_CHECKING:
    from bot.runtime.runtime import Runtime

log = logging.getLogger(__name__)


def crashed_too_often(rt: Runtime, attempts: int, status: str) -> bool:
    """Whether a run about to be loaded has crashed its process too many times in a row."""
    return attempts >= rt.settings.crash_attempts and not RunStatus(status).finished


async def quarantine(rt: Runtime, state: RunState, attempts: int, seq: int) -> None:
    """Fail ``state``'s run (we hold its lease) with the reason, instead of driving it."""
    store, now = rt.store, rt.clock()
    running = [s for s in state.steps.values() if s.status == StepStatus.RUNNING]
    where = f" while running {', '.join(s.key for s in running)}" if running else ""
    reason = (
        f"quarantined: the process driving this run stopped {attempts} times in a row{where} "
        f"(SWITCHBOARD_CRASH_ATTEMPTS={rt.settings.crash_attempts}); fix the cause, then retry the run"
    )
    for step in running:
        step.status, step.error, step.error_kind, step.finished_at = StepStatus.FAILED, reason, "crash", now
    state.status, state.error = RunStatus.FAILED, reason
    state.failed_step = running[0].key if running else state.failed_step
    data = {"status": str(state.status), "error": reason, "outputs": state.outputs, "quarantined": True}
    rows = [
        {
            "run_id": state.run_id,
            "seq": seq + 1,
            "type": "run_finished",
            "step_key": None,
            "data": data,
            "at": now,
        }
    ]
    batch = Batch()
    batch.add(store.upsert_step, [store.step_row(state.run_id, s) for s in running])
    batch.add(store.insert_event, rows)
    parent = state.meta.get("parent_run_id")
    if parent:
        payload = {
            "key": state.meta["parent_step"],
            "attempt": state.meta.get("parent_attempt", 1),
            "status": str(state.status),
            "outputs": state.outputs,
            "error": reason,
        }
        batch.add(
            store.insert_inbox, {"run_id": parent, "kind": "child", "created_at": now, "payload": payload}
        )
        batch.work.append(parent)
    for observer in rt.observers:
        observer(batch, state, rows, now)  # the status card shows the failure
    batch.add(store.update_run, store.run_update(state, now, None, None))
    batch.add(store.forgive_crashes, {"_id": state.run_id})  # a retry, once fixed, gets every attempt
    await store.journal.write(batch)
    log.error("run %s: %s", state.run_id, reason)
    rt.hub.publish(state.run_id, rows)
    for hook in rt.after_commit:
        hook()
    await rt.approvals.close_for_run(state.run_id, str(state.status))
    if parent:
        rt.spawn(rt.wake(parent))
