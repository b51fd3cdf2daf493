"""The parsed form of an expression: a small tree of immutable nodes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Lit:
    value: Any
    pos: int


@dataclass(frozen=True, slots=True)
class Ctx:
    name: str  # as written; contexts are looked up ignoring case
    pos: int


@dataclass(frozen=True, slots=True)
class Star:
    pos: int


@dataclass(frozen=True, slots=True)
class Access:
    """``base.a[b].*``: each key is a property name (Lit str), an index expression or a ``*``."""

    base: Node
    keys: tuple[Node | Star, ...]
    dotted: tuple[bool, ...]  # whether each key was written ``.name`` (for the static checks)


@dataclass(frozen=True, slots=True)
class Not:
    operand: Node
    pos: int


@dataclass(frozen=True, slots=True)
class Compare:
    """``a < b >= c``: a left-to-right chain of one precedence level, evaluated without recursion."""

    first: Node
    rest: tuple[tuple[str, Node, int], ...]  # (operator, operand, position of the operator)


@dataclass(frozen=True, slots=True)
class Logic:
    op: str  # && or ||
    args: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Call:
    name: str  # lower case
    spelt: str
    args: tuple[Node, ...]
    pos: int


Node = Lit | Ctx | Access | Not | Compare | Logic | Call


def walk(node: Node | Star) -> list[Node | Star]:
    """Every node of a tree, parents before children."""
    found: list[Node | Star] = []
    stack: list[Node | Star] = [node]
    while stack:
        item = stack.pop()
        found.append(item)
        if isinstance(item, Access):
            stack += [*reversed(item.keys), item.base]
        elif isinstance(item, Not):
            stack.append(item.operand)
        elif isinstance(item, Compare):
            stack += [*(n for _, n, _ in reversed(item.rest)), item.first]
        elif isinstance(item, Logic | Call):
            stack += list(reversed(item.args))
    return found
