"""Check and type a run's inputs against the workflow's declared inputs."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

from engine.spec import Workflow


class InputError(ValueError):
    """Inputs that do not fit the workflow; ``problems`` maps each input name to what is wrong."""

    def __init__(self, workflow: str, problems: dict[str, str]) -> None:
        self.workflow = workflow
        self.problems = problems
        lines = "; ".join(f"{name}: {why}" for name, why in problems.items())
        super().__init__(f"invalid inputs for workflow '{workflow}': {lines}")


def resolve_inputs(workflow: Workflow, raw: Mapping[str, Any]) -> dict[str, Any]:
    """Typed inputs with defaults filled in, or InputError naming every problem at once."""
    problems: dict[str, str] = {}
    declared = workflow.inputs
    for name in raw:
        if name not in declared:
            close = difflib.get_close_matches(name, list(declared), n=1)
            if close:
                problems[name] = f"unknown input; did you mean '{close[0]}'?"
            elif declared:
                problems[name] = f"unknown input; this workflow takes {', '.join(declared)}"
            else:
                problems[name] = "unknown input; this workflow takes no inputs"
    values: dict[str, Any] = {}
    for name, spec in declared.items():
        if name in raw:
            try:
                values[name] = spec.coerce(raw[name])
            except ValueError as exc:
                problems[name] = str(exc)
        elif spec.default is not None:
            values[name] = spec.coerce(spec.default)
        elif spec.required:
            hint = f" ({spec.description})" if spec.description else ""
            problems[name] = f"required{hint}; pass it as {name}=..."
        else:
            values[name] = None
    if problems:
        raise InputError(workflow.name, problems)
    return values


def parse_pairs(pairs: list[str]) -> dict[str, str]:
    """``["a=1", "b=x y"]`` to ``{"a": "1", "b": "x y"}``; a pair without '=' is an error."""
    out: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"'{pair}' is not name=value")
        out[name.strip()] = value
    return out
