"""Step outcomes: results and their outputs, failures and retries, timers, and fan-out items ending."""

from __future__ import annotations

import json
from typing import Any

from engine.checkpoints import checkpoint_name, kept_by_rewind
from engine.core_base import CoreBase
from engine.expressions import render
from engine.masking import mask
from engine.rules import retry_delay, should_retry
from engine.signals import CancelStep, SetTimer, StepCompleted, StepFailed, TimerFired
from engine.spec import MAX_OUTPUT_BYTES, Step
from engine.state import RunStatus, StepState, StepStatus

PREVIEW_BYTES = 4096


class StepOutcomes(CoreBase):
    """Applies what a step reported (or a timer) to the step and to what follows it."""

    def _completed(self, sig: StepCompleted) -> None:
        step = self.state.steps.get(sig.key)
        if step is None or step.attempt != sig.attempt or not _in_flight(step):
            return  # a stale report from an attempt that was already settled
        self.running.discard(sig.key)
        spec = self.spec.steps[step.step_id]
        try:
            outputs = self._outputs(spec, step, sig.result)
        except ValueError as exc:
            self.fail(step, "expression", str(exc), sig.result)
            return
        self.succeed(step, outputs)

    def _failed(self, sig: StepFailed) -> None:
        step = self.state.steps.get(sig.key)
        if (
            step is None
            or step.attempt != sig.attempt
            or step.status
            not in (
                StepStatus.RUNNING,
                StepStatus.WAITING,
            )
        ):
            return
        self.running.discard(sig.key)
        spec = self.spec.steps[step.step_id]
        stopping = self.state.cancel_requested or self.state.failed_step is not None
        if not stopping and should_retry(spec.retry, step.attempt, sig.kind):
            assert spec.retry is not None
            delay = retry_delay(spec.retry, step.attempt)
            step.status, step.waiting_on, step.wake_at = StepStatus.WAITING, "retry", self._now + delay
            step.error, step.error_kind = sig.message, sig.kind
            self._d.dirty.add(step.key)
            self._d.effects.append(SetTimer(step.key, "retry", step.wake_at))
            self.emit("step_retrying", step.key, attempt=step.attempt, error=sig.message, delay=delay)
            return
        if sig.kind == "unavailable":
            # The step needs something this installation lacks (an LLM): skip it, saying what to set.
            self.finish(step, StepStatus.SKIPPED, error=sig.message)
            self.emit("step_skipped", step.key, reason=sig.message)
            self._after(step)
            return
        if sig.kind == "cancelled":
            self.finish(step, StepStatus.CANCELLED, error=sig.message or "cancelled")
            self.emit("step_cancelled", step.key, attempt=step.attempt)
            self._after(step)
            return
        self.fail(step, sig.kind, sig.message, sig.result)

    def _timer(self, sig: TimerFired) -> None:
        if sig.kind == "run_timeout":
            if not self.state.status.finished and self.state.status != RunStatus.COMPENSATING:
                limit = self.spec.timeout or 0
                self._stop_on_failure("", f"the run timed out after {limit:g}s (workflow timeout)")
                self._cancel_running("run timed out")
            return
        step = self.state.steps.get(sig.key)
        if step is None or step.status != StepStatus.WAITING or step.waiting_on != sig.kind:
            return  # the timer outlived what it was for
        step.waiting_on, step.wake_at = None, None
        if sig.kind == "wait":
            self.succeed(step, {"waited_until": self._now})
        else:
            step.status = StepStatus.PENDING
            self._d.dirty.add(step.key)
            self.enqueue(step.key)

    def succeed(self, step: StepState, outputs: Any) -> None:
        """Record a step's success (unless its outputs are too big) and schedule what follows."""
        text = json.dumps(outputs, default=str)
        size = len(text)
        if size > MAX_OUTPUT_BYTES:
            self.fail(
                step,
                "outputs",
                f"the outputs of step '{step.key}' are {size:,} bytes; the limit is {MAX_OUTPUT_BYTES:,}. "
                "Return less, or write the data to a file and pass its path",
                {},
            )
            return
        step.outputs = mask(outputs, self.state.secrets.values())
        self.finish(step, StepStatus.SUCCEEDED)
        self.emit(
            "step_succeeded",
            step.key,
            attempt=step.attempt,
            duration=self._duration(step),
            outputs=step.outputs if size <= PREVIEW_BYTES else _preview(step.outputs),
        )
        name = checkpoint_name(step.step_id, self.spec.steps[step.step_id].checkpoint)
        if name is not None and step.index is None:
            self._checkpoint(step, name)
        self._after(step)

    def _checkpoint(self, step: StepState, name: str) -> None:
        """Record the state a rewind to this checkpoint goes back to: the steps finished by now."""
        steps = self.state.steps.values()
        kept = sorted(s.key for s in steps if s.index is None and kept_by_rewind(s, step.finish_seq))
        seen = {k: self.view[k]["outputs"] for k in kept if k in self.view}
        self.emit(
            "checkpoint_saved", step.key, name=name, finish_seq=step.finish_seq, steps=kept, outputs=seen
        )

    def fail(
        self, step: StepState, kind: str, message: str, result: dict[str, Any], outputs: Any = None
    ) -> None:
        """Record a step's failure; unless tolerated, it stops the run, then what follows is scheduled."""
        self.running.discard(step.key)
        spec = self.spec.steps[step.step_id]
        step.outputs = outputs
        step.error_kind = kind
        background = step.step_id in self.background
        step.tolerated = spec.continue_on_error or background  # a background failure never fails the run
        self.finish(step, StepStatus.FAILED, error=message)
        detail = {k: result[k] for k in ("exit_code", "status", "stderr") if k in result}
        self.emit(
            "step_failed",
            step.key,
            attempt=step.attempt,
            kind=kind,
            error=message,
            duration=self._duration(step),
            tolerated=step.tolerated,
            background=background or None,
            **detail,
        )
        if not step.tolerated and step.index is None:
            self._stop_on_failure(step.key, f"step '{step.key}' failed: {message}")
        self._after(step)

    def _after(self, step: StepState) -> None:
        if step.index is not None:
            self._item_done(step)
        else:
            self.schedule(self.dependents[step.step_id])

    def _item_done(self, item: StepState) -> None:
        parent = self.state.step(item.step_id)
        if item.status == StepStatus.FAILED and not item.tolerated and parent.error is None:
            parent.error = f"item {item.index} failed: {item.error}"
            self._d.dirty.add(parent.key)
        done = self.items_done.setdefault(item.step_id, set())
        done.add(item.index or 0)
        if parent.status.finished or parent.items is None or len(done) < len(parent.items):
            return
        items = [self.state.step(k) for k in self.state.item_keys(item.step_id)]
        outputs = {"items": [i.outputs for i in items]}
        if all(i.ok for i in items):
            self.succeed(parent, outputs)
        else:
            self.fail(parent, "fan_out", parent.error or "an item did not finish", {}, outputs=outputs)

    def _stop_on_failure(self, key: str, error: str) -> None:
        st = self.state
        if st.failed_step is None:
            st.failed_step, st.error = key, error
            self._d.run_changed = True
        for step in st.steps.values():
            held = ("retry", "wait", "approval", "interrupt")
            if step.status == StepStatus.WAITING and step.waiting_on in held:
                self.finish(step, StepStatus.CANCELLED, error="the run failed")
                self.emit("step_cancelled", step.key, reason="the run failed")
                self._after(step)

    def _cancel_running(self, reason: str) -> None:
        for key in sorted(self.running):
            self._d.effects.append(CancelStep(key))
        for step in list(self.state.steps.values()):
            if step.status == StepStatus.WAITING:
                if step.waiting_on == "child":
                    self._d.effects.append(CancelStep(step.key))
                    continue
                self.finish(step, StepStatus.CANCELLED, error=reason)
                self.emit("step_cancelled", step.key, reason=reason)
                self._after(step)

    def _outputs(self, spec: Step, step: StepState, result: dict[str, Any]) -> Any:
        if not spec.outputs:
            return result
        ctx = self.context(step)
        ctx["result"] = result
        return {name: render(expr, ctx) for name, expr in spec.outputs.items()}


def _in_flight(step: StepState) -> bool:
    return step.status == StepStatus.RUNNING or (
        step.status == StepStatus.WAITING and step.waiting_on == "child"
    )


def _preview(outputs: Any) -> dict[str, Any]:
    text = json.dumps(outputs, default=str)
    return {"preview": text[:PREVIEW_BYTES] + "…", "bytes": len(text)}
