"""Step programs a crash left behind: recorded as they start, killed or reported when their run is loaded.

On the host (and boot) that started them, orphans are killed and waited for before the run resumes, so
a step never runs twice at once. A program recorded by another host, or an earlier boot, cannot be seen
from here: its step is reported to the engine as interrupted elsewhere and follows its ``on_interrupt``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from bot.storage.journal import Batch
from engine.activities.base import StepCall
from engine.activities.processes import Orphan, Spawned, kill_orphan
from engine.signals import Interruption
from engine.state import RunState, StepStatus

if TYPE_CHECKING:
    from bot.runtime.runtime import Runtime

log = logging.getLogger(__name__)

KILL_WAIT = 30.0  # seconds an orphan killed with SIGKILL may take to go (a process in disk sleep)


def record_start(rt: Runtime, batch: Batch, run_id: str, step: str, attempt: int, compensation: bool) -> None:
    """Add the row of a ``run`` step about to start to the batch that stores its start."""
    batch.add(
        rt.processes.insert,
        {
            "run_id": run_id,
            "step": step,
            "attempt": attempt,
            "compensation": compensation,
            "boot_id": rt.boot_id,
            "host": rt.host,
            "started_at": rt.clock(),
        },
    )


async def record_spawn(rt: Runtime, call: StepCall, spawned: Spawned) -> None:
    """Store the started program's pid, group and start time (the activity waits for this)."""
    params = rt.processes.key(call.run_id, call.step_key, call.attempt, call.compensation)
    params.update(pid=spawned.pid, pgid=spawned.pgid, start_ticks=spawned.start_ticks)
    batch = Batch()
    batch.add(rt.processes.started, params)
    await rt.store.journal.write(batch)


async def settle(rt: Runtime, state: RunState) -> tuple[tuple[Interruption, ...], list[dict[str, Any]]]:
    """Kill this host's orphans of the run; return the steps interrupted elsewhere and the rows handled."""
    # A compensation in flight (a rollback's or a rewind's) leaves a program behind as a step does.
    if not any(s.status == StepStatus.RUNNING or s.compensation == "running" for s in state.steps.values()):
        return (), []
    interrupted: list[Interruption] = []
    handled: list[dict[str, Any]] = []
    for row in await rt.processes.for_run(state.run_id):
        handled.append(rt.processes.key(row.run_id, row.step, row.attempt, row.compensation))
        step = state.steps.get(row.step)
        current = (
            step is not None
            and step.status == StepStatus.RUNNING
            and step.attempt == row.attempt
            and not row.compensation
        )
        if not (row.boot_id and row.boot_id == rt.boot_id and row.host == rt.host):
            if current:
                interrupted.append(Interruption(row.step, row.host, row.started_at))
            continue
        orphan = Orphan(row.run_id, row.step, row.attempt, row.pid, row.pgid, row.start_ticks)
        if await kill_orphan(orphan, KILL_WAIT):
            continue
        log.error(
            "run %s: the interrupted program of step %s (group %s) did not die within %ss",
            row.run_id,
            row.step,
            row.pgid,
            KILL_WAIT,
        )
        if current:
            interrupted.append(Interruption(row.step, row.host, row.started_at, still_running=True))
    return tuple(interrupted), handled
