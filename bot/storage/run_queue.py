"""Runs that wait their turn: the order of an exclusion group's queue, and the status card of a run that
still waits in it (or for a process with room), written only while the run has not been claimed.

The guard matters because the card is drawn by whichever process saw the queue move, while the run may
be claimed at that moment by another: a claimed run's driver draws its own card after the claim commits,
so a queued card written later than that would stand over a running run.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql import Executable

from bot.storage.run_rows import UNFINISHED
from bot.storage.tables import chat_cards, runs
from engine.state import RunStatus

QUEUE_SHOWN = 50  # places drawn on cards: a longer queue's tail is drawn as it moves up


def queued_card_upsert(engine: AsyncEngine) -> Executable:
    """Insert or replace a run's card only while the run is still pending and nobody holds it."""
    if engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
    ins = insert(chat_cards)
    # Spelled as text: SQLAlchemy would add chat_cards to a subquery's FROM here, as nothing encloses it.
    still_waiting = sa.text(
        "EXISTS (SELECT 1 FROM runs WHERE runs.id = substr(chat_cards.key, 5)"
        f" AND runs.status = '{RunStatus.PENDING}' AND runs.lease_owner IS NULL)"
    )
    return ins.on_conflict_do_update(
        index_elements=[chat_cards.c.key],
        set_={
            "card": ins.excluded.card,
            "version": chat_cards.c.version + 1,
            "updated_at": ins.excluded.updated_at,
        },
        where=still_waiting,
    )


async def group_queue(engine: AsyncEngine, group: str) -> list[Any]:
    """The group's unfinished runs in the order they are admitted (the first is the one admitted now):
    ``id``, ``status``, ``lease_owner`` and ``meta`` of each, at most ``QUEUE_SHOWN`` + 1."""
    query = (
        sa.select(runs.c.id, runs.c.status, runs.c.lease_owner, runs.c.meta)
        .where(runs.c.exclusive == group, runs.c.status.in_([str(s) for s in UNFINISHED]))
        .order_by(runs.c.created_at, runs.c.id)
        .limit(QUEUE_SHOWN + 1)
    )
    async with engine.connect() as conn:
        return list((await conn.execute(query)).all())
