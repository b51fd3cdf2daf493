"""The public API for workflow authors: the ``@action`` decorator and the ``ActionContext`` an action gets.

A workflow step ``action: examples.actions:lint`` calls ``lint`` from ``<workflows dir>/examples/actions.py``,
but only if it is marked with ``@action``; any other callable is refused, so a workflow file cannot
reach ``os:system`` or ``subprocess:run``::

    from engine.actions import ActionContext, action

    @action
    def lint(ctx: ActionContext) -> dict[str, object]:
        return {"files": len(ctx.params["paths"])}

An action takes the context as its single argument. It may be sync (it then runs in a worker thread,
so it cannot block the event loop) or async. It returns a mapping (the step's outputs), ``None``
(no outputs) or any other JSON value (the output ``value``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar, overload

ACTION_MARK = "__switchboard_action__"

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True, kw_only=True)
class ActionContext:
    """What an action knows about the step attempt that called it."""

    inputs: dict[str, Any] = field(default_factory=dict)  # the run's inputs
    params: dict[str, Any] = field(default_factory=dict)  # the step's rendered ``with:``
    run_id: str
    step_id: str
    step_key: str  # "build", or "shard[3]" for a fan-out item
    attempt: int
    idempotency_key: str  # the same on every attempt of this step key in this run
    item: Any = None  # the fan-out item, when the step has ``for_each``
    index: int | None = None  # the fan-out item's position


@overload
def action(func: F, /) -> F: ...


@overload
def action(*, name: str | None = None) -> Callable[[F], F]: ...


def action(func: F | None = None, /, *, name: str | None = None) -> F | Callable[[F], F]:
    """Mark a callable as a Switchboard action (``@action`` or ``@action(name=...)``); it stays callable."""

    def mark(target: F) -> F:
        # An attribute, not a wrapper: the function keeps its signature, docstring and direct callers.
        setattr(target, ACTION_MARK, name or getattr(target, "__name__", repr(target)))
        return target

    if func is not None:
        return mark(func)
    return mark


def is_action(obj: object) -> bool:
    """Return True if ``obj`` was marked with ``@action``."""
    return isinstance(getattr(obj, ACTION_MARK, None), str)


def action_name(obj: object) -> str | None:
    """Return the name an action was registered under, or None for anything not marked."""
    value = getattr(obj, ACTION_MARK, None)
    return value if isinstance(value, str) else None
