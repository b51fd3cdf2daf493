"""Run finishing: cancelling, the run's status after each signal, and its final outputs."""

from __future__ import annotations

from typing import Any

from engine.core_base import CoreBase
from engine.expressions import render
from engine.masking import mask
from engine.saga import Saga
from engine.state import RunStatus, StepStatus
from engine.text_caps import run_outputs_problem, run_outputs_within_cap


class RunFinishing(CoreBase):
    """Settles the run's status and ends it (or hands it to the saga) once nothing is left to do."""

    saga: Saga

    def cancel(self, by: str, reason: str) -> None:
        """Ask the run to stop: cancel what is running and what is waiting."""
        st = self.state
        if st.status.finished:
            return
        if not st.cancel_requested:
            st.cancel_requested = True
            self._d.run_changed = True
            self.emit("run_cancel_requested", None, by=by, reason=reason)
        self._cancel_running(reason or f"cancelled by {by}")

    def _settle(self) -> None:
        """Work out the run's status once the signal's consequences are applied."""
        st = self.state
        if st.status.finished or self.saga.active:
            return
        if self.running or self.queue:
            new = RunStatus.RUNNING
        elif any(s.status == StepStatus.WAITING for s in st.steps.values()):
            new = RunStatus.WAITING
        else:
            self._finish_run()
            return
        if new != st.status:
            st.status = new
            self._d.run_changed = True

    def _finish_run(self) -> None:
        st = self.state
        if st.cancel_requested and st.failed_step is None:
            self.end_run(RunStatus.CANCELLED)
        elif st.failed_step is not None:
            if self.spec.on_failure == "compensate" and self.saga.begin(None):
                return
            self.end_run(RunStatus.FAILED)
        else:
            try:
                st.outputs = self._workflow_outputs()
            except ValueError as exc:
                st.error = str(exc)
                self.end_run(RunStatus.FAILED)
                return
            self.end_run(RunStatus.SUCCEEDED)

    def _workflow_outputs(self) -> dict[str, Any]:
        if not self.spec.outputs:
            every = {sid: v["outputs"] for sid, v in self.view.items() if v["status"] == "succeeded"}
            return run_outputs_within_cap(every)
        ctx = self.context()
        declared = {
            name: mask(render(expr, ctx), self.state.secrets.values())
            for name, expr in self.spec.outputs.items()
        }
        problem = run_outputs_problem(declared)
        if problem is not None:
            raise ValueError(problem)
        return declared
