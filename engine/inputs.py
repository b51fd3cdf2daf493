"""Check and type a run's inputs against the workflow's declared inputs."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from typing import Any

from engine.spec import Workflow


class InputError(ValueError):
    """Inputs that do not fit the workflow; ``problems`` maps each input name to what is wrong."""

    def __init__(self, workflow: str, problems: dict[str, str], missing: tuple[str, ...] = ()) -> None:
        self.workflow = workflow
        self.problems = problems
        self.missing = missing
        super().__init__(self.describe())

    def describe(self, pass_as: Callable[[str], str] = lambda name: f"{name}=...") -> str:
        """The message, with each missing input's hint in the caller's syntax (chat: ``name=...``)."""
        lines = "; ".join(
            f"{name}: {why}" + (f"; pass it as {pass_as(name)}" if name in self.missing else "")
            for name, why in self.problems.items()
        )
        return f"invalid inputs for workflow '{self.workflow}': {lines}"


def resolve_inputs(workflow: Workflow, raw: Mapping[str, Any]) -> dict[str, Any]:
    """Typed inputs with defaults filled in, or InputError naming every problem at once."""
    problems: dict[str, str] = {}
    missing: list[str] = []
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
            problems[name] = f"required{hint}"
            missing.append(name)
        else:
            values[name] = None
    if problems:
        raise InputError(workflow.name, problems, tuple(missing))
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
