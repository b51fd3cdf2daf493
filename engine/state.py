"""The state of one run as the core sees it: plain data, rebuilt from storage on resume."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from engine.spec import Workflow


class RunStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    WAITING = "waiting"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    COMPENSATING = "compensating"
    COMPENSATED = "compensated"

    @property
    def finished(self) -> bool:
        return self in _RUN_FINAL


_RUN_FINAL = {RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.COMPENSATED}


class StepStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    WAITING = "waiting"  # on a retry backoff, a wait, an approval or a sub-workflow
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in _STEP_FINAL


_STEP_FINAL = {StepStatus.SUCCEEDED, StepStatus.FAILED, StepStatus.SKIPPED, StepStatus.CANCELLED}


@dataclass
class StepState:
    """One step, or one item of a fan-out step (key ``shard[3]``)."""

    key: str
    step_id: str
    index: int | None = None
    status: StepStatus = StepStatus.PENDING
    attempt: int = 0
    started_at: float | None = None
    finished_at: float | None = None
    outputs: Any = None
    error: str | None = None
    error_kind: str | None = None
    tolerated: bool = False  # failed, but continue_on_error lets the run go on
    waiting_on: str | None = None  # retry | wait | approval | child
    wake_at: float | None = None
    finish_seq: int = 0  # completion order, for compensation in reverse
    compensation: str | None = None  # None | running | succeeded | failed | undone | reused
    items: list[Any] | None = None  # a fan-out step's expanded list
    # An approval step's revision: 1 once asked, one more after each "Request changes". A retry of the
    # run asks again in the same revision (a new request, not a new revision).
    revision: int = 0

    @property
    def ok(self) -> bool:
        """Succeeded, or failed with continue_on_error."""
        return self.status == StepStatus.SUCCEEDED or (self.status == StepStatus.FAILED and self.tolerated)


@dataclass
class RunState:
    """A run: its pinned workflow, its inputs and every step's state."""

    run_id: str
    workflow: Workflow
    inputs: dict[str, Any]
    status: RunStatus = RunStatus.PENDING
    started_by: str = "cli"
    created_at: float = 0.0
    steps: dict[str, StepState] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)
    outputs: dict[str, Any] | None = None
    error: str | None = None
    failed_step: str | None = None
    cancel_requested: bool = False
    rollback_to: str | None = None  # "" means roll back everything
    rewind_to: str | None = None  # while a rewind compensates: the step whose state it goes back to
    compensate_pending: bool = False
    finish_counter: int = 0
    meta: dict[str, Any] = field(default_factory=dict)  # channel, parent run, ... (opaque to the core)

    def step(self, key: str) -> StepState:
        """The state of ``key``, created pending on first use."""
        found = self.steps.get(key)
        if found is None:
            step_id, _, rest = key.partition("[")
            index = int(rest[:-1]) if rest else None
            found = self.steps[key] = StepState(key=key, step_id=step_id, index=index)
        return found

    def item_keys(self, step_id: str) -> list[str]:
        """The keys of a fan-out step's items, once expanded."""
        parent = self.steps.get(step_id)
        if parent is None or parent.items is None:
            return []
        return [f"{step_id}[{i}]" for i in range(len(parent.items))]
