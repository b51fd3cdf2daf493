"""Steps a crash interrupted: run again, fail, or ask people first, by the step's ``on_interrupt``.

A step found running when its run is resumed was interrupted. When the runtime killed what was left of
it (same host), it runs again. When its program ran where this process cannot see it (another host),
``on_interrupt`` decides: ``rerun`` (the default, at least once), ``fail``, or ``ask``, which posts an
approval and runs it again or fails it on the answer.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from engine.core_base import CoreBase
from engine.signals import ApprovalDecided, Interruption, RequestApproval
from engine.state import StepState, StepStatus

WAITING_ON = "interrupt"  # step.waiting_on while the question is open


def clock_text(at: float, now: float) -> str:
    """``14:02 UTC`` for a time today, ``2 Dec 14:02 UTC`` for another day."""
    when, today = datetime.fromtimestamp(at, UTC), datetime.fromtimestamp(now, UTC)
    return when.strftime("%H:%M UTC" if when.date() == today.date() else "%-d %b %H:%M UTC")


def interruption_text(data: dict[str, Any]) -> str:
    """What a ``step_interrupted`` event says happened, after the step's name."""
    where = f" on {data['host']}" if data.get("host") else ""
    head = "was interrupted by a crash" + where
    if data.get("started"):
        head += f" (it started at {data['started']})"
    action = data.get("action", "rerun")
    if action == "fail":
        return f"{head}; not run again (on_interrupt: fail)"
    if action == "ask":
        return f"{head}; asking whether to run it again"
    if action == "stuck":
        return f"{head}; its program could not be stopped, so it is not run again"
    return f"{head}; running it again (attempt {int(data.get('attempt', 0)) + 1})"


class Interrupts:
    """Applies ``on_interrupt`` to the steps a resume finds running, and the answers to its questions."""

    def __init__(self, core: CoreBase) -> None:
        self.core = core

    def resumed(self, step: StepState, elsewhere: Interruption | None) -> None:
        """Handle one step found running: queue it again, fail it, or ask."""
        core = self.core
        spec = core.spec.steps[step.step_id]
        action = "rerun"
        data: dict[str, Any] = {"attempt": step.attempt}
        if elsewhere is not None:
            action = "stuck" if elsewhere.still_running else spec.on_interrupt
            data.update(host=elsewhere.host, started=clock_text(elsewhere.at, core.now))
        data["action"] = action
        core.emit("step_interrupted", step.key, **data)
        if action == "rerun":
            step.status = StepStatus.PENDING
            core.decision.dirty.add(step.key)
            core.enqueue(step.key)
        elif action in ("fail", "stuck"):
            core.fail(step, "interrupted", interruption_text(data), {})
        else:
            self._ask(step, spec.name or step.key, data)

    def _ask(self, step: StepState, label: str, data: dict[str, Any]) -> None:
        core = self.core
        step.status, step.waiting_on = StepStatus.WAITING, WAITING_ON
        core.decision.dirty.add(step.key)
        title = f"{label} was interrupted by a crash (it started at {data['started']}); run it again?"
        description = (
            f"Attempt {step.attempt} was running on {data['host']} when that process stopped, so it may "
            "have done some of its work, or all of it. Approve to run it again; reject to fail the step."
        )
        context = {"Step": step.key, "Host": str(data["host"]), "Attempt": str(step.attempt)}
        # No approvers, self-approval allowed: whoever may see the run may answer, its starter too.
        core.decision.effects.append(
            RequestApproval(
                step.key, title, description, context, [], 1, True, None, "reject", request=step.attempt
            )
        )
        core.emit("approval_requested", step.key, title=title, approvers=[], required=1, request=step.attempt)

    def decided(self, sig: ApprovalDecided) -> None:
        """Run the step again when approved; fail it otherwise."""
        core = self.core
        step = core.state.steps.get(sig.key)
        if step is None or step.status != StepStatus.WAITING or step.waiting_on != WAITING_ON:
            return
        step.waiting_on = None
        core.emit("approval_decided", step.key, outcome=sig.outcome, reason=sig.reason)
        if sig.outcome == "approved":
            step.status = StepStatus.PENDING
            core.decision.dirty.add(step.key)
            core.enqueue(step.key)
            return
        core.fail(
            step, "interrupted", f"interrupted by a crash and not run again: {sig.reason or sig.outcome}", {}
        )
