"""Rewind: take a finished run back to a checkpoint (or a step) and go on from there.

The steps that finished after the target are compensated, newest first, by the saga (the run is
``compensating`` meanwhile, with ``rewind_to`` stored, so a crash resumes the compensations that were
left); then they are made pending again, marked undone, the run's failure is forgotten and it is
scheduled as after the target succeeded. Nothing of what the target kept runs again.
"""

from __future__ import annotations

from engine.checkpoints import UNDONE, checkpoint_name, kept_by_rewind, rewind_target
from engine.core_base import CoreBase
from engine.saga import Saga
from engine.signals import Rewind
from engine.state import RunStatus, StepState, StepStatus


class Rewinding(CoreBase):
    """Starts a rewind, and finishes it once its compensations are done."""

    saga: Saga

    def rewind(self, sig: Rewind) -> None:
        """Begin going back to ``sig.to``, or record why the run cannot."""
        st = self.state
        if not st.status.finished:
            reason = f"the run is {st.status}; only a finished run can be rewound (cancel it first)"
            self.emit("rewind_refused", None, by=sig.by, to=sig.to, reason=reason)
            return
        target, problem = rewind_target(self.spec.steps, st, sig.to)
        if target is None:
            self.emit("rewind_refused", None, by=sig.by, to=sig.to, reason=problem)
            return
        self.emit("rewind_requested", None, by=sig.by, to=sig.to, step=target)
        st.rewind_to = target
        self._d.run_changed = True
        if not self.saga.begin(target):
            self.rewound()  # nothing after the target has a compensation: go back at once

    def rewound(self) -> None:
        """The compensations are done: restore the state after the target, and carry on from it."""
        st = self.state
        target = st.rewind_to
        assert target is not None
        after = st.steps[target].finish_seq
        undone: list[str] = []
        for step in list(st.steps.values()):
            if step.index is None and not kept_by_rewind(step, after) and self._undo(step):
                undone.append(step.key)
        st.failed_step = st.error = st.outputs = None
        st.cancel_requested = False
        st.rollback_to = st.rewind_to = None
        st.status = RunStatus.RUNNING
        self._d.run_changed = True
        name = checkpoint_name(target, self.spec.steps[target].checkpoint) or target
        self.emit("run_rewound", None, to=name, step=target, undone=sorted(undone))
        self.schedule(list(self.spec.steps))

    def _undo(self, step: StepState) -> bool:
        """Make a step pending again, marked undone until it runs again when it had done work (True);
        its fan-out items are dropped."""
        for key in self.state.item_keys(step.step_id):
            item = self.state.step(key)
            self.reset(item)
            # Finished, so a resume does not start an item of a list that no longer exists; a new
            # fan-out makes its items pending again (scheduling._fan_out).
            item.status, item.compensation = StepStatus.SKIPPED, UNDONE
        worked = step.status not in (StepStatus.PENDING, StepStatus.SKIPPED)
        self.reset(step)
        step.finish_seq = 0
        step.started_at = None
        step.compensation = UNDONE if worked else None
        return worked
