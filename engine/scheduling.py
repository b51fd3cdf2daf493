"""Scheduling: which ready steps start or are skipped, fan-out, and starting queued activities."""

from __future__ import annotations

from collections import deque
from dataclasses import replace

from engine.approval_flow import ApprovalFlow
from engine.core_base import CoreBase
from engine.expressions import ExpressionError, calls_status, condition, render
from engine.params import render_params, wait_until
from engine.rules import trigger_allows
from engine.signals import Notify, StartStep
from engine.spec import MAX_FANOUT, Step
from engine.state import StepState, StepStatus
from engine.text_caps import chat_text_problem

ACTIVITY_KINDS = frozenset({"run", "http", "action", "llm"})


class Scheduling(CoreBase):
    """Starts or skips the steps whose needs have finished, within the run's concurrency."""

    approvals: ApprovalFlow

    def schedule(self, candidates: list[str]) -> None:
        """Start or skip every candidate whose needs have all finished, and follow the skips."""
        work = deque(candidates)
        while work:
            sid = work.popleft()
            step = self.state.step(sid)
            if step.status != StepStatus.PENDING or sid in self.queue:
                continue
            spec = self.spec.steps[sid]
            needs = [self._as_need(self.state.step(n)) for n in spec.needs]
            if any(not n.status.finished for n in needs):
                continue
            try:
                reason = self._skip_reason(spec, needs)
            except ExpressionError as exc:
                # An 'if:' that cannot be evaluated fails the step (and so the run); it never skips.
                self.start_record(step)
                self.fail(step, "expression", f"its 'if' condition could not be evaluated: {exc}", {})
                continue
            if reason is None:
                reason = self._begin(step, spec)
            if reason is not None:
                self.finish(step, StepStatus.SKIPPED, error=reason)
                self.emit("step_skipped", sid, reason=reason)
                work.extend(self.dependents[sid])

    def _as_need(self, need: StepState) -> StepState:
        """What a dependent sees of a need: a background step that has started counts as succeeded."""
        if need.step_id not in self.background or need.status in (StepStatus.PENDING, StepStatus.SKIPPED):
            return need
        return replace(need, status=StepStatus.SUCCEEDED, tolerated=False)

    def _skip_reason(self, spec: Step, needs: list[StepState]) -> str | None:
        """Why a ready step is skipped, or None to run it; an 'if:' that fails raises ExpressionError.

        An 'if:' that calls success(), failure(), always() or cancelled() decides alone, as on
        GitHub; otherwise 'trigger:' decides first and the 'if:' is read as ``success() && (...)``.
        """
        st = self.state
        if spec.if_ is not None and calls_status(spec.if_):
            status = self._status(needs)
            if not condition(spec.if_, self.context(), status, self.spec.folder):
                return f"its 'if' condition was false (status: {status})"
            return None
        if st.cancel_requested:
            return "the run was cancelled"
        if st.failed_step is not None and spec.trigger not in ("all_done", "one_failed"):
            return f"the run failed at step '{st.failed_step}'" if st.failed_step else st.error
        if not trigger_allows(spec.trigger, needs):
            return f"trigger '{spec.trigger}' not met by {', '.join(n.key for n in needs)}"
        if spec.if_ is not None and not condition(spec.if_, self.context(), "success", self.spec.folder):
            return "its 'if' condition was false"
        return None

    def _status(self, needs: list[StepState]) -> str:
        """What the status functions see: 'cancelled', 'failure' (a need or the run failed) or 'success'."""
        if self.state.cancel_requested:
            return "cancelled"
        failed = any(n.status == StepStatus.FAILED and not n.tolerated for n in needs)
        return "failure" if failed or self.state.failed_step is not None else "success"

    def _begin(self, step: StepState, spec: Step) -> str | None:
        """Start a ready step by kind; a returned text means the step was skipped instead."""
        if spec.for_each is not None and step.index is None:
            return self._fan_out(step, spec)
        kind = spec.kind
        if kind in ACTIVITY_KINDS:
            self.enqueue(step.key)
            return None
        ctx = self.context(step)
        try:
            if kind == "notify":
                params = render_params(spec, ctx)
                problem = chat_text_problem("the notify text", str(params["text"]))
                if problem is not None:
                    raise ValueError(problem)  # nothing is sent, and the event does not hold the text
                self.start_record(step)
                self._d.effects.append(Notify(step.key, params["text"], params["channel"]))
                self.emit("notification", step.key, text=params["text"], channel=params["channel"])
                self.succeed(step, {"text": params["text"]})
            elif kind == "wait":
                assert spec.wait is not None
                due = (
                    self._now + spec.wait.duration
                    if spec.wait.duration is not None
                    else wait_until(render(spec.wait.until, ctx), self._now)
                )
                self.start_record(step)
                if due <= self._now:
                    self.succeed(step, {"waited_until": self._now})
                else:
                    self._wait(step, "wait", due)
            elif kind == "approval":
                self.approvals.request(step, spec, ctx)
            elif kind == "workflow":
                params = render_params(spec, ctx)
                self.start_record(step)
                step.status, step.waiting_on = StepStatus.WAITING, "child"
                self._d.effects.append(StartStep(step.key, step.step_id, "workflow", step.attempt, params))
        except (ExpressionError, ValueError) as exc:
            self.start_record(step)
            self.fail(step, "expression", str(exc), {})
        return None

    def _fan_out(self, step: StepState, spec: Step) -> str | None:
        self.start_record(step)
        try:
            items = render(spec.for_each, self.context(step))
            if not isinstance(items, list):
                raise ValueError(f"'for_each' must give a list, got {type(items).__name__}: {items!r:.80}")
            if len(items) > MAX_FANOUT:
                raise ValueError(f"'for_each' gave {len(items)} items; the limit is {MAX_FANOUT}")
        except (ExpressionError, ValueError) as exc:
            self.fail(step, "expression", str(exc), {})
            return None
        step.items = items
        self.items_done.pop(step.key, None)
        self.emit("fan_out", step.key, count=len(items))
        if not items:
            self.succeed(step, {"items": []})
        for i in range(len(items)):
            self.queue.append(f"{step.key}[{i}]")
            item = self.state.step(f"{step.key}[{i}]")
            if item.status != StepStatus.PENDING:
                self.reset(item)  # an item of an earlier fan-out, dropped by a rewind
        return None

    def _pump(self) -> None:
        """Start queued activities while the run has free slots (background steps take none)."""
        limit = self.spec.concurrency
        while self.queue and (
            self.queue[0] in self.background
            or len(self.running) - len(self.running & self.background) < limit
        ):
            key = self.queue.popleft()
            step = self.state.step(key)
            if step.status != StepStatus.PENDING:
                continue
            if self.state.cancel_requested or (self.state.failed_step is not None and step.index is not None):
                self.finish(step, StepStatus.CANCELLED, error="not started: the run is stopping")
                self._item_done(step)
                continue
            spec = self.spec.steps[step.step_id]
            try:
                params = render_params(spec, self.context(step))
            except (ExpressionError, ValueError) as exc:
                self.start_record(step)
                self.fail(step, "expression", str(exc), {})
                continue
            if spec.kind == "action" and step.index is not None:
                params["item"], params["index"] = self._item(step), step.index
            self.start_record(step)
            self.running.add(key)
            timeout = spec.timeout or (spec.http.timeout if spec.http else None)
            labels = tuple(spec.runs_on or ())
            self._d.effects.append(
                StartStep(key, step.step_id, spec.kind, step.attempt, params, timeout, runs_on=labels)
            )
            if key in self.background:
                self.schedule(self.dependents[key])  # they start now: nothing waits for a background step
