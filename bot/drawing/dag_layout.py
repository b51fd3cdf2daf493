"""A run's DAG laid out, and drawn as an inline SVG: layers from the workflow's ``needs``, each node
coloured by its step's state (``dag_png`` draws the same layout as a PNG for chat).

Pure: a mapping of step id to its needs and a mapping of step id to what a node shows go in, markup comes
out. A fan-out step is one node with a count (``3/5``). Steps go left to right by depth (the longest chain
of needs before them); the SVG scales to the page's width through its ``viewBox``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

from engine.graph import HasNeeds, topological_order

NODE_W, NODE_H = 160, 48
GAP_X, GAP_Y, PAD = 56, 20, 12
STATES = ("pending", "running", "waiting", "succeeded", "failed", "skipped", "cancelled")


@dataclass(frozen=True)
class Node:
    """What one node shows: its step's state and, for a fan-out, how many items are done of how many."""

    status: str = "pending"
    done: int | None = None
    total: int | None = None

    @property
    def count(self) -> str:
        """``2/5`` for a fan-out with two of five items done; empty for any other step."""
        return "" if self.total is None else f"{self.done or 0}/{self.total}"

    @property
    def label(self) -> str:
        return f"{self.status} {self.count}" if self.count else self.status


@dataclass(frozen=True)
class Placed:
    step_id: str
    x: int
    y: int


def depths(steps: Mapping[str, HasNeeds]) -> dict[str, int]:
    """Each step's column: 0 for a step that needs nothing, else one more than its deepest need."""
    found: dict[str, int] = {}
    for step_id in topological_order(steps):
        needs = [n for n in steps[step_id].needs if n in steps]
        found[step_id] = max((found[n] + 1 for n in needs), default=0)
    return found


def layout(steps: Mapping[str, HasNeeds]) -> list[Placed]:
    """Where each node's top-left corner goes, columns by depth, rows in declaration order."""
    column = depths(steps)
    rows: dict[int, int] = {}
    placed = []
    for step_id in steps:
        depth = column[step_id]
        row = rows.get(depth, 0)
        rows[depth] = row + 1
        placed.append(Placed(step_id, PAD + depth * (NODE_W + GAP_X), PAD + row * (NODE_H + GAP_Y)))
    return placed


def render_svg(steps: Mapping[str, HasNeeds], nodes: Mapping[str, Node], title: str) -> Markup:
    """The DAG as an ``<svg>`` element; every node is a ``<g data-step=ID>`` whose class names its state,
    in a link to the step's row (``#step-ID``)."""
    placed = layout(steps)
    where = {p.step_id: p for p in placed}
    width = max((p.x + NODE_W for p in placed), default=0) + PAD
    height = max((p.y + NODE_H for p in placed), default=0) + PAD
    parts = [
        f'<svg class="dag" role="group" aria-labelledby="dag-title" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">',
        f'<title id="dag-title">{escape(title)}</title>',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" class="dag__arrow"/></marker></defs>',
    ]
    for step_id, step in steps.items():
        for need in dict.fromkeys(step.needs):
            if need in where:
                parts.append(_edge(where[need], where[step_id]))
    for p in placed:
        parts.append(_node(p, nodes.get(p.step_id, Node())))
    parts.append("</svg>")
    return Markup("".join(parts))


def _edge(start: Placed, end: Placed) -> str:
    x1, y1 = start.x + NODE_W, start.y + NODE_H // 2
    x2, y2 = end.x, end.y + NODE_H // 2
    bend = (x2 - x1) // 2
    return (
        f'<path class="dag__edge" data-from="{escape(start.step_id)}" data-to="{escape(end.step_id)}" '
        f'd="M{x1},{y1} C{x1 + bend},{y1} {x2 - bend},{y2} {x2},{y2}" marker-end="url(#arrow)"/>'
    )


def _node(p: Placed, node: Node) -> str:
    status = node.status if node.status in STATES else "pending"
    name = escape(_clip(p.step_id, 20))
    return (
        f'<a href="#step-{escape(p.step_id)}" class="dag__link">'
        f'<g class="dag__node dag__node--{status}" data-step="{escape(p.step_id)}">'
        f"<title>{escape(p.step_id)}: {escape(node.label)}</title>"
        f'<rect x="{p.x}" y="{p.y}" width="{NODE_W}" height="{NODE_H}" rx="8"/>'
        f'<text class="dag__name" x="{p.x + 10}" y="{p.y + 20}">{name}</text>'
        f'<text class="dag__state" x="{p.x + 10}" y="{p.y + 38}">{escape(node.label)}</text>'
        "</g></a>"
    )


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def nodes_from(rows: Sequence[tuple[str, int | None, str, int | None]]) -> dict[str, Node]:
    """Nodes from step rows ``(step_id, index, status, items_total)``: a fan-out's items give its count."""
    tops: dict[str, tuple[str, int | None]] = {}
    done: dict[str, int] = {}
    for step_id, index, status, total in rows:
        if index is None:
            tops[step_id] = (status, total)
        elif status in ("succeeded", "failed", "skipped", "cancelled"):
            done[step_id] = done.get(step_id, 0) + 1
    return {
        step_id: Node(status, done.get(step_id, 0) if total is not None else None, total)
        for step_id, (status, total) in tops.items()
    }
