"""The decision core: ``Core(state).advance(signal, now)`` returns what to store and what to do.

No I/O and no clock: the time comes in as ``now`` and every effect goes out as data, so a run can be
replayed, tested and resumed from its stored state alone.
"""

from __future__ import annotations

import json
from collections import deque
from typing import Any

from engine.approval_flow import ApprovalFlow, latest_feedback
from engine.expressions import ExpressionError, calls_status, condition, render
from engine.params import render_params, wait_until
from engine.rules import mask, retry_delay, should_retry, trigger_allows
from engine.saga import Saga
from engine.signals import (
    ApprovalDecided,
    Cancel,
    CancelStep,
    Decision,
    Event,
    Notify,
    Resume,
    Retry,
    Rollback,
    SetTimer,
    Signal,
    Start,
    StartStep,
    StepCompleted,
    StepFailed,
    TimerFired,
)
from engine.spec import MAX_EVENTS_PER_RUN, MAX_FANOUT, MAX_OUTPUT_BYTES, Step
from engine.state import RunState, RunStatus, StepState, StepStatus

ACTIVITY_KINDS = frozenset({"run", "http", "action", "llm"})
_NO_FEEDBACK: dict[str, Any] = {"feedback": "", "revision": 0, "decided_by": None}
PREVIEW_BYTES = 4096


