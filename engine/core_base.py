"""What every part of the decision core shares: the run's state, events, step records and context."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import deque
from dataclasses import replace
from typing import Any

from engine.checkpoints import UNDONE
from engine.expressions import render
from engine.masking import mask
from engine.signals import Decision, Effect, Event, Notify, RequestApproval, SetTimer, StartStep
from engine.spec import MAX_EVENTS_PER_RUN, Workflow
from engine.state import RunState, RunStatus, StepState, StepStatus
from engine.text_caps import capped_event

_NO_FEEDBACK: dict[str, Any] = {"feedback": "", "revision": 0, "decided_by": None}


class CoreBase(ABC):
    """The state and helpers the core's parts (and the approval flow and the saga) work through."""

    state: RunState
    spec: Workflow
    dependents: dict[str, list[str]]
    queue: deque[str]
    running: set[str]
    background: frozenset[str]  # ids of the background steps (engine/background.py)
    view: dict[str, dict[str, Any]]
    has_revise: bool
    items_done: dict[str, set[int]]
    event_count: int
    _d: Decision
    _now: float

    # -- implemented by the other parts of the core ------------------------------------------

    @abstractmethod
    def succeed(self, step: StepState, outputs: Any) -> None:
        """Record a step's success and follow on from it."""

    @abstractmethod
    def fail(
        self, step: StepState, kind: str, message: str, result: dict[str, Any], outputs: Any = None
    ) -> None:
        """Record a step's failure and follow on from it."""

    @abstractmethod
    def schedule(self, candidates: list[str]) -> None:
        """Start or skip every candidate whose needs have all finished."""

    @abstractmethod
    def cancel(self, by: str, reason: str) -> None:
        """Ask the run to stop."""

    @abstractmethod
    def rewound(self) -> None:
        """A rewind's compensations are done: restore the state it goes back to and carry on."""

    @abstractmethod
    def _stop_on_failure(self, key: str, error: str) -> None: ...

    @abstractmethod
    def _cancel_running(self, reason: str) -> None: ...

    @abstractmethod
    def _item_done(self, item: StepState) -> None: ...

    # -- shared helpers ----------------------------------------------------------------------

    def end_run(self, status: RunStatus) -> None:
        """Record the run's final status and its closing event."""
        st = self.state
        st.status = status
        self._d.run_changed = True
        self.emit("run_finished", None, status=str(status), error=st.error, outputs=st.outputs)

    def reset(self, step: StepState) -> None:
        """Make a step pending again (its attempt count is kept, so the next attempt numbers on)."""
        step.status, step.error, step.error_kind, step.outputs = StepStatus.PENDING, None, None, None
        step.finished_at, step.waiting_on, step.wake_at, step.items = None, None, None, None
        step.tolerated = False
        self.items_done.pop(step.key, None)
        self._d.dirty.add(step.key)
        if step.index is None:
            self._refresh_view(step.step_id)

    def enqueue(self, key: str) -> None:
        """Queue an activity to start; a background step goes first, as it takes no slot."""
        if key in self.background:
            self.queue.appendleft(key)
        else:
            self.queue.append(key)

    def _wait(self, step: StepState, kind: str, due: float) -> None:
        step.status, step.waiting_on, step.wake_at = StepStatus.WAITING, kind, due
        self._d.dirty.add(step.key)
        self._d.effects.append(SetTimer(step.key, kind, due))
        self.emit("step_waiting", step.key, until=due)

    def start_record(self, step: StepState) -> None:
        """Begin the step's next attempt: running from now, with its started event."""
        step.attempt += 1
        step.status, step.started_at, step.error = StepStatus.RUNNING, self._now, None
        if step.compensation == UNDONE:
            step.compensation = None  # done again: a later rollback or rewind undoes it again
        self._d.dirty.add(step.key)
        self._refresh_view(step.step_id)
        background = True if step.step_id in self.background else None
        kind = self.spec.steps[step.step_id].kind
        self.emit("step_started", step.key, attempt=step.attempt, kind=kind, background=background)

    def finish(self, step: StepState, status: StepStatus, error: str | None = None) -> None:
        """Record a step's final status (and error, secrets masked) in finishing order."""
        step.status, step.finished_at, step.waiting_on, step.wake_at = status, self._now, None, None
        if error is not None:
            step.error = mask(error, self.state.secrets.values())
        self.state.finish_counter += 1
        step.finish_seq = self.state.finish_counter
        self._d.dirty.add(step.key)
        if step.index is None:
            self._refresh_view(step.step_id)

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
                "started_by_name": _starter_name(st.started_by, st.meta),
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

    def seal(self) -> None:
        """Mask the secrets out of all this decision stores or sends (events are masked as emitted)."""
        secrets = [s for s in self.state.secrets.values() if s]
        if not secrets:
            return
        st = self.state
        for key in self._d.dirty:
            step = st.steps.get(key)
            if step is None:
                continue
            step.error, step.items = mask(step.error, secrets), mask(step.items, secrets)
            outputs = mask(step.outputs, secrets)
            if outputs is not step.outputs:
                step.outputs = outputs
                if step.index is None:
                    self._refresh_view(step.step_id)
        st.error, st.outputs = mask(st.error, secrets), mask(st.outputs, secrets)
        self._d.effects = [_sealed(effect, secrets) for effect in self._d.effects]

    def emit(self, type_: str, key: str | None, **data: Any) -> None:
        """Append an event to the timeline, secrets masked."""
        self.event_count += 1
        if self.event_count == MAX_EVENTS_PER_RUN and not self.state.cancel_requested:
            self._stop_on_failure(
                "", f"the run wrote {MAX_EVENTS_PER_RUN:,} events, the limit; it was stopped"
            )
            self.cancel("limits", "too many events")
        clean = capped_event({k: v for k, v in data.items() if v is not None})
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


def _sealed(effect: Effect, secrets: list[str]) -> Effect:
    """An effect with the secrets masked out of what it shows; activities get their parameters whole."""
    if isinstance(effect, RequestApproval):
        return replace(
            effect,
            title=mask(effect.title, secrets),
            description=mask(effect.description, secrets),
            context=mask(effect.context, secrets),
            auto=mask(effect.auto, secrets),
        )
    if isinstance(effect, Notify):
        return replace(effect, text=mask(effect.text, secrets))
    if isinstance(effect, StartStep) and effect.kind == "workflow":
        return replace(effect, params=mask(effect.params, secrets))  # the child's inputs are shown
    return effect


def latest_feedback(steps: dict[str, StepState]) -> dict[str, Any]:
    """What ``${{ approval }}`` reads: the newest request for changes in the run, or empty values."""
    asked = [
        s
        for s in steps.values()
        if isinstance(s.outputs, dict) and s.outputs.get("decision") == "changes_requested"
    ]
    if not asked:
        return {"feedback": "", "revision": 0, "decided_by": None}
    newest = max(asked, key=lambda s: s.finish_seq)
    return dict(newest.outputs)


def _starter_name(started_by: str, meta: dict[str, Any]) -> str:
    """``run.started_by_name``: "@alice" (the starter's chat name, else their ref after the colon)."""
    who = meta.get("who")
    name = who.get("name") if isinstance(who, dict) else None
    kind, sep, rest = started_by.partition(":")
    if kind in ("webhook", "schedule") and sep:
        return f"{kind} {rest}"
    return f"@{str(name or rest or started_by).lstrip('@')}"
