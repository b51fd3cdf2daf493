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

from bot.storage.journal import Batch, Journal
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


class JournalDedupe:
    """The database's insert-only-one-wins, with the mark committed in the journal's group commit.

    ``DatabaseDedupe`` takes the write lock in a transaction of its own for every key (delete the
    expired rows, then insert), before Slack's request may even be acknowledged; at a few hundred
    signed requests a second on SQLite those transactions queued behind each other and the journal,
    in SQLite's busy handler, and were most of the ack's p99 (about a second). Here the key's row
    joins whatever else is being committed, and ``first`` still returns only once it is stored. A copy
    arriving while this process remembers the key is refused without a write; one this process does
    not remember (marked before a restart, or by another process) fails the insert on the primary key,
    and is then decided as ``DatabaseDedupe`` decides it, so an expired mark counts as none. Expired
    rows are deleted with a mark at most every ``sweep_every`` seconds, not with each one.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        journal: Journal,
        table: sa.Table = seen_events,
        ttl: float = TTL,
        sweep_every: float = 60.0,
    ) -> None:
        self.journal = journal
        self.ttl = ttl
        self.sweep_every = sweep_every
        self._exact = DatabaseDedupe(engine, table, ttl)
        self._insert = table.insert()
        self._sweep = table.delete().where(table.c.expires_at < sa.bindparam("now"))
        self._recent: dict[str, float] = {}  # key -> until when, for the keys this process marked
        self._next_sweep = 0.0

    async def first(self, key: str, now: float) -> bool:
        until = self._recent.get(key)
        if until is not None and until > now:
            return False
        batch = Batch()
        if now >= self._next_sweep:
            self._next_sweep = now + self.sweep_every
            self._recent = {k: u for k, u in self._recent.items() if u > now}
            batch.add(self._sweep, {"now": now})
        self._recent[key] = now + self.ttl
        batch.add(self._insert, {"key": key, "expires_at": now + self.ttl})
        try:
            await self.journal.write(batch)
        except sa.exc.IntegrityError:
            return await self._exact.first(key, now)  # stored before: expired, or truly seen
        except BaseException:
            self._recent.pop(key, None)  # not stored: a later copy must not be refused for it
            raise
        return True

    async def close(self) -> None:
        pass


def make_dedupe(engine: AsyncEngine, redis_url: str | None) -> Dedupe:
    """Event ids: Redis when ``REDIS_URL`` is set, the database otherwise."""
    if redis_url:
        import redis.asyncio as aioredis

        return RedisDedupe(aioredis.from_url(redis_url))
    return DatabaseDedupe(engine)


def make_request_guard(engine: AsyncEngine, redis_url: str | None, journal: Journal | None = None) -> Dedupe:
    """Signed requests (signature and timestamp), kept ``REQUEST_TTL``: Redis when set, else the database
    (through ``journal`` when given: ``JournalDedupe``)."""
    if redis_url:
        import redis.asyncio as aioredis

        return RedisDedupe(aioredis.from_url(redis_url), "switchboard:request:", REQUEST_TTL)
    if journal is not None:
        return JournalDedupe(engine, journal, seen_requests, REQUEST_TTL)
    return DatabaseDedupe(engine, seen_requests, REQUEST_TTL)
