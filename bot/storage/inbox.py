"""A run's inbox: signals left for a run, to be applied by whichever process runs it."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bot.storage.tables import inbox
from bot.storage.timer_bell import notify_work

Mail = list[tuple[int, str, dict[str, Any]]]  # (inbox id, kind, payload), oldest first


class RunInbox:
    """Posting to and reading run inboxes; part of RunStore (which supplies ``engine``, ``insert_inbox``)."""

    engine: AsyncEngine
    insert_inbox: sa.Insert

    async def post(self, run_id: str, kind: str, payload: dict[str, Any], now: float) -> None:
        """Leave a signal for a run, to be applied by whichever process runs it (told at commit: the one
        driving it reads it, or one with capacity claims the run)."""
        async with self.engine.begin() as conn:
            await conn.execute(
                self.insert_inbox, {"run_id": run_id, "kind": kind, "payload": payload, "created_at": now}
            )
            await notify_work(conn, [run_id])

    async def inbox_for(self, run_id: str, after_id: int = 0) -> Mail:
        """A run's unconsumed signals, oldest first."""
        async with self.engine.connect() as conn:
            return await read_mail(conn, run_id, after_id)

    async def runs_with_mail(self) -> list[str]:
        """Runs that have unconsumed signals."""
        query = sa.select(inbox.c.run_id).where(inbox.c.consumed_at.is_(None)).distinct()
        async with self.engine.connect() as conn:
            return list((await conn.execute(query)).scalars())


async def read_mail(conn: AsyncConnection, run_id: str, after_id: int = 0) -> Mail:
    """A run's unconsumed signals after ``after_id``, oldest first, in the caller's transaction."""
    query = (
        sa.select(inbox.c.id, inbox.c.kind, inbox.c.payload)
        .where(inbox.c.run_id == run_id, inbox.c.consumed_at.is_(None), inbox.c.id > after_id)
        .order_by(inbox.c.id)
    )
    return [(r.id, r.kind, r.payload) for r in (await conn.execute(query)).all()]