class Core:
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
        self.view: dict[str, dict[str, Any]] = {}
        for sid in self.spec.steps:
            self._refresh_view(sid)
        self.saga = Saga(self)
        self.approvals = ApprovalFlow(self)
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
                self._resume()
            case StepCompleted(compensation=True) | StepFailed(compensation=True):
                self.saga.finished(signal)
            case StepCompleted():
                self._completed(signal)
            case StepFailed():
                self._failed(signal)
            case TimerFired():
                self._timer(signal)
            case ApprovalDecided():
                self.approvals.decided(signal)
            case Cancel():
                self.cancel(signal.by, signal.reason)
            case Rollback():
                self.saga.rollback(signal)
            case Retry():
                self._retry(signal.by)
        self._pump()
        self._settle()
        return self._d

    # -- signals -----------------------------------------------------------------------------

    def _start(self) -> None:
        st = self.state
        st.status = RunStatus.RUNNING
        self._d.run_changed = True
        self.emit("run_started", None, workflow=self.spec.name, inputs=st.inputs, started_by=st.started_by)
        if self.spec.timeout:
            self._d.effects.append(SetTimer("", "run_timeout", self._now + self.spec.timeout))
        self.schedule(list(self.spec.steps))

    def _resume(self) -> None:
        st = self.state
        self.emit("run_resumed", None, status=str(st.status))
        for key, step in list(st.steps.items()):
            if step.status == StepStatus.RUNNING and step.items is None:
                # At-least-once: a step in flight when the process died runs again, same idempotency key.
                self.emit("step_interrupted", key, attempt=step.attempt)
                step.status = StepStatus.PENDING
                self.queue.append(key)
            elif step.status == StepStatus.PENDING and "[" in key:
                self.queue.append(key)
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
            self.queue.append(step.key)

    def cancel(self, by: str, reason: str) -> None:
        st = self.state
        if st.status.finished:
            return
        if not st.cancel_requested:
            st.cancel_requested = True
            self._d.run_changed = True
            self.emit("run_cancel_requested", None, by=by, reason=reason)
        self._cancel_running(reason or f"cancelled by {by}")

    def _retry(self, by: str) -> None:
        st = self.state
        if st.status != RunStatus.FAILED:
            self.emit("retry_refused", None, by=by, reason=f"the run is {st.status}, not failed")
            return
        again = StepStatus.FAILED, StepStatus.SKIPPED, StepStatus.CANCELLED
        reset = [s for s in st.steps.values() if s.status in again and not s.tolerated]
        for step in reset:
            self.reset(step)
        st.failed_step = st.error = st.outputs = None
        st.cancel_requested = False
        st.status = RunStatus.RUNNING
        self._d.run_changed = True
        self.emit("run_retried", None, by=by, steps=sorted(s.key for s in reset if s.index is None))
        self.schedule(list(self.spec.steps))

    # -- scheduling --------------------------------------------------------------------------

    def schedule(self, candidates: list[str]) -> None:
        """Start or skip every candidate whose needs have all finished, and follow the skips."""
        work = deque(candidates)
        while work:
            sid = work.popleft()
            step = self.state.step(sid)
            if step.status != StepStatus.PENDING or sid in self.queue:
                continue
            spec = self.spec.steps[sid]
            needs = [self.state.step(n) for n in spec.needs]
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
            self.queue.append(step.key)
            return None
        ctx = self.context(step)
        try:
            if kind == "notify":
                params = render_params(spec, ctx)
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
        self.emit("fan_out", step.key, count=len(items))
        if not items:
            self.succeed(step, {"items": []})
        for i in range(len(items)):
            self.queue.append(f"{step.key}[{i}]")
            self.state.step(f"{step.key}[{i}]")
        return None

    def _pump(self) -> None:
        """Start queued activities while the run has free slots."""
        limit = self.spec.concurrency
        while self.queue and len(self.running) < limit:
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
            self._d.effects.append(StartStep(key, step.step_id, spec.kind, step.attempt, params, timeout))

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

    def end_run(self, status: RunStatus) -> None:
        """Record the run's final status and its closing event."""
        st = self.state
        st.status = status
        self._d.run_changed = True
        self.emit("run_finished", None, status=str(status), error=st.error, outputs=st.outputs)

    # -- step outcomes -----------------------------------------------------------------------

    def succeed(self, step: StepState, outputs: Any) -> None:
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
        self._after(step)

    def fail(
        self, step: StepState, kind: str, message: str, result: dict[str, Any], outputs: Any = None
    ) -> None:
        self.running.discard(step.key)
        spec = self.spec.steps[step.step_id]
        step.outputs = outputs
        step.error_kind = kind
        step.tolerated = spec.continue_on_error
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
            if step.status == StepStatus.WAITING and step.waiting_on in ("retry", "wait", "approval"):
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

    # -- helpers -----------------------------------------------------------------------------

    def reset(self, step: StepState) -> None:
        """Make a step pending again (its attempt count is kept, so the next attempt numbers on)."""
        step.status, step.error, step.error_kind, step.outputs = StepStatus.PENDING, None, None, None
        step.finished_at, step.waiting_on, step.wake_at, step.items = None, None, None, None
        step.tolerated = False
        self.items_done.pop(step.key, None)
        self._d.dirty.add(step.key)
        if step.index is None:
            self._refresh_view(step.step_id)

    def _wait(self, step: StepState, kind: str, due: float) -> None:
        step.status, step.waiting_on, step.wake_at = StepStatus.WAITING, kind, due
        self._d.dirty.add(step.key)
        self._d.effects.append(SetTimer(step.key, kind, due))
        self.emit("step_waiting", step.key, until=due)

    def start_record(self, step: StepState) -> None:
        step.attempt += 1
        step.status, step.started_at, step.error = StepStatus.RUNNING, self._now, None
        self._d.dirty.add(step.key)
        self._refresh_view(step.step_id)
        self.emit("step_started", step.key, attempt=step.attempt, kind=self.spec.steps[step.step_id].kind)

    def finish(self, step: StepState, status: StepStatus, error: str | None = None) -> None:
        step.status, step.finished_at, step.waiting_on, step.wake_at = status, self._now, None, None
        if error is not None:
            step.error = mask(error, self.state.secrets.values())
        self.state.finish_counter += 1
        step.finish_seq = self.state.finish_counter
        self._d.dirty.add(step.key)
        if step.index is None:
            self._refresh_view(step.step_id)

    def _outputs(self, spec: Step, step: StepState, result: dict[str, Any]) -> Any:
        if not spec.outputs:
            return result
        ctx = self.context(step)
        ctx["result"] = result
        return {name: render(expr, ctx) for name, expr in spec.outputs.items()}

    def _workflow_outputs(self) -> dict[str, Any]:
        if not self.spec.outputs:
            return {sid: v["outputs"] for sid, v in self.view.items() if v["status"] == "succeeded"}
        ctx = self.context()
        return {
            name: mask(render(expr, ctx), self.state.secrets.values())
            for name, expr in self.spec.outputs.items()
        }

    def _item(self, step: StepState) -> Any:
        parent = self.state.steps[step.step_id]
        assert parent.items is not None and step.index is not None
        return parent.items[step.index]

    def _duration(self, step: StepState) -> float:
        return round(self._now - (step.started_at or self._now), 6)

    def _refresh_view(self, step_id: str) -> None:
        step = self.state.steps.get(step_id)
        outcome = _OUTCOMES.get(step.status) if step else None
        conclusion = "success" if outcome == "failure" and step and step.tolerated else outcome
        self.view[step_id] = {
            "status": str(step.status) if step else "pending",
            "outputs": (step.outputs if step and step.outputs is not None else {}),
            "outcome": outcome,
            "conclusion": conclusion,
        }

    def outcome(self) -> str:
        """The run's outcome so far, as ``run.status`` reads in expressions."""
        st = self.state
        if st.status.finished:
            return str(st.status)
        if st.failed_step is not None:
            return "failed"
        return "cancelled" if st.cancel_requested else "succeeded"

    def context(self, step: StepState | None = None) -> dict[str, Any]:
        """The names an expression can read while deciding ``step``."""
        st = self.state
        ctx: dict[str, Any] = {
            "inputs": st.inputs,
            "steps": self.view,
            "secrets": st.secrets,
            "run": {
                "id": st.run_id,
                "status": self.outcome(),
                "workflow": self.spec.name,
                "started_by": st.started_by,
                "error": st.error,
            },
        }
        if step is not None and step.index is not None:
            ctx["item"], ctx["index"] = self._item(step), step.index
        ctx["approval"] = latest_feedback(st.steps) if self.has_revise else _NO_FEEDBACK
        ctx["env"] = self._env(ctx, step)
        return ctx

    def _env(self, ctx: dict[str, Any], step: StepState | None) -> dict[str, Any]:
        """The ``env`` context: the workflow's env, then the step's own, each value rendered."""
        env: dict[str, Any] = {}
        if self.spec.env:
            ctx["env"] = env
            env.update({k: render(v, ctx) for k, v in self.spec.env.items()})
        spec = self.spec.steps[step.step_id] if step is not None else None
        if (
            step is not None
            and spec is not None
            and spec.env
            and (spec.for_each is None or step.index is not None)
        ):
            ctx["env"] = dict(env)
            env = {**env, **{k: render(v, ctx) for k, v in self.spec.steps[step.step_id].env.items()}}
        return env

    def emit(self, type_: str, key: str | None, **data: Any) -> None:
        """Append an event to the timeline, secrets masked."""
        self.event_count += 1
        if self.event_count == MAX_EVENTS_PER_RUN and not self.state.cancel_requested:
            self._stop_on_failure(
                "", f"the run wrote {MAX_EVENTS_PER_RUN:,} events, the limit; it was stopped"
            )
            self.cancel("limits", "too many events")
        clean = {k: v for k, v in data.items() if v is not None}
        self._d.events.append(Event(type_, key, mask(clean, self.state.secrets.values())))

    @property
    def decision(self) -> Decision:
        """The decision being built by the current ``advance``."""
        return self._d

    @property
    def now(self) -> float:
        """The time of the signal being applied."""
        return self._now


_OUTCOMES = {
    StepStatus.SUCCEEDED: "success",
    StepStatus.FAILED: "failure",
    StepStatus.CANCELLED: "cancelled",
    StepStatus.SKIPPED: "skipped",
}


def _in_flight(step: StepState) -> bool:
    return step.status == StepStatus.RUNNING or (
        step.status == StepStatus.WAITING and step.waiting_on == "child"
    )


def _preview(outputs: Any) -> dict[str, Any]:
    text = json.dumps(outputs, default=str)
    return {"preview": text[:PREVIEW_BYTES] + "…", "bytes": len(text)}
