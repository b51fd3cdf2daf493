"""Compensation (saga): undo succeeded steps in reverse completion order, on failure, rollback or rewind."""

from __future__ import annotations

from engine.core_base import CoreBase
from engine.expressions import ExpressionError
from engine.params import render_params
from engine.signals import Notify, Rollback, StartStep, StepCompleted, StepFailed
from engine.state import RunStatus, StepState, StepStatus


class Saga:
    """Runs the ``compensate`` actions of a run, one at a time, newest first."""

    def __init__(self, core: CoreBase) -> None:
        self.core = core

    @property
    def active(self) -> bool:
        """Whether the run is compensating."""
        return self.core.state.status == RunStatus.COMPENSATING

    def rollback(self, sig: Rollback) -> None:
        """Start a rollback of a finished run, optionally only what finished after ``sig.to``."""
        st = self.core.state
        if not st.status.finished or self.active:
            self.core.emit("rollback_refused", None, by=sig.by, reason=f"the run is {st.status}")
            return
        if sig.to is not None:
            target = st.steps.get(sig.to)
            if target is None or target.status != StepStatus.SUCCEEDED:
                self.core.emit("rollback_refused", None, by=sig.by, reason=f"step '{sig.to}' did not succeed")
                return
        self.core.emit("rollback_requested", None, by=sig.by, to=sig.to)
        if not self.begin(sig.to):
            self.core.emit("rollback_refused", None, by=sig.by, reason="nothing to roll back")

    def begin(self, to: str | None) -> bool:
        """Enter the compensating state if anything needs undoing; False when nothing does."""
        st = self.core.state
        st.rollback_to = to or ""
        if not self._todo():
            return False
        st.status = RunStatus.COMPENSATING
        self.core.decision.run_changed = True
        self.core.emit("compensation_started", None, steps=[s.key for s in self._todo()])
        self._next()
        return True

    def resume(self) -> None:
        """After a restart: compensations found running start again."""
        for step in self.core.state.steps.values():
            if step.compensation == "running":
                step.compensation = None
        self._next()

    def finished(self, sig: StepCompleted | StepFailed) -> None:
        """Record one compensation's result and start the next."""
        step = self.core.state.steps.get(sig.key)
        if step is None or step.compensation != "running":
            return
        ok = isinstance(sig, StepCompleted)
        step.compensation = "succeeded" if ok else "failed"
        self.core.decision.dirty.add(step.key)
        if ok:
            self.core.emit("compensation_succeeded", step.key)
        else:
            assert isinstance(sig, StepFailed)
            self.core.emit("compensation_failed", step.key, error=sig.message, kind=sig.kind)
        self._next()

    def _todo(self) -> list[StepState]:
        st = self.core.state
        after = 0
        if st.rollback_to:
            after = st.steps[st.rollback_to].finish_seq
        spec = self.core.spec.steps
        todo = [
            s
            for s in st.steps.values()
            if s.index is None
            and s.status == StepStatus.SUCCEEDED
            and s.compensation in (None, "running")
            and spec[s.step_id].compensate is not None
            and s.finish_seq > after
        ]
        return sorted(todo, key=lambda s: s.finish_seq, reverse=True)

    def _next(self) -> None:
        core = self.core
        while todo := self._todo():
            step = todo[0]
            comp = core.spec.steps[step.step_id].compensate
            assert comp is not None
            step.compensation = "running"
            core.decision.dirty.add(step.key)
            try:
                params = render_params(comp, core.context(step))
            except (ExpressionError, ValueError) as exc:
                step.compensation = "failed"
                core.emit("compensation_failed", step.key, error=str(exc), kind="expression")
                continue
            if comp.kind == "notify":
                core.decision.effects.append(Notify(step.key, params["text"], params["channel"]))
                core.emit("notification", step.key, text=params["text"], channel=params["channel"])
                step.compensation = "succeeded"
                core.emit("compensation_succeeded", step.key)
                continue
            core.emit("compensation_step_started", step.key, kind=comp.kind)
            core.decision.effects.append(
                StartStep(
                    step.key,
                    step.step_id,
                    comp.kind,
                    step.attempt,
                    params,
                    comp.timeout,
                    compensation=True,
                    runs_on=tuple(comp.runs_on or ()),
                )
            )
            return
        failed = [s.key for s in core.state.steps.values() if s.compensation == "failed"]
        rewinding = core.state.rewind_to
        if failed:
            core.state.error = f"compensation failed for: {', '.join(failed)}"
            if rewinding:
                core.state.error += f"; the rewind to '{rewinding}' stopped there"
                core.state.rewind_to = None
            core.end_run(RunStatus.FAILED)
        elif rewinding:
            core.rewound()
        else:
            core.end_run(RunStatus.COMPENSATED)
