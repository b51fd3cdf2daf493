"""A run as its status card shows it, built from live state or from the stored rows."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, cast

from bot.identity import shown
from bot.storage.runs import RunStore
from cards.run_card import RunStatus, RunView, StepView
from engine.approval_flow import revisions
from engine.spec import Workflow
from engine.state import RunState, StepState


def view_from_state(state: RunState, now: float | None = None) -> RunView:
    """The view of a run loaded in this process (``now`` measures how long it has been going)."""
    view = _view(
        state.run_id,
        state.workflow.name,
        str(state.status),
        state.started_by,
        state.meta,
        state.inputs,
        list(state.steps.values()),
        state.error,
        _declared_outputs(state.outputs, state.workflow),
        order=list(state.workflow.steps),
        background=_background(state.workflow),
        approvals=_approvals(state.workflow),
    )
    revised = revisions(state.workflow, state.steps)
    steps = tuple(replace(s, revision=revised.get(s.key)) for s in view.steps)
    return replace(view, steps=steps, **_timing(state.created_at, _last_finish(state), view, now))


async def view_from_store(store: RunStore, run_ref: str, now: float | None = None) -> RunView | None:
    """The view of any run, from the database (``run_ref`` may be a unique prefix)."""
    row = await store.run_row(run_ref)
    if row is None:
        return None
    steps = await store.step_rows(row.id)
    view = _view(
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
        **await _stored_kinds(store, row.digest),
    )
    return replace(view, **_timing(row.created_at, row.finished_at, view, now))


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
    background: frozenset[str] = frozenset(),
    approvals: frozenset[str] = frozenset(),
) -> RunView:
    tops = [s for s in steps if s.index is None]
    if order is not None:
        rank = {sid: i for i, sid in enumerate(order)}
        tops.sort(key=lambda s: rank.get(s.step_id, len(rank)))
    else:
        tops.sort(key=lambda s: (s.started_at is None, s.started_at or 0.0, s.key))
    items = _items_done(steps)
    waiting = next((s for s in tops if s.waiting_on in ("approval", "interrupt")), None)
    who = meta.get("who", {}).get("name") if isinstance(meta.get("who"), dict) else None
    origin = meta.get("origin")
    platform = origin.get("platform") if isinstance(origin, dict) else None  # the card's, named in mentions
    return RunView(
        run_id=run_id,
        workflow=workflow,
        status=cast(RunStatus, status),
        started_by=shown(started_by, {started_by: who} if who else None, platform),
        inputs=dict(inputs),
        steps=tuple(
            StepView(
                key=s.key,
                status=str(s.status),
                attempt=s.attempt,
                duration=_duration(s),
                error=s.error,
                items_done=items.get(s.step_id) if s.items is not None else None,
                items_total=len(s.items) if s.items is not None else None,
                compensation=s.compensation,
                background=s.step_id in background,
                approval=s.step_id in approvals,
            )
            for s in tops
        ),
        error=error,
        outputs=outputs,
        waiting_for=(
            None
            if waiting is None
            else f"approval at step {waiting.key}"
            if waiting.waiting_on == "approval"
            else f"an answer: run {waiting.key} again after a crash?"
        ),
    )


def _background(workflow: Workflow) -> frozenset[str]:
    return frozenset(sid for sid, spec in workflow.steps.items() if spec.background)


def _approvals(workflow: Workflow) -> frozenset[str]:
    return frozenset(sid for sid, spec in workflow.steps.items() if spec.approval is not None)


async def _stored_kinds(store: RunStore, digest: str) -> dict[str, frozenset[str]]:
    """The background and the approval steps of a stored run's pinned definition."""
    from engine.loader import parse_stored  # YAML parsing is needed only here

    source, path = await store.source_of(digest)
    workflow = parse_stored(source, path)
    return {"background": _background(workflow), "approvals": _approvals(workflow)}


def _items_done(steps: list[StepState]) -> dict[str, int]:
    """How many items of each fan-out step have finished."""
    done: dict[str, int] = {}
    for step in steps:
        if step.index is not None and step.status.finished:
            done[step.step_id] = done.get(step.step_id, 0) + 1
    return done


def _declared_outputs(outputs: dict[str, Any] | None, workflow: Workflow) -> dict[str, Any] | None:
    """The outputs a card shows: the workflow's own, or else each step's declared ones (``step.name``).

    A step that declares no outputs contributes its raw result (exit code, stdout...) only to the
    thread's closing message, not to the card.
    """
    if outputs is None or workflow.outputs:
        return outputs
    shown: dict[str, Any] = {}
    for step_id, value in outputs.items():
        spec = workflow.steps.get(step_id)
        if spec is not None and spec.outputs and isinstance(value, dict):
            shown.update({f"{step_id}.{name}": v for name, v in value.items()})
    return shown


def _timing(created: float, finished: float | None, view: RunView, now: float | None) -> dict[str, Any]:
    """When the run started and how long it has taken: to its end once finished, else to ``now``."""
    end = (finished if finished is not None else now) if view.finished else now
    return {"started_at": created, "elapsed": max(end - created, 0.0) if end is not None else None}


def _last_finish(state: RunState) -> float | None:
    ends = [s.finished_at for s in state.steps.values() if s.finished_at is not None]
    return max(ends) if ends and state.status.finished else None


def _duration(step: StepState) -> float | None:
    if step.started_at is None or step.finished_at is None:
        return None
    return max(step.finished_at - step.started_at, 0.0)
