"""Background steps (``background: true``): which steps may be one, and how their dependents see them.

A background step starts like any step, takes no concurrency slot, and holds nothing up: a step that
needs it starts as soon as it has started, and counts it as succeeded (unless it was skipped). Its
failure is recorded and reported but never fails the run. The run ends only once it has ended too,
which its own ``timeout`` bounds. The full rules, crash and resume included: docs/background-steps.md.
"""

from __future__ import annotations

from typing import Any

BACKGROUND_KINDS = ("run", "http", "action", "llm")


def background_problem(kinds: list[str], for_each: Any, timeout: float | None) -> str | None:
    """Why a step of ``kinds`` cannot be ``background: true``, or None when it can."""
    if len(kinds) != 1:
        return None  # a step with no kind, or two, is reported by the kind check
    if kinds[0] not in BACKGROUND_KINDS:
        return (
            f"'background' applies to run, http, action and llm steps, not to {kinds[0]}: a notify step "
            "never holds the run up, and a wait, an approval or a sub-workflow is what a run waits for"
        )
    if for_each is not None:
        return "'background' cannot be combined with 'for_each'; run the fan-out in the foreground"
    if timeout is None:
        return (
            "a background step needs a 'timeout:' (e.g. timeout: 10m): the run's end waits for it at most "
            "that long, then cancels it"
        )
    return None


def reads_background(reader: str, target: str) -> str:
    """The load error for a step that reads a background step's ``steps.<id>`` values."""
    return (
        f"step '{reader}' reads steps.{target}, but '{target}' runs in the background: steps that need it "
        "start once it has started and never wait for its result, so nothing of it is there to read. "
        f"Read it in the workflow's 'outputs:' (the run's end waits for background steps), or remove "
        f"'background: true' from '{target}' so that the steps needing it wait for it"
    )
