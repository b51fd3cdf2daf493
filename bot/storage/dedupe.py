"""Remember platform deliveries already handled (Slack's ``event_id``), in Redis or the database.

A key is marked on receipt, before handling, so a retry that arrives while the first delivery is
still being handled is dropped too. A retry whose first delivery never arrived finds no mark and is
handled: retry headers alone never cause a drop.
"""

from __future__ import annotations

from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.storage.tables import seen_events

TTL = 3600.0  # Slack retries for about 5 minutes; an hour is plenty


class Dedupe(Protocol):
    async def first(self, key: str, now: float) -> bool:
        """True the first time ``key`` is seen (and marks it), False for every repeat."""
        ...


class RedisDedupe:
    """``SET key 1 NX EX ttl``: atomic across every bot process sharing the Redis."""

    def __init__(self, redis: Any, prefix: str = "switchboard:seen:") -> None:
        self.redis = redis
        self.prefix = prefix

    async def first(self, key: str, now: float) -> bool:
        return bool(await self.redis.set(self.prefix + key, "1", nx=True, ex=int(TTL)))


class DatabaseDedupe:
    """An insert that only one process can win (the key is the primary key)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def first(self, key: str, now: float) -> bool:
        async with self.engine.begin() as conn:
            await conn.execute(seen_events.delete().where(seen_events.c.expires_at < now))
            try:
                async with conn.begin_nested():
                    await conn.execute(seen_events.insert(), {"key": key, "expires_at": now + TTL})
            except sa.exc.IntegrityError:
                return False
        return True


def make_dedupe(engine: AsyncEngine, redis_url: str | None) -> Dedupe:
    """Redis when ``REDIS_URL`` is set, the database otherwise."""
    if redis_url:
        import redis.asyncio as aioredis

        return RedisDedupe(aioredis.from_url(redis_url))
    return DatabaseDedupe(engine)
