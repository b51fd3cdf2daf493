"""The status card of a run that waits its turn: "queued: 2nd in line for deploy-prod", or "waiting for
capacity" while every process is full. Drawn when the run is stored and again as its group's queue moves;
the run's own driver draws its card once it is claimed."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from bot.runtime.run_views import view_from_state, view_from_store
from bot.storage.cards import card_row
from bot.storage.journal import Batch
from bot.storage.run_queue import group_queue
from cards.run_card import RunView, run_card
from engine.state import RunState

if TYPE_CHECKING:
    from bot.runtime.runtime import Runtime

log = logging.getLogger(__name__)
CAPACITY = "waiting for capacity"


def ordinal(n: int) -> str:
    """1st, 2nd, 3rd, 4th, 11th, 12th, 13th, 21st."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def in_line(place: int, group: str) -> str:
    """What a card says of a run with ``place`` runs of its group ahead of it."""
    return f"{ordinal(place)} in line for {group}"


def capacity_card(rt: Runtime, batch: Batch, state: RunState, now: float) -> None:
    """Add the card of a new run that waits for a process with room to ``batch`` (a chat run only)."""
    origin = state.meta.get("origin")
    if not origin or state.meta.get("parent_run_id"):
        return
    view = replace(view_from_state(state, now), queued=CAPACITY)
    batch.add(rt.queued_card, _row(state.run_id, origin, view, now))


async def draw_queue(rt: Runtime, group: str) -> None:
    """Redraw the cards of the group's waiting runs with their place in line (logged, never raised: the
    queue's order is in the database whatever a card says)."""
    try:
        queue = await group_queue(rt.store.engine, group)
        now, batch = rt.clock(), Batch()
        for place, row in enumerate(queue):
            origin = (row.meta or {}).get("origin")
            if place == 0 or row.status != "pending" or row.lease_owner is not None or not origin:
                continue  # the admitted run, one being driven, or one with no chat
            view = await view_from_store(rt.store, row.id, now)
            if view is not None:
                shown = replace(view, queued=in_line(place, group))
                batch.add(rt.queued_card, _row(row.id, origin, shown, now))
        if batch.ops:
            await rt.store.journal.write(batch)
    except Exception:
        log.exception("queue cards: drawing the places in %s failed", group)


def _row(run_id: str, origin: dict[str, Any], view: RunView, now: float) -> dict[str, Any]:
    return card_row(f"run:{run_id}", origin["platform"], origin["channel"], run_card(view), now)
