"""Bounds on a workflow file before it is built into data: its size, nesting and node count.

ruamel.yaml builds a document recursively and expands every alias, so a deep file raises
RecursionError and a "billion laughs" file of nested aliases grows without end. One pass over the
parser's events, which is flat and streaming, counts what building the document would cost (an alias
costs what its anchor holds) and stops at the first bound crossed, before anything is built.
"""

from __future__ import annotations

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError
from ruamel.yaml.events import (
    AliasEvent,
    CollectionEndEvent,
    CollectionStartEvent,
    Event,
    ScalarEvent,
)

MAX_BYTES = 1024 * 1024  # characters in one workflow file
MAX_NODES = 100_000  # values in one document, every alias expanded
MAX_NESTING = 64  # mappings and lists inside one another

Problem = tuple[int, int, str]


def size_problem(text: str) -> Problem | None:
    """A file over MAX_BYTES characters, refused before it is parsed."""
    if len(text) <= MAX_BYTES:
        return None
    reason = (
        f"the file holds more than {MAX_BYTES:,} characters (the file size limit); "
        "split it, or move data out of it"
    )
    return 1, 1, reason


def bounds_problem(text: str) -> Problem | None:
    """The first bound ``text`` crosses (size, nesting, nodes with aliases expanded), or None.

    A syntax error is left to the real parser, which reports it with its position.
    """
    problem = size_problem(text)
    if problem is not None:
        return problem
    frames: list[list[int]] = []  # per open collection: nodes inside it so far
    anchors: dict[str, int] = {}
    opened: list[str | None] = []
    total = 0
    try:
        for event in YAML(typ="rt").parse(text):
            if isinstance(event, AliasEvent) and event.anchor in opened:
                return _at(
                    event,
                    f"the alias *{event.anchor} sits inside its own anchor (YAML that holds itself)",
                )
            cost = _cost(event, anchors)
            if isinstance(event, CollectionStartEvent):
                frames.append([1])
                opened.append(event.anchor)
                if len(frames) > MAX_NESTING:
                    return _at(event, f"the YAML nests deeper than {MAX_NESTING} levels (the nesting limit)")
                total += 1
            elif isinstance(event, CollectionEndEvent) and frames:
                size = frames.pop()[0]
                anchor = opened.pop()
                if anchor is not None:
                    anchors[anchor] = size
                if frames:
                    frames[-1][0] += size
            elif cost:
                total += cost
                if frames:
                    frames[-1][0] += cost
                if isinstance(event, ScalarEvent) and event.anchor is not None:
                    anchors[event.anchor] = 1
            if total > MAX_NODES:
                return _at(
                    event,
                    f"the document holds more than {MAX_NODES:,} values with its aliases expanded "
                    "(the node limit); an alias of an alias repeated like this is refused",
                )
    except YAMLError:
        return None
    return None


def _cost(event: Event, anchors: dict[str, int]) -> int:
    if isinstance(event, ScalarEvent):
        return 1
    if isinstance(event, AliasEvent):
        return anchors.get(str(event.anchor), 1)
    return 0


def _at(event: Event, message: str) -> Problem:
    mark = event.start_mark
    return (mark.line + 1, mark.column + 1, message) if mark is not None else (1, 1, message)
