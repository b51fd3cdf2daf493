"""A run's DAG in its chat thread: a card carrying the PNG (``bot.drawing``), posted at the end of the run
(in the commit that finishes it) and on ``/workflow status RUN`` (``post_dag``). The outbox delivers it:
an upload on Slack and Discord, an inline image in the console."""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence

from bot.drawing.dag_layout import nodes_from
from bot.drawing.dag_png import render_png
from bot.storage.cards import add_post, post_row
from bot.storage.runs import RunStore
from cards.model import MAX_PICTURE, Card, Picture
from engine.graph import HasNeeds
from engine.loader import parse_stored
from engine.state import StepState


def dashboard_link(public_url: str | None, run_id: str) -> str | None:
    """The run's dashboard page, when the public address is configured (``SWITCHBOARD_PUBLIC_URL``)."""
    return f"{public_url.rstrip('/')}/dashboard/runs/{run_id}" if public_url else None


def dag_card(
    run_id: str,
    workflow: str,
    status: str,
    steps: Mapping[str, HasNeeds],
    states: Sequence[StepState],
    link: str | None = None,
) -> Card:
    """The thread message with the DAG's picture; its text says the same for clients without images."""
    nodes = nodes_from([(s.step_id, s.index, str(s.status), _total(s)) for s in states])
    title = f"{workflow} · run {run_id[:6]} · {status}"
    png = render_png(steps, nodes, title)
    counts: dict[str, int] = {}
    for node in nodes.values():
        counts[node.status] = counts.get(node.status, 0) + 1
    summary = ", ".join(f"{n} {state}" for state, n in sorted(counts.items())) or "no step started"
    text = f"Steps graph of run {run_id}: {summary}." + (f" Live: {link}" if link else "")
    picture = (
        Picture(f"dag-{run_id[:12]}.png", f"Steps graph of {workflow} run {run_id}: {summary}", _b64(png))
        if len(png) <= MAX_PICTURE
        else None  # too big to post: the text (and the dashboard's link) stand in for it
    )
    return Card(title="Steps graph", text=text, colour="info", fallback=text, image=picture)


async def post_dag(store: RunStore, run_id: str, public_url: str | None, now: float) -> bool:
    """Queue the DAG's picture in the thread of a run's status card; False when the run has no chat card."""
    row = await store.run_row(run_id)
    if row is None:
        return False
    origin = row.meta.get("origin") if isinstance(row.meta, dict) else None
    if not isinstance(origin, dict) or not origin.get("channel") or row.meta.get("parent_run_id"):
        return False
    source, path = await store.source_of(row.digest)
    workflow = parse_stored(source, path)
    card = dag_card(
        row.id,
        row.workflow,
        row.status,
        workflow.steps,
        await store.step_rows(row.id),
        dashboard_link(public_url, row.id),
    )
    async with store.engine.begin() as conn:
        await add_post(
            conn, post_row(str(origin["platform"]), str(origin["channel"]), f"run:{row.id}", card, now)
        )
    return True


def _total(step: StepState) -> int | None:
    return len(step.items) if step.items is not None else None


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
