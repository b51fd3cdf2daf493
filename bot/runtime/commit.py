"""Storing a batch of a run's decisions in one commit: steps, events, timers, approvals, children, run row."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.runtime.claims import exclusion_group
from bot.runtime.live import LiveRun
from bot.runtime.orphans import record_start
from bot.runtime.queue_cards import draw_queue
from bot.runtime.remote import queue_job
from bot.storage.journal import Batch
from engine.signals import Decision, RequestApproval, SetTimer, StartStep
from engine.state import RunStatus

if TYPE_CHECKING:
    from bot.runtime.runtime import Runtime


async def persist(rt: Runtime, live: LiveRun, d: Decision, release: bool, progress: bool = False) -> None:
    """Commit the decision (giving up the lease when ``release``), then publish it and do the follow-ups.

    With ``progress`` (a step finished, or the run parks), earlier crashes of the run are forgiven.
    The commit checks the run's lease in its own transaction: ``LeaseLost`` when another process took
    it (or it was released meanwhile), and then nothing was stored and nothing must be carried out.
    """
    store, state, now = rt.store, live.core.state, rt.clock()
    batch = Batch(held=[state.run_id])  # stored only while this process holds the run's lease
    batch.add(store.upsert_step, [store.step_row(state.run_id, state.steps[k]) for k in sorted(d.dirty)])
    batch.add(rt.processes.delete, live.ending)  # before this batch records new programs
    live.ending = []
    rows = []
    for event in d.events:
        live.seq += 1
        rows.append(
            {
                "run_id": state.run_id,
                "seq": live.seq,
                "type": event.type,
                "step_key": event.key,
                "data": event.data,
                "at": now,
            }
        )
    batch.add(store.insert_event, rows)
    for effect in d.effects:
        if isinstance(effect, SetTimer):
            batch.add_timer(
                store.insert_timer,
                {
                    "run_id": state.run_id,
                    "step_key": effect.key,
                    "kind": effect.kind,
                    "due_at": effect.due_at,
                },
            )
        elif isinstance(effect, RequestApproval):
            parent = await rt.approvals.parent_of(state.run_id, effect) if effect.request > 1 else None
            rt.approvals.add_request(batch, state, effect, now, parent)
            live.had_approvals = True
        elif isinstance(effect, StartStep) and effect.kind == "workflow":
            await rt.children.prepare(batch, live, effect)
        elif isinstance(effect, StartStep) and effect.runs_on:
            if not effect.reattach:
                queue_job(rt, batch, state, effect)
        elif isinstance(effect, StartStep) and effect.kind == "run":
            record_start(rt, batch, state.run_id, effect.key, effect.attempt, effect.compensation)
    if state.status.finished:
        batch.add(rt.processes.delete_run, {"_run_id": state.run_id})
    parent = state.meta.get("parent_run_id")
    if release and state.status.finished and state.workflow.exclusive is not None:
        batch.work.append(state.run_id)  # its exclusion group is free: the next run in it may be claimed
    if state.status.finished and parent:
        batch.work.append(parent)
        batch.add(
            store.insert_inbox,
            {
                "run_id": parent,
                "kind": "child",
                "created_at": now,
                "payload": {
                    "key": state.meta["parent_step"],
                    "attempt": state.meta.get("parent_attempt", 1),
                    "status": str(state.status),
                    "outputs": state.outputs,
                    "error": state.error,
                },
            },
        )
    for observer in rt.observers:
        observer(batch, state, rows, now)  # e.g. chat status cards, committed with the state change
    if d.run_changed or release:
        # Most steps change only step rows and events; the run's row waits for a run-level change.
        owner, until = (None, None) if release else (rt.owner, now + rt.settings.lease_seconds)
        batch.add(store.update_run, store.run_update(state, now, owner, until))
    if progress and live.attempts:
        batch.add(store.forgive_crashes, {"_id": state.run_id})
        live.attempts = 0
    batch.add(store.consume_inbox, [{"_id": i, "at": now} for i in live.consumed])
    live.consumed = []
    await store.journal.write(batch)
    if batch.earliest_timer is not None:
        rt.alarm.arm(batch.earliest_timer)  # waits, retries, run timeouts, approval timeouts and rungs
    if rows:
        rt.hub.publish(state.run_id, rows)
        for hook in rt.after_commit:
            hook()
    if release and state.status.finished and state.workflow.exclusive is not None:
        rt.spawn(draw_queue(rt, exclusion_group(state.workflow, state.inputs) or ""))  # the others move up
    if state.status.finished and parent:
        rt.spawn(rt.wake(parent))
    if state.status.finished and state.status != RunStatus.SUCCEEDED and live.had_approvals:
        # Only a run that did not succeed can end with a request still open (its step was cancelled).
        rt.spawn(rt.approvals.close_for_run(state.run_id, str(state.status)))
