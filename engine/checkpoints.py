"""Checkpoints (``checkpoint: true`` or a name) and the pure rules of rewind and rerun.

A checkpoint marks the run's state just after its step succeeded: every step that had finished by then,
with its outputs, which is also all the expressions of later steps read (``steps.X.outputs``). A rewind to
it undoes what finished later, newest first, through ``compensate``; the steps it kept stand as they were.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # engine.spec imports this module, and engine.state imports engine.spec
    from engine.state import RunState, StepState

# The ``compensation`` mark of a step a rewind undid (made pending again), and of one a rerun took over
# from the run it reruns: neither is compensated by a later rollback of this run.
UNDONE = "undone"
REUSED = "reused"


class HasCheckpoint(Protocol):
    """Anything with a ``checkpoint`` setting, such as ``engine.spec.Step``."""

    @property
    def checkpoint(self) -> bool | str: ...


def checkpoint_name(step_id: str, value: bool | str) -> str | None:
    """The checkpoint a step declares: its own id for ``true``, the given name, or None."""
    if isinstance(value, str):
        return value
    return step_id if value else None


def checkpoints(steps: Mapping[str, HasCheckpoint]) -> dict[str, str]:
    """Checkpoint name -> the id of the step it follows, in declaration order."""
    found: dict[str, str] = {}
    for step_id, step in steps.items():
        name = checkpoint_name(step_id, step.checkpoint)
        if name is not None:
            found[name] = step_id
    return found


def checkpoint_problem(steps: Mapping[str, HasCheckpoint]) -> str | None:
    """Why the workflow's checkpoint names are ambiguous, or None when each names one step."""
    seen: dict[str, str] = {}
    for step_id, step in steps.items():
        name = checkpoint_name(step_id, step.checkpoint)
        if name is None:
            continue
        if name in seen:
            both = f"'{seen[name]}' and '{step_id}'"
            return f"checkpoint '{name}' is declared by both {both}; give each its own name"
        if name in steps and name != step_id:
            return (
                f"checkpoint '{name}' of step '{step_id}' has the name of another step; "
                "'workflow rewind --to' would not know which one is meant"
            )
        seen[name] = step_id
    return None


def is_undone(step: StepState) -> bool:
    """Whether a step's work was undone: compensated by a rollback, or made pending again by a rewind."""
    return step.compensation == UNDONE or (step.compensation == "succeeded" and step.status == "succeeded")


def rewind_target(
    steps: Mapping[str, HasCheckpoint], state: RunState, to: str
) -> tuple[str | None, str | None]:
    """``(step id, None)`` for the checkpoint or step ``to`` names, or ``(None, why it cannot be)``."""
    named = checkpoints(steps)
    step_id = named.get(to, to if to in steps else None)
    if step_id is None:
        known = ", ".join(named) or "none declared"
        return None, f"no checkpoint or step is called '{to}' (checkpoints: {known})"
    step = state.steps.get(step_id)
    if step is None or step.status != "succeeded":
        status = step.status if step is not None else "pending"
        return None, f"step '{step_id}' is {status}; a rewind goes back to a step that succeeded"
    if is_undone(step) or step.compensation == "running":
        return None, f"step '{step_id}' was undone already; rewind to a step before it"
    return step_id, None


def kept_by_rewind(step: StepState, after: int) -> bool:
    """Whether a step stands as it was when the run goes back to the moment ``after`` (a finish_seq)."""
    if not step.status.finished or step.finish_seq > after or is_undone(step):
        return False
    return step.status != "cancelled" and not (step.status == "failed" and not step.tolerated)


def reusable(state: RunState, again: set[str]) -> list[StepState]:
    """The steps (and fan-out items) of a finished run a rerun takes over: those that succeeded and are
    not in ``again`` (the step it reruns from and everything after it), oldest first."""
    tops = {
        s.step_id
        for s in state.steps.values()
        if s.index is None and s.ok and not is_undone(s) and s.step_id not in again
    }
    picked = [s for s in state.steps.values() if s.step_id in tops]
    return sorted(picked, key=lambda s: (s.finish_seq, s.key))


def rerun_meta(run_id: str, step: str) -> dict[str, Any]:
    """What a rerun's row keeps of its link to the run it reruns."""
    return {"rerun_of": run_id, "rerun_from": step}
