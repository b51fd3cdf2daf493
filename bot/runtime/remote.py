"""Steps with ``runs_on``: their job is queued with the step's start; the run's process waits for its end.

The process holding the run watches the job row: a result ends the step as a local one would, a lease
that lapsed (its runner stopped heart-beating) sends the step through its ``on_interrupt``, and a
cancel or timeout here asks the runner to stop the program (SIGTERM, then SIGKILL after the grace).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from bot.runtime import job_secrets
from bot.storage.journal import Batch
from bot.storage.runner_jobs import CANCELLED, DONE, LEASED, LOST, QUEUED, Job
from engine.activities.base import StepCall, StepFailure
from engine.signals import Interruption, StartStep, StepProgress, StepWaiting
from engine.state import RunState, StepStatus

if TYPE_CHECKING:
    from bot.runtime.runtime import Runtime
    from engine.activities.base import FailureKind

log = logging.getLogger(__name__)

PROGRESS_EVERY = 10.0  # seconds between two progress posts of one step's streamed output
PROGRESS_LINES = 8  # lines of output in one progress post
WAITING_NOTE_AFTER = 1.0  # a job queued this long with no runner for its labels is said to be waiting


class RunnerLost(Exception):
    """The runner holding the job stopped heart-beating: its lease lapsed."""

    def __init__(self, runner: str, started: float) -> None:
        super().__init__(f"runner {runner} stopped heart-beating")
        self.runner = runner
        self.started = started


def lost_compensation(exc: RunnerLost) -> str:
    """The error of a compensation whose runner stopped heart-beating."""
    return (
        f"interrupted: runner {exc.runner} stopped heart-beating while it ran the compensation (a "
        "compensation is not run again by itself; undo by hand what it had not)"
    )


def queue_job(rt: Runtime, batch: Batch, state: RunState, effect: StartStep) -> None:
    """Add the job of a remote step's attempt to the batch that stores its start (secrets as markers)."""
    nonce = job_secrets.new_nonce()
    row = rt.jobs.row(
        state.run_id,
        effect.key,
        effect.attempt,
        effect.compensation,
        effect.kind,
        effect.runs_on,
        job_secrets.hide(effect.params, state.secrets, nonce),
        effect.timeout,
        rt.clock(),
    )
    row["secret_nonce"] = nonce
    batch.add(rt.jobs.insert, row)
    rt.jobs.queued_here(row)
    told = rt.jobs.queued_notice()
    if told is not None:
        batch.add(told)


def waiting_text(labels: tuple[str, ...]) -> str:
    """What a status line says while no runner has the labels."""
    named = " and ".join(labels)
    return f"waiting for a runner labelled {named}"


