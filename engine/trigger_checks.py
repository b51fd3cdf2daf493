"""The ``on:`` section against the rest of the workflow: trigger inputs must be declared, and every required
input without a default must be given, since no person is there to be asked."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.diagnostics import Issue, suggest


def trigger_issues(data: Mapping[str, Any]) -> list[Issue]:
    """Inputs a webhook or schedule gives that are not declared, or leaves out though required."""
    on = data.get("on")
    if not isinstance(on, Mapping):
        return []
    raw = data.get("inputs")
    declared: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
    needed = [
        str(name)
        for name, spec in declared.items()
        if isinstance(spec, Mapping) and spec.get("required") and spec.get("default") is None
    ]
    places: list[tuple[tuple[str | int, ...], Any]] = []
    if isinstance(on.get("webhook"), Mapping):
        places.append((("on", "webhook"), on["webhook"]))
    schedule = on.get("schedule")
    if isinstance(schedule, str):
        places.append((("on", "schedule"), {}))  # schedule: "0 3 * * *" gives no inputs
    elif isinstance(schedule, Mapping):
        places.append((("on", "schedule"), schedule))
    elif isinstance(schedule, list):
        places += [(("on", "schedule", i), e) for i, e in enumerate(schedule) if isinstance(e, Mapping)]
    issues: list[Issue] = []
    for loc, trigger in places:
        given = trigger.get("inputs")
        inputs: Mapping[str, Any] = given if isinstance(given, Mapping) else {}
        for name in inputs:
            if name not in declared:
                close = suggest(str(name), [str(k) for k in declared])
                hint = f"did you mean '{close}'?" if close else "declare it under 'inputs:'"
                issues.append(Issue((*loc, "inputs", name), f"input '{name}' is not declared; {hint}", "key"))
        missing = [name for name in needed if name not in inputs]
        if missing:
            what = ", ".join(missing)
            issues.append(
                Issue(
                    loc,
                    f"required input(s) {what} are not given: a run this trigger starts has nobody to ask, "
                    f"so set them under 'inputs:' here (or give them a default)",
                    "owner",
                )
            )
    return issues
