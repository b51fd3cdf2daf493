"""A run as its status card shows it, built from live state or from the stored rows."""

from __future__ import annotations

from typing import Any, cast

from bot.storage.runs import RunStore
from cards.run_card import RunStatus, RunView, StepView
from engine.state import RunState, StepState


def view_from_state(state: RunState) -> RunView:
    """The view of a run loaded in this process."""
    return _view(
        state.run_id,
        state.workflow.name,
        str(state.status),
        state.started_by,
        state.meta,
        state.inputs,
        list(state.steps.values()),
        state.error,
        state.outputs,
        order=list(state.workflow.steps),
    )


async def view_from_store(store: RunStore, run_ref: str) -> RunView | None:
    """The view of any run, from the database (``run_ref`` may be a unique prefix)."""
    row = await store.run_row(run_ref)
    if row is None:
        return None
    steps = await store.step_rows(row.id)
    return _view(
        row.id,
        row.workflow,
        row.status,
        row.started_by,
        row.meta,
        row.inputs,
        steps,
        row.error,
        row.outputs,
        order=None,
    )


def _view(
    run_id: str,
    workflow: str,
    status: str,
    started_by: str,
    meta: dict[str, Any],
    inputs: dict[str, Any],
    steps: list[StepState],
    error: str | None,
    outputs: dict[str, Any] | None,
    order: list[str] | None,
) -> RunView:
    tops = [s for s in steps if s.index is None]
    if order is not None:
        rank = {sid: i for i, sid in enumerate(order)}
        tops.sort(key=lambda s: rank.get(s.step_id, len(rank)))
    else:
        tops.sort(key=lambda s: (s.started_at is None, s.started_at or 0.0, s.key))
    waiting = next((s for s in tops if s.waiting_on == "approval"), None)
    who = meta.get("who", {}).get("name") if isinstance(meta.get("who"), dict) else None
    return RunView(
        run_id=run_id,
        workflow=workflow,
        status=cast(RunStatus, status),
        started_by=who or started_by,
        inputs=dict(inputs),
        steps=tuple(
            StepView(key=s.key, status=str(s.status), attempt=s.attempt, duration=_duration(s), error=s.error)
            for s in tops
        ),
        error=error,
        outputs=outputs,
        waiting_for=f"approval at step {waiting.key}" if waiting else None,
    )


def _duration(step: StepState) -> float | None:
    if step.started_at is None or step.finished_at is None:
        return None
    return max(step.finished_at - step.started_at, 0.0)
