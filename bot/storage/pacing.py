"""Pacing shared by every process: when the next message of a lane (a channel's posts, a workspace's edits)
may go, as a token bucket in Redis (one Lua script) or in the database (a compare-and-set on a row).

The bucket is kept in its "virtual scheduling" form (GCRA): one number per lane, the theoretical time
the next message is due. A caller reserves a slot and is told how long to wait for it, so processes that
share a lane take turns instead of racing, and a lane never needs a lock held across a send.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.storage.tables import chat_pacing

CAS_ATTEMPTS = 50  # each failed compare-and-set means another process took a slot: it cannot go on for long


def next_slot(due: float | None, now: float, every: float, burst: int) -> tuple[float, float]:
    """When a message asked for at ``now`` may go, and the lane's new due time.

    ``due`` is the lane's stored due time (None for a lane never used): ``burst`` messages may go at
    once, then one every ``every`` seconds.
    """
    due = now if due is None else max(due, now)
    return max(now, due - (burst - 1) * every), due + every


class Pacer(Protocol):
    async def reserve(self, lane: str, every: float, burst: int) -> float:
        """Take the lane's next slot; the seconds to wait before sending in it (0 when it is free now)."""
        ...


class DatabasePacer:
    """A row per lane in ``chat_pacing``; the slot is taken by a compare-and-set on ``next_allowed_at``."""

    def __init__(self, engine: AsyncEngine, clock: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self.clock = clock  # the wall clock: every process on every host must read the same time

    async def reserve(self, lane: str, every: float, burst: int) -> float:
        for _ in range(CAS_ATTEMPTS):
            now = self.clock()
            try:
                async with self.engine.begin() as conn:
                    stored = (
                        await conn.execute(
                            sa.select(chat_pacing.c.next_allowed_at).where(chat_pacing.c.lane == lane)
                        )
                    ).scalar_one_or_none()
                    send_at, due = next_slot(stored, now, every, burst)
                    if stored is None:
                        won = await self._insert(conn, lane, due)
                    else:
                        query = (
                            chat_pacing.update()
                            .where(chat_pacing.c.lane == lane, chat_pacing.c.next_allowed_at == stored)
                            .values(next_allowed_at=due)
                        )
                        won = (await conn.execute(query)).rowcount == 1
            except sa.exc.OperationalError:
                # SQLite refuses a write whose read snapshot another process has just overtaken
                # ("database is locked"): that is a lost compare-and-set too.
                if self.engine.dialect.name != "sqlite":
                    raise
                won = False
            if won:
                return max(send_at - now, 0.0)
            await asyncio.sleep(0.005)
        raise RuntimeError(f"pacing lane {lane}: {CAS_ATTEMPTS} compare-and-sets in a row were overtaken")

    async def _insert(self, conn: Any, lane: str, due: float) -> bool:
        if self.engine.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
        query = insert(chat_pacing).values(lane=lane, next_allowed_at=due).on_conflict_do_nothing()
        return bool((await conn.execute(query)).rowcount == 1)


# ``next_slot`` in Lua. KEYS[1] the lane; ARGV every, burst. Redis's own clock, so every host reads the
# same time. The wait is returned as text: Redis turns a Lua number into an integer reply (no fraction).
RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local every = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local due = now
local stored = redis.call('GET', KEYS[1])
if stored then due = math.max(tonumber(stored), now) end
local send_at = math.max(now, due - (burst - 1) * every)
local ttl = math.ceil((due + every - now) * 1000) + 1000
redis.call('SET', KEYS[1], string.format('%.6f', due + every), 'PX', ttl)
return string.format('%.6f', send_at - now)
"""


class RedisPacer:
    """The same bucket in Redis, taken atomically by one Lua script."""

    def __init__(self, redis: Any, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix
        self._script = redis.register_script(RESERVE)

    async def reserve(self, lane: str, every: float, burst: int) -> float:
        wait = await self._script(keys=[self.prefix + lane], args=[repr(every), str(burst)])
        return max(float(wait), 0.0)


def make_pacer(engine: AsyncEngine, redis_url: str | None) -> Pacer:
    """Redis when ``REDIS_URL`` is set, the database otherwise.

    In Redis, the lanes are named after the database: the processes that share one database are one
    deployment (one app, as the platform counts its limits), and another sharing the Redis is not.
    """
    if redis_url:
        import redis.asyncio as aioredis

        where = engine.url.render_as_string(hide_password=True).encode()
        prefix = f"switchboard:pace:{hashlib.sha256(where).hexdigest()[:12]}:"
        return RedisPacer(aioredis.from_url(redis_url), prefix)
    return DatabasePacer(engine)
