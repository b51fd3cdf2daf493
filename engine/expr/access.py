"""Reading values: case-insensitive keys, GitHub's indexing rules and ``*`` object filters.

Also the state of one evaluation (``Run``), which counts the work filters and functions do.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from engine.expr.coerce import is_primitive, to_number, to_text
from engine.expr.errors import MAX_WORK, ExpressionError

Fn = Callable[["Run"], Any]


class Filtered(list[Any]):
    """The list a ``*`` filter builds; indexing it indexes every item."""


class Run:
    """One evaluation: the contexts, the run's status for the status functions, and the work budget."""

    __slots__ = ("contexts", "files_root", "status", "text", "work")

    def __init__(self, contexts: Mapping[str, Any], status: str, files_root: str | None, text: str) -> None:
        self.contexts, self.status, self.files_root, self.work, self.text = (
            contexts,
            status,
            files_root,
            0,
            text,
        )

    def spend_text(self, *values: Any) -> None:
        """Long text costs work when compared or searched (a unit per 16 characters)."""
        for value in values:
            if type(value) is str and len(value) > 64:
                self.spend(len(value) >> 4)

    def spend(self, units: int) -> None:
        self.work += units
        if self.work > MAX_WORK:
            raise ExpressionError(
                self.text, f"the evaluation took more than {MAX_WORK:,} steps (the work bound)"
            )


def lookup(mapping: Mapping[str, Any], key: str) -> Any:
    """A key read ignoring case (an exact match first); a missing key is null."""
    try:
        return mapping[key]
    except (KeyError, TypeError):
        pass
    folded = key.lower()
    for k, v in mapping.items():
        if isinstance(k, str) and k.lower() == folded:
            return v
    return None


def index(target: Any, key: Any) -> Any:
    """``target[key]``: objects by text key, arrays by a whole non-negative index; anything else null."""
    if isinstance(target, Mapping):
        return lookup(target, to_text(key)) if is_primitive(key) else None
    if isinstance(target, list | tuple):
        number = to_number(key)
        if math.isfinite(number) and number >= 0 and number < len(target):
            return target[int(number)]
    return None


def star(target: Any, run: Run) -> Filtered:
    if isinstance(target, Filtered):
        out = Filtered()
        for item in target:
            if isinstance(item, Mapping):
                out.extend(item.values())
            elif isinstance(item, list | tuple):
                out.extend(item)
        run.spend(len(out) + len(target))
        return out
    if isinstance(target, Mapping):
        run.spend(len(target))
        return Filtered(target.values())
    if isinstance(target, list | tuple):
        run.spend(len(target))
        return Filtered(target)
    return Filtered()


def filter_key(target: Filtered, key: Any, run: Run) -> Filtered:
    out = Filtered()
    run.spend(len(target))
    text = to_text(key) if is_primitive(key) else None
    number = to_number(key)
    whole = int(number) if math.isfinite(number) and number >= 0 else None
    for item in target:
        if isinstance(item, Mapping):
            if text is not None:
                found = lookup(item, text)
                if found is not None or _has(item, text):
                    out.append(found)
        elif isinstance(item, list | tuple) and whole is not None and whole < len(item):
            out.append(item[whole])
    return out


def _has(mapping: Mapping[str, Any], key: str) -> bool:
    folded = key.lower()
    return any(isinstance(k, str) and k.lower() == folded for k in mapping)


def step(value: Any, key: Any, run: Run) -> Any:
    if type(value) is dict and type(key) is str:
        found = value.get(key, MISSING)
        return lookup(value, key) if found is MISSING else found
    if isinstance(value, Filtered):
        return filter_key(value, key, run)
    return index(value, key)


MISSING = object()
