"""What rewind and rerun read of a stored run: whether a rewind can go where it is asked, and reruns.

``workflow rerun RUN --from STEP`` starts a new run, linked to a finished one, that takes over its
earlier work.

The new run is pinned to the same workflow version and inputs. Every step that succeeded in the old run
and is neither STEP nor after it (needs it, directly or not) is stored with the new run as it was,
marked reused: it does not run again, a rollback of the new run does not compensate it (the old run
did that work), and later steps read its outputs. STEP and everything after it run.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from bot.errors import BadInput, Conflict
from bot.runtime import starts
from bot.storage.run_rows import RunRow
from engine.checkpoints import REUSED, rerun_meta, reusable, rewind_target
from engine.graph import downstream
from engine.state import RunState, RunStatus

if TYPE_CHECKING:
    from bot.runtime.runtime import Runtime
    from bot.runtime.starts import Started


async def rewind_problem(rt: Runtime, row: RunRow, to: str) -> str | None:
    """Why a rewind of ``row`` to ``to`` would be refused, or None (the engine decides again on arrival)."""
    old, _, _ = await _stored(rt, row)
    return rewind_target(old.workflow.steps, old, to)[1]


async def _stored(rt: Runtime, row: RunRow) -> tuple[RunState, str, str]:
    """The run as stored, on its pinned definition; and that definition's text and path."""
    from engine.loader import parse_stored  # YAML parsing is needed only here

    source, path = await rt.store.source_of(row.digest)
    old = RunState(row.id, parse_stored(source, path), row.inputs)
    old.steps = {s.key: s for s in await rt.store.step_rows(row.id)}
    return old, source, path


async def rerun(
    rt: Runtime, row: RunRow, step: str, started_by: str, meta: dict[str, Any] | None = None
) -> Started:
    """Start the linked rerun of ``row`` from ``step``; BadInput or Conflict says why it cannot."""
    if not RunStatus(row.status).finished:
        raise Conflict(f"Run {row.id} is {row.status}; only a finished run can be rerun (cancel it first).")
    from engine.loader import LoadedWorkflow  # YAML parsing is needed only here

    old, source, path = await _stored(rt, row)
    spec = old.workflow
    if step not in spec.steps:
        raise BadInput(
            f"Run {row.id}'s workflow has no step '{step}'; its steps are {', '.join(spec.steps)}."
        )
    again = {step} | downstream(spec.steps, step)
    taken = reusable(old, again)
    # Numbered afresh in the order they finished, so a rewind of the new run sees them as its oldest work.
    copies = [replace(s, compensation=REUSED, finish_seq=n) for n, s in enumerate(taken, start=1)]
    link = {k: v for k, v in row.meta.items() if k == "origin"}  # its card goes where the old one went
    link.update(meta or {})
    link.update(rerun_meta(row.id, step))
    loaded = LoadedWorkflow(spec, source, path, row.digest)
    return await starts.submit(rt, loaded, row.inputs, started_by, link, reuse=copies)
