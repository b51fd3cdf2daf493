"""``workflow rerun RUN --from STEP``: a new run, linked to a finished one, that takes over its earlier work.

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
from engine.checkpoints import REUSED, rerun_meta, reusable
from engine.graph import downstream
from engine.state import RunState, RunStatus

if TYPE_CHECKING:
    from bot.runtime.runtime import Runtime
    from bot.runtime.starts import Started


async def rerun(
    rt: Runtime, row: RunRow, step: str, started_by: str, meta: dict[str, Any] | None = None
) -> Started:
    """Start the linked rerun of ``row`` from ``step``; BadInput or Conflict says why it cannot."""
    if not RunStatus(row.status).finished:
        raise Conflict(f"Run {row.id} is {row.status}; only a finished run can be rerun (cancel it first).")
    from engine.loader import LoadedWorkflow, parse_stored  # YAML parsing is needed only here

    source, path = await rt.store.source_of(row.digest)
    spec = parse_stored(source, path)
    if step not in spec.steps:
        raise BadInput(
            f"Run {row.id}'s workflow has no step '{step}'; its steps are {', '.join(spec.steps)}."
        )
    old = RunState(row.id, spec, row.inputs)
    old.steps = {s.key: s for s in await rt.store.step_rows(row.id)}
    again = {step} | downstream(spec.steps, step)
    taken = reusable(old, again)
    # Numbered afresh in the order they finished, so a rewind of the new run sees them as its oldest work.
    copies = [replace(s, compensation=REUSED, finish_seq=n) for n, s in enumerate(taken, start=1)]
    link = {k: v for k, v in row.meta.items() if k == "origin"}  # its card goes where the old one went
    link.update(meta or {})
    link.update(rerun_meta(row.id, step))
    loaded = LoadedWorkflow(spec, source, path, row.digest)
    return await starts.submit(rt, loaded, row.inputs, started_by, link, reuse=copies)
