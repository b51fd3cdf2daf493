"""Cross-references in a workflow: what each step needs, loops of needs, and what every expression reads.

These checks read the plain data of the file rather than the validated model, so they still run (and
report) when the file also has errors of shape.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from engine.diagnostics import Issue, Loc, suggest
from engine.expression_checks import ExpressionChecks, listing
from engine.graph import find_cycle, upstream
from engine.secret_flow import secret_issues
from engine.trigger_checks import trigger_issues


# ``approval``: the latest request for changes (feedback, revision), read by the step an approval revises.
class _Node(NamedTuple):
    needs: tuple[str, ...]


def reference_issues(data: Mapping[str, Any]) -> list[Issue]:
    """Needs that name no step, a loop of needs, expressions that are invalid or read out of reach, and
    secrets that would be shown or transformed."""
    raw_steps = data.get("steps")
    steps: dict[str, Mapping[str, Any]] = {}
    if isinstance(raw_steps, Mapping):
        steps = {k: v for k, v in raw_steps.items() if isinstance(k, str) and isinstance(v, Mapping)}
    issues, graph = _need_issues(steps)
    cycle = find_cycle(graph)
    if cycle:
        message = f"steps form a cycle: {' -> '.join(cycle)}; remove one of these needs"
        issues.append(Issue(("steps", cycle[0]), message, "key"))
    else:
        issues += _revise_issues(steps, graph)
    issues += trigger_issues(data)
    return issues + ExpressionChecks(data, steps, graph).issues() + secret_issues(data, steps)


def _revise_issues(steps: Mapping[str, Mapping[str, Any]], graph: dict[str, _Node]) -> list[Issue]:
    """An approval's ``revise:`` must name a step it (transitively) needs: that step runs again."""
    issues = []
    for step_id, step in steps.items():
        approval = step.get("approval")
        target = approval.get("revise") if isinstance(approval, Mapping) else None
        if not isinstance(target, str):
            continue
        loc: Loc = ("steps", step_id, "approval", "revise")
        if target not in steps:
            close = suggest(target, list(steps))
            hint = f"did you mean '{close}'?" if close else f"the steps are: {listing(steps)}"
            issues.append(Issue(loc, f"step '{step_id}' revises '{target}', which is not a step; {hint}"))
        elif target not in upstream(graph, step_id):
            issues.append(
                Issue(
                    loc,
                    f"step '{step_id}' revises '{target}', which it does not need; "
                    f"add '{target}' to its needs (directly or through another step)",
                )
            )
    return issues


def _need_issues(steps: Mapping[str, Mapping[str, Any]]) -> tuple[list[Issue], dict[str, _Node]]:
    issues: list[Issue] = []
    graph: dict[str, _Node] = {}
    for step_id, step in steps.items():
        key = "needs" if "needs" in step else "depends_on"
        raw = step.get(key)
        entries: list[tuple[Loc, object]] = []
        if isinstance(raw, str):
            entries = [(("steps", step_id, key), raw)]
        elif isinstance(raw, list):
            entries = [(("steps", step_id, key, index), need) for index, need in enumerate(raw)]
        kept: list[str] = []
        for loc, need in entries:
            if not isinstance(need, str):
                continue  # the model reports entries that are not text
            if need == step_id:
                issues.append(Issue(loc, f"step '{step_id}' needs itself; remove '{need}' from its needs"))
            elif need not in steps:
                close = suggest(need, list(steps))
                hint = f"did you mean '{close}'?" if close else f"the steps are: {listing(steps)}"
                issues.append(Issue(loc, f"step '{step_id}' needs '{need}', which is not a step; {hint}"))
            else:
                kept.append(need)
        graph[step_id] = _Node(tuple(kept))
    return issues, graph
