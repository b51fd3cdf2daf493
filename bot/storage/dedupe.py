"""Remember platform deliveries already handled, in Redis or the database.

Two kinds are remembered, each under its own keys and for its own time: Slack's ``event_id`` (so a
retried event is handled once) and a signed request's signature and timestamp (so a replay of the same
bytes is handled once; ``make_request_guard``).
A key is marked on receipt, before handling, so a retry that arrives while the first delivery is
still being handled is dropped too. A retry whose first delivery never arrived finds no mark and is
handled: retry headers alone never cause a drop.
"""

from __future__ import annotations

from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.storage.tables import seen_events, seen_requests

TTL = 3600.0  # Slack retries for about 5 minutes; an hour is plenty
# Slack's signature check accepts a timestamp up to 5 minutes either side of the clock, so a request
# first seen now can be replayed with a valid signature for at most 10 minutes.
REQUEST_TTL = 600.0


class Dedupe(Protocol):
    async def first(self, key: str, now: float) -> bool:
        """True the first time ``key`` is seen (and marks it), False for every repeat."""
        ...

    async def close(self) -> None:
        """Let go of the connection (a Redis client), if any."""
        ...


class RedisDedupe:
    """``SET key 1 NX EX ttl``: atomic across every bot process sharing the Redis."""

    def __init__(self, redis: Any, prefix: str = "switchboard:seen:", ttl: float = TTL) -> None:
        self.redis = redis
        self.prefix = prefix
        self.ttl = ttl

    async def first(self, key: str, now: float) -> bool:
        return bool(await self.redis.set(self.prefix + key, "1", nx=True, ex=int(self.ttl)))

    async def close(self) -> None:
        await self.redis.aclose()


class DatabaseDedupe:
    """An insert that only one process can win (the key is the primary key); expired rows go first."""

    def __init__(self, engine: AsyncEngine, table: sa.Table = seen_events, ttl: float = TTL) -> None:
        self.engine = engine
        self.table = table
        self.ttl = ttl

    async def first(self, key: str, now: float) -> bool:
        table = self.table
        async with self.engine.begin() as conn:
            await conn.execute(table.delete().where(table.c.expires_at < now))
            try:
                async with conn.begin_nested():
                    await conn.execute(table.insert(), {"key": key, "expires_at": now + self.ttl})
            except sa.exc.IntegrityError:
                return False
        return True

    async def close(self) -> None:
        pass  # the engine is the process's, closed with it


def make_dedupe(engine: AsyncEngine, redis_url: str | None) -> Dedupe:
    """Event ids: Redis when ``REDIS_URL`` is set, the database otherwise."""
    if redis_url:
        import redis.asyncio as aioredis

        return RedisDedupe(aioredis.from_url(redis_url))
    return DatabaseDedupe(engine)


def make_request_guard(engine: AsyncEngine, redis_url: str | None) -> Dedupe:
    """Signed requests (signature and timestamp), kept ``REQUEST_TTL``: Redis when set, else the database."""
    if redis_url:
        import redis.asyncio as aioredis

        return RedisDedupe(aioredis.from_url(redis_url), "switchboard:request:", REQUEST_TTL)
    return DatabaseDedupe(engine, seen_requests, REQUEST_TTL)
