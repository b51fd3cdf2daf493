"""YAML text to data that remembers where each key and value sits, and paths in that data to positions.

ruamel.yaml's round-trip loader keeps a 0-based ``.lc`` position for every key, value and list item;
this module reads them and reports 1-based lines and columns, as editors do.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any, Literal

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.constructor import DuplicateKeyError
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from engine.yaml_bounds import bounds_problem

Position = tuple[int, int]
Problem = tuple[int, int, str]
_HINTS = {
    "'\\t'": "indent with spaces: YAML does not allow tabs",
    "mapping values are not allowed": "put text that holds ': ' in quotes",
    "expected <block end>": "check the indentation of this line",
    "could not find expected ':'": "add ':' after the key, or put the text in quotes",
    "undefined alias": "define the anchor (&name) before using it (*name)",
    "end of stream": "close the quote or bracket opened earlier",
    "<stream end>": "close the quote or bracket opened earlier",
}


def parse_yaml(text: str) -> tuple[Any, list[Problem]]:
    """The round-trip data of ``text`` (None if unreadable) and every syntax problem, never raising.

    A file over a bound of ``yaml_bounds`` (size, nesting, nodes with aliases expanded) is unreadable.
    """
    bound = bounds_problem(text)
    if bound is not None:
        return None, [bound]
    try:
        return _yaml(allow_duplicates=False).load(text), []
    except DuplicateKeyError:
        pass  # parse again keeping the first value, so the rest of the file is still checked
    except MarkedYAMLError as exc:
        return None, [_syntax(exc)]
    except YAMLError as exc:
        return None, [(1, 1, f"invalid YAML: {exc}")]
    return _yaml(allow_duplicates=True).load(text), _duplicates(_yaml(allow_duplicates=True).compose(text))


def plain(value: Any) -> Any:
    """Round-trip data as plain dict, list, str, int, float, bool and None (dates become ISO text)."""
    if isinstance(value, Mapping):
        return {_plain_key(k): plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if value is None or isinstance(value, bool):
        return value
    for kind in (str, int, float):
        if isinstance(value, kind):
            return kind(value)
    if isinstance(value, datetime.date):
        return value.isoformat()
    return str(value)


def locate(root: Any, loc: tuple[str | int, ...], at: Literal["key", "value", "owner"]) -> Position:
    """The 1-based line and column of a path's key, value, or (for 'owner') the key holding its mapping.

    A path that goes deeper than the document (a missing key, a pydantic union tag) stops at the
    deepest entry that exists. Block mappings and lists, and empty values, are pointed at by their
    key; flow collections and scalars by the value itself.
    """
    if at == "owner":
        loc, at = loc[:-1], "key"
    line, col = (root.lc.line, root.lc.col) if isinstance(root, CommentedMap | CommentedSeq) else (0, 0)
    node = root
    for part in loc:
        try:
            if isinstance(node, CommentedMap) and part in node:
                key_at, value_at = node.lc.key(part), node.lc.value(part)
            elif isinstance(node, CommentedSeq) and isinstance(part, int) and 0 <= part < len(node):
                key_at = value_at = node.lc.item(part)
            else:
                break
        except KeyError:  # keys brought in by a merge (<<) have no position of their own
            break
        node = node[part]
        block = isinstance(node, CommentedMap | CommentedSeq) and not node.fa.flow_style()
        line, col = value_at if at == "value" and not block and node is not None else key_at
    return line + 1, col + 1


def _yaml(*, allow_duplicates: bool) -> YAML:
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = allow_duplicates
    return yaml


def _plain_key(key: Any) -> Any:
    return plain(key) if key is None or isinstance(key, str | int | float | bool) else str(key)


def _syntax(exc: MarkedYAMLError) -> Problem:
    mark = exc.problem_mark or exc.context_mark
    line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
    message = f"invalid YAML: {exc.problem or exc.context or 'syntax error'}"
    if exc.context and exc.context_mark is not None and exc.problem:
        started = f"line {exc.context_mark.line + 1}, column {exc.context_mark.column + 1}"
        message += f" ({exc.context}, which starts at {started})"
    hint = next((h for key, h in _HINTS.items() if key in message), "fix the YAML at this position")
    return line, col, f"{message}; {hint}"


def _duplicates(document: Node | None) -> list[Problem]:
    found: list[Problem] = []
    todo = [document] if document is not None else []
    seen: set[int] = set()
    while todo:
        node = todo.pop()
        if id(node) in seen:  # an alias shares its anchor's node
            continue
        seen.add(id(node))
        if isinstance(node, MappingNode):
            first: dict[str, Node] = {}
            for key, value in node.value:
                todo.append(value)
                if not isinstance(key, ScalarNode) or key.value == "<<":
                    continue
                if key.value in first:
                    was = first[key.value].start_mark.line + 1
                    message = f"duplicate key '{key.value}' (first on line {was}); keep only one of them"
                    found.append((key.start_mark.line + 1, key.start_mark.column + 1, message))
                else:
                    first[key.value] = key
        elif isinstance(node, SequenceNode):
            todo.extend(node.value)
    return found
