"""The decision core: ``Core(state).advance(signal, now)`` returns what to store and what to do.

No I/O and no clock: the time comes in as ``now`` and every effect goes out as data, so a run can be
replayed, tested and resumed from its stored state alone.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from engine.approval_flow import ApprovalFlow
from engine.checkpoints import REUSED
from engine.graph import downstream
from engine.interrupts import WAITING_ON as INTERRUPTED
from engine.interrupts import Interrupts
from engine.params import render_params
from engine.rewinding import Rewinding
from engine.run_finishing import RunFinishing
from engine.saga import Saga
from engine.scheduling import ACTIVITY_KINDS, Scheduling
from engine.signals import (
    ApprovalDecided,
    Cancel,
    Decision,
    Interruption,
    Resume,
    Retry,
    Rewind,
    Rollback,
    SetTimer,
    Signal,
    Start,
    StartStep,
    StepCompleted,
    StepFailed,
    StepLost,
    StepProgress,
    StepWaiting,
    TimerFired,
)
from engine.state import RunState, RunStatus, StepStatus
from engine.step_outcomes import PREVIEW_BYTES, StepOutcomes

__all__ = ["ACTIVITY_KINDS", "PREVIEW_BYTES", "Core"]


# Each concern lives in its own part; all share one CoreBase, which the approval flow and the saga
# also type against, so none of them imports this module back.
class Core(Scheduling, StepOutcomes, RunFinishing, Rewinding):
    """Decides what one run does next; it owns the run's state while the run is loaded."""

    def __init__(self, state: RunState) -> None:
        self.state = state
        self.spec = state.workflow
        self.dependents: dict[str, list[str]] = {sid: [] for sid in self.spec.steps}
        for sid, step in self.spec.steps.items():
            for need in step.needs:
                self.dependents[need].append(sid)
        self.queue: deque[str] = deque()  # activity keys ready to start, waiting for a slot
        self.running: set[str] = set()
        self.background = frozenset(sid for sid, s in self.spec.steps.items() if s.background)
        self.view: dict[str, dict[str, Any]] = {}
        for sid in self.spec.steps:
            self._refresh_view(sid)
        self.saga = Saga(self)
        self.approvals = ApprovalFlow(self)
        self.interrupts = Interrupts(self)
        self.has_revise = any(s.approval is not None and s.approval.revise for s in self.spec.steps.values())
        # Finished fan-out items per step, so each item's end costs O(1), not a scan of its siblings.
        self.items_done: dict[str, set[int]] = {}
        for item in state.steps.values():
            if item.index is not None and item.status.finished:
                self.items_done.setdefault(item.step_id, set()).add(item.index)
        self.event_count = 0
        self._d = Decision()
        self._now = 0.0

    # -- entry point -------------------------------------------------------------------------

    def advance(self, signal: Signal, now: float) -> Decision:
        """Apply one signal; return the events, changed steps and effects it causes."""
        self._d, self._now = Decision(), now
        match signal:
            case Start():
                self._start()
            case Resume():
                self._resume(signal)
            case StepCompleted(compensation=True) | StepFailed(compensation=True):
                self.saga.finished(signal)
            case StepCompleted():
                self._completed(signal)
            case StepFailed():
                self._failed(signal)
            case StepLost():
                self._lost(signal)
            case StepWaiting() | StepProgress():
                step = self.state.steps.get(signal.key)
                if step is not None and step.status == StepStatus.RUNNING and step.attempt == signal.attempt:
                    kind = "step_waiting" if isinstance(signal, StepWaiting) else "step_progress"
                    self.emit(kind, signal.key, text=signal.text, attempt=signal.attempt)
            case TimerFired():
                self._timer(signal)
            case ApprovalDecided():
                step = self.state.steps.get(signal.key)
                if step is not None and step.waiting_on == INTERRUPTED:
                    self.interrupts.decided(signal)
                else:
                    self.approvals.decided(signal)
            case Cancel():
                self.cancel(signal.by, signal.reason)
            case Rollback():
                self.saga.rollback(signal)
            case Retry():
                self._retry(signal.by)
            case Rewind():
                self.rewind(signal)
        self._pump()
        self._settle()
        self.seal()
        return self._d

    # -- signals -----------------------------------------------------------------------------

    def _start(self) -> None:
        st = self.state
        st.status = RunStatus.RUNNING
        self._d.run_changed = True
        self.emit("run_started", None, workflow=self.spec.name, inputs=st.inputs, started_by=st.started_by)
        for step in st.steps.values():  # a rerun: what it took over from the run it reruns
            if step.index is None and step.compensation == REUSED:
                self._d.dirty.add(step.key)
                self.emit("step_reused", step.key, run=st.meta.get("rerun_of"), outputs=step.outputs)
        if self.spec.timeout:
            self._d.effects.append(SetTimer("", "run_timeout", self._now + self.spec.timeout))
        self.schedule(list(self.spec.steps))

    def _resume(self, signal: Resume) -> None:
        st = self.state
        self.emit("run_resumed", None, status=str(st.status))
        elsewhere = {i.key: i for i in signal.interrupted}
        attached = set(signal.attached)
        for key, step in list(st.steps.items()):
            if step.status == StepStatus.RUNNING and key in attached:
                # Its job is queued, held by a live runner, or done on it: wait for that, never run it twice.
                spec = self.spec.steps[step.step_id]
                labels = tuple(spec.runs_on or ())
                timeout = spec.timeout or (spec.http.timeout if spec.http else None)
                self.running.add(key)
                self._d.effects.append(
                    StartStep(
                        key, step.step_id, spec.kind, step.attempt, {}, timeout, runs_on=labels, reattach=True
                    )
                )
            elif step.status == StepStatus.RUNNING and step.items is None:
                # At-least-once: a step in flight when the process died runs again, same idempotency
                # key, unless it ran where its program could not be stopped and on_interrupt says no.
                self.interrupts.resumed(step, elsewhere.get(key))
            elif step.status == StepStatus.PENDING and "[" in key:
                self.enqueue(key)
            elif step.status == StepStatus.WAITING and step.waiting_on == "child":
                # The child may not exist yet if the process died right after this step started.
                params = render_params(self.spec.steps[step.step_id], self.context(step))
                self._d.effects.append(StartStep(key, step.step_id, "workflow", step.attempt, params))
        if st.status == RunStatus.COMPENSATING:
            self.saga.resume()
            return
        if st.cancel_requested:
            self.cancel("resume", "")
        self.schedule(list(self.spec.steps))

    def _lost(self, signal: StepLost) -> None:
        step = self.state.steps.get(signal.key)
        if step is None or step.status != StepStatus.RUNNING or step.attempt != signal.attempt:
            return  # already finished or moved on: a late report of a lease lapse changes nothing
        self.running.discard(signal.key)
        self.interrupts.resumed(step, Interruption(signal.key, signal.host, signal.at))

    def _retry(self, by: str) -> None:
        st = self.state
        if st.status != RunStatus.FAILED:
            self.emit("retry_refused", None, by=by, reason=f"the run is {st.status}, not failed")
            return
        again = StepStatus.FAILED, StepStatus.SKIPPED, StepStatus.CANCELLED
        reset = [s for s in st.steps.values() if s.status in again and not s.tolerated]
        # A step that ran after one of them anyway (``trigger: all_done``, such as an announcement of the
        # rejection) runs again after them too, so it does not stand finished above steps still to come.
        after = {d for s in reset for d in downstream(self.spec.steps, s.step_id)}
        keys = {s.key for s in reset}
        reset += [
            s for s in st.steps.values() if s.step_id in after and s.status.finished and s.key not in keys
        ]
        for step in reset:
            self.reset(step)
        st.failed_step = st.error = st.outputs = None
        st.cancel_requested = False
        st.status = RunStatus.RUNNING
        self._d.run_changed = True
        self.emit("run_retried", None, by=by, steps=sorted(s.key for s in reset if s.index is None))
        self.schedule(list(self.spec.steps))
