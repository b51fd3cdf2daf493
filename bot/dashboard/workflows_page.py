"""The workflows page: each workflow the signed-in person may run (as ``/workflow list`` shows them), its
inputs, who may run, cancel and roll it back, its last runs, and figures over its recent finished runs."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from bot.dashboard.queries import RunLine, recent_runs
from bot.identity import Identity, Place, allowed, describe
from engine.spec import InputSpec
from engine.state import RunStatus
from handlers.services import Services

LAST_SHOWN = 5
FIGURES_OVER = 200  # the newest runs the success rate and percentiles are measured on


@dataclass(frozen=True)
class WorkflowLine:
    name: str
    description: str | None
    inputs: dict[str, InputSpec]
    may_run: str  # who may, as a reader says it
    may_cancel: str
    may_roll_back: str
    last: list[RunLine]
    finished: int  # of the newest FIGURES_OVER runs
    success: float | None  # share of those finished that succeeded
    p50: float | None  # duration of a finished run, seconds
    p90: float | None
    p99: float | None


def percentile(values: Sequence[float], pct: float) -> float | None:
    """The nearest-rank percentile (the smallest value with ``pct`` % of values at or below it)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(math.ceil(pct / 100 * len(ordered)) - 1, 0)]


async def load_workflows(svc: Services, who: Identity, where: Place) -> list[WorkflowLine]:
    """The workflows ``who`` may run, by name, each with its figures."""
    engine = svc.runtime.store.engine
    lines = []
    for loaded in svc.workflows():
        spec = loaded.spec
        if not allowed(spec.permissions.run, who, where):
            continue
        recent = await recent_runs(engine, spec.name, FIGURES_OVER)
        done = [r for r in recent if RunStatus(r.status).finished and r.finished_at is not None]
        durations = [r.finished_at - r.created_at for r in done if r.finished_at is not None]
        perms = spec.permissions
        lines.append(
            WorkflowLine(
                spec.name,
                spec.description,
                dict(spec.inputs),
                describe(perms.run),
                "its starter, admins, " + describe(perms.cancel if perms.cancel is not None else perms.run),
                "its starter, admins, "
                + describe(perms.rollback if perms.rollback is not None else perms.run),
                recent[:LAST_SHOWN],
                len(done),
                sum(r.status == "succeeded" for r in done) / len(done) if done else None,
                percentile(durations, 50),
                percentile(durations, 90),
                percentile(durations, 99),
            )
        )
    return lines
