"""A run as its status card shows it, built from live state or from the stored rows."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, cast

from bot.identity import shown
from bot.storage.runs import RunStore
from cards.run_card import RunStatus, RunView, StepView
from engine.approval_flow import revisions
from engine.checkpoints import checkpoints, is_undone
from engine.spec import Workflow
from engine.state import RunState, StepState, StepStatus


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
        workflow_spec=state.workflow,
    )
    revised = revisions(state.workflow, state.steps)
    steps = tuple(replace(s, revision=revised.get(s.key)) for s in view.steps)
    timing = _timing(state.created_at, _last_finish(state), view, now)
    return replace(view, steps=steps, rewinding_to=state.rewind_to, **timing)


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
        workflow_spec=await _stored_spec(store, row.digest),
    )
    return replace(view, rewinding_to=row.rewind_to, **_timing(row.created_at, row.finished_at, view, now))


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
    workflow_spec: Workflow | None = None,
) -> RunView:
    background = _background(workflow_spec) if workflow_spec is not None else frozenset()
    approvals = _approvals(workflow_spec) if workflow_spec is not None else frozenset()
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
        checkpoints=_checkpoints(workflow_spec, steps) if workflow_spec is not None else (),
        rerun_of=_rerun_of(meta),
    )


def _checkpoints(spec: Workflow, steps: list[StepState]) -> tuple[str, ...]:
    """The checkpoints a rewind can go back to now (their step succeeded and stands), oldest first."""
    by_key = {s.key: s for s in steps}
    found = []
    for name, step_id in checkpoints(spec.steps).items():
        step = by_key.get(step_id)
        if step is not None and step.status == StepStatus.SUCCEEDED and not is_undone(step):
            found.append((step.finish_seq, name))
    return tuple(name for _, name in sorted(found))


def _rerun_of(meta: dict[str, Any]) -> tuple[str, str] | None:
    run, step = meta.get("rerun_of"), meta.get("rerun_from")
    return (str(run), str(step)) if run and step else None


def _background(workflow: Workflow) -> frozenset[str]:
    return frozenset(sid for sid, spec in workflow.steps.items() if spec.background)


async def _stored_spec(store: RunStore, digest: str) -> Workflow:
    """A stored run's pinned definition."""
    from engine.loader import parse_stored  # YAML parsing is needed only here

    source, path = await store.source_of(digest)
    return parse_stored(source, path)


def _approvals(workflow: Workflow) -> frozenset[str]:
    return frozenset(sid for sid, spec in workflow.steps.items() if spec.approval is not None)


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
