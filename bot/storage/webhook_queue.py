"""The outbox's webhook rows: due deliveries with their subscription, claims, and the attempt log.

A claim is a compare-and-set on the delivery row, as for chat posts, so several processes can deliver
from the same table and no two send the same delivery at once.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.storage.tables import webhook_attempts, webhook_deliveries, webhook_subscriptions

BATCH = 200
EXCERPT = 500  # characters of a receiver's answer kept in the log


class WebhookRows:
    """The statements the webhook sender runs, one short transaction each."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def due(self, now: float, stale_before: float, owner: str) -> list[Any]:
        """Deliveries whose time has come and that nobody else live holds, with their URL and secret.

        ``owner``'s own claims are included: one left behind when recording an attempt failed (the
        database was away) is taken up again at once, not after the claim goes stale. A delivery whose
        subscription is gone has no URL (None): the sender fails it.
        """
        d, s = webhook_deliveries, webhook_subscriptions
        query = (
            sa.select(d, s.c.url, s.c.secret)
            .select_from(d.outerjoin(s, s.c.id == d.c.subscription_id))
            .where(
                d.c.status.in_(("pending", "sending")),
                d.c.next_at <= now,
                _free(owner, stale_before),
            )
            .order_by(d.c.next_at, d.c.id)
            .limit(BATCH)
        )
        async with self.engine.connect() as conn:
            return list((await conn.execute(query)).all())

    async def claim(self, ids: list[int], owner: str, now: float, stale_before: float) -> set[int]:
        """Claim due deliveries for ``owner`` in one statement; the ids this call won."""
        d = webhook_deliveries
        query = (
            d.update()
            .where(
                d.c.id.in_(ids),
                d.c.status.in_(("pending", "sending")),
                d.c.next_at <= now,
                _free(owner, stale_before),
            )
            .values(claimed_by=owner, claimed_at=now, status="sending")
            .returning(d.c.id)
        )
        async with self.engine.begin() as conn:
            return {int(i) for i in (await conn.execute(query)).scalars().all()}

    async def record(self, results: list[tuple[int, dict[str, Any], dict[str, Any]]]) -> None:
        """Log attempts and write their deliveries' new state, all in one transaction.

        Each result is (delivery id, the attempt's log row, the delivery's new values).
        """
        d = webhook_deliveries
        log_rows = [
            {
                "delivery_id": i,
                **a,
                "response": None if a["response"] is None else str(a["response"])[:EXCERPT],
            }
            for i, a, _ in results
        ]
        async with self.engine.begin() as conn:
            await conn.execute(webhook_attempts.insert(), log_rows)
            for delivery_id, attempt, values in results:
                if attempt["attempt"] == 1:
                    values = {**values, "first_attempt_at": attempt["at"]}
                await conn.execute(d.update().where(d.c.id == delivery_id).values(claimed_by=None, **values))

    async def open_count(self) -> int:
        """Deliveries not yet delivered nor given up."""
        d = webhook_deliveries
        query = sa.select(sa.func.count()).select_from(d).where(d.c.status.in_(("pending", "sending")))
        async with self.engine.connect() as conn:
            return int((await conn.execute(query)).scalar_one())


def _excerpt(answer: str | None) -> str | None:
    return None if answer is None else answer[:EXCERPT]


def _free(owner: str, stale_before: float) -> sa.ColumnElement[bool]:
    c = webhook_deliveries.c
    return sa.or_(c.claimed_by.is_(None), c.claimed_by == owner, c.claimed_at < stale_before)