async def run_remote(
    rt: Runtime, call: StepCall, labels: tuple[str, ...], fresh: bool = True
) -> dict[str, Any]:
    """Wait for the attempt's job to end on a runner; its result, or a ``StepFailure`` as a local run's.

    ``fresh``: its job was queued by this process in the commit that started the step (not reattached).
    """
    rt.jobs.bell.queued.ring()  # its start (and the job) is committed: this process's long-polls look now
    kept = rt.jobs.take_queued(call.run_id, call.step_key, call.attempt)
    job: Job | None
    read_at: int | None
    if kept is not None and fresh and not call.compensation:
        job, read_at = kept
    else:
        read_at = rt.job_watch.rung()
        job = await rt.jobs.find(call.run_id, call.step_key, call.attempt, call.compensation)
    if job is None:  # stored with the step's start: only a bug gets here
        raise StepFailure("action", f"the job of step {call.step_key} attempt {call.attempt} was not stored")
    said_waiting = False
    shown_at, shown = rt.clock(), ""  # the output tail last posted as progress
    try:
        while True:
            if job.status == DONE:
                await rt.jobs.consume(job.id)
                return _outcome(job)
            if job.status == LOST or (
                job.status == LEASED
                and (job.lease_until or 0) < rt.clock()
                and await rt.jobs.lapse(job.id, rt.clock())
            ):
                rt.metrics.runner_jobs_lost.inc()
                raise RunnerLost(job.runner_name or "?", job.taken_at or job.created_at)
            if job.status == CANCELLED:
                raise StepFailure("action", "its runner job was cancelled")
            if (
                job.status == QUEUED
                and not said_waiting
                and rt.clock() - job.created_at >= WAITING_NOTE_AFTER
            ):
                since = rt.clock() - rt.settings.runner_lease
                if not await rt.runners.any_with(frozenset(labels), since):
                    said_waiting = True
                    log.warning("run %s step %s: %s", call.run_id, call.step_key, waiting_text(labels))
                    live = rt.live.get(call.run_id)
                    if live is not None:
                        live.push(StepWaiting(call.step_key, call.attempt, waiting_text(labels)))
            if job.status == LEASED and rt.clock() - shown_at >= PROGRESS_EVERY:
                shown_at, shown = rt.clock(), await _progress(rt, call, job, shown)
            job = await rt.job_watch.change(job, WAITING_NOTE_AFTER, read_at) or job
            read_at = None  # from here on the job is the watch's own reading
    except asyncio.CancelledError:
        # A cancel, the step's timeout or this process stopping: tell the runner to stop the program.
        # Shielded, so the request is stored even though this task is being cancelled.
        if not rt.stopping:
            await asyncio.shield(rt.jobs.cancel(job.id, rt.clock()))
        raise


async def _progress(rt: Runtime, call: StepCall, job: Job, shown: str) -> str:
    """Post the newest streamed lines in the run's thread when they changed; return what is shown now."""
    fresh = await rt.jobs.get(job.id)
    output = (fresh.output if fresh else None) or ""
    tail = "\n".join(output.rstrip("\n").splitlines()[-PROGRESS_LINES:])
    if tail and tail != shown:
        live = rt.live.get(call.run_id)
        if live is not None:
            live.push(StepProgress(call.step_key, call.attempt, tail))
    return tail or shown


def _outcome(job: Job) -> dict[str, Any]:
    outcome = job.outcome or {}
    result = outcome.get("result") or {}
    if not isinstance(result, dict):
        result = {"value": result}
    if outcome.get("ok"):
        return result
    kind = _KINDS.get(str(outcome.get("kind")), "action")
    message = str(outcome.get("message") or "failed on the runner")
    raise StepFailure(kind, f"{message} (on runner {job.runner_name})", result)


_KINDS: dict[str, FailureKind] = {
    "timeout": "timeout",
    "command": "command",
    "http": "http",
    "connection": "connection",
    "action": "action",
    "llm": "llm",
    "unavailable": "unavailable",
}


async def reattach(rt: Runtime, state: RunState) -> tuple[tuple[Interruption, ...], tuple[str, ...]]:
    """For a run being loaded: remote steps whose job stands (wait for it) and those whose runner lapsed."""
    running = {k: s for k, s in state.steps.items() if s.status == StepStatus.RUNNING}
    if not running:
        return (), ()
    lost: list[Interruption] = []
    attached: list[str] = []
    now = rt.clock()
    for job in await rt.jobs.for_run(state.run_id):
        step = running.get(job.step)
        if step is None or step.attempt != job.attempt or job.compensation:
            continue
        if job.status == LEASED and (job.lease_until or 0) < now:
            # The lease ran out while no process watched it (the server was down, and the runner's
            # heartbeats failed with it): its runner gets one more lease to say it is still there.
            await rt.jobs.renew(str(job.runner_id), [job.id], now, rt.settings.runner_lease, sweep=False)
        if job.status == LOST:
            rt.metrics.runner_jobs_lost.inc()
            lost.append(Interruption(job.step, f"runner {job.runner_name}", job.taken_at or job.created_at))
        elif job.status in (QUEUED, LEASED, DONE):
            attached.append(job.step)
    return tuple(lost), tuple(attached)
