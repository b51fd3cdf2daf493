"""The step graph: cycles, run order and reach, computed from each step's ``needs``.

Pure functions over a mapping of step id to anything with a ``needs`` list (a ``Step``, or the
loader's light stand-in for raw YAML). A need that names no step is ignored here; the loader reports it.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol


class HasNeeds(Protocol):
    """Anything with the ids of the steps it needs, such as ``engine.spec.Step``."""

    @property
    def needs(self) -> Sequence[str]: ...


_ACTIVE, _DONE = 1, 2


def _needs(steps: Mapping[str, HasNeeds], step_id: str) -> list[str]:
    return [need for need in steps[step_id].needs if need in steps]


def _dependents(steps: Mapping[str, HasNeeds]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {step_id: [] for step_id in steps}
    for step_id in steps:
        for need in _needs(steps, step_id):
            found[need].append(step_id)
    return found


def find_cycle(steps: Mapping[str, HasNeeds]) -> list[str] | None:
    """The first loop of needs, in declaration order, as a path like ['a', 'b', 'c', 'a']; None if none."""
    state: dict[str, int] = {}
    for start in steps:
        if start in state:
            continue
        # Iterative depth-first search: a 500-step chain must not hit the recursion limit.
        path = [start]
        pending = [iter(_needs(steps, start))]
        state[start] = _ACTIVE
        while pending:
            nxt = next(pending[-1], None)
            if nxt is None:
                state[path.pop()] = _DONE
                pending.pop()
            elif state.get(nxt) == _ACTIVE:
                return [*path[path.index(nxt) :], nxt]
            elif nxt not in state:
                state[nxt] = _ACTIVE
                path.append(nxt)
                pending.append(iter(_needs(steps, nxt)))
    return None


def topological_order(steps: Mapping[str, HasNeeds]) -> list[str]:
    """Every step after all it needs; among steps ready together, declaration order wins."""
    position = {step_id: index for index, step_id in enumerate(steps)}
    waiting = {step_id: len(set(_needs(steps, step_id))) for step_id in steps}
    dependents = _dependents(steps)
    ready = [position[step_id] for step_id, count in waiting.items() if count == 0]
    heapq.heapify(ready)
    ids = list(steps)
    order: list[str] = []
    while ready:
        step_id = ids[heapq.heappop(ready)]
        order.append(step_id)
        for dependent in dict.fromkeys(dependents[step_id]):
            waiting[dependent] -= 1
            if waiting[dependent] == 0:
                heapq.heappush(ready, position[dependent])
    if len(order) < len(steps):
        cycle = find_cycle(steps) or []
        raise ValueError(f"steps form a cycle: {' -> '.join(cycle)}")
    return order


def upstream(steps: Mapping[str, HasNeeds], step_id: str) -> set[str]:
    """Every step that ``step_id`` needs, directly or through other steps."""
    return _reach(step_id, steps, lambda current: _needs(steps, current))


def downstream(steps: Mapping[str, HasNeeds], step_id: str) -> set[str]:
    """Every step that needs ``step_id``, directly or through other steps."""
    dependents = _dependents(steps)
    return _reach(step_id, steps, lambda current: dependents[current])


def _reach(step_id: str, steps: Mapping[str, HasNeeds], edges: Callable[[str], Sequence[str]]) -> set[str]:
    if step_id not in steps:
        raise KeyError(step_id)
    seen: set[str] = set()
    todo = [step_id]
    while todo:
        for nxt in edges(todo.pop()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    seen.discard(step_id)
    return seen
