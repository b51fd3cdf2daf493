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

    async def due(self, now: float, stale_before: float) -> list[Any]:
        """Deliveries whose time has come and that nobody live holds, with their URL and secret.

        A delivery whose subscription is gone has no URL (None): the sender fails it.
        """
        d, s = webhook_deliveries, webhook_subscriptions
        query = (
            sa.select(d, s.c.url, s.c.secret)
            .select_from(d.outerjoin(s, s.c.id == d.c.subscription_id))
            .where(
                d.c.status.in_(("pending", "sending")),
                d.c.next_at <= now,
                sa.or_(d.c.claimed_by.is_(None), d.c.claimed_at < stale_before),
            )
            .order_by(d.c.next_at, d.c.id)
            .limit(BATCH)
        )
        async with self.engine.connect() as conn:
            return list((await conn.execute(query)).all())

    async def claim(self, delivery_id: int, owner: str, now: float, stale_before: float) -> bool:
        """Claim a due delivery for ``owner``; True if this call won it."""
        d = webhook_deliveries
        query = (
            d.update()
            .where(
                d.c.id == delivery_id,
                d.c.status.in_(("pending", "sending")),
                d.c.next_at <= now,
                sa.or_(d.c.claimed_by.is_(None), d.c.claimed_at < stale_before),
            )
            .values(claimed_by=owner, claimed_at=now, status="sending")
        )
        async with self.engine.begin() as conn:
            return bool((await conn.execute(query)).rowcount == 1)

    async def record(
        self,
        delivery_id: int,
        attempt: dict[str, Any],
        values: dict[str, Any],
        first: bool,
    ) -> None:
        """Log one attempt and write the delivery's new state, together."""
        d = webhook_deliveries
        if attempt.get("response") is not None:
            attempt = {**attempt, "response": str(attempt["response"])[:EXCERPT]}
        if first:
            values = {**values, "first_attempt_at": attempt["at"]}
        async with self.engine.begin() as conn:
            await conn.execute(webhook_attempts.insert(), {"delivery_id": delivery_id, **attempt})
            await conn.execute(d.update().where(d.c.id == delivery_id).values(claimed_by=None, **values))

    async def open_count(self) -> int:
        """Deliveries not yet delivered nor given up."""
        d = webhook_deliveries
        query = sa.select(sa.func.count()).select_from(d).where(d.c.status.in_(("pending", "sending")))
        async with self.engine.connect() as conn:
            return int((await conn.execute(query)).scalar_one())
