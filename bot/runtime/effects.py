"""Acting on a stored batch's effects: running step activities and cancelling steps."""

from __future__ import annotations

import asyncio
import functools
import logging
import secrets as pysecrets
from typing import TYPE_CHECKING

from bot import log_context
from bot.runtime import remote
from bot.runtime.live import LiveRun
from engine.activities.base import StepCall, StepFailure
from engine.activities.registry import activity
from engine.durations import format_duration
from engine.signals import (
    CancelStep,
    Decision,
    Signal,
    StartStep,
    StepCompleted,
    StepFailed,
    StepLost,
)

if TYPE_CHECKING:
    from bot.runtime.runtime import Runtime

log = logging.getLogger(__name__)


def carry_out(rt: Runtime, live: LiveRun, d: Decision) -> None:
    """Start what the decision starts and stop what it cancels, now that it is stored."""
    for effect in d.effects:
        if isinstance(effect, StartStep):
            if effect.kind == "workflow":
                rt.children.start(live, effect)
            elif not rt.stopping:  # stopping: the step stays stored as started; resume runs it
                task = asyncio.create_task(_activity(rt, live, effect))
                live.tasks[effect.key] = task
                task.add_done_callback(functools.partial(_never_ran, rt, live, effect))
        elif isinstance(effect, CancelStep):
            _cancel_step(rt, live, effect.key)
        # A SetTimer or a RequestApproval's deadlines are rows stored with the batch; persist() armed the
        # alarm. A Notify needs nothing here: it is stored as a "notification" event, which the status cards
        # (runtime/status_cards.py) post in the same commit.


def _never_ran(rt: Runtime, live: LiveRun, effect: StartStep, task: asyncio.Task[None]) -> None:
    # A task cancelled before its first line runs never reports; report the cancel for it.
    if task.cancelled() and effect.key in live.cancelling and not rt.stopping:
        live.cancelling.discard(effect.key)
        live.tasks.pop(effect.key, None)
        live.push(StepFailed(effect.key, effect.attempt, "cancelled", "cancelled", {}, effect.compensation))


def _cancel_step(rt: Runtime, live: LiveRun, key: str) -> None:
    task = live.tasks.get(key)
    if task is not None:
        live.cancelling.add(key)
        task.cancel()
        return
    step = live.core.state.steps.get(key)
    if step is not None and step.waiting_on == "child":
        rt.spawn(rt.children.cancel(live, key))


async def _activity(rt: Runtime, live: LiveRun, effect: StartStep) -> None:
    state = live.core.state
    log_context.bind(step=effect.key)
    call = StepCall(
        run_id=state.run_id,
        step_key=effect.key,
        step_id=effect.step_id,
        attempt=effect.attempt,
        idempotency_key=f"{state.run_id}:{effect.key}" + (":compensate" if effect.compensation else ""),
        kind=effect.kind,
        params=effect.params,
        inputs=state.inputs,
        timeout=effect.timeout,
        compensation=effect.compensation,
    )
    signal: Signal
    try:
        if effect.runs_on:  # a runner does the work; waiting for it takes no slot of this process
            async with asyncio.timeout(effect.timeout):
                result = await remote.run_remote(rt, call, effect.runs_on, not effect.reattach)
        else:
            async with rt.slots:
                async with asyncio.timeout(effect.timeout):
                    result = await activity(effect.kind)(call, rt.activity)
        signal = StepCompleted(effect.key, effect.attempt, result, effect.compensation)
    except remote.RunnerLost as exc:
        if effect.compensation:  # no on_interrupt for a compensation: it fails, saying why
            signal = StepFailed(effect.key, effect.attempt, "action", remote.lost_compensation(exc), {}, True)
        else:
            signal = StepLost(effect.key, effect.attempt, f"runner {exc.runner}", exc.started)
    except StepFailure as exc:
        signal = StepFailed(
            effect.key, effect.attempt, exc.kind, exc.message, exc.result, effect.compensation
        )
    except TimeoutError:
        limit = format_duration(effect.timeout or 0)
        signal = StepFailed(
            effect.key, effect.attempt, "timeout", f"timed out after {limit}", {}, effect.compensation
        )
    except asyncio.CancelledError:
        if effect.key not in live.cancelling or rt.stopping:
            raise
        live.cancelling.discard(effect.key)
        signal = StepFailed(effect.key, effect.attempt, "cancelled", "cancelled", {}, effect.compensation)
    except Exception as exc:
        ref = pysecrets.token_hex(3)
        log.exception(
            "step %s of run %s failed unexpectedly (ref %s)",
            effect.key,
            state.run_id,
            ref,
            extra={"ref": ref},
        )
        signal = StepFailed(
            effect.key,
            effect.attempt,
            "action",
            f"something went wrong (ref {ref}): {type(exc).__name__}: {exc}",
            {},
            effect.compensation,
        )
    live.tasks.pop(effect.key, None)
    if (
        effect.kind == "run" and not effect.runs_on
    ):  # its program is gone: its row goes with the commit that stores this end
        live.ended.append(rt.processes.key(state.run_id, effect.key, effect.attempt, effect.compensation))
    live.push(signal)
